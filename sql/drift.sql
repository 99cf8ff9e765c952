--
-- The source's schema: captured per run (sqlite_master, alembic revision,
-- journal mode) and followed when it drifts, as when Open WebUI upgrades:
-- new tables and columns arrive without operator action, removed or retyped
-- ones are kept in the mirror and reported.  Also pending() and verify().
--
\set SHOW_CONTEXT never
CREATE EXTENSION owsync_fdw;
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" drift
SET owsync.allowed_directories = '/tmp/owsync_regress/drift';
SET client_min_messages = warning;
SELECT count(*) AS tables FROM owsync.register_client('drift_example_com', '/tmp/owsync_regress/drift/webui.db');

-- captured: sqlite_master in its order, the revision, the journal mode
SELECT jsonb_array_length(ddl) AS schema_objects, ddl -> 0 ->> 'type' AS first_type,
       ddl -> 0 ->> 'name' AS first_name, left(ddl -> 0 ->> 'sql', 40) AS first_sql
  FROM owsync.source_schema WHERE client = 'drift_example_com';
\! sqlite3 /tmp/owsync_regress/drift/webui.db "SELECT count(*) FROM sqlite_master"
SELECT mode, status, alembic_revision, journal_mode, source_schema_id IS NOT NULL AS schema_captured
  FROM owsync.run WHERE client = 'drift_example_com';
SELECT journal_mode, schema_version, user_version, page_count, change_marker IS NOT NULL AS has_marker
  FROM owsync.source_info('owsync_drift_example_com');

-- pending() reads what the next sync would bring; verify() compares
\! sqlite3 /tmp/owsync_regress/drift/webui.db "UPDATE chat SET title = 'silent' WHERE rowid = 1; UPDATE chat SET updated_at = updated_at + 10000000 WHERE rowid = 2; DELETE FROM tag WHERE rowid = 1; INSERT INTO prompt_history VALUES ('ph-new', 'p1', NULL, '{}', 'u1', 'new', 1760000000);"
SELECT * FROM owsync.pending('drift_example_com')
 WHERE updated_since_sync > 0 OR new_rows > 0 OR changed_rows > 0 OR deleted_rows > 0;
SELECT * FROM owsync.verify('drift_example_com') WHERE missing + extra + coalesce(differing, 0) > 0;
CALL owsync.sync('drift_example_com', 'reconcile');
SELECT * FROM owsync.pending('drift_example_com')
 WHERE updated_since_sync > 0 OR new_rows > 0 OR changed_rows > 0 OR deleted_rows > 0;
SELECT count(*) AS tables, sum(source_rows) = sum(mirror_rows) AS same_rows,
       sum(missing + extra + coalesce(differing, 0)) AS differences
  FROM owsync.verify('drift_example_com');

-- an upgrade of Open WebUI changes the schema; the next incremental run
-- follows it and says what it did
\! sqlite3 /tmp/owsync_regress/drift/webui.db < "$PG_ABS_SRCDIR/test/fixtures/drift.sql"
CALL owsync.sync('drift_example_com');
SELECT status, alembic_revision FROM owsync.run ORDER BY run_id DESC LIMIT 1;
SELECT unnest(warnings) AS warning
  FROM (SELECT warnings FROM owsync.run ORDER BY run_id DESC LIMIT 1) last_run;
-- (memory, whose rows did not change, was settled by the unchanged check
-- and has no row)
SELECT table_name, path, inserted, updated FROM owsync.run_table
 WHERE run_id = (SELECT max(run_id) FROM owsync.run) AND table_name IN ('chat', 'memory', 'note', 'skill_usage')
 ORDER BY 1;
-- the new table, the new column with its values, the kept ones
SELECT * FROM drift_example_com.skill_usage ORDER BY id;
SELECT count(*) FILTER (WHERE pinned_order = 1) AS pinned, count(*) AS chats FROM drift_example_com.chat;
SELECT count(*) AS notes_with_kept_meta FROM drift_example_com.note WHERE meta IS NOT NULL;
SELECT count(*) AS chatidtag_kept FROM drift_example_com.chatidtag;
SELECT table_name, removed_at IS NOT NULL AS removed FROM owsync.client_table
 WHERE client = 'drift_example_com' AND table_name IN ('chatidtag', 'skill_usage', 'memory')
 ORDER BY 1;
SELECT jsonb_array_length(ddl) AS schema_objects FROM owsync.source_schema
 WHERE client = 'drift_example_com' ORDER BY schema_id;
-- the replaced table: the former mirror table kept aside with its rows,
-- the new one loaded
SELECT c.relname, (xpath('//n/text()', query_to_xml(format('SELECT count(*) AS n FROM drift_example_com.%I', c.relname),
                                                        false, false, '')))[1]::text AS rows
  FROM pg_class c WHERE c.relnamespace = 'drift_example_com'::regnamespace AND c.relname LIKE 'config%' AND c.relkind = 'r'
 ORDER BY 1;
SELECT count(*) AS config_rows_named_v2 FROM drift_example_com.config WHERE name LIKE 'v2.%';
-- and the mirror equals the source in every column the source has
SELECT count(*) AS tables, sum(missing + extra + coalesce(differing, 0)) AS differences
  FROM owsync.verify('drift_example_com');
-- a restore writes the source's schema as of this sync: what the mirror
-- keeps of the dropped table and column, and the replaced table, is left
-- out, and said; the file equals the source
CALL owsync.restore('drift_example_com', '/tmp/owsync_regress/drift/restored.db') \gset
SELECT :'report'::jsonb -> 'left_out_tables' AS left_out_tables, :'report'::jsonb -> 'left_out_columns' AS left_out_columns;
\! python3 "$PG_ABS_SRCDIR/test/compare_sqlite.py" /tmp/owsync_regress/drift/webui.db /tmp/owsync_regress/drift/restored.db | tail -1
-- changes keep flowing into the new column and table
\! sqlite3 /tmp/owsync_regress/drift/webui.db "UPDATE chat SET pinned_order = 2, updated_at = updated_at + 20000000 WHERE rowid = 3; INSERT INTO skill_usage VALUES ('su3', 's3', '[]', 1760000002, 1760000002);"
CALL owsync.sync('drift_example_com');
SELECT status, warnings FROM owsync.run ORDER BY run_id DESC LIMIT 1;
SELECT count(*) FILTER (WHERE pinned_order = 2) AS pinned_2 FROM drift_example_com.chat;
SELECT count(*) AS skill_usage_rows FROM drift_example_com.skill_usage;
-- a full sync after the drift compares every row, the retyped column's by
-- the mirror's type, and finds nothing to write
CALL owsync.sync('drift_example_com', 'full');
SELECT status, (SELECT sum(inserted + updated + deleted) FROM owsync.run_table t WHERE t.run_id = r.run_id) AS rows_written
  FROM owsync.run r ORDER BY run_id DESC LIMIT 1;
SELECT count(*) AS tables, sum(missing + extra + coalesce(differing, 0)) AS differences
  FROM owsync.verify('drift_example_com');

SELECT owsync.unregister_client('drift_example_com', drop_data => true);
DROP EXTENSION owsync_fdw;
\! rm -rf /tmp/owsync_regress/drift
