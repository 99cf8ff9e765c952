-- The source's schema: captured at each run when it changed (what a restore
-- replays), and drift from the client's tables applied.

-- Record the source's schema for this run; capture sqlite_master when
-- SQLite's schema_version moved.  Returns whether it moved since the last
-- capture (schema drift to look at) and the file's change marker.
CREATE FUNCTION owsync._capture_schema(p_client text, p_run bigint,
                                       OUT drifted boolean, OUT change_marker text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n record := owsync.client_names(p_client);
    info record := owsync.source_info(n.server);
    last owsync.source_schema;
    sid bigint;
    ddl jsonb;
BEGIN
    SELECT * INTO last FROM owsync.source_schema
     WHERE client = p_client ORDER BY schema_id DESC LIMIT 1;
    IF last.schema_id IS NOT NULL AND last.schema_version = info.schema_version THEN
        sid := last.schema_id;
    ELSE
        -- rows arrive in sqlite_master's own order, which a restore replays
        EXECUTE format('SELECT jsonb_agg(jsonb_build_object(%L, type, %L, name, %L, tbl_name, %L, sql)
                                         ORDER BY ord)
                          FROM (SELECT m.*, row_number() OVER () AS ord FROM %I.owsync_sqlite_master m) x',
                       'type', 'name', 'tbl_name', 'sql', n.src_schema)
          INTO ddl;
        INSERT INTO owsync.source_schema (client, schema_version, ddl)
        VALUES (p_client, info.schema_version, coalesce(ddl, '[]'))
        RETURNING schema_id INTO sid;
    END IF;
    UPDATE owsync.run SET source_schema_id = sid, journal_mode = info.journal_mode WHERE run_id = p_run;
    drifted := last.schema_id IS NOT NULL AND last.schema_version <> info.schema_version;
    change_marker := info.change_marker;
END
$$;

-- A table the source replaced by one of the same name whose key the mirror
-- cannot follow (a key column gone: Open WebUI 0.10.0 renamed config to
-- config_old and made a new config keyed by "key").  Its mirror table is
-- kept, no longer synced, as <table>_before_<run> (a restore leaves it out
-- and says so); its digests, foreign table, catalog row and pending mirror
-- changes go, so the new table is imported and loaded like one that
-- appeared.  Its versions table is kept under the same name: an as-of
-- restore to before this run reads both.  Returns the kept table's name.
CREATE FUNCTION owsync._retire_table(p_client text, p_table text, p_run bigint) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n record := owsync.client_names(p_client);
    kept text := left(p_table, 63 - length('_before_' || p_run)) || '_before_' || p_run;
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS owsync_mirror_change ON %I.%I', n.mirror_schema, p_table);
    EXECUTE format('ALTER TABLE %I.%I RENAME TO %I', n.mirror_schema, p_table, kept);
    IF to_regclass(format('%I.%I', owsync._versions_schema(p_client), p_table)) IS NOT NULL THEN
        EXECUTE format('ALTER TABLE %I.%I RENAME TO %I', owsync._versions_schema(p_client), p_table, kept);
    END IF;
    EXECUTE format('DROP TABLE IF EXISTS %I.%I', n.digest_schema, p_table);
    EXECUTE format('DROP FOREIGN TABLE IF EXISTS %I.%I', n.src_schema, p_table);
    DELETE FROM owsync.client_table ct WHERE ct.client = p_client AND ct.table_name = p_table;
    DELETE FROM owsync.mirror_change mc WHERE mc.client = p_client AND mc.table_name = p_table;
    RETURN kept;
END
$$;

