-- Registering, unregistering and discovering clients: the orchestrators,
-- on top of every feature (tables, runs, schedules, readers).

-- Register a client: its server, schemas, tables and schedule, and its
-- first sync, all in one transaction.  Returns its tables and the rows
-- each took.
CREATE FUNCTION owsync.register_client(client text, database text,
                                       schedule text DEFAULT 'manual', options jsonb DEFAULT '{}')
RETURNS TABLE (table_name text, key_columns text[], watermark text, rows bigint)
LANGUAGE plpgsql SECURITY DEFINER
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
                WHERE nspname IN (n.mirror_schema, n.src_schema, n.digest_schema, owsync._versions_schema(client))) THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_schema',
            MESSAGE = format('a schema of client %L already exists', client),
            DETAIL = format('A client uses the schemas %I, %I, %I and %I.', n.mirror_schema, n.src_schema,
                            n.digest_schema, owsync._versions_schema(client));
    END IF;
    -- a schedule other than manual needs pg_cron: known before any work
    IF owsync._cron_expr(client, schedule) IS NOT NULL THEN
        PERFORM owsync._require_cron(client);
    END IF;
    PERFORM owsync._check_options(client, options);
    PERFORM owsync._check_fleet_name(client);

    INSERT INTO owsync.client AS c (client, database, schedule, options)
    VALUES (register_client.client, register_client.database, lower(btrim(register_client.schedule)),
            owsync._without_nulls(coalesce(register_client.options, '{}')));
    reader := owsync._setup_reader(client, owsync._options(options) -> 'reader_role');
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
                   n.server, n.src_schema, owsync._options(options) ->> 'json_type');
    FOR t IN SELECT c.relname FROM pg_class c
              WHERE c.relnamespace = n.src_schema::regnamespace AND c.relkind = 'f' ORDER BY 1 LOOP
        PERFORM owsync._add_table(client, t.relname);
    END LOOP;

    -- the source's schema, read through sqlite_master (see owsync._capture_schema)
    EXECUTE format('CREATE FOREIGN TABLE %I.owsync_sqlite_master (type text, name text, tbl_name text, sql text)
                    SERVER %I OPTIONS (table %L)', n.src_schema, n.server, 'sqlite_master');

    -- the first sync, in this transaction: registration is all or nothing
    rid := owsync._run(client, 'full');
    -- the runs after this first load keep what they replace
    UPDATE owsync.client c SET versions_from = rid WHERE c.client = register_client.client;
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

-- Change a client's options: the given keys are merged into the stored ones
-- (a JSON null resets a key to its default), checked like register_client()
-- checks them, and their side effects applied in this transaction: a new
-- reader role or withheld_tables list changes the reader's grants.  Options
-- fixed at registration (json_type, units) cannot change.  Waits for a
-- running sync of the client.  Returns the options now stored.
CREATE FUNCTION owsync.set_options(client text, options jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c owsync.client;
    merged jsonb;
    f record;
BEGIN
    PERFORM owsync._require_admin();
    PERFORM owsync._registered(client);
    PERFORM owsync._check_options(client, options);
    PERFORM owsync._lock_client(client);
    SELECT * INTO c FROM owsync.client x WHERE x.client = set_options.client FOR UPDATE;
    merged := owsync._without_nulls(c.options || options);
    FOR f IN SELECT o.name FROM owsync._option_list() o
              WHERE o.fixed AND owsync._options(merged) -> o.name IS DISTINCT FROM owsync._options(c.options) -> o.name LOOP
        RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
            MESSAGE = format('option %s of client %L cannot change', f.name, client),
            DETAIL = format('%s is fixed when the client is registered: it shaped the client''s tables.', f.name),
            HINT = 'Unregister the client and register it again with the new value.';
    END LOOP;
    UPDATE owsync.client x SET options = merged WHERE x.client = set_options.client;
    IF owsync._options(merged) -> 'reader_role' IS DISTINCT FROM owsync._options(c.options) -> 'reader_role'
       OR owsync._options(merged) -> 'withheld_tables' IS DISTINCT FROM owsync._options(c.options) -> 'withheld_tables' THEN
        PERFORM owsync._reset_reader(client, c.reader_role);
    END IF;
    RETURN merged;
END
$$;


-- Unregister a client: its server, internal schemas and schedule go; its
-- mirror and its row versions stay (schemas of plain tables) unless
-- drop_data; its history stays.
CREATE FUNCTION owsync.unregister_client(client text, drop_data boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n record;
BEGIN
    PERFORM owsync._require_admin();
    n := owsync._registered(client);
    UPDATE owsync.client c SET enabled = false WHERE c.client = unregister_client.client;
    PERFORM owsync._sync_job(client);		-- it leaves the schedule
    EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', n.src_schema);
    EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', n.digest_schema);
    EXECUTE format('DROP SERVER IF EXISTS %I CASCADE', n.server);
    IF drop_data THEN
        EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', n.mirror_schema);
        EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', owsync._versions_schema(client));
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

-- A discovery report's counts, by action.
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
    registered := counts.registered;
    already_registered := counts.already_registered;
    not_registered := counts.not_registered;
END
$$;
