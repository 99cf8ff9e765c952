-- Registering and unregistering clients.  Every dynamic identifier goes
-- through format('%I'); every function pins its search_path.

-- Names of a client's objects (see 20_catalog.sql).
CREATE FUNCTION owsync.client_names(client text,
    OUT server name, OUT src_schema name, OUT digest_schema name, OUT mirror_schema name)
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ('owsync_' || client)::name, ('owsync_' || client || '_src')::name,
           ('owsync_' || client || '_digest')::name, client::name
$$;

-- The names of a registered client's objects; an error if it is not registered.
CREATE FUNCTION owsync._registered(client text,
    OUT server name, OUT src_schema name, OUT digest_schema name, OUT mirror_schema name)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM owsync.client c WHERE c.client = _registered.client) THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('client %L is not registered', client),
            HINT = 'Register it with owsync.register_client().';
    END IF;
    SELECT * INTO server, src_schema, digest_schema, mirror_schema FROM owsync.client_names(client);
END
$$;

CREATE FUNCTION owsync._check_client_name(client text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF client IS NULL OR client !~ '^[a-z_][a-z0-9_]*$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid client name %L', client),
            DETAIL = 'A client name is a lower-case identifier: letters a-z, digits and underscores, not starting with a digit.',
            HINT = 'A domain like imc.quantabase.io is given as imc_quantabase_io.';
    END IF;
    IF length(client) > 48 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('client name %L is too long', client),
            DETAIL = 'A client name has at most 48 characters, so that the names of its schemas fit in 63 bytes.';
    END IF;
    IF client LIKE 'pg\_%' OR client IN ('owsync', 'public', 'information_schema', 'cron') THEN
        RAISE EXCEPTION USING ERRCODE = 'reserved_name',
            MESSAGE = format('client name %L is reserved', client),
            DETAIL = 'The mirror schema of a client is named after it; this name belongs to the system or to owsync.';
    END IF;
END
$$;

-- Where the server can store large values compressed with lz4 (DESIGN: the
-- write side is the bottleneck; lz4 halves it).
CREATE FUNCTION owsync._has_lz4() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'lz4' = ANY (enumvals) FROM pg_settings WHERE name = 'default_toast_compression'
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
    SELECT options INTO opts FROM owsync.client WHERE client = p_client;
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

CREATE FUNCTION owsync.register_client(client text, database text,
                                       schedule text DEFAULT 'manual', options jsonb DEFAULT '{}')
