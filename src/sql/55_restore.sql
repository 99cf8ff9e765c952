-- Restore: a client's mirror, or a schema Open WebUI made on PostgreSQL,
-- written out as a new SQLite file that Open WebUI boots from.  The writing,
-- checking and renaming is owsync._write_sqlite (src/restore.c); this file
-- decides what to write.

CREATE FUNCTION owsync._write_sqlite(target text, overwrite boolean, label text,
                                     ddl text[], ddl_labels text[],
                                     tables text[], relations regclass[],
                                     journal_mode text, forbidden text[],
                                     OUT table_name text, OUT rows bigint)
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

-- Restore a client's mirror into target_path, with the schema captured from
-- its source at the last sync (sqlite_master's own order and text) and the
-- journal mode the source had.  options: {"reattach": true} points the
-- client at the new file afterwards.
CREATE FUNCTION owsync._restore(p_client text, p_target text, p_overwrite boolean, p_options jsonb)
RETURNS jsonb
LANGUAGE plpgsql
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
    written jsonb;
    t0 timestamptz := clock_timestamp();
    reattach boolean;
BEGIN
    PERFORM owsync._require_admin();
    IF NOT EXISTS (SELECT 1 FROM owsync.client c WHERE c.client = p_client) THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('client %L is not registered', p_client);
    END IF;
    IF jsonb_typeof(coalesce(p_options, '{}')) <> 'object'
       OR EXISTS (SELECT 1 FROM jsonb_object_keys(coalesce(p_options, '{}')) k WHERE k <> 'reattach')
       OR jsonb_typeof(coalesce(p_options -> 'reattach', 'false')) <> 'boolean' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid restore options %s', p_options),
            HINT = 'The only option is "reattach": true or false.';
    END IF;
    reattach := coalesce((p_options ->> 'reattach')::boolean, false);
    n := owsync.client_names(p_client);

    SELECT * INTO sch FROM owsync.source_schema s WHERE s.client = p_client ORDER BY s.schema_id DESC LIMIT 1;
    IF sch.schema_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('client %L has no captured schema', p_client),
            HINT = format('Run CALL owsync.sync(%L) first.', p_client);
    END IF;
    -- rows the sync could not take are in quarantine, not in the mirror: a
    -- restore would lose them
    SELECT count(*) INTO quarantined FROM owsync.quarantine q WHERE q.client = p_client;
    IF quarantined > 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('client %L has %s quarantined rows, which its mirror does not hold', p_client, quarantined),
            DETAIL = 'A restore from the mirror would lose them.',
            HINT = 'Fix the rows at the source and sync (SELECT * FROM owsync.quarantine shows them).';
    END IF;
    SELECT r.journal_mode INTO jm FROM owsync.run r
     WHERE r.client = p_client AND r.journal_mode IS NOT NULL ORDER BY r.run_id DESC LIMIT 1;

    -- the statements in sqlite_master's order; SQLite makes its own
    -- (sqlite_sequence, the automatic indexes of UNIQUE and PRIMARY KEY)
    SELECT array_agg(e ->> 'sql' ORDER BY o), array_agg((e ->> 'type') || ' ' || (e ->> 'name') ORDER BY o),
           array_agg(e ->> 'name' ORDER BY o) FILTER (WHERE e ->> 'type' = 'table')
      INTO ddl, labels, tabs
      FROM jsonb_array_elements(sch.ddl) WITH ORDINALITY AS x(e, o)
     WHERE e ->> 'sql' IS NOT NULL AND left(e ->> 'name', 7) <> 'sqlite_';
    SELECT string_agg(t, ', ') INTO missing FROM unnest(tabs) t
     WHERE to_regclass(format('%I.%I', n.mirror_schema, t)) IS NULL;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('client %L has no mirror table for %s', p_client, missing),
            HINT = format('Run CALL owsync.sync(%L) so that the mirror follows the source''s schema.', p_client);
    END IF;
    rels := ARRAY(SELECT format('%I.%I', n.mirror_schema, t)::regclass FROM unnest(tabs) WITH ORDINALITY u(t, o) ORDER BY o);

    SELECT jsonb_object_agg(w.table_name, w.rows) INTO written
      FROM owsync._write_sqlite(p_target, p_overwrite, format('restore of %s', p_client),
                                coalesce(ddl, '{}'), coalesce(labels, '{}'), coalesce(tabs, '{}'),
                                coalesce(rels, '{}'),
                                CASE WHEN coalesce(jm, 'wal') = 'wal' THEN 'wal' ELSE 'delete' END,
                                owsync._source_paths()) w;

    IF reattach THEN
        EXECUTE format('ALTER SERVER %I OPTIONS (SET database %L)', n.server, p_target);
    END IF;
    RETURN jsonb_build_object('client', p_client, 'target', p_target,
                              'tables', coalesce(cardinality(tabs), 0),
                              'rows', (SELECT coalesce(sum(v::bigint), 0) FROM jsonb_each_text(written) x(k, v)),
                              'journal_mode', CASE WHEN coalesce(jm, 'wal') = 'wal' THEN 'wal' ELSE 'delete' END,
                              'schema_captured_at', sch.captured_at,
                              'reattached', reattach,
                              'seconds', round(extract(epoch FROM clock_timestamp() - t0)::numeric, 3),
                              'table_rows', coalesce(written, '{}'));
END
$$;

CREATE PROCEDURE owsync.restore(client text, target_path text, overwrite boolean DEFAULT false,
                                options jsonb DEFAULT '{}', INOUT report jsonb DEFAULT NULL)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    report := owsync._restore(client, target_path, overwrite, options);
END
$$;

COMMENT ON PROCEDURE owsync.restore IS 'write a client''s mirror out as a new, verified SQLite file (options: reattach); returns a report';
