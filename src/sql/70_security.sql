-- Who may do what.
--
--   owsync_admin  a role the extension creates when it is missing (NOLOGIN;
--                 it stays when the extension is dropped).  Superusers and its
--                 members run the management functions: register_client,
--                 unregister_client, discover, sync, set_schedule,
--                 enable_sync, disable_sync, pending, verify,
--                 resolve_conflict.  These run as the extension's owner
--                 (SECURITY DEFINER, search_path pinned) after
--                 owsync._require_admin() checked the session's user.
--                 A member who is not a superuser registers files only inside
--                 owsync.allowed_directories.
--   readers       a client's reader role (register_client's option
--                 reader_role): USAGE on the client's mirror schema and SELECT
--                 on its tables but the withheld ones (option withheld_tables,
--                 default auth, api_key, config, oauth_session,
--                 channel_webhook: they hold secrets).  Through owsync's views
--                 (status, history and their _detail, conflicts; they run as
--                 the caller) and owsync's tables, it sees its own client's
--                 rows only (row level security), and of mirror_change and
--                 conflict (row images) only those of tables it may read.
--   everyone      nothing of the sync layer; the wrapper's own functions
--                 check USAGE on the server they read.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'owsync_admin') THEN
        CREATE ROLE owsync_admin NOLOGIN;
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

-- The management functions run as the extension's owner.
ALTER FUNCTION owsync.register_client(text, text, text, jsonb) SECURITY DEFINER;
ALTER FUNCTION owsync.unregister_client(text, boolean) SECURITY DEFINER;
ALTER FUNCTION owsync.set_schedule(text, text) SECURITY DEFINER;
ALTER FUNCTION owsync.enable_sync(text) SECURITY DEFINER;
ALTER FUNCTION owsync.disable_sync(text) SECURITY DEFINER;
ALTER FUNCTION owsync.pending(text) SECURITY DEFINER;
ALTER FUNCTION owsync.verify(text) SECURITY DEFINER;
ALTER FUNCTION owsync._restore(text, text, boolean, jsonb) SECURITY DEFINER;
ALTER FUNCTION owsync._restore_from_schema(text, text, boolean, jsonb) SECURITY DEFINER;
ALTER FUNCTION owsync.resolve_conflict(bigint, text) SECURITY DEFINER;
-- whoever may write to a mirror table has its changes recorded
ALTER FUNCTION owsync._mirror_changed() SECURITY DEFINER;

-- Nothing of the sync layer for PUBLIC; what the wrapper's own functions, the
-- views and the naming rules need, for everyone.
REVOKE ALL ON ALL ROUTINES IN SCHEMA owsync FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    owsync.owsync_fdw_handler(), owsync.owsync_fdw_validator(text[], oid), owsync.sqlite_version(),
    owsync.source_info(text), owsync.key_buckets(text, text, text[], integer),
    owsync.key_set_hash(text, text, text[]), owsync.moved_buckets(bigint[], bigint[], bigint[]),
    owsync.key_hashes(text, text, text[], integer, integer[]), owsync.key_hash("any"),
    owsync.find_files(text), owsync.client_names(text), owsync.client_name_for_path(text, text),
    owsync._next_run(text, timestamptz), owsync._age(interval), owsync._brief(text, integer)
  TO PUBLIC;
GRANT EXECUTE ON FUNCTION
    owsync.register_client(text, text, text, jsonb), owsync.unregister_client(text, boolean),
    owsync._discover_plan(text), owsync._discover_one(text, text, text, text),
    owsync._discover_counts(jsonb), owsync._poke_cron(integer), owsync.set_schedule(text, text), owsync.enable_sync(text),
    owsync.disable_sync(text), owsync.pending(text), owsync.verify(text),
    owsync._start_run(text, text), owsync._work_run(bigint), owsync._finish_run(bigint),
    owsync.resolve_conflict(bigint, text)
  TO owsync_admin;
GRANT EXECUTE ON FUNCTION owsync._restore(text, text, boolean, jsonb),
    owsync._restore_from_schema(text, text, boolean, jsonb) TO owsync_admin;
GRANT EXECUTE ON PROCEDURE owsync.sync(text, text), owsync.discover(text, text, integer, integer, integer, jsonb),
    owsync.restore(text, text, boolean, jsonb, jsonb), owsync.restore_from_schema(text, text, boolean, jsonb, jsonb)
  TO owsync_admin;

