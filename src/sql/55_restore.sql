-- Restore: a client's mirror, or a schema Open WebUI made on PostgreSQL,
-- written out as a new SQLite file that Open WebUI boots from.  The writing,
-- checking and renaming is owsync._write_sqlite (src/restore.c); this file
-- decides what to write.

-- The writing side of a restore, in C: relations into a new SQLite file.
CREATE FUNCTION owsync._write_sqlite(target text, overwrite boolean, label text,
                                     ddl text[], ddl_labels text[],
                                     tables text[], relations regclass[],
                                     journal_mode text, forbidden text[], leave_out boolean,
                                     OUT table_name text, OUT rows bigint, OUT left_out text[],
                                     OUT json_numbers bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'owsync_write_sqlite'
LANGUAGE C VOLATILE;

COMMENT ON FUNCTION owsync._write_sqlite IS 'write relations out as a new SQLite file: DDL replayed, rows copied, integrity_check, every table read back and compared, fsync, rename (src/restore.c)';

-- The files registered clients sync from: never a restore's target.
CREATE FUNCTION owsync._source_paths() RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce(array_agg(o.option_value), '{}')
  FROM owsync.client c
  JOIN pg_catalog.pg_foreign_server s ON s.srvname = (owsync.client_names(c.client)).server
  CROSS JOIN LATERAL pg_catalog.pg_options_to_table(s.srvoptions) o
 WHERE o.option_name = 'database'
$$;

-- Write the file (owsync._write_sqlite) and describe it: what every kind of
-- restore reports.  With p_leave_out, the relations' columns the file's
-- tables have not (columns the source dropped, which the mirror keeps) are
-- left out and listed by table in left_out_columns; without, refused.
-- json_numbers_as_sqlite_stores_them counts the JSON numbers the file holds
-- in SQLite's form, equal in value (json 1.0 as the integer 1, as Open WebUI
-- itself would have stored it; a mirror never has any, data born on
-- PostgreSQL may).
CREATE FUNCTION owsync._write_report(p_target text, p_overwrite boolean, p_label text,
                                     ddl text[], labels text[], tabs text[], rels regclass[],
                                     p_journal_mode text, p_leave_out boolean) RETURNS jsonb
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
SELECT jsonb_build_object('target', p_target, 'tables', count(*), 'rows', coalesce(sum(w.rows), 0),
                          'journal_mode', p_journal_mode,
                          'table_rows', coalesce(jsonb_object_agg(w.table_name, w.rows)
                                                 FILTER (WHERE w.table_name IS NOT NULL), '{}'),
                          'left_out_columns', coalesce(jsonb_object_agg(w.table_name, w.left_out)
                                                       FILTER (WHERE cardinality(w.left_out) > 0), '{}'),
                          'json_numbers_as_sqlite_stores_them', coalesce(sum(w.json_numbers), 0))
  FROM owsync._write_sqlite(p_target, p_overwrite, p_label, coalesce(ddl, '{}'), coalesce(labels, '{}'),
                            coalesce(tabs, '{}'), coalesce(rels, '{}'), p_journal_mode,
                            owsync._source_paths(), p_leave_out) w
$$;

