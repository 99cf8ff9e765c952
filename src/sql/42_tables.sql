-- A client's tables: per source table a mirror table, a digest table and a
-- catalog row, and the reader role's grants on the mirror.

-- The reader role of a client's option reader_role (checked by
-- _check_options): true names it <client>_reader; it is created NOLOGIN when
-- missing, and an existing one must be neither a superuser nor
-- owsync_admin.  Returns it (NULL: none).
CREATE FUNCTION owsync._setup_reader(p_client text, p_option jsonb) RETURNS name
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    reader text;
    r record;
BEGIN
    IF p_option IS NULL OR p_option = 'false'::jsonb OR p_option = 'null'::jsonb THEN
        RETURN NULL;
    END IF;
    reader := CASE WHEN p_option = 'true'::jsonb THEN p_client || '_reader' ELSE p_option #>> '{}' END;
    SELECT * INTO r FROM pg_roles WHERE rolname = reader;
    IF FOUND AND (r.rolsuper OR reader = 'owsync_admin' OR pg_has_role(reader, 'owsync_admin', 'MEMBER')) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('role %s cannot be the reader of client %L', reader, p_client),
            DETAIL = 'A reader role is neither a superuser nor an owsync administrator.';
    END IF;
    IF NOT FOUND THEN
        EXECUTE format('CREATE ROLE %I NOLOGIN', reader);
    END IF;
    RETURN reader;
END
$$;

-- Give a client's reader role SELECT on a mirror table, unless it is withheld.
CREATE FUNCTION owsync._grant_reader(p_client text, p_table text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c owsync.client;
BEGIN
    SELECT * INTO c FROM owsync.client WHERE client = p_client;
    IF c.reader_role IS NOT NULL
       AND NOT p_table IN (SELECT jsonb_array_elements_text(owsync._options(c.options) -> 'withheld_tables')) THEN
        EXECUTE format('GRANT SELECT ON %I.%I TO %I', p_client, p_table, c.reader_role);
    END IF;
END
$$;

-- Give a client's reader grants again after its options changed: the
-- former reader (if any) loses USAGE on the mirror schema and SELECT on its
-- tables (the role itself stays: it may serve elsewhere), the reader of the
-- options now is set up and granted the tables not withheld.
CREATE FUNCTION owsync._reset_reader(p_client text, p_former name) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    reader name;
    t record;
BEGIN
    IF p_former IS NOT NULL AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = p_former) THEN
        EXECUTE format('REVOKE SELECT ON ALL TABLES IN SCHEMA %I FROM %I', p_client, p_former);
        EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM %I', p_client, p_former);
    END IF;
    reader := owsync._setup_reader(p_client, (SELECT owsync._options(c.options) -> 'reader_role'
                                                FROM owsync.client c WHERE c.client = p_client));
    UPDATE owsync.client c SET reader_role = reader WHERE c.client = p_client;
    IF reader IS NOT NULL THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', p_client, reader);
        FOR t IN SELECT ct.table_name FROM owsync.client_table ct WHERE ct.client = p_client ORDER BY 1 LOOP
            PERFORM owsync._grant_reader(p_client, t.table_name);
        END LOOP;
    END IF;
END
$$;

-- Open WebUI tables that count time in nanoseconds (time.time_ns()), the
-- others count seconds; used when a table is empty at registration.
CREATE FUNCTION owsync._ns_tables() RETURNS text[]
LANGUAGE sql IMMUTABLE
AS $$
    SELECT ARRAY['automation', 'calendar', 'calendar_event', 'calendar_event_attendee',
                 'channel', 'channel_member', 'channel_webhook', 'message', 'note']
$$;

