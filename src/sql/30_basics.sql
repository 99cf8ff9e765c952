-- The basics every feature builds on: the names of a client's objects, the
-- checks of a client name, of registration and of the caller's rights, a
-- client's run lock, the plan type of a table's sync, and helpers for keys,
-- settings and errors.  Every dynamic identifier goes through format('%I');
-- every function pins its search_path (but _run_lock_class(), a constant).

-- Names of a client's objects (see 20_catalog.sql).
CREATE FUNCTION owsync.client_names(client text,
    OUT server name, OUT src_schema name, OUT digest_schema name, OUT mirror_schema name)
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ('owsync_' || client)::name, ('owsync_' || client || '_src')::name,
           ('owsync_' || client || '_digest')::name, client::name
$$;

-- The schema of a client's probe tables: foreign tables over its SQLite file
-- made while a run looks at the file's schema (46_drift.sql) or at rows it
-- cannot read (44_sync_table.sql); dropped at the end of the run.
CREATE FUNCTION owsync._probe_schema(client text) RETURNS name
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ('owsync_' || client || '_probe')::name
$$;

-- The schema of a client's row versions: what its runs replaced (43_versions.sql).
CREATE FUNCTION owsync._versions_schema(client text) RETURNS name
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ('owsync_' || client || '_versions')::name
$$;

-- The plan of one table's sync in a run: what its steps work with
-- (owsync._plan_table(), 44_sync_table.sql).
CREATE TYPE owsync._sync_plan AS (
    run_id      bigint,
    server      name,		-- the client's foreign server
    mirror      text,		-- the mirror table, qualified and quoted
    dig         text,		-- the digest table
    src         text,		-- the foreign table
    opts        jsonb,		-- the client's options
    cols        text,		-- the source's columns: a, b, c
    s_cols      text,		-- s.a, s.b, s.c
    setlist     text,		-- b = s.b, c = s.c: the columns not in the key
    differ      text,		-- record_image_ne(ROW(m.b, m.c), ROW(s.b, s.c)): those columns differ in a byte
    keylist     text,		-- the key's columns: k1, k2
    on_key      text,		-- m.k1 = s.k1 AND m.k2 = s.k2
    overlap     bigint,		-- the fast path's overlap (owsync._overlap()), once a full reload is ruled out
    use_digests boolean,	-- every row's digest compared: a reconcile, a table without updated_at
    quarantine  boolean,	-- a row that cannot be read is quarantined (options->>'on_bad_row')
    pending     boolean,	-- rows changed in the mirror wait: conflicts to look for (40_conflicts.sql)
    keep_versions boolean,	-- the versions the run replaces are kept (43_versions.sql)
    interval_run bigint		-- with versions_interval: the first run of the interval (else NULL)
);

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

-- An error unless a name can be a client's: a lower-case identifier short
-- enough for its schemas' names, not a system schema's.
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

-- Is the session's user a superuser?  (Inside SECURITY DEFINER functions
-- the current user is the extension's owner: the session's user is the
-- caller.)
CREATE FUNCTION owsync._session_is_superuser() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = session_user), false)
$$;

-- An error unless the session's user is a superuser or a member of
-- owsync_admin.  (Inside the SECURITY DEFINER functions that call it, the
-- current user is the extension's owner: the session's user is the caller.)
CREATE FUNCTION owsync._require_admin() RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT owsync._session_is_superuser() AND NOT pg_has_role(session_user, 'owsync_admin', 'MEMBER') THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('permission denied: role %s may not manage owsync clients', session_user),
            HINT = format('A superuser can GRANT owsync_admin TO %I.', session_user);
    END IF;
END
$$;

-- An error when a caller who is not a superuser names a file while
-- owsync.allowed_directories is empty (the path rules would then let the
-- extension's owner open any file).
CREATE FUNCTION owsync._require_file_rules() RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT owsync._session_is_superuser()
       AND coalesce(current_setting('owsync.allowed_directories', true), '') = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('permission denied: role %s may not name SQLite files', session_user),
            DETAIL = 'owsync.allowed_directories is empty, so only superusers may name SQLite files.',
            HINT = 'Ask a superuser to list the clients'' directories in owsync.allowed_directories.';
    END IF;
END
$$;

-- A client's run lock is the advisory lock (this class id, the client's
-- client_id): 'osws' read as an integer.  Held by a sync for its run, and
-- by a restore or resolve_conflict for its transaction.  (No SET clause, so
-- that a call is folded into the constant.)
CREATE FUNCTION owsync._run_lock_class() RETURNS integer
LANGUAGE sql IMMUTABLE
AS $$
    SELECT 1869838195
$$;

-- Does this session hold a client's run lock (by its client_id)?
CREATE FUNCTION owsync._holds_lock(p_client_id integer) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM pg_locks l
                    WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid()
                      AND l.classid = owsync._run_lock_class() AND l.objid = p_client_id AND l.objsubid = 2)
$$;

-- Wait for a client's run lock and keep it until the end of the transaction
-- (restore, resolve_conflict): a sync running now is waited for, one
-- starting meanwhile is skipped.
CREATE FUNCTION owsync._lock_client(p_client text) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_advisory_xact_lock(owsync._run_lock_class(), c.client_id) FROM owsync.client c WHERE c.client = p_client
$$;

-- The conditions matching the key columns of two aliases: "a.k = b.k AND ...".
CREATE FUNCTION owsync._key_match(keys text[], a text, b text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(format('%s.%I = %s.%I', a, k, b, k), ' AND ') FROM unnest(keys) k
$$;

-- Set owsync.applying, transaction-local, to on (or back to what it was);
-- returns what it was.  While it is on, the trigger of mirror tables does not
-- record writes as mirror changes: the sync's and resolve_conflict's own
-- (40_conflicts.sql).
CREATE FUNCTION owsync._applying(p_value text) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    was text := coalesce(current_setting('owsync.applying', true), 'off');
BEGIN
    PERFORM set_config('owsync.applying', coalesce(p_value, 'off'), true);
    RETURN was;
END
$$;

-- Raise an error again with its SQLSTATE and the table it concerns, leaving
-- out the parts it does not have.
CREATE FUNCTION owsync._reraise(st text, msg text, det text, hnt text, tbl text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    det := NULLIF(det, ''); hnt := NULLIF(hnt, ''); tbl := coalesce(tbl, '');
    IF det IS NOT NULL AND hnt IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = st, MESSAGE = msg, DETAIL = det, HINT = hnt, TABLE = tbl;
    ELSIF det IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = st, MESSAGE = msg, DETAIL = det, TABLE = tbl;
    ELSIF hnt IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = st, MESSAGE = msg, HINT = hnt, TABLE = tbl;
    ELSE
        RAISE EXCEPTION USING ERRCODE = st, MESSAGE = msg, TABLE = tbl;
    END IF;
END
$$;