-- A restore's options: the flag named (false when not given), and the
-- moment to restore as of, by time ("as_of") or by run ("run_id"), NULL for
-- now; an error for anything else.
CREATE FUNCTION owsync._restore_options(options jsonb, flag text,
                                        OUT flag_value boolean, OUT as_of timestamptz, OUT run_id bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    hint text := format('Options are "%s" (true or false), and "as_of" (a time) or "run_id" (a run''s id).', flag);
BEGIN
    options := coalesce(options, '{}');
    IF jsonb_typeof(options) <> 'object'
       OR EXISTS (SELECT 1 FROM jsonb_object_keys(options) k WHERE k NOT IN (flag, 'as_of', 'run_id'))
       OR jsonb_typeof(coalesce(options -> flag, 'false')) <> 'boolean'
       OR jsonb_typeof(coalesce(options -> 'as_of', '""')) <> 'string'
       OR jsonb_typeof(coalesce(options -> 'run_id', '0')) <> 'number'
       OR (options ? 'as_of' AND options ? 'run_id') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid restore options %s', options), HINT = hint;
    END IF;
    flag_value := coalesce((options ->> flag)::boolean, false);
    BEGIN
        as_of := (options ->> 'as_of')::timestamptz;
        run_id := (options ->> 'run_id')::bigint;
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid restore options %s', options),
            DETAIL = SQLERRM, HINT = hint;
    END;
END
$$;

-- A captured schema (owsync.source_schema.ddl) as a restore replays it: the
-- statements in sqlite_master's order, their labels, and the tables to fill.
-- SQLite makes its own objects (sqlite_sequence, the automatic indexes of
-- UNIQUE and PRIMARY KEY).
CREATE FUNCTION owsync._replay_plan(captured jsonb, OUT ddl text[], OUT labels text[], OUT tabs text[])
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT array_agg(e ->> 'sql' ORDER BY o), array_agg((e ->> 'type') || ' ' || (e ->> 'name') ORDER BY o),
           array_agg(e ->> 'name' ORDER BY o) FILTER (WHERE e ->> 'type' = 'table')
      FROM jsonb_array_elements(captured) WITH ORDINALITY AS x(e, o)
     WHERE e ->> 'sql' IS NOT NULL AND left(e ->> 'name', 7) <> 'sqlite_'
$$;

-- The tables of a mirror (or of its copy) that a restore's captured schema
-- has not: tables the source dropped, which the mirror keeps.
CREATE FUNCTION owsync._left_out_tables(p_schema name, tabs text[]) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce(jsonb_agg(c.relname ORDER BY c.relname), '[]')
  FROM pg_class c
 WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = p_schema)
   AND c.relkind IN ('r', 'p', 'f') AND NOT (c.relname = ANY (tabs))
$$;