-- Set up one source table: its digest column, mirror table, digest table and
-- catalog row.  The foreign table exists (IMPORT FOREIGN SCHEMA made it).
CREATE FUNCTION owsync._add_table(p_client text, p_table text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n record := owsync.client_names(p_client);
    opts jsonb;
    ft regclass;
    cols text;
    keys text[];
    wm text;
    unit text;
    maxwm bigint;
    col record;
BEGIN
    SELECT owsync._options(options) INTO opts FROM owsync.client WHERE client = p_client;
    ft := format('%I.%I', n.src_schema, p_table)::regclass;
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = ft AND attname = 'owsync_digest') THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_column',
            MESSAGE = format('SQLite table %I of client %L has a column named owsync_digest', p_table, p_client),
            DETAIL = 'owsync_digest is the name of the digest column owsync adds to every foreign table.';
    END IF;
    EXECUTE format('ALTER FOREIGN TABLE %s ADD COLUMN owsync_digest bigint OPTIONS (digest %L)', ft, 'true');

    -- the mirror: same names, same types, the source key as primary key
    SELECT string_agg(format('%I %s%s', a.attname, format_type(a.atttypid, a.atttypmod),
                             CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END), ', ' ORDER BY a.attnum),
           array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE 'key=true' = ANY (a.attfdwoptions))
      INTO cols, keys
      FROM pg_attribute a
     WHERE a.attrelid = ft AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> 'owsync_digest';
    keys := coalesce(keys, '{}');
    EXECUTE format('CREATE TABLE %I.%I (%s%s)', n.mirror_schema, p_table, cols,
                   CASE WHEN cardinality(keys) > 0
                        THEN format(', PRIMARY KEY (%s)',
                                    (SELECT string_agg(format('%I', k), ', ') FROM unnest(keys) k))
                        ELSE '' END);
    PERFORM owsync._grant_reader(p_client, p_table);
    PERFORM owsync._watch_mirror(p_client, p_table, keys);
    IF owsync._has_lz4() THEN
        FOR col IN SELECT a.attname FROM pg_attribute a
                    WHERE a.attrelid = format('%I.%I', n.mirror_schema, p_table)::regclass
                      AND a.attnum > 0 AND a.atttypid IN ('text'::regtype, 'json'::regtype,
                                                          'jsonb'::regtype, 'bytea'::regtype) LOOP
            EXECUTE format('ALTER TABLE %I.%I ALTER COLUMN %I SET COMPRESSION lz4',
                           n.mirror_schema, p_table, col.attname);
        END LOOP;
    END IF;

    -- the watermark: updated_at as an integer, in seconds or nanoseconds
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = ft AND attname = 'updated_at'
                                            AND atttypid = 'bigint'::regtype) THEN
        wm := 'updated_at';
        EXECUTE format('SELECT max(updated_at) FROM %s', ft) INTO maxwm;
        unit := coalesce(opts -> 'units' ->> p_table,
                         CASE WHEN maxwm > 100000000000000 THEN 'ns'		-- past 1e14: not seconds
                              WHEN maxwm IS NOT NULL THEN 's'
                              WHEN p_table = ANY (owsync._ns_tables()) THEN 'ns'
                              ELSE 's' END);
        EXECUTE format('CREATE INDEX ON %I.%I (updated_at)', n.mirror_schema, p_table);
    END IF;

    -- the digests at the last sync, by key (tables without a key have none),
    -- and the hash of each key (for keys of types SQLite hashes alike): a
    -- key diff narrowed to the buckets of keys that moved finds them by it
    IF cardinality(keys) > 0 THEN
        EXECUTE format('CREATE TABLE %I.%I (%s, owsync_digest bigint NOT NULL%s, PRIMARY KEY (%s))',
                       n.digest_schema, p_table,
                       (SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', '
                                          ORDER BY a.attnum)
                          FROM pg_attribute a WHERE a.attrelid = ft AND a.attname = ANY (keys)),
                       CASE WHEN NOT EXISTS (SELECT 1 FROM pg_attribute a
                                              WHERE a.attrelid = ft AND a.attname = ANY (keys)
                                                AND a.atttypid NOT IN ('text'::regtype, 'varchar'::regtype,
                                                                       'int2'::regtype, 'int4'::regtype,
                                                                       'int8'::regtype))
                            THEN format(', owsync_key_hash bigint GENERATED ALWAYS AS (owsync.key_hash(%s)) STORED',
                                        (SELECT string_agg(format('%I', k), ', ') FROM unnest(keys) k))
                            ELSE '' END,
                       (SELECT string_agg(format('%I', k), ', ') FROM unnest(keys) k));
        IF EXISTS (SELECT 1 FROM pg_attribute a
                    WHERE a.attrelid = format('%I.%I', n.digest_schema, p_table)::regclass
                      AND a.attname = 'owsync_key_hash') THEN
            EXECUTE format('CREATE INDEX ON %I.%I (owsync_key_hash)', n.digest_schema, p_table);
        END IF;
    END IF;

    INSERT INTO owsync.client_table (client, table_name, key_columns, watermark_column, watermark_unit)
    VALUES (p_client, p_table, keys, wm, unit);
END
$$;
