--
-- Upgrade: a cluster holding registered, synced clients of owsync_fdw 0.1
-- (and then one of each of 0.2 to 0.6) is upgraded by ALTER EXTENSION owsync_fdw UPDATE.
-- Nothing is lost (every row of owsync's tables, the digests and the
-- mirrors), the clients sync on
-- incrementally (no table reloaded), their reader roles and conflicts work as
-- before, their schedules are run by the dispatcher pool's pg_cron jobs
-- rather than a job each, and the upgraded extension is the one a fresh
-- install makes (routines, views, tables, grants, policies).
--
\set SHOW_CONTEXT never
CREATE EXTENSION pg_cron;
CREATE EXTENSION owsync_fdw VERSION '0.1';
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" upgrade
SET owsync.allowed_directories = '/tmp/owsync_regress/upgrade';
SET client_min_messages = warning;
\getenv abs_srcdir PG_ABS_SRCDIR
\i :abs_srcdir/test/fixtures/compare.sql

-- Every row of owsync's tables, of the digest tables and of the mirrors, as
-- a count and an md5 per table.
CREATE FUNCTION pg_temp.state() RETURNS TABLE (rel text, n bigint, digest text)
LANGUAGE plpgsql AS $$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT c.oid::regclass::text AS name FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
            WHERE c.relkind = 'r' AND (s.nspname IN ('owsync', 'legacy_example_com', 'fresh_example_com')
                                       OR s.nspname LIKE 'owsync\_%\_digest')
            ORDER BY 1 LOOP
    rel := t.name;
    -- (owsync.client without the column 0.5 added, owsync.client_table
    -- without the two 0.7 added: new, not changed)
    EXECUTE format('SELECT count(*), md5(coalesce(string_agg(y, E''\n'' ORDER BY y), ''''))
                      FROM (SELECT %s AS y FROM %s x) x',
                   CASE t.name WHEN 'owsync.client' THEN $q$(to_jsonb(x) - 'versions_from')::text$q$
                               WHEN 'owsync.client_table' THEN $q$(to_jsonb(x) - 'window_updated' - 'window_digests')::text$q$
                               ELSE 'x::text' END,
                   t.name) INTO n, digest;
    RETURN NEXT;
  END LOOP;
END $$;

-- The extension's definition as the catalog holds it: every routine (its
-- whole definition and grants), view, table column, constraint, policy and
-- table grant of schema owsync.
CREATE FUNCTION pg_temp.definition() RETURNS TABLE (kind text, name text, def text)
LANGUAGE sql AS $$
  SELECT 'routine', p.oid::regprocedure::text, md5(pg_get_functiondef(p.oid)) || ' ' || coalesce(p.proacl::text, '')
    FROM pg_proc p WHERE p.pronamespace = 'owsync'::regnamespace
  UNION ALL
  SELECT 'view', c.relname, md5(pg_get_viewdef(c.oid)) || ' ' || coalesce(c.relacl::text, '')
         || coalesce(c.reloptions::text, '')
    FROM pg_class c WHERE c.relnamespace = 'owsync'::regnamespace AND c.relkind = 'v'
  UNION ALL
  SELECT 'column', a.attrelid::regclass::text || '.' || a.attname,
         format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
         || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE c.relnamespace = 'owsync'::regnamespace AND c.relkind IN ('r', 'c') AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'constraint', con.conrelid::regclass::text || ' ' || con.conname, pg_get_constraintdef(con.oid)
    FROM pg_constraint con WHERE con.connamespace = 'owsync'::regnamespace
  UNION ALL
  SELECT 'index', i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = 'owsync'::regnamespace
  UNION ALL
  SELECT 'policy', p.tablename || ' ' || p.policyname, p.cmd || ' ' || p.roles::text || ' ' || coalesce(p.qual, '')
    FROM pg_policies p WHERE p.schemaname = 'owsync'
  UNION ALL
  SELECT 'table', c.relname, coalesce(c.relacl::text, '') || ' rls ' || c.relrowsecurity
    FROM pg_class c WHERE c.relnamespace = 'owsync'::regnamespace AND c.relkind IN ('r', 'S')
  UNION ALL
  SELECT 'trigger', t.tgrelid::regclass::text || ' ' || t.tgname, pg_get_triggerdef(t.oid)
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE c.relnamespace = 'owsync'::regnamespace AND NOT t.tgisinternal
  UNION ALL
  SELECT 'member', pg_describe_object(d.classid, d.objid, d.objsubid), ''
    FROM pg_depend d WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
     AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'owsync_fdw')
$$;

-- 0.1: two clients, one with a reader role, a conflict policy, a schedule
-- and a misspelt option value that 0.1 took silently (0.2 refuses it at
-- registration); synced twice; a row changed in its mirror (a pending
-- mirror change)
SELECT extversion FROM pg_extension WHERE extname = 'owsync_fdw';
SELECT count(*) AS tables FROM owsync.register_client('legacy_example_com', '/tmp/owsync_regress/upgrade/legacy.db',
    'hourly', '{"reader_role": true, "conflict_policy": "target_wins", "on_bad_row": "quarantin"}');
SELECT count(*) AS tables FROM owsync.register_client('fresh_example_com', '/tmp/owsync_regress/upgrade/fresh.db');
CALL owsync.sync('legacy_example_com');
CALL owsync.sync('fresh_example_com');
UPDATE legacy_example_com.chat SET title = 'edited in PostgreSQL'
 WHERE id = (SELECT id FROM legacy_example_com.chat ORDER BY id COLLATE "C" LIMIT 1 OFFSET 1);
SELECT * FROM pg_temp.check('legacy_example_com');
SELECT * FROM pg_temp.check('fresh_example_com');
CREATE TEMP TABLE before AS SELECT * FROM pg_temp.state();
CREATE TEMP TABLE before_watermarks AS SELECT client, table_name, watermark FROM owsync.client_table;
CREATE TEMP TABLE before_runs AS SELECT client, run_id FROM owsync.run WHERE status = 'succeeded';
SELECT count(*) AS relations, sum(n) AS rows FROM before;
SELECT jobname, command FROM cron.job ORDER BY jobname;

-- the upgrade
ALTER EXTENSION owsync_fdw UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'owsync_fdw';

-- nothing lost: every table holds the same rows (owsync.edge is new, and
-- empty; so are the pool's owsync.sync_pool, and owsync.sync_due but for
-- the scheduled client); the client's job gave way to the pool's
SELECT coalesce(b.rel, a.rel) AS rel, b.n AS rows_before, a.n AS rows_after
  FROM before b FULL JOIN pg_temp.state() a USING (rel)
 WHERE b.digest IS DISTINCT FROM a.digest;
SELECT jobname, command FROM cron.job ORDER BY jobname;
-- the misspelt option is reported; the runs below go on as before
SELECT client, problem FROM owsync.status ORDER BY client;
SELECT client, bad_options, option_errors FROM owsync.status_detail ORDER BY client;

-- the clients sync on: the file's changes (silent edits, an import with old
-- timestamps, hard deletes) arrive incrementally, no table is reloaded, the
-- watermarks go on from where they were, and the conflict with the mirror's
-- edit is decided by the client's policy as before
\! cd /tmp/owsync_regress/upgrade && sqlite3 legacy.db < "$PG_ABS_SRCDIR/test/fixtures/mutations.sql"
CALL owsync.sync('legacy_example_com');
CALL owsync.sync('fresh_example_com');
SELECT client, mode, status, inserted, updated, deleted, conflicts
  FROM owsync.history_detail WHERE run_id > (SELECT max(run_id) - 2 FROM owsync.run) ORDER BY run_id;
SELECT path, count(*) AS tables FROM owsync.run_table
 WHERE run_id > (SELECT max(run_id) - 2 FROM owsync.run) GROUP BY path ORDER BY path;
SELECT count(*) AS watermarks_gone_back FROM before_watermarks b
  JOIN owsync.client_table ct USING (client, table_name) WHERE ct.watermark < b.watermark;
SELECT table_name, policy, mirror_op, source_op, winner FROM owsync.conflicts;
-- the mirror's edit given up for the source's version, and a reconcile for
-- the edit that did not bump updated_at: the mirrors equal their files
SELECT owsync.resolve_conflict(conflict_id, 'source') FROM owsync.conflicts;
CALL owsync.sync('legacy_example_com', 'reconcile');
SELECT * FROM pg_temp.check('legacy_example_com');
SELECT * FROM pg_temp.compare('legacy_example_com') WHERE differences > 0 OR source_rows <> mirror_rows;
SELECT * FROM pg_temp.check('fresh_example_com');
-- the runs after the upgrade keep what they replace, from the last run before it on
SELECT client, versions_from = (SELECT max(run_id) FROM before_runs b WHERE b.client = c.client) AS from_last_run_before,
       versions_bytes > 0 AS kept
  FROM owsync.client c JOIN owsync.status_detail USING (client) ORDER BY client;
-- the misspelt option set right
SELECT owsync.set_options('legacy_example_com', '{"on_bad_row": "abort"}') ->> 'on_bad_row' AS on_bad_row;
SELECT client, problem FROM owsync.status ORDER BY client;
-- the reader role reads its client's mirror and status, as before
SET ROLE legacy_example_com_reader;
SELECT count(*) > 0 AS reads_chats FROM legacy_example_com.chat;
SELECT client FROM owsync.status;
RESET ROLE;

-- the upgraded extension is the one a fresh install makes
CREATE TEMP TABLE upgraded AS SELECT * FROM pg_temp.definition();
SELECT owsync.unregister_client('legacy_example_com', drop_data => true);
SELECT owsync.unregister_client('fresh_example_com', drop_data => true);
DROP EXTENSION owsync_fdw;
CREATE EXTENSION owsync_fdw;
SELECT kind, count(*) FROM upgraded GROUP BY kind ORDER BY kind;
(SELECT 'only after the upgrade' AS side, * FROM upgraded EXCEPT SELECT 'only after the upgrade', * FROM pg_temp.definition())
UNION ALL
(SELECT 'only in a fresh install', * FROM pg_temp.definition() EXCEPT SELECT 'only in a fresh install', * FROM upgraded)
ORDER BY 1, 2, 3;

CREATE TEMP TABLE fresh_install AS SELECT * FROM pg_temp.definition();

-- 0.2 to 0.6: a client synced and on the realtime tier, then the upgrade to this version
\set from 0.2
\i :abs_srcdir/test/fixtures/upgrade_from.sql
\set from 0.3
\i :abs_srcdir/test/fixtures/upgrade_from.sql
\set from 0.4
\i :abs_srcdir/test/fixtures/upgrade_from.sql
\set from 0.5
\i :abs_srcdir/test/fixtures/upgrade_from.sql
\set from 0.6
\i :abs_srcdir/test/fixtures/upgrade_from.sql

DROP EXTENSION owsync_fdw;
DROP EXTENSION pg_cron;
DROP ROLE legacy_example_com_reader;
\! rm -rf /tmp/owsync_regress/upgrade