-- owsync's tables: each role sees the rows of the clients it administers or
-- reads, no more.  (The extension's owner, who runs the management
-- functions, and superusers are not bound by these policies.)
GRANT USAGE ON SCHEMA owsync TO PUBLIC;
GRANT SELECT ON owsync.client, owsync.run, owsync.run_table, owsync.quarantine, owsync.alert,
                owsync.mirror_change, owsync.conflict TO PUBLIC;
GRANT SELECT ON owsync.client_table, owsync.source_schema TO owsync_admin;
ALTER TABLE owsync.client ENABLE ROW LEVEL SECURITY;
ALTER TABLE owsync.run ENABLE ROW LEVEL SECURITY;
ALTER TABLE owsync.run_table ENABLE ROW LEVEL SECURITY;
ALTER TABLE owsync.quarantine ENABLE ROW LEVEL SECURITY;
ALTER TABLE owsync.alert ENABLE ROW LEVEL SECURITY;
ALTER TABLE owsync.mirror_change ENABLE ROW LEVEL SECURITY;
ALTER TABLE owsync.conflict ENABLE ROW LEVEL SECURITY;
CREATE POLICY admin_or_reader ON owsync.client FOR SELECT
    USING (pg_catalog.pg_has_role(current_user, 'owsync_admin', 'MEMBER')
           OR reader_role IN (SELECT r.rolname FROM pg_catalog.pg_roles r
                               WHERE pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER')));
CREATE POLICY visible_client ON owsync.run FOR SELECT
    USING (client IN (SELECT c.client FROM owsync.client c));
CREATE POLICY visible_run ON owsync.run_table FOR SELECT
    USING (run_id IN (SELECT r.run_id FROM owsync.run r));
CREATE POLICY visible_client ON owsync.quarantine FOR SELECT
    USING (client IN (SELECT c.client FROM owsync.client c));
CREATE POLICY visible_client ON owsync.alert FOR SELECT
    USING (client IN (SELECT c.client FROM owsync.client c));
-- rows of mirror tables: for a reader, only of the tables it may read (not
-- the withheld ones)
CREATE FUNCTION owsync._may_read_mirror(p_client text, p_table text) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_has_role(current_user, 'owsync_admin', 'MEMBER')
           OR coalesce(has_table_privilege(to_regclass(format('%I.%I', p_client, p_table)), 'SELECT'), false)
$$;
GRANT EXECUTE ON FUNCTION owsync._may_read_mirror(text, text) TO PUBLIC;
CREATE POLICY visible_table ON owsync.mirror_change FOR SELECT
    USING (client IN (SELECT c.client FROM owsync.client c) AND owsync._may_read_mirror(client, table_name));
CREATE POLICY visible_table ON owsync.conflict FOR SELECT
    USING (client IN (SELECT c.client FROM owsync.client c) AND owsync._may_read_mirror(client, table_name));
ALTER VIEW owsync.status SET (security_invoker = true);
ALTER VIEW owsync.history SET (security_invoker = true);
ALTER VIEW owsync.status_detail SET (security_invoker = true);
ALTER VIEW owsync.history_detail SET (security_invoker = true);
ALTER VIEW owsync.metrics SET (security_invoker = true);
ALTER VIEW owsync.conflicts SET (security_invoker = true);
GRANT SELECT ON owsync.status, owsync.status_detail, owsync.history, owsync.history_detail,
                owsync.metrics, owsync.conflicts TO PUBLIC;

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
       AND NOT p_table IN (SELECT jsonb_array_elements_text(coalesce(c.options -> 'withheld_tables',
                               '["auth", "api_key", "config", "oauth_session", "channel_webhook"]'))) THEN
        EXECUTE format('GRANT SELECT ON %I.%I TO %I', p_client, p_table, c.reader_role);
    END IF;
END
$$;

-- The reader role register_client() sets up when options->'reader_role' is
-- true (named <client>_reader) or a role name: created NOLOGIN when missing;
-- an existing one must be neither a superuser nor owsync_admin.  Returns it.
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
    reader := CASE WHEN p_option = 'true'::jsonb THEN p_client || '_reader'
                   WHEN jsonb_typeof(p_option) = 'string' THEN p_option #>> '{}' END;
    IF reader IS NULL OR reader !~ '^[a-z_][a-z0-9_]*$' OR length(reader) > 63 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid reader_role %s for client %L', p_option, p_client),
            HINT = 'Give true (a role named <client>_reader) or a lower-case role name of at most 63 characters.';
    END IF;
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