-- The columns of a table both the source and the client have, compared
-- (the source's imported afresh into the probe schema): a new column is
-- added to the foreign and mirror tables (widened: the table is to be
-- reconciled); a removed one is dropped from the foreign table and kept in
-- the mirror, nullable (widened: its digests change); a retyped one is kept
-- as the mirror has it.  What it did, in notes.
CREATE FUNCTION owsync._drift_columns(p_client text, p_table text, probe name,
                                      OUT notes text[], OUT widened boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n record := owsync.client_names(p_client);
    col record;
BEGIN
    notes := '{}';
    widened := false;
    FOR col IN SELECT p.attname::text AS name, format_type(p.atttypid, p.atttypmod) AS type,
                    format_type(s.atttypid, s.atttypmod) AS old_type
               FROM pg_attribute p
               LEFT JOIN pg_attribute s ON s.attrelid = format('%I.%I', n.src_schema, p_table)::regclass
                                       AND s.attname = p.attname AND NOT s.attisdropped
              WHERE p.attrelid = format('%I.%I', probe, p_table)::regclass
                AND p.attnum > 0 AND NOT p.attisdropped ORDER BY p.attnum LOOP
        IF col.old_type IS NULL THEN
            EXECUTE format('ALTER FOREIGN TABLE %I.%I ADD COLUMN %I %s OPTIONS (column_name %L)',
                           n.src_schema, p_table, col.name, col.type, col.name);
            IF NOT EXISTS (SELECT 1 FROM pg_attribute a
                            WHERE a.attrelid = format('%I.%I', n.mirror_schema, p_table)::regclass
                              AND a.attname = col.name AND NOT a.attisdropped) THEN
                EXECUTE format('ALTER TABLE %I.%I ADD COLUMN %I %s', n.mirror_schema, p_table, col.name, col.type);
            END IF;
            widened := true;
            notes := notes || format('column %s.%s appeared at the source: added, table reconciled', p_table, col.name);
        ELSIF col.old_type <> col.type THEN
            notes := notes || format('column %s.%s changed type at the source (now read as %s): the mirror keeps %s',
                                     p_table, col.name, col.type, col.old_type);
        END IF;
    END LOOP;
    FOR col IN SELECT s.attname::text AS name FROM pg_attribute s
              WHERE s.attrelid = format('%I.%I', n.src_schema, p_table)::regclass
                AND s.attnum > 0 AND NOT s.attisdropped AND s.attname <> 'owsync_digest'
                AND NOT EXISTS (SELECT 1 FROM pg_attribute p
                                 WHERE p.attrelid = format('%I.%I', probe, p_table)::regclass
                                   AND p.attname = s.attname AND NOT p.attisdropped) LOOP
        EXECUTE format('ALTER FOREIGN TABLE %I.%I DROP COLUMN %I', n.src_schema, p_table, col.name);
        -- the source's new rows have no value for it
        EXECUTE format('ALTER TABLE %I.%I ALTER COLUMN %I DROP NOT NULL', n.mirror_schema, p_table, col.name);
        widened := true;
        notes := notes || format('column %s.%s was removed at the source: kept in the mirror, no longer synced', p_table, col.name);
    END LOOP;
END
$$;

-- Schema drift: compare the source's tables and columns (imported afresh into
-- a probe schema) with the client's.  A new table is imported, created and
-- (by the caller) loaded; a new column is added to the foreign and mirror
-- tables and its table reconciled; a table or column removed or retyped at
-- the source is kept in the mirror (a removed column made nullable) and
-- reported; a table replaced by one without its key column is retired
-- (_retire_table) and loaded anew.  Open WebUI upgrades (new alembic
-- revisions) go through here without operator action.
CREATE FUNCTION owsync._apply_drift(p_client text, p_run bigint,
                                    OUT new_tables text[], OUT widened text[])
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n record := owsync.client_names(p_client);
    probe name := owsync._probe_schema(p_client);
    opts jsonb := (SELECT owsync._options(options) FROM owsync.client WHERE client = p_client);
    notes text[] := '{}';
    t record;
    d record;
    w text;
BEGIN
    new_tables := '{}';
    widened := '{}';
    IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = probe) THEN
        EXECUTE format('DROP SCHEMA %I CASCADE', probe);
    END IF;
    EXECUTE format('CREATE SCHEMA %I', probe);
    EXECUTE format('IMPORT FOREIGN SCHEMA main FROM SERVER %I INTO %I OPTIONS (json_type %L)',
                   n.server, probe, opts ->> 'json_type');

    -- tables replaced by others of the same name that lack a key column
    FOR t IN SELECT ct.table_name AS name FROM owsync.client_table ct
              WHERE ct.client = p_client AND ct.removed_at IS NULL
                AND to_regclass(format('%I.%I', probe, ct.table_name)) IS NOT NULL
                AND EXISTS (SELECT 1 FROM unnest(ct.key_columns) k
                             WHERE NOT EXISTS (SELECT 1 FROM pg_attribute p
                                                WHERE p.attrelid = format('%I.%I', probe, ct.table_name)::regclass
                                                  AND p.attname = k AND NOT p.attisdropped))
              ORDER BY 1 LOOP
        notes := notes || format('table %s was replaced at the source by one without its key column: the mirror table is kept as %s, no longer synced, and the new table loaded',
                                 t.name, owsync._retire_table(p_client, t.name, p_run));
    END LOOP;

    -- tables that appeared (or came back)
    FOR t IN SELECT c.relname::text AS name FROM pg_class c
              WHERE c.relnamespace = probe::regnamespace AND c.relkind = 'f'
                AND NOT EXISTS (SELECT 1 FROM owsync.client_table ct
                                 WHERE ct.client = p_client AND ct.table_name = c.relname
                                   AND ct.removed_at IS NULL)
              ORDER BY 1 LOOP
        IF EXISTS (SELECT 1 FROM owsync.client_table ct WHERE ct.client = p_client AND ct.table_name = t.name) THEN
            UPDATE owsync.client_table ct SET removed_at = NULL, watermark = NULL
             WHERE ct.client = p_client AND ct.table_name = t.name;
            notes := notes || format('table %s is back at the source: reloaded', t.name);
        ELSE
            EXECUTE format('ALTER FOREIGN TABLE %I.%I SET SCHEMA %I', probe, t.name, n.src_schema);
            PERFORM owsync._add_table(p_client, t.name);
            notes := notes || format('table %s appeared at the source: imported and loaded', t.name);
        END IF;
        new_tables := new_tables || t.name;
    END LOOP;

    -- tables that disappeared
    FOR t IN SELECT ct.table_name AS name FROM owsync.client_table ct
              WHERE ct.client = p_client AND ct.removed_at IS NULL
                AND to_regclass(format('%I.%I', probe, ct.table_name)) IS NULL
                AND NOT (ct.table_name = ANY (new_tables)) ORDER BY 1 LOOP
        UPDATE owsync.client_table ct SET removed_at = now()
         WHERE ct.client = p_client AND ct.table_name = t.name;
        notes := notes || format('table %s was removed at the source: its mirror table is kept, no longer synced', t.name);
    END LOOP;

    -- columns of the tables both have
    FOR t IN SELECT ct.table_name AS name FROM owsync.client_table ct
              WHERE ct.client = p_client AND ct.removed_at IS NULL
                AND to_regclass(format('%I.%I', probe, ct.table_name)) IS NOT NULL ORDER BY 1 LOOP
        SELECT * INTO d FROM owsync._drift_columns(p_client, t.name, probe);
        notes := notes || d.notes;
        IF d.widened THEN
            widened := widened || t.name;
        END IF;
    END LOOP;

    EXECUTE format('DROP SCHEMA %I CASCADE', probe);
    PERFORM owsync._hub_follow(p_client);
    FOREACH w IN ARRAY notes LOOP
        RAISE WARNING 'owsync %: %', p_client, w;
    END LOOP;
    UPDATE owsync.run SET warnings = nullif(notes, '{}') WHERE run_id = p_run;
END
$$;