RETURNS TABLE (table_name text, key_columns text[], watermark text, rows bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n record;
    t record;
    rid bigint;
    reader name;
BEGIN
    PERFORM owsync._require_admin();
    PERFORM owsync._require_file_rules();
    PERFORM owsync._check_client_name(client);
    n := owsync.client_names(client);
    IF EXISTS (SELECT 1 FROM owsync.client c WHERE c.client = register_client.client) THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('client %L is already registered', client),
            HINT = 'Unregister it first with owsync.unregister_client().';
    END IF;
    IF EXISTS (SELECT 1 FROM pg_namespace
                WHERE nspname IN (n.mirror_schema, n.src_schema, n.digest_schema)) THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_schema',
            MESSAGE = format('a schema of client %L already exists', client),
            DETAIL = format('A client uses the schemas %I, %I and %I.', n.mirror_schema, n.src_schema,
                            n.digest_schema);
    END IF;
    -- a schedule other than manual needs pg_cron: known before any work
    IF owsync._cron_expr(client, schedule) IS NOT NULL THEN
        PERFORM owsync._require_cron(client);
    END IF;
    IF coalesce(options ->> 'json_type', 'json') NOT IN ('json', 'jsonb') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid json_type %L in the options of client %L', options ->> 'json_type', client),
            HINT = 'Use "json" (the default, keeps the exact text) or "jsonb".';
    END IF;
    PERFORM owsync._check_conflict_policy(client, options);

    INSERT INTO owsync.client AS c (client, database, schedule, options)
    VALUES (register_client.client, register_client.database, lower(btrim(register_client.schedule)),
            coalesce(register_client.options, '{}'));
    reader := owsync._setup_reader(client, options -> 'reader_role');
    UPDATE owsync.client c SET reader_role = reader WHERE c.client = register_client.client;
    -- the path rules apply here: who may read which file (option.c)
    EXECUTE format('CREATE SERVER %I FOREIGN DATA WRAPPER owsync_fdw OPTIONS (database %L)',
                   n.server, database);
    EXECUTE format('CREATE SCHEMA %I', n.src_schema);
    EXECUTE format('CREATE SCHEMA %I', n.digest_schema);
    EXECUTE format('CREATE SCHEMA %I', n.mirror_schema);
    IF reader IS NOT NULL THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', n.mirror_schema, reader);
    END IF;
    EXECUTE format('IMPORT FOREIGN SCHEMA main FROM SERVER %I INTO %I OPTIONS (json_type %L)',
                   n.server, n.src_schema, coalesce(options ->> 'json_type', 'json'));
    FOR t IN SELECT c.relname FROM pg_class c
              WHERE c.relnamespace = n.src_schema::regnamespace AND c.relkind = 'f' ORDER BY 1 LOOP
        PERFORM owsync._add_table(client, t.relname);
    END LOOP;

    -- the source's schema, read through sqlite_master (see owsync._capture_schema)
    EXECUTE format('CREATE FOREIGN TABLE %I.owsync_sqlite_master (type text, name text, tbl_name text, sql text)
                    SERVER %I OPTIONS (table %L)', n.src_schema, n.server, 'sqlite_master');

    -- the first sync, in this transaction: registration is all or nothing
    rid := owsync._run(client, 'full');
    PERFORM owsync._sync_job(client);
    RETURN QUERY
        SELECT ct.table_name, ct.key_columns, ct.watermark_column || ' (' || ct.watermark_unit || ')',
               rt.inserted
          FROM owsync.client_table ct
          JOIN owsync.run_table rt ON rt.run_id = rid AND rt.table_name = ct.table_name
         WHERE ct.client = register_client.client
         ORDER BY ct.table_name;
END
$$;

CREATE FUNCTION owsync.unregister_client(client text, drop_data boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n record;
BEGIN
    PERFORM owsync._require_admin();
    n := owsync._registered(client);
    UPDATE owsync.client c SET enabled = false WHERE c.client = unregister_client.client;
    PERFORM owsync._sync_job(client);		-- its pg_cron job goes
    EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', n.src_schema);
    EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', n.digest_schema);
    EXECUTE format('DROP SERVER IF EXISTS %I CASCADE', n.server);
    IF drop_data THEN
        EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', n.mirror_schema);
    ELSE
        PERFORM owsync._unwatch_mirror(client);	-- the kept tables are plain tables now
    END IF;
    -- the run history stays
    DELETE FROM owsync.client c WHERE c.client = unregister_client.client;
END
$$;

-- The client name discover() gives a file found by a pattern: the path's
-- components that the pattern's wildcard components matched, joined by "_"
-- (a file name without its extension, when the file name is the wildcard);
-- lower-cased; every run of characters other than a-z and 0-9 becomes "_";
-- "c_" in front of a name that would start with a digit or be empty; a name
-- longer than 48 characters is cut to 39 and given "_" and 8 hex digits of
-- the path's md5.  /srv/openwebui/imc.quantabase.io/data/webui.db found by
-- /srv/openwebui/*/data/webui.db is imc_quantabase_io.  A pattern without
-- wildcards names the file by its directory.
CREATE FUNCTION owsync.client_name_for_path(pattern text, path text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pat text[] := string_to_array(pattern, '/');
    parts text[] := string_to_array(path, '/');
    picked text[] := '{}';
    name text;
BEGIN
    IF cardinality(pat) = cardinality(parts) THEN
        FOR i IN 1 .. cardinality(pat) LOOP
            IF pat[i] ~ '[*?[]' THEN
                picked := picked || CASE WHEN i = cardinality(pat) THEN regexp_replace(parts[i], '\.[^.]*$', '')
                                         ELSE parts[i] END;
            END IF;
        END LOOP;
    END IF;
    IF cardinality(picked) = 0 THEN
        picked := ARRAY[parts[greatest(cardinality(parts) - 1, 1)]];
    END IF;
    name := btrim(regexp_replace(lower(array_to_string(picked, '_')), '[^a-z0-9]+', '_', 'g'), '_');
    IF name = '' OR name ~ '^[0-9]' THEN
        name := 'c_' || name;
    END IF;
    IF length(name) > 48 THEN
        name := rtrim(left(name, 39), '_') || '_' || left(md5(path), 8);
    END IF;
    RETURN name;
END
$$;

-- CALL owsync.discover(pattern, schedule): register every SQLite file
-- matching a glob pattern (see owsync.find_files) that is not registered
-- yet, named by owsync.client_name_for_path(), each in a transaction of its
-- own: one file that cannot be registered (not a database, a reserved or
-- taken name) is reported and the others go on, and a fleet of any size
-- registers without holding every new table's lock at once.  Prints a
-- NOTICE per file it acted on; returns the counts and a report, one object
-- {path, client, action} per file found.
--
-- Like sync(), a procedure that commits: a shell over SECURITY DEFINER
-- functions, using no operator.
CREATE FUNCTION owsync._discover_plan(pattern text)
RETURNS TABLE (path text, client text, action text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    other text;
BEGIN
    PERFORM owsync._require_admin();
    PERFORM owsync._require_file_rules();
    FOR path IN SELECT f FROM owsync.find_files(pattern) f LOOP
        client := owsync.client_name_for_path(pattern, path);
        other := (SELECT c.client FROM owsync.client c WHERE c.database = _discover_plan.path);
        action := CASE WHEN other IS NOT NULL THEN 'already registered'
                       WHEN EXISTS (SELECT 1 FROM owsync.client c WHERE c.client = _discover_plan.client)
                       THEN 'skipped: the name is registered for another file' END;
        client := coalesce(other, client);
        RETURN NEXT;
    END LOOP;
END
$$;

-- One file of a discovery: registered (when its plan has no action yet) in
-- a subtransaction; returns {path, client, action}.
CREATE FUNCTION owsync._discover_one(p_path text, p_client text, p_action text, p_schedule text)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    action text := p_action;
BEGIN
    PERFORM owsync._require_admin();
    IF action IS NULL THEN
        BEGIN
            PERFORM owsync.register_client(p_client, p_path, p_schedule);
            action := 'registered';
        EXCEPTION WHEN OTHERS THEN
            action := 'failed: ' || SQLERRM;
        END;
    END IF;
    IF action <> 'already registered' THEN
        RAISE NOTICE 'owsync discover: % -> %: %', p_path, p_client, action;
    END IF;
    RETURN jsonb_build_object('path', p_path, 'client', p_client, 'action', action);
END
$$;

CREATE FUNCTION owsync._discover_counts(report jsonb,
    OUT registered integer, OUT already_registered integer, OUT not_registered integer)
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(*) FILTER (WHERE e ->> 'action' = 'registered')::integer,
           count(*) FILTER (WHERE e ->> 'action' = 'already registered')::integer,
           count(*) FILTER (WHERE e ->> 'action' NOT IN ('registered', 'already registered'))::integer
      FROM jsonb_array_elements(coalesce(report, '[]')) e
$$;

-- (The results are INOUT with defaults: OUT parameters cannot follow
-- schedule's default; whatever is passed for them is ignored.)
CREATE PROCEDURE owsync.discover(pattern text, schedule text DEFAULT 'hourly',
    INOUT registered integer DEFAULT NULL, INOUT already_registered integer DEFAULT NULL,
    INOUT not_registered integer DEFAULT NULL, INOUT report jsonb DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    f record;
    counts record;
BEGIN
    report := pg_catalog.jsonb_build_array();
    FOR f IN SELECT * FROM owsync._discover_plan(pattern) LOOP
        report := pg_catalog.jsonb_insert(report, '{-1}',
                                          owsync._discover_one(f.path, f.client, f.action, schedule), true);
        COMMIT;
    END LOOP;
    counts := owsync._discover_counts(report);
    PERFORM owsync._poke_cron(counts.registered);
    registered := counts.registered;
    already_registered := counts.already_registered;
    not_registered := counts.not_registered;
END
$$;