-- Restore a client's mirror into target_path, with the schema captured from
-- its source at the last sync (sqlite_master's own order and text) and the
-- journal mode the source had.  What the mirror keeps of tables and columns
-- the source dropped (an Open WebUI upgrade's migrations drop some) is not
-- written, since the file must be what that Open WebUI version expects: the
-- report lists it (left_out_tables, left_out_columns).  options:
-- {"reattach": true} points the client at the new file afterwards;
-- {"as_of": "<time>"} or {"run_id": <run>} restores the client as it stood
-- after that run (owsync._as_of_run()), from its mirror and its kept
-- versions, with the schema captured then: tables and columns it had not
-- are left out.
CREATE FUNCTION owsync._restore(p_client text, p_target text, p_overwrite boolean, p_options jsonb)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n record;
    sch owsync.source_schema;
    jm text;
    ddl text[];
    labels text[];
    tabs text[];
    rels regclass[];
    missing text;
    quarantined bigint;
    report jsonb;
    t0 timestamptz := clock_timestamp();
    reattach boolean;
    opt record;
    past record;		-- as of a past run: owsync._as_of_run()
BEGIN
    PERFORM owsync._require_admin();
    IF NOT EXISTS (SELECT 1 FROM owsync.client c WHERE c.client = p_client) THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('client %L is not registered', p_client);
    END IF;
    SELECT * INTO opt FROM owsync._restore_options(p_options, 'reattach');
    reattach := opt.flag_value;
    n := owsync.client_names(p_client);
    -- the client's run lock, until the end of the transaction: every table
    -- is read as the same run left it
    PERFORM owsync._lock_client(p_client);

    SELECT NULL::bigint AS run_id INTO past;
    IF opt.as_of IS NOT NULL OR opt.run_id IS NOT NULL THEN
        past := owsync._as_of_run(p_client, opt.as_of, opt.run_id);
        SELECT * INTO sch FROM owsync.source_schema s
         WHERE s.schema_id = (SELECT r.source_schema_id FROM owsync.run r WHERE r.run_id = past.run_id);
    ELSE
        SELECT * INTO sch FROM owsync.source_schema s WHERE s.client = p_client ORDER BY s.schema_id DESC LIMIT 1;
    END IF;
    IF sch.schema_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('client %L has no captured schema', p_client),
            HINT = format('Run CALL owsync.sync(%L) first.', p_client);
    END IF;
    -- rows the sync could not take are in quarantine, not in the mirror: a
    -- restore would lose them
    SELECT count(*) INTO quarantined FROM owsync.quarantine q WHERE q.client = p_client;
    IF quarantined > 0 AND past.run_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('client %L has %s quarantined rows, which its mirror does not hold', p_client, quarantined),
            DETAIL = 'A restore from the mirror would lose them.',
            HINT = 'Fix the rows at the source and sync (SELECT * FROM owsync.quarantine shows them).';
    END IF;
    SELECT r.journal_mode INTO jm FROM owsync.run r
     WHERE r.client = p_client AND r.journal_mode IS NOT NULL AND r.run_id <= coalesce(past.run_id, r.run_id)
     ORDER BY r.run_id DESC LIMIT 1;

    SELECT * INTO ddl, labels, tabs FROM owsync._replay_plan(sch.ddl);
    SELECT string_agg(t, ', ') INTO missing FROM unnest(tabs) t
     WHERE to_regclass(format('%I.%I', n.mirror_schema,
                              CASE WHEN past.run_id IS NULL THEN t
                                   ELSE owsync._as_of_table(n.mirror_schema, t, past.run_id) END)) IS NULL;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('client %L has no mirror table for %s', p_client, missing),
            HINT = format('Run CALL owsync.sync(%L) so that the mirror follows the source''s schema.', p_client);
    END IF;
    IF past.run_id IS NULL THEN
        rels := ARRAY(SELECT format('%I.%I', n.mirror_schema, t)::regclass FROM unnest(tabs) WITH ORDINALITY u(t, o) ORDER BY o);
    ELSE
        rels := owsync._as_of_views(n.mirror_schema, owsync._versions_schema(p_client), tabs, past.run_id);
    END IF;

    report := owsync._write_report(p_target, p_overwrite, format('restore of %s', p_client), ddl, labels, tabs, rels,
                                   CASE WHEN coalesce(jm, 'wal') = 'wal' THEN 'wal' ELSE 'delete' END, true)
              || jsonb_build_object('left_out_tables', owsync._left_out_tables(n.mirror_schema, tabs));
    IF past.run_id IS NOT NULL THEN
        PERFORM owsync._drop_as_of_views(rels);
        report := report || owsync._as_of_report(opt.as_of, past.run_id, past.finished_at, past.exact_at,
                                                 past.granularity);
    END IF;
    IF reattach THEN
        EXECUTE format('ALTER SERVER %I OPTIONS (SET database %L)', n.server, p_target);
        UPDATE owsync.client c SET database = p_target WHERE c.client = p_client;	-- discover() matches by it
    END IF;
    RETURN jsonb_build_object('client', p_client, 'schema_captured_at', sch.captured_at, 'reattached', reattach,
                              'seconds', round(extract(epoch FROM clock_timestamp() - t0)::numeric, 3))
           || report;
END
$$;

-- CALL owsync.restore(client, target_path [, overwrite, options]): see
-- owsync._restore().
CREATE PROCEDURE owsync.restore(client text, target_path text, overwrite boolean DEFAULT false,
                                options jsonb DEFAULT '{}', INOUT report jsonb DEFAULT NULL)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    report := owsync._restore(client, target_path, overwrite, options);
END
$$;

COMMENT ON PROCEDURE owsync.restore IS 'write a client''s mirror out as a new, verified SQLite file (options: reattach, as_of or run_id); returns a report';

-- Rollback of a deployment that ran on PostgreSQL: a schema created by Open
-- WebUI itself (its own types: json, bigint, boolean, text, varchar, ...)
-- written out as the SQLite file Open WebUI would have.  The DDL is taken
-- from a registered client of the same Open WebUI version when options name
-- one ({"ddl_from_client": "<client>"}: its captured sqlite_master, exactly
-- as Open WebUI's own migrations wrote it), else generated the way
-- SQLAlchemy writes it for SQLite (see owsync._sqlite_ddl).

-- The SQLite type SQLAlchemy declares for a PostgreSQL column type.
CREATE FUNCTION owsync._sqlite_type(typ oid, typmod integer) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE typ
         WHEN 'character varying'::regtype THEN
              'VARCHAR' || CASE WHEN typmod > 4 THEN '(' || (typmod - 4) || ')' ELSE '' END
         WHEN 'character'::regtype THEN 'CHAR' || CASE WHEN typmod > 4 THEN '(' || (typmod - 4) || ')' ELSE '' END
         WHEN 'text'::regtype THEN 'TEXT'
         WHEN 'bigint'::regtype THEN 'BIGINT'
         WHEN 'integer'::regtype THEN 'INTEGER'
         WHEN 'smallint'::regtype THEN 'SMALLINT'
         WHEN 'boolean'::regtype THEN 'BOOLEAN'
         WHEN 'json'::regtype THEN 'JSON'
         WHEN 'jsonb'::regtype THEN 'JSON'
         WHEN 'double precision'::regtype THEN 'FLOAT'
         WHEN 'real'::regtype THEN 'REAL'
         WHEN 'numeric'::regtype THEN 'NUMERIC'
         WHEN 'date'::regtype THEN 'DATE'
         WHEN 'timestamp without time zone'::regtype THEN 'DATETIME'
         WHEN 'bytea'::regtype THEN 'BLOB'
       END
$$;

-- An identifier as SQLAlchemy writes it for SQLite: bare when it can be.
CREATE FUNCTION owsync._sqlite_ident(name text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN name ~ '^[a-z_][a-z0-9_]*$'
             AND name NOT IN ('group', 'order', 'index', 'table', 'select', 'where', 'from', 'default',
                              'check', 'references', 'primary', 'unique', 'transaction', 'to', 'values',
                              'key', 'limit', 'offset', 'join', 'on', 'as', 'by', 'in', 'is', 'not', 'null')
            THEN name ELSE '"' || replace(name, '"', '""') || '"' END
$$;

-- An index expression or predicate as SQLite reads it: PostgreSQL's casts
-- and the parentheses it puts around a column go, lower((email)::text)
-- becoming lower(email) as Open WebUI declares it.
CREATE FUNCTION owsync._sqlite_expr(expr text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT regexp_replace(regexp_replace(expr, '::[a-z ]+(\[\])?', '', 'g'), '\(\(([a-z_][a-z0-9_]*)\)\)', '(\1)', 'g')
$$;

-- Is an index PostgreSQL's alone: JSON operators in its expressions or
-- predicate?
CREATE FUNCTION owsync._postgres_only_index(idx oid) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT coalesce(pg_get_expr(i.indexprs, i.indrelid) ~ '->', false)
       OR coalesce(pg_get_expr(i.indpred, i.indrelid) ~ '->', false)
  FROM pg_index i WHERE i.indexrelid = idx
$$;

-- CREATE TABLE and CREATE INDEX statements for a PostgreSQL table, in
-- SQLAlchemy's layout; a column type or default SQLite cannot take is an
-- error naming it.  An index on JSON operators (-> or ->>, in its
-- expressions or predicate) is PostgreSQL's alone (Open WebUI makes such
-- indexes only there): not written, and named in left_out.
CREATE FUNCTION owsync._sqlite_ddl(rel regclass, OUT stmts text[], OUT labels text[], OUT left_out text[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a record;
    items text[] := '{}';
    t text;
    d text;
    tname text := (SELECT c.relname FROM pg_class c WHERE c.oid = rel);
BEGIN
    FOR a IN SELECT att.attname, att.atttypid, att.atttypmod, att.attnotnull,
                    pg_get_expr(ad.adbin, ad.adrelid) AS def
               FROM pg_attribute att
               LEFT JOIN pg_attrdef ad ON ad.adrelid = att.attrelid AND ad.adnum = att.attnum
              WHERE att.attrelid = rel AND att.attnum > 0 AND NOT att.attisdropped
              ORDER BY att.attnum LOOP
        t := owsync._sqlite_type(a.atttypid, a.atttypmod);
        IF t IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
                MESSAGE = format('column %I of %s has type %s, which has no SQLite counterpart',
                                 a.attname, rel, format_type(a.atttypid, a.atttypmod));
        END IF;
        -- simple defaults as Open WebUI declares them; others are left out
        d := CASE WHEN a.def IS NULL THEN NULL
                  WHEN a.def IN ('false', 'true') THEN CASE a.def WHEN 'true' THEN '1' ELSE '0' END
                  WHEN a.def ~ '^-?[0-9.]+$' THEN a.def
                  WHEN a.def ~* '^(CURRENT_TIMESTAMP|now\(\))$' THEN 'CURRENT_TIMESTAMP'
                  WHEN a.def ~ '^''([^'']|'''')*''(::[a-z ]+)?$' THEN substring(a.def FROM '^(''([^'']|'''')*'')')
             END;
        items := items || (owsync._sqlite_ident(a.attname) || ' ' || t
                           || coalesce(' DEFAULT ' || d, '') || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END);
    END LOOP;
    items := items || ARRAY(
        SELECT CASE con.contype WHEN 'p' THEN 'PRIMARY KEY' ELSE 'UNIQUE' END || ' ('
               || (SELECT string_agg(owsync._sqlite_ident(att.attname), ', ' ORDER BY k.n)
                     FROM unnest(con.conkey) WITH ORDINALITY k(attnum, n)
                     JOIN pg_attribute att ON att.attrelid = rel AND att.attnum = k.attnum) || ')'
          FROM pg_constraint con
         WHERE con.conrelid = rel AND con.contype IN ('p', 'u')
         ORDER BY con.contype, con.conname);
    stmts := ARRAY['CREATE TABLE ' || owsync._sqlite_ident(tname) || E' (\n\t'
                   || array_to_string(items, E', \n\t') || E'\n)'];
    labels := ARRAY['table ' || tname];
    -- indexes that are not a constraint's
    SELECT stmts || coalesce(array_agg(x.s ORDER BY x.name), '{}'), labels || coalesce(array_agg('index ' || x.name ORDER BY x.name), '{}')
      INTO stmts, labels
      FROM (SELECT ic.relname AS name,
                   'CREATE ' || CASE WHEN i.indisunique THEN 'UNIQUE ' ELSE '' END || 'INDEX '
                   || owsync._sqlite_ident(ic.relname) || ' ON ' || owsync._sqlite_ident(tname) || ' ('
                   || (SELECT string_agg(CASE WHEN k.attnum > 0 THEN owsync._sqlite_ident(att.attname)
                                              ELSE owsync._sqlite_expr(pg_get_indexdef(i.indexrelid, k.n::integer, true)) END,
                                         ', ' ORDER BY k.n)
                         FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, n)
                         LEFT JOIN pg_attribute att ON att.attrelid = rel AND att.attnum = k.attnum) || ')'
                   || coalesce(' WHERE ' || owsync._sqlite_expr(pg_get_expr(i.indpred, i.indrelid, true)), '') AS s
              FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
             WHERE i.indrelid = rel
               AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid)
               AND NOT owsync._postgres_only_index(i.indexrelid)) x;
    left_out := ARRAY(SELECT ic.relname::text FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                       WHERE i.indrelid = rel AND owsync._postgres_only_index(i.indexrelid) ORDER BY 1);
END
$$;

-- Write a schema Open WebUI created on PostgreSQL into target_path, with
-- the DDL of a registered client ({"ddl_from_client": ...}) or generated.
CREATE FUNCTION owsync._restore_from_schema(p_schema text, p_target text, p_overwrite boolean, p_options jsonb)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tmpl text;
    sch owsync.source_schema;
    rels regclass[];
    tabs text[];
    ddl text[] := '{}';
    labels text[] := '{}';
    g record;
    left_out text[] := '{}';
    r regclass;
    denied text;
    report jsonb;
    t0 timestamptz := clock_timestamp();
BEGIN
    PERFORM owsync._require_admin();
    IF jsonb_typeof(coalesce(p_options, '{}')) <> 'object'
       OR EXISTS (SELECT 1 FROM jsonb_object_keys(coalesce(p_options, '{}')) k WHERE k <> 'ddl_from_client')
       OR jsonb_typeof(coalesce(p_options -> 'ddl_from_client', '""')) <> 'string' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid restore options %s', p_options),
            HINT = 'The only option is "ddl_from_client": the name of a registered client of the same Open WebUI version.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = p_schema) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_schema_name',
            MESSAGE = format('schema %I does not exist', p_schema);
    END IF;
    tabs := ARRAY(SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname = p_schema AND c.relkind IN ('r', 'p') AND NOT c.relispartition
                   ORDER BY c.relname <> 'alembic_version', c.relname);
    IF cardinality(tabs) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('schema %I has no tables', p_schema);
    END IF;
    rels := ARRAY(SELECT format('%I.%I', p_schema, t)::regclass FROM unnest(tabs) WITH ORDINALITY u(t, o) ORDER BY o);
    -- the caller reads these rows, not the extension's owner on their behalf
    SELECT string_agg(x::text, ', ') INTO denied FROM unnest(rels) x
     WHERE NOT has_table_privilege(session_user, x, 'SELECT');
    IF denied IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('permission denied: role %s may not read %s', session_user, denied);
    END IF;

    tmpl := nullif(p_options ->> 'ddl_from_client', '');
    IF tmpl IS NOT NULL THEN
        SELECT * INTO sch FROM owsync.source_schema s WHERE s.client = tmpl ORDER BY s.schema_id DESC LIMIT 1;
        IF sch.schema_id IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'undefined_object',
                MESSAGE = format('client %L has no captured schema', tmpl),
                HINT = 'Name a registered client that has been synced.';
        END IF;
        SELECT array_agg(e ->> 'sql' ORDER BY o), array_agg((e ->> 'type') || ' ' || (e ->> 'name') ORDER BY o)
          INTO ddl, labels
          FROM jsonb_array_elements(sch.ddl) WITH ORDINALITY AS x(e, o)
         WHERE e ->> 'sql' IS NOT NULL AND left(e ->> 'name', 7) <> 'sqlite_';
        -- the template must describe exactly these tables
        IF (SELECT array_agg(e ->> 'name' ORDER BY e ->> 'name') FROM jsonb_array_elements(sch.ddl) e
             WHERE e ->> 'type' = 'table' AND left(e ->> 'name', 7) <> 'sqlite_')
           IS DISTINCT FROM (SELECT array_agg(t ORDER BY t) FROM unnest(tabs) t) THEN
            RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
                MESSAGE = format('the tables of schema %I differ from those of client %L', p_schema, tmpl),
                HINT = 'Name a client of the same Open WebUI version, or leave ddl_from_client out to generate the schema.';
        END IF;
        tabs := ARRAY(SELECT e ->> 'name' FROM jsonb_array_elements(sch.ddl) WITH ORDINALITY x(e, o)
                       WHERE e ->> 'type' = 'table' AND left(e ->> 'name', 7) <> 'sqlite_' ORDER BY o);
        rels := ARRAY(SELECT format('%I.%I', p_schema, t)::regclass FROM unnest(tabs) WITH ORDINALITY u(t, o) ORDER BY o);
    ELSE
        FOREACH r IN ARRAY rels LOOP
            g := owsync._sqlite_ddl(r);
            ddl := ddl || g.stmts;
            labels := labels || g.labels;
            left_out := left_out || g.left_out;
        END LOOP;
    END IF;

    report := owsync._write_report(p_target, p_overwrite, format('restore of schema %s', p_schema),
                                   ddl, labels, tabs, rels, 'wal', false);
    RETURN jsonb_build_object('schema', p_schema, 'left_out_indexes', to_jsonb(left_out),
                              'ddl', CASE WHEN tmpl IS NULL THEN 'generated' ELSE 'client ' || tmpl END,
                              'seconds', round(extract(epoch FROM clock_timestamp() - t0)::numeric, 3))
           || report;
END
$$;

-- CALL owsync.restore_from_schema(schema, target_path [, overwrite, options]):
-- see owsync._restore_from_schema().
CREATE PROCEDURE owsync.restore_from_schema(schema text, target_path text, overwrite boolean DEFAULT false,
                                            options jsonb DEFAULT '{}', INOUT report jsonb DEFAULT NULL)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    report := owsync._restore_from_schema(schema, target_path, overwrite, options);
END
$$;

COMMENT ON PROCEDURE owsync.restore_from_schema IS 'write a schema Open WebUI created on PostgreSQL out as a new, verified SQLite file (options: ddl_from_client); returns a report';
