-- Who may do what.
--
--   owsync_admin  a role the extension creates when it is missing (NOLOGIN;
--                 it stays when the extension is dropped).  Superusers and its
--                 members run the management functions: register_client,
--                 unregister_client, discover, sync, set_schedule,
--                 enable_sync, disable_sync, set_sync_workers, dispatch,
--                 pending, verify, resolve_conflict.  These run as the
--                 extension's owner (SECURITY DEFINER, declared at each
--                 definition, search_path pinned) after
--                 owsync._require_admin() (30_basics.sql) checked the
--                 session's user.
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

-- Rows of mirror tables: for a reader, only of the tables it may read (not
-- the withheld ones).
-- CREATE OR REPLACE: the policies below depend on it (an upgrade replaces it
-- in place).
CREATE OR REPLACE FUNCTION owsync._may_read_mirror(p_client text, p_table text) RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_has_role(current_user, 'owsync_admin', 'MEMBER')
           OR coalesce(has_table_privilege(to_regclass(format('%I.%I', p_client, p_table)), 'SELECT'), false)
$$;

-- Nothing of the sync layer for PUBLIC; what the wrapper's own functions, the
-- views, the policies and the naming rules need, for everyone.
REVOKE ALL ON ALL ROUTINES IN SCHEMA owsync FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    owsync.owsync_fdw_handler(), owsync.owsync_fdw_validator(text[], oid), owsync.sqlite_version(),
    owsync.source_info(text), owsync.source_marker(text), owsync.key_buckets(text, text, text[], integer),
    owsync.key_set_hash(text, text, text[]), owsync.moved_buckets(bigint[], bigint[], bigint[]),
    owsync.key_hashes(text, text, text[], integer, integer[]), owsync.key_hash("any"),
    owsync.find_files(text), owsync.client_names(text), owsync.client_name_for_path(text, text),
    owsync._next_run(text, timestamptz), owsync._cron_field(text, integer, integer), owsync._age(interval), owsync._brief(text, integer),
    owsync._may_read_mirror(text, text), owsync._option_errors(text, jsonb), owsync._option_list(),
    owsync._is_interval(jsonb), owsync._is_integer(jsonb, numeric, numeric), owsync._closest_name(text, text[]),
    owsync._versions_bytes(text), owsync._versions_schema(text)
  TO PUBLIC;
GRANT EXECUTE ON FUNCTION
    owsync.register_client(text, text, text, jsonb), owsync.unregister_client(text, boolean),
    owsync._discover_plan(text), owsync._discover_one(text, text, text, text),
    owsync._discover_counts(jsonb), owsync.set_schedule(text, text), owsync.enable_sync(text),
    owsync.disable_sync(text), owsync.pending(text), owsync.verify(text),
    owsync._start_run(text, text, boolean), owsync._work_run(bigint), owsync._finish_run(bigint),
    owsync.set_sync_workers(integer), owsync._dispatch_begin(), owsync._dispatch_claim(text[]),
    owsync._dispatch_release(integer), owsync._purge_cron_details(),
    owsync.resolve_conflict(bigint, text), owsync.set_options(text, jsonb), owsync.row_versions(text, text, jsonb),
    owsync.chat_export(text, text, timestamptz)
  TO owsync_admin;
GRANT EXECUTE ON FUNCTION owsync._fleet_converge(boolean), owsync._fleet_report(boolean), owsync._published(),
    owsync._publication_tables(), owsync._restore_from_hub(text, text, boolean, jsonb) TO owsync_admin;
GRANT EXECUTE ON PROCEDURE owsync.fleet_tick(), owsync.restore_from_hub(text, text, boolean, jsonb, jsonb) TO owsync_admin;
GRANT SELECT ON owsync.edge, owsync.edge_status TO owsync_admin;
GRANT EXECUTE ON FUNCTION owsync._restore(text, text, boolean, jsonb),
    owsync._restore_from_schema(text, text, boolean, jsonb) TO owsync_admin;
GRANT EXECUTE ON PROCEDURE owsync.sync(text, text), owsync.dispatch(), owsync.discover(text, text, integer, integer, integer, jsonb),
    owsync.restore(text, text, boolean, jsonb, jsonb), owsync.restore_from_schema(text, text, boolean, jsonb, jsonb)
  TO owsync_admin;

-- owsync's tables: each role sees the rows of the clients it administers or
-- reads, no more (row level security is enabled in 20_catalog.sql).  The
-- extension's owner, who runs the management functions, and superusers are
-- not bound by these policies.  Each policy is dropped first, so that this
-- file can run again over an installed catalog.
GRANT USAGE ON SCHEMA owsync TO PUBLIC;
GRANT SELECT ON owsync.client, owsync.run, owsync.run_table, owsync.quarantine, owsync.alert,
                owsync.mirror_change, owsync.conflict, owsync.sync_due TO PUBLIC;
GRANT SELECT ON owsync.client_table, owsync.source_schema, owsync.sync_pool TO owsync_admin;
GRANT SELECT ON owsync.status, owsync.status_detail, owsync.history, owsync.history_detail,
                owsync.metrics, owsync.conflicts TO PUBLIC;
DROP POLICY IF EXISTS admin_or_reader ON owsync.client;
CREATE POLICY admin_or_reader ON owsync.client FOR SELECT
    USING (pg_catalog.pg_has_role(current_user, 'owsync_admin', 'MEMBER')
           OR reader_role IN (SELECT r.rolname FROM pg_catalog.pg_roles r
                               WHERE pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER')));
DROP POLICY IF EXISTS visible_client ON owsync.run;
CREATE POLICY visible_client ON owsync.run FOR SELECT
    USING (client IN (SELECT c.client FROM owsync.client c));
DROP POLICY IF EXISTS visible_run ON owsync.run_table;
CREATE POLICY visible_run ON owsync.run_table FOR SELECT
    USING (run_id IN (SELECT r.run_id FROM owsync.run r));
DROP POLICY IF EXISTS visible_client ON owsync.quarantine;
CREATE POLICY visible_client ON owsync.quarantine FOR SELECT
    USING (client IN (SELECT c.client FROM owsync.client c));
DROP POLICY IF EXISTS visible_client ON owsync.alert;
CREATE POLICY visible_client ON owsync.alert FOR SELECT
    USING (client IN (SELECT c.client FROM owsync.client c));
DROP POLICY IF EXISTS visible_client ON owsync.sync_due;
CREATE POLICY visible_client ON owsync.sync_due FOR SELECT
    USING (client IN (SELECT c.client FROM owsync.client c));
-- rows of mirror tables: for a reader, only of the tables it may read
DROP POLICY IF EXISTS visible_table ON owsync.mirror_change;
CREATE POLICY visible_table ON owsync.mirror_change FOR SELECT
    USING (client IN (SELECT c.client FROM owsync.client c) AND owsync._may_read_mirror(client, table_name));
DROP POLICY IF EXISTS visible_table ON owsync.conflict;
CREATE POLICY visible_table ON owsync.conflict FOR SELECT
    USING (client IN (SELECT c.client FROM owsync.client c) AND owsync._may_read_mirror(client, table_name));
