-- owsync_fdw extension script, assembled by make from src/sql/*.sql in name order.
\echo Use "CREATE EXTENSION owsync_fdw" to load this file. \quit
-- The wrapper's C functions: its handler and validator (the wrapper itself is
-- created with the catalog, 20_catalog.sql), and the SQLite-side functions
-- the sync calls.  Every object is schema-qualified: the install script must
-- not depend on search_path.

-- CREATE OR REPLACE: the wrapper depends on it (an upgrade replaces it in place).
CREATE OR REPLACE FUNCTION owsync.owsync_fdw_handler()
RETURNS fdw_handler
AS 'MODULE_PATHNAME', 'owsync_fdw_handler'
LANGUAGE C STRICT;

-- CREATE OR REPLACE: the wrapper depends on it (an upgrade replaces it in place).
CREATE OR REPLACE FUNCTION owsync.owsync_fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME', 'owsync_fdw_validator'
LANGUAGE C STRICT;

-- The SQLite library this module runs against (for bug reports and status views).
CREATE FUNCTION owsync.sqlite_version()
RETURNS text
AS 'MODULE_PATHNAME', 'owsync_sqlite_version'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

-- Can the server store large values compressed with lz4 (was it built with
-- it)?  Writing into PostgreSQL is the sync's bottleneck, and lz4 about
-- halves it.
CREATE FUNCTION owsync._has_lz4()
RETURNS boolean
AS 'MODULE_PATHNAME', 'owsync_has_lz4'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

-- The pg_cron launchers of this server reload their jobs once the current
-- transaction commits (src/owsync_fdw.c says why).
CREATE FUNCTION owsync._reload_cron_at_commit()
RETURNS void
AS 'MODULE_PATHNAME', 'owsync_reload_cron_at_commit'
LANGUAGE C STRICT VOLATILE;

-- This session's SQLite read connections that no transaction is reading,
-- closed (a dispatcher's, after each client's run: 50_schedule.sql);
-- returns how many.
CREATE FUNCTION owsync._close_sources()
RETURNS integer
AS 'MODULE_PATHNAME', 'owsync_close_sources'
LANGUAGE C STRICT VOLATILE;

-- Facts about a server's SQLite file, read in the transaction's snapshot.
-- change_marker: equal markers mean nothing was committed to the file
-- between the two snapshots.
CREATE FUNCTION owsync.source_info(server text,
    OUT journal_mode text, OUT schema_version bigint, OUT user_version bigint, OUT page_count bigint,
    OUT change_marker text)
AS 'MODULE_PATHNAME', 'owsync_source_info'
LANGUAGE C STRICT VOLATILE;

-- The file's change marker: the one the transaction's snapshot was taken at,
-- or, before the transaction reads the server, the file's now, read without
-- taking a snapshot (a run that finds it unchanged reads nothing more).
CREATE FUNCTION owsync.source_marker(server text)
RETURNS text
AS 'MODULE_PATHNAME', 'owsync_source_marker'
LANGUAGE C STRICT VOLATILE;

-- The keys of a SQLite table in 2^nbits buckets (by the top bits of each
-- key's hash), read in the transaction's snapshot: element 0 is the hash of
-- the whole key set (order-independent: equal hashes, equal key sets),
-- element 1 + b the hash of bucket b's keys.
CREATE FUNCTION owsync.key_buckets(server text, "table" text, key_columns text[], nbits integer)
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'owsync_key_buckets'
LANGUAGE C STRICT VOLATILE;

-- The hash of a SQLite table's whole key set: element 0 of key_buckets().
CREATE FUNCTION owsync.key_set_hash(server text, "table" text, key_columns text[])
RETURNS bigint
LANGUAGE sql STRICT VOLATILE
BEGIN ATOMIC
    SELECT (owsync.key_buckets(server, "table", key_columns, 0))[0];
END;

-- The buckets (numbered from 0) whose sum in key_buckets() now is not the sum
-- stored at the last sync plus the hashes of the keys known to be new.
CREATE FUNCTION owsync.moved_buckets(buckets bigint[], stored bigint[], added bigint[])
RETURNS integer[]
AS 'MODULE_PATHNAME', 'owsync_moved_buckets'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- The hash of every key of a SQLite table that falls in one of the buckets.
CREATE FUNCTION owsync.key_hashes(server text, "table" text, key_columns text[], nbits integer,
                                  buckets integer[])
RETURNS SETOF bigint
AS 'MODULE_PATHNAME', 'owsync_key_hashes'
LANGUAGE C STRICT VOLATILE ROWS 1000;

-- The hash of a key with these values, as SQLite computes it for key_buckets().
-- CREATE OR REPLACE: the generated column owsync_key_hash of digest tables
-- depends on it (an upgrade replaces it in place).
CREATE OR REPLACE FUNCTION owsync.key_hash(VARIADIC "any")
RETURNS bigint
AS 'MODULE_PATHNAME', 'owsync_key_hash'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- The regular files matching a glob pattern that the path rules let a server
-- open (for superusers and members of pg_read_server_files).
CREATE FUNCTION owsync.find_files(pattern text)
RETURNS SETOF text
AS 'MODULE_PATHNAME', 'owsync_find_files'
LANGUAGE C STRICT VOLATILE;
-- The catalog: registered clients, their tables, the history of runs, rows
-- changed in the mirror and conflicts; the wrapper; the owsync_admin role.
-- Created once, by CREATE EXTENSION: an upgrade changes these objects by
-- ALTER.  Every other file defines only routines, types, views, policies
-- and grants, and can run again over an installed catalog.
--
-- Per client (named like imc_quantabase_io) there are:
--   server  owsync_<client>          the SQLite file (owsync_fdw)
--   schema  owsync_<client>_src      one foreign table per SQLite table, each with a
--                                    computed column owsync_digest (digest 'true')
--   schema  owsync_<client>_digest   the digest of every row at the last sync, by key
--   schema  owsync_<client>_versions the versions of rows its runs replaced (43_versions.sql)
--   schema  <client>                 the mirror: one table per SQLite table, the data

CREATE TABLE owsync.client (
    client            text PRIMARY KEY,
    client_id         integer GENERATED ALWAYS AS IDENTITY UNIQUE,	-- advisory lock key
    database          text NOT NULL,
    schedule          text NOT NULL DEFAULT 'manual',
    options           jsonb NOT NULL DEFAULT '{}',
    enabled           boolean NOT NULL DEFAULT true,
    registered_at     timestamptz NOT NULL DEFAULT now(),
    last_reconcile_at timestamptz,
    change_marker     text,			-- the source's change marker at the last run
    consecutive_failures integer NOT NULL DEFAULT 0,	-- failed runs since the last success
    next_attempt_at   timestamptz,		-- after a failure: no scheduled run starts before it
    alerting          boolean NOT NULL DEFAULT false,	-- a 'failing' alert was sent, no 'recovered' yet
    reader_role       name,			-- reads the mirror (options->'reader_role'), see 90_security.sql
    cron_schedule     text,			-- the cron expression it is scheduled by (NULL: not
										-- scheduled), see 50_schedule.sql
    versions_from     bigint,			-- the oldest run whose state its kept versions give back
										-- (NULL: none kept yet), see 43_versions.sql
    CONSTRAINT client_name CHECK (client ~ '^[a-z_][a-z0-9_]*$' AND length(client) <= 48)
);

CREATE TABLE owsync.client_table (
    client           text NOT NULL REFERENCES owsync.client ON DELETE CASCADE,
    table_name       text NOT NULL,		-- SQLite table = foreign table = mirror table
    key_columns      text[] NOT NULL,	-- '{}': no key, the table is synced as a set
    watermark_column text,				-- NULL: changes are found by digests only
    watermark_unit   text CHECK (watermark_unit IN ('s', 'ns')),
    watermark        bigint,			-- highest value seen by the last sync
    key_bits         integer NOT NULL DEFAULT 0,	-- the key set in 2^key_bits buckets
    key_buckets      bigint[],			-- owsync.key_buckets() at the last sync
										-- ([0]: the whole key set's hash)
    window_sig       text,				-- count and digest sum of the rows in the fast
										-- path's window, [watermark - overlap, ...)
    removed_at       timestamptz,		-- gone from the source: the mirror table is kept
    PRIMARY KEY (client, table_name)
);

-- The source's schema (sqlite_master, in its order), captured when SQLite's
-- schema_version changes: what a restore replays, and how drift is noticed.
CREATE TABLE owsync.source_schema (
    schema_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client         text NOT NULL,
    captured_at    timestamptz NOT NULL DEFAULT now(),
    schema_version bigint NOT NULL,
    ddl            jsonb NOT NULL		-- [{type, name, tbl_name, sql}, ...]
);
CREATE INDEX source_schema_client ON owsync.source_schema (client, schema_id DESC);

CREATE TABLE owsync.run (
    run_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client      text NOT NULL,
    mode        text NOT NULL CHECK (mode IN ('incremental', 'full', 'reconcile')),
    status      text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
    started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    sqlstate    text,
    error       text,
    error_table text,
    error_detail text,
    error_hint  text,
    alembic_revision text,
    journal_mode text,
    source_schema_id bigint REFERENCES owsync.source_schema,
    source_unchanged boolean NOT NULL DEFAULT false,	-- nothing committed since the last run: no table read
    scheduled   boolean NOT NULL DEFAULT false,	-- started by its schedule (the pool, or pg_cron)
    warnings    text[]				-- schema drift and other things worth a look
);
CREATE INDEX run_client_started ON owsync.run (client, started_at DESC);

-- What each run did to each table.  path: full (reloaded), incremental
-- (watermark + key diff), digest (watermark + key diff + digest compare),
-- set (a table without key, replaced as a whole).
CREATE TABLE owsync.run_table (
    run_id     bigint NOT NULL REFERENCES owsync.run ON DELETE CASCADE,
    table_name text NOT NULL,
    path       text NOT NULL,
    rows_read  bigint NOT NULL,
    inserted   bigint NOT NULL,
    updated    bigint NOT NULL,
    deleted    bigint NOT NULL,
    quarantined bigint NOT NULL DEFAULT 0,
    conflicts  bigint NOT NULL DEFAULT 0,	-- source changes of rows changed in the mirror (40_conflicts.sql)
    key_diff   text NOT NULL DEFAULT 'none'	-- the source's keys compared with the mirror's:
               CHECK (key_diff IN ('none', 'buckets', 'all')),	-- not, in moved buckets, all
    seconds    numeric NOT NULL,
    PRIMARY KEY (run_id, table_name)
);

-- Rows a sync could not read (options->>'on_bad_row' = 'quarantine'): the
-- key, why, and every value as its storage class and exact bytes
-- ("text:6869", "integer:35", "null:").  The mirror keeps the row's previous
-- version; every run retries the row and clears it once the source is fixed
-- (or the row is gone).
CREATE TABLE owsync.quarantine (
    client     text NOT NULL,
    table_name text NOT NULL,
    key        jsonb NOT NULL,
    sqlstate   text NOT NULL,
    reason     text NOT NULL,
    raw        jsonb NOT NULL,
    first_run  bigint NOT NULL,
    last_run   bigint NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client, table_name, key)
);

-- Alerts: a client failing alert_after_failures runs in a row (options,
-- default 3), and its recovery.  Each is also sent as NOTIFY owsync_alert
-- with the payload as JSON text.
CREATE TABLE owsync.alert (
    alert_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client    text NOT NULL,
    raised_at timestamptz NOT NULL DEFAULT now(),
    event     text NOT NULL CHECK (event IN ('failing', 'recovered')),
    run_id    bigint NOT NULL,
    payload   jsonb NOT NULL
);
CREATE INDEX alert_client ON owsync.alert (client, alert_id DESC);

-- A row of a mirror table changed by anyone but the sync, pending until a
-- run looks at it (40_conflicts.sql): one entry per key.
CREATE TABLE owsync.mirror_change (
    client     text NOT NULL REFERENCES owsync.client ON DELETE CASCADE,
    table_name text NOT NULL,
    key        jsonb NOT NULL,			-- {"key column": value, ...}
    op         text NOT NULL CHECK (op IN ('insert', 'update', 'delete')),	-- since the sync's version
    old_row    json,					-- the row as the sync left it, or the source's version the
										-- mirror kept its own over (NULL: none)
    new_row    json,					-- the row now (NULL: deleted)
    changed_at timestamptz NOT NULL,	-- the last edit
    changed_by name NOT NULL,			-- its session user
    PRIMARY KEY (client, table_name, key)
);

-- A row changed in the mirror and at the source, both versions, and how it
-- was decided (40_conflicts.sql).
CREATE TABLE owsync.conflict (
    conflict_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client      text NOT NULL,
    table_name  text NOT NULL,
    key         jsonb NOT NULL,
    run_id      bigint NOT NULL,		-- the run that found it (pending: the last that saw the source change)
    detected_at timestamptz NOT NULL DEFAULT now(),
    policy      text NOT NULL,
    mirror_op   text NOT NULL CHECK (mirror_op IN ('insert', 'update', 'delete')),
    source_op   text NOT NULL CHECK (source_op IN ('insert', 'update', 'delete')),
    mirror_row  json,					-- the mirror's version (NULL: deleted)
    source_row  json,					-- the source's version (NULL: deleted)
    decided     text CHECK (decided IN ('source', 'target')),	-- NULL: pending (manual)
    decided_at  timestamptz,
    resolved_by name,					-- who resolved it by hand (NULL: the policy)
    note        text
);
CREATE INDEX conflict_client ON owsync.conflict (client, conflict_id DESC);
CREATE INDEX conflict_run ON owsync.conflict (run_id);
CREATE UNIQUE INDEX conflict_pending ON owsync.conflict (client, table_name, key) WHERE decided IS NULL;

-- This server as an edge of a fleet (one row, from owsync.prepare_edge())
-- and its hub (from owsync.attach_hub()): see 38_fleet.sql and 78_fleet.sql.
CREATE TABLE owsync.edge (
    edge          text PRIMARY KEY CHECK (edge ~ '^[a-z_][a-z0-9_]*$' AND length(edge) <= 40),
    one_row       boolean NOT NULL DEFAULT true UNIQUE CHECK (one_row),
    prepared_at   timestamptz NOT NULL DEFAULT now(),
    hub           text,				-- the hub's host, port and database (NULL: not attached)
    edge_conninfo text,				-- how the hub reaches this database (no user, no password)
    edge_no       integer,			-- given by the hub: run ids from edge_no * 10^12 on
    attached_at   timestamptz,
    last_tick     timestamptz,		-- the fleet tick's last visit of the hub
    problem       text,				-- why the last tick could not bring the hub up to date (NULL: it did)
    contested     text[] NOT NULL DEFAULT '{}',	-- clients whose names other edges hold: not published
    slot_lost_alerted boolean NOT NULL DEFAULT false
);

-- The dispatcher pool that runs scheduled syncs (50_schedule.sql): its size,
-- set by owsync.set_sync_workers() (no row: 2 workers).
CREATE TABLE owsync.sync_pool (
    one_row boolean PRIMARY KEY DEFAULT true CHECK (one_row),
    workers integer NOT NULL CHECK (workers BETWEEN 0 AND 32)
);

-- When each client the pool serves (enabled, on a schedule in minutes) is
-- next due: the first time its schedule fires after its last scheduled
-- start, or after it was scheduled (NULL: never).  Rewritten at each
-- scheduled start, so kept out of owsync.client, whose rows an edge
-- publishes (38_fleet.sql); this table is not published.
CREATE TABLE owsync.sync_due (
    client text PRIMARY KEY REFERENCES owsync.client ON DELETE CASCADE,
    due_at timestamptz
) WITH (fillfactor = 50);

-- pg_dump keeps owsync's catalog with the data it describes (tables created
-- by an extension are otherwise left out of a dump).
-- (one call per statement: each updates the extension's catalog row)
SELECT pg_catalog.pg_extension_config_dump('owsync.client', '');
SELECT pg_catalog.pg_extension_config_dump('owsync.client_table', '');
SELECT pg_catalog.pg_extension_config_dump('owsync.source_schema', '');
SELECT pg_catalog.pg_extension_config_dump('owsync.run', '');
SELECT pg_catalog.pg_extension_config_dump('owsync.run_table', '');
SELECT pg_catalog.pg_extension_config_dump('owsync.quarantine', '');
SELECT pg_catalog.pg_extension_config_dump('owsync.alert', '');
SELECT pg_catalog.pg_extension_config_dump('owsync.client_client_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('owsync.source_schema_schema_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('owsync.run_run_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('owsync.alert_alert_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('owsync.mirror_change', '');
SELECT pg_catalog.pg_extension_config_dump('owsync.conflict', '');
SELECT pg_catalog.pg_extension_config_dump('owsync.conflict_conflict_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('owsync.edge', '');
SELECT pg_catalog.pg_extension_config_dump('owsync.sync_pool', '');
SELECT pg_catalog.pg_extension_config_dump('owsync.sync_due', '');

-- The wrapper (its functions: 10_fdw.sql).
CREATE FOREIGN DATA WRAPPER owsync_fdw
  HANDLER owsync.owsync_fdw_handler
  VALIDATOR owsync.owsync_fdw_validator;

COMMENT ON FOREIGN DATA WRAPPER owsync_fdw IS
  'read-only access to Open WebUI SQLite files (one server per file, one foreign table per SQLite table)';

-- Row level security on the tables roles may read (the policies: 90_security.sql).
ALTER TABLE owsync.client ENABLE ROW LEVEL SECURITY;
ALTER TABLE owsync.run ENABLE ROW LEVEL SECURITY;
ALTER TABLE owsync.run_table ENABLE ROW LEVEL SECURITY;
ALTER TABLE owsync.quarantine ENABLE ROW LEVEL SECURITY;
ALTER TABLE owsync.alert ENABLE ROW LEVEL SECURITY;
ALTER TABLE owsync.mirror_change ENABLE ROW LEVEL SECURITY;
ALTER TABLE owsync.conflict ENABLE ROW LEVEL SECURITY;
ALTER TABLE owsync.sync_due ENABLE ROW LEVEL SECURITY;

-- The role whose members manage clients (see 90_security.sql), created when
-- missing; it stays when the extension is dropped.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'owsync_admin') THEN
        CREATE ROLE owsync_admin NOLOGIN;
    END IF;
END
$$;
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
-- Client options: the list, every check and every default, in one place.
-- register_client() and set_options() refuse what _option_errors() finds;
-- owsync.status reports it for options stored before a check existed (they
-- keep working as they did); everything else reads a client's options
-- through _options(), which supplies the defaults.

-- The name among candidates that an unknown name was probably meant to be,
-- as the wrapper's own option check suggests it (src/option.c); NULL when
-- none is close.
CREATE FUNCTION owsync._closest_name(name text, candidates text[]) RETURNS text
AS 'MODULE_PATHNAME', 'owsync_closest_name'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

-- Every client option, and whether it is fixed at registration
-- (it shaped the client's tables).
CREATE FUNCTION owsync._option_list(OUT name text, OUT default_value jsonb, OUT fixed boolean)
RETURNS SETOF record
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    VALUES ('alert_after_failures', '3'::jsonb, false),
           ('backoff_base', '"1 minute"', false),
           ('backoff_max', '"1 hour"', false),
           ('conflict_policy', '"source_wins"', false),
           ('json_type', '"json"', true),
           ('on_bad_row', '"abort"', false),
           ('overlap_seconds', '60', false),
           ('reader_role', 'false', false),
           ('reconcile_interval', '"1 hour"', false),
           ('units', '{}', true),
           ('versions_interval', '"0"', false),
           ('versions_retention', '"1 day"', false),
           ('withheld_tables', '["auth", "api_key", "config", "oauth_session", "channel_webhook"]', false)
$$;

-- A client's options in effect: the defaults, overridden by the stored
-- options that are not JSON null.
-- (PL/pgSQL: its query is planned once a session, not at every call.)
CREATE FUNCTION owsync._options(p_options jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT jsonb_object_agg(o.name, o.default_value) FROM owsync._option_list() o)
           || CASE WHEN jsonb_typeof(p_options) = 'object' THEN jsonb_strip_nulls(p_options) ELSE '{}' END;
END
$$;

-- Options as stored: without the keys given as JSON null (the default).
CREATE FUNCTION owsync._without_nulls(p_options jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p_options - ARRAY(SELECT o.key FROM jsonb_each(p_options) o WHERE jsonb_typeof(o.value) = 'null')
$$;

-- Is a JSON value a string that reads as an interval of at least 0?
CREATE FUNCTION owsync._is_interval(v jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN jsonb_typeof(v) = 'string' AND (v #>> '{}')::interval >= interval '0';
EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
    RETURN false;
END
$$;

-- Is a JSON value a whole number between lo and hi?
CREATE FUNCTION owsync._is_integer(v jsonb, lo numeric, hi numeric) RETURNS boolean
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_typeof(v) = 'number' AND (v #>> '{}')::numeric BETWEEN lo AND hi
           AND (v #>> '{}')::numeric = trunc((v #>> '{}')::numeric)
$$;

-- What is wrong with a set of client options, one row per problem, with the
-- error each raises: an unknown key (with the closest known one), a value
-- of the wrong kind.  A JSON null is no wrong value: it means the default.
CREATE FUNCTION owsync._option_errors(p_client text, p_options jsonb)
RETURNS TABLE (option text, sqlstate text, message text, hint text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e record;
    known text[] := ARRAY(SELECT o.name FROM owsync._option_list() o ORDER BY 1);
BEGIN
    IF jsonb_typeof(coalesce(p_options, '{}')) <> 'object' THEN
        RETURN QUERY SELECT NULL::text, '22023'::text,
            format('the options of client %L are not a JSON object: %s', p_client, p_options),
            'Give options as a JSON object, e.g. ''{"on_bad_row": "quarantine"}''.'::text;
        RETURN;
    END IF;
    FOR e IN SELECT o.key, o.value FROM jsonb_each(coalesce(p_options, '{}')) o
              WHERE jsonb_typeof(o.value) <> 'null' OR NOT o.key = ANY (known) ORDER BY o.key LOOP
        option := e.key;
        sqlstate := '22023';
        message := format('invalid %s %s in the options of client %L', e.key, e.value, p_client);
        hint := CASE e.key
            WHEN 'alert_after_failures' THEN
                 CASE WHEN NOT owsync._is_integer(e.value, 1, 2147483647)
                      THEN 'Give the number of failed runs in a row that raise an alert, 1 or more.' END
            WHEN 'backoff_base' THEN
                 CASE WHEN NOT owsync._is_interval(e.value)
                      THEN 'Give an interval such as "1 minute": the wait after the first failure, doubled after each.' END
            WHEN 'backoff_max' THEN
                 CASE WHEN NOT owsync._is_interval(e.value)
                      THEN 'Give an interval such as "1 hour": the longest wait between scheduled runs of a failing client.' END
            WHEN 'conflict_policy' THEN
                 CASE WHEN e.value #>> '{}' NOT IN ('source_wins', 'target_wins', 'newest_wins', 'manual')
                           OR jsonb_typeof(e.value) <> 'string'
                      THEN 'Use source_wins (the default), target_wins, newest_wins or manual.' END
            WHEN 'json_type' THEN
                 CASE WHEN e.value NOT IN ('"json"', '"jsonb"')
                      THEN 'Use "json" (the default, keeps the exact text) or "jsonb".' END
            WHEN 'on_bad_row' THEN
                 CASE WHEN e.value NOT IN ('"abort"', '"quarantine"')
                      THEN 'Use "abort" (the default: the run fails and changes nothing) or "quarantine".' END
            WHEN 'overlap_seconds' THEN
                 CASE WHEN NOT owsync._is_integer(e.value, 0, 9223372036)
                      THEN 'Give a whole number of seconds, 0 or more.' END
            WHEN 'reader_role' THEN
                 CASE WHEN NOT (jsonb_typeof(e.value) = 'boolean'
                                OR (jsonb_typeof(e.value) = 'string' AND e.value #>> '{}' ~ '^[a-z_][a-z0-9_]*$'
                                    AND length(e.value #>> '{}') <= 63))
                      THEN 'Give true (a role named <client>_reader) or a lower-case role name of at most 63 characters.' END
            WHEN 'reconcile_interval' THEN
                 CASE WHEN NOT owsync._is_interval(e.value)
                      THEN 'Give an interval such as "1 hour": how often an incremental sync compares every row.' END
            WHEN 'units' THEN
                 CASE WHEN jsonb_typeof(e.value) <> 'object'
                           OR EXISTS (SELECT 1 FROM jsonb_each(e.value) u WHERE u.value NOT IN ('"s"', '"ns"'))
                      THEN 'Give an object naming tables whose updated_at counts "s" (seconds) or "ns" (nanoseconds).' END
            WHEN 'versions_interval' THEN
                 CASE WHEN NOT owsync._is_interval(e.value)
                           OR extract(month FROM (e.value #>> '{}')::interval) <> 0
                           OR extract(year FROM (e.value #>> '{}')::interval) <> 0
                      THEN 'Give an interval of days or less such as "15 minutes": a row''s updates keep at most one version per interval ("0": every version).' END
            WHEN 'versions_retention' THEN
                 CASE WHEN NOT owsync._is_interval(e.value)
                      THEN 'Give an interval such as "7 days": how far back a client can be restored ("0": no versions kept).' END
            WHEN 'withheld_tables' THEN
                 CASE WHEN jsonb_typeof(e.value) <> 'array'
                           OR EXISTS (SELECT 1 FROM jsonb_array_elements(e.value) w WHERE jsonb_typeof(w) <> 'string')
                      THEN 'Give an array of table names, e.g. ["auth", "api_key"].' END
            ELSE coalesce('Perhaps you meant the option "' || owsync._closest_name(e.key, known) || '".',
                          'Valid options are: ' || array_to_string(known, ', ') || '.')
        END;
        IF NOT e.key = ANY (known) THEN
            sqlstate := '42704';
            message := format('unrecognized option %s in the options of client %L', e.key, p_client);
        END IF;
        IF hint IS NOT NULL THEN
            RETURN NEXT;
        END IF;
    END LOOP;
END
$$;

-- An error for the first problem _option_errors() finds, if any.
CREATE FUNCTION owsync._check_options(p_client text, p_options jsonb) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e record;
BEGIN
    SELECT * INTO e FROM owsync._option_errors(p_client, p_options) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = e.sqlstate, MESSAGE = e.message, HINT = e.hint;
    END IF;
END
$$;
-- The fleet, edge side: what every run and registration needs when this
-- server is an edge feeding a hub (the setup calls: 78_fleet.sql).
--
-- An edge publishes (publication owsync_edge) its clients' mirror and
-- versions schemas (_hub_schemas) and a copy of its own catalog (schema
-- owsync_edge_<edge>); the hub, any PostgreSQL without owsync_fdw,
-- subscribes.  DDL is not replicated, so the edge makes each published table
-- exist at the hub, with its columns, before rows with them arrive there.
-- The edge reaches the hub through dblink over the postgres_fdw server
-- owsync_hub, whose user mapping (for the extension's owner) holds the hub's
-- password: only superusers can read it.  A client name is claimed at the
-- hub (owsync_fleet.client) before its schemas are published, so two edges
-- never feed one schema.

-- This server's edge row, if it is one.
CREATE FUNCTION owsync._edge() RETURNS owsync.edge
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT * FROM owsync.edge
$$;

-- The schema holding the copy of this edge's catalog (published).
CREATE FUNCTION owsync._edge_schema(edge text) RETURNS name
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ('owsync_edge_' || edge)::name
$$;

-- The catalog tables copied to owsync_edge_<edge>, with their keys: what a
-- hub needs to show the fleet and to restore a client (its captured schema,
-- journal mode, quarantine, and the runs and versions_from an as-of restore
-- reads).  A client's row stays in the copy when it is unregistered
-- (kept_on_delete): a restore from the hub registers it elsewhere with its
-- schedule and options, and reads its history's window there.
CREATE FUNCTION owsync._edge_copied(OUT table_name text, OUT key_columns text, OUT kept_on_delete boolean)
RETURNS SETOF record
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    VALUES ('client', 'client', true), ('source_schema', 'schema_id', false), ('run', 'run_id', false),
           ('quarantine', 'client, table_name, key', false), ('alert', 'alert_id', false)
$$;

-- Trigger on the copied catalog tables: the row's copy in
-- owsync_edge_<edge> follows it, in the same transaction (so a run arrives
-- at the hub with its catalog rows).  Columns are matched by name.  Trigger
-- arguments: the key columns, and 'kept' when a deleted row's copy stays.
CREATE OR REPLACE FUNCTION owsync._copy_to_edge() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e text := (SELECT edge FROM owsync.edge);
    dst text;
    kept boolean := TG_NARGS > 1 AND TG_ARGV[1] = 'kept';
BEGIN
    IF e IS NULL OR (TG_OP = 'DELETE' AND kept) THEN
        RETURN NULL;
    END IF;
    dst := format('%I.%I', owsync._edge_schema(e), TG_TABLE_NAME);
    IF TG_OP <> 'INSERT' OR kept THEN
        EXECUTE format('DELETE FROM %s WHERE (%s) = (SELECT %2$s FROM jsonb_populate_record(NULL::%1$s, $1))',
                       dst, TG_ARGV[0])
          USING to_jsonb(CASE WHEN TG_OP = 'INSERT' THEN NEW ELSE OLD END);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        EXECUTE format('INSERT INTO %s SELECT * FROM jsonb_populate_record(NULL::%1$s, $1)', dst)
          USING to_jsonb(NEW);
    END IF;
    RETURN NULL;
END
$$;

DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM owsync._edge_copied() LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER owsync_copy_to_edge AFTER INSERT OR UPDATE OR DELETE ON owsync.%I
                        FOR EACH ROW EXECUTE FUNCTION owsync._copy_to_edge(%L%s)', t.table_name, t.key_columns,
                       CASE WHEN t.kept_on_delete THEN ', ''kept''' ELSE '' END);
    END LOOP;
END
$$;

-- Is this server an edge?  (Its keyless mirror tables are then emptied by
-- TRUNCATE, which logical replication carries without a replica identity.)
CREATE FUNCTION owsync._is_edge() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM owsync.edge)
$$;

-- The schemas in this edge's publication.
CREATE FUNCTION owsync._published() RETURNS name[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(n.nspname ORDER BY n.nspname), '{}')
      FROM pg_publication p
      JOIN pg_publication_namespace pn ON pn.pnpubid = p.oid
      JOIN pg_namespace n ON n.oid = pn.pnnspid
     WHERE p.pubname = 'owsync_edge'
$$;

-- The schemas of a client that the hub holds, published together once the
-- hub has accepted the client's name: its mirror, and the versions its runs
-- kept (43_versions.sql), so that an as-of restore works from the hub
-- alone.  Both exist before they are published (78_fleet.sql:
-- _hub_versions makes the versions schema and tables).
CREATE FUNCTION owsync._hub_schemas(client text) RETURNS name[]
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ARRAY[(owsync.client_names(client)).mirror_schema, owsync._versions_schema(client)]
$$;

-- The schema of the dblink extension (NULL: not installed).
CREATE FUNCTION owsync._dblink_schema() RETURNS name
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extname = 'dblink'
$$;

-- Run SQL at the hub (autocommit there: top-level statements such as
-- ALTER SUBSCRIPTION ... REFRESH PUBLICATION can run), over this session's
-- connection owsync_hub, opened on first use.  A failed call closes the
-- connection, so that the next one starts afresh.
CREATE FUNCTION owsync._hub_exec(sql text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s name := owsync._dblink_schema();
BEGIN
    PERFORM owsync._hub_connect(s);
    BEGIN
        EXECUTE format('SELECT %I.dblink_exec(%L, $1)', s, 'owsync_hub') USING sql;
    EXCEPTION WHEN OTHERS THEN
        EXECUTE format('SELECT %I.dblink_disconnect(%L)', s, 'owsync_hub');
        RAISE;
    END;
END
$$;

-- A query's one json value, read at the hub (see _hub_exec).
CREATE FUNCTION owsync._hub_json(sql text) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s name := owsync._dblink_schema();
    v jsonb;
BEGIN
    PERFORM owsync._hub_connect(s);
    BEGIN
        EXECUTE format('SELECT j FROM %I.dblink(%L, $1) AS t(j jsonb)', s, 'owsync_hub') INTO v USING sql;
    EXCEPTION WHEN OTHERS THEN
        EXECUTE format('SELECT %I.dblink_disconnect(%L)', s, 'owsync_hub');
        RAISE;
    END;
    RETURN v;
END
$$;

-- Open the session's connection to the hub unless it is open; an error
-- when this edge is not attached.
CREATE FUNCTION owsync._hub_connect(s name) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    open boolean;
BEGIN
    IF s IS NULL OR NOT EXISTS (SELECT 1 FROM pg_foreign_server WHERE srvname = 'owsync_hub') THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = 'this server is not attached to a hub',
            HINT = 'Attach it: CALL owsync.attach_hub() with the hub''s connection string and this edge''s.';
    END IF;
    EXECUTE format('SELECT %L = ANY (coalesce(%I.dblink_get_connections(), %L))', 'owsync_hub', s, '{}')
      INTO open;
    IF NOT open THEN
        EXECUTE format('SELECT %I.dblink_connect(%L, %L)', s, 'owsync_hub', 'owsync_hub');
    END IF;
END
$$;

-- Claim a client's name at the hub for this edge: returns NULL when this
-- edge holds it (now or already), else the edge that does.  A name its
-- former edge released (unregistered there, or that edge forgotten) can be
-- claimed.
CREATE FUNCTION owsync._hub_claim(p_client text) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e text := (SELECT edge FROM owsync.edge);
    holder jsonb;
BEGIN
    holder := owsync._hub_json(format(
        'WITH c AS (INSERT INTO owsync_fleet.client AS x (client, edge) VALUES (%1$L, %2$L)
                    ON CONFLICT (client) DO UPDATE SET edge = excluded.edge, claimed_at = now(), released_at = NULL,
                                                       contested_by = array_remove(x.contested_by, excluded.edge)
                     WHERE x.released_at IS NOT NULL OR x.edge = excluded.edge
                    RETURNING x.edge)
         SELECT to_jsonb(coalesce((SELECT edge FROM c), (SELECT edge FROM owsync_fleet.client WHERE client = %1$L)))',
        p_client, e));
    RETURN nullif(holder ->> 0, e);
END
$$;

-- An error when another edge holds a client's name at the hub (register_client):
-- names are unique across the fleet.  When the hub cannot be reached the
-- registration goes on, with a warning: the fleet tick claims the name later
-- and reports a collision at the hub.
CREATE FUNCTION owsync._check_fleet_name(p_client text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e owsync.edge := owsync._edge();
    holder text;
BEGIN
    IF e.hub IS NULL THEN
        RETURN;				-- not attached: no fleet to ask
    END IF;
    BEGIN
        holder := owsync._hub_claim(p_client);
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'owsync %: the hub could not be asked whether the name is free: %', p_client, SQLERRM
            USING HINT = 'The fleet tick claims the name when the hub is back, and reports a collision there.';
        RETURN;
    END;
    IF holder IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('client %L is registered on edge %s; this is edge %s', p_client, holder, e.edge),
            DETAIL = 'Client names are unique across the fleet: the hub holds each client in a schema of its name.',
            HINT = format('Choose another name, or move the client: unregister it on edge %s first.', holder);
    END IF;
END
$$;

-- The tables of some schemas as the hub needs them, as json: for each table
-- its columns (name, type, in order), primary key and the roles that may read
-- it.  The same query runs here and at the hub, so both sides compare alike.
CREATE FUNCTION owsync._table_shapes_sql(schemas name[]) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT format($q$
SELECT coalesce(jsonb_object_agg(n.nspname || '.' || c.relname, jsonb_build_object(
         'schema', n.nspname, 'table', c.relname,
         'columns', (SELECT jsonb_agg(jsonb_build_array(a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod))
                                      ORDER BY a.attnum)
                       FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
         'key', (SELECT jsonb_agg(a.attname ORDER BY k.i)
                   FROM pg_catalog.pg_constraint x CROSS JOIN LATERAL unnest(x.conkey) WITH ORDINALITY k(att, i)
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.att
                  WHERE x.conrelid = c.oid AND x.contype = 'p'),
         'readers', (SELECT coalesce(jsonb_agg(DISTINCT r.rolname), '[]')
                       FROM pg_catalog.aclexplode(c.relacl) g JOIN pg_catalog.pg_roles r ON r.oid = g.grantee
                      WHERE g.privilege_type = 'SELECT' AND g.grantee <> c.relowner
                        AND r.rolname <> 'owsync_replicator'))), '{}')
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname = ANY (%L::text[])
$q$, schemas)
$$;

-- The hub's side of tables this edge retired (_retire_table: a table the
-- source replaced by one with another key is kept as <table>_before_<run>):
-- a hub table whose key differs from this edge's table of that name, when
-- this edge has a retired <table>_before_<run> the hub lacks, with the hub
-- table's key, is renamed to it.  The rename statements, and the hub's
-- tables as they are after them.
CREATE FUNCTION owsync._hub_retired_sql(local jsonb, INOUT hub jsonb, OUT sql text)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
BEGIN
    sql := '';
    FOR t IN SELECT h.k, h.v, r.v ->> 'table' AS retired, r.k AS retired_key
               FROM jsonb_each(hub) AS h(k, v)
               JOIN jsonb_each(local) AS l(k, v) ON l.k = h.k
               CROSS JOIN LATERAL (SELECT x.k, x.v FROM jsonb_each(local) AS x(k, v)
                                    WHERE x.v ->> 'schema' = h.v ->> 'schema'
                                      AND (substring(x.v ->> 'table' FROM '^(.+)_before_[0-9]+$') = h.v ->> 'table'
                                           OR (length(x.v ->> 'table') = 63	-- a long name, cut
                                               AND starts_with(h.v ->> 'table',
                                                               substring(x.v ->> 'table' FROM '^(.+)_before_[0-9]+$'))))
                                      AND NOT hub ? x.k AND x.v -> 'key' IS NOT DISTINCT FROM h.v -> 'key'
                                    ORDER BY x.k DESC LIMIT 1) r
              WHERE l.v -> 'key' IS DISTINCT FROM h.v -> 'key' ORDER BY h.k LOOP
        sql := sql || format(E'ALTER TABLE %I.%I RENAME TO %I;\n', t.v ->> 'schema', t.v ->> 'table', t.retired);
        hub := (hub - t.k) || jsonb_build_object(t.retired_key, t.v || jsonb_build_object('table', t.retired));
    END LOOP;
END
$$;

-- The statements that make the hub's tables of some schemas match this
-- edge's: tables this edge retired renamed (_hub_retired_sql), missing
-- schemas and tables created (primary key, read-only trigger), missing
-- columns added, readers granted and revoked.  Otherwise only additions: a
-- mirror never drops or retypes a column.  '' when they match.
CREATE FUNCTION owsync._hub_catch_up_sql(local jsonb, hub jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
    h jsonb;
    tbl text;
    sql text := '';
    r text;
BEGIN
    SELECT x.hub, x.sql INTO hub, sql FROM owsync._hub_retired_sql(local, hub) x;
    FOR t IN SELECT k, v FROM jsonb_each(local) AS x(k, v) ORDER BY k LOOP
        h := hub -> t.k;
        tbl := format('%I.%I', t.v ->> 'schema', t.v ->> 'table');
        IF h IS NULL THEN
            sql := sql || format(E'CREATE SCHEMA IF NOT EXISTS %I;\nCREATE TABLE %s (%s%s);\n'
                                 || 'CREATE TRIGGER owsync_read_only BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %2$s '
                                 || E'FOR EACH STATEMENT EXECUTE FUNCTION owsync_fleet.read_only();\n',
                                 t.v ->> 'schema', tbl,
                                 (SELECT string_agg(format('%I %s', c ->> 0, c ->> 1), ', ' ORDER BY o)
                                    FROM jsonb_array_elements(t.v -> 'columns') WITH ORDINALITY AS x(c, o)),
                                 CASE WHEN jsonb_typeof(t.v -> 'key') = 'array'
                                      THEN format(', PRIMARY KEY (%s)',
                                                  (SELECT string_agg(format('%I', k), ', ' ORDER BY o)
                                                     FROM jsonb_array_elements_text(t.v -> 'key') WITH ORDINALITY AS y(k, o)))
                                      ELSE '' END);
            h := jsonb_build_object('columns', t.v -> 'columns', 'readers', '[]'::jsonb);
        END IF;
        sql := sql || coalesce((SELECT string_agg(format(E'ALTER TABLE %s ADD COLUMN %I %s;\n', tbl, c ->> 0, c ->> 1), '' ORDER BY o)
                                  FROM jsonb_array_elements(t.v -> 'columns') WITH ORDINALITY AS x(c, o)
                                 WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements(h -> 'columns') hc
                                                    WHERE hc ->> 0 = c ->> 0)), '');
        FOR r IN SELECT jsonb_array_elements_text(t.v -> 'readers')
                 EXCEPT SELECT jsonb_array_elements_text(h -> 'readers') LOOP
            sql := sql || format(E'DO $r$ BEGIN CREATE ROLE %1$I NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $r$;\n'
                                 || E'GRANT USAGE ON SCHEMA %2$I TO %1$I;\nGRANT SELECT ON %3$s TO %1$I;\n',
                                 r, t.v ->> 'schema', tbl);
        END LOOP;
        FOR r IN SELECT jsonb_array_elements_text(h -> 'readers')
                 EXCEPT SELECT jsonb_array_elements_text(t.v -> 'readers') LOOP
            sql := sql || format(E'REVOKE SELECT ON %s FROM %I;\n', tbl, r);
        END LOOP;
    END LOOP;
    RETURN sql;
END
$$;

-- The shapes (as _table_shapes_sql gives them) of the versions tables a
-- client's mirror tables call for while it keeps versions: a run makes a
-- versions table, or adds a column to it, when it first keeps a version
-- that needs it (owsync._versions_table: the mirror's columns after
-- owsync_run, owsync_op and, without key, owsync_ord; keyed by the
-- mirror's key and owsync_run, or by owsync_run and owsync_ord).  A drift
-- adds mirror tables and columns in the run that then keeps their
-- versions, so the hub gets them from here first.
CREATE FUNCTION owsync._versions_shapes(p_client text) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(jsonb_object_agg(v.vs || '.' || c.relname, jsonb_build_object(
             'schema', v.vs, 'table', c.relname,
             'columns', '[["owsync_run", "bigint"], ["owsync_op", "\"char\""]]'::jsonb
                        || CASE WHEN k.key IS NULL THEN '[["owsync_ord", "integer"]]'::jsonb ELSE '[]' END
                        || (SELECT jsonb_agg(jsonb_build_array(a.attname, format_type(a.atttypid, a.atttypmod))
                                             ORDER BY a.attnum)
                              FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
             'key', coalesce(k.key || '["owsync_run"]'::jsonb, '["owsync_run", "owsync_ord"]'),
             'readers', '[]'::jsonb)), '{}')
      FROM (SELECT owsync._versions_schema(p_client)::text AS vs) v
      CROSS JOIN pg_class c
      CROSS JOIN LATERAL (SELECT jsonb_agg(a.attname ORDER BY u.i) AS key
                            FROM pg_constraint x CROSS JOIN LATERAL unnest(x.conkey) WITH ORDINALITY u(att, i)
                            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.att
                           WHERE x.conrelid = c.oid AND x.contype = 'p') k
     WHERE c.relnamespace = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = (owsync.client_names(p_client)).mirror_schema)
       AND c.relkind = 'r'
       AND EXISTS (SELECT 1 FROM owsync.client x
                    WHERE x.client = p_client AND x.versions_from IS NOT NULL
                      AND (owsync._options(x.options) ->> 'versions_retention')::interval > interval '0')
$$;

-- Tables' shapes (local) with those a planned set calls for (planned): a
-- table only planned is added, a planned column a table lacks is added to it.
CREATE FUNCTION owsync._shapes_with(local jsonb, planned jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT local || coalesce(jsonb_object_agg(p.k, CASE WHEN local ? p.k
        THEN jsonb_set(local -> p.k, '{columns}',
                       (local -> p.k -> 'columns')
                       || coalesce((SELECT jsonb_agg(c ORDER BY o) FROM jsonb_array_elements(p.v -> 'columns') WITH ORDINALITY x(c, o)
                                     WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements(local -> p.k -> 'columns') lc
                                                        WHERE lc ->> 0 = c ->> 0)), '[]'))
        ELSE p.v END), '{}')
      FROM jsonb_each(planned) AS p(k, v)
$$;

-- Make the hub's tables of some schemas match this edge's (see
-- _hub_catch_up_sql; a versions schema with the tables and columns its
-- client's runs will need, _versions_shapes); returns the statements run
-- ('' when none were needed).
CREATE FUNCTION owsync._hub_catch_up(schemas name[]) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q text := owsync._table_shapes_sql(schemas);
    local jsonb;
    sql text;
    c record;
BEGIN
    EXECUTE q INTO local;
    FOR c IN SELECT x.client FROM owsync.client x WHERE owsync._versions_schema(x.client) = ANY (schemas) LOOP
        local := owsync._shapes_with(local, owsync._versions_shapes(c.client));
    END LOOP;
    sql := owsync._hub_catch_up_sql(local, owsync._hub_json(q));
    IF sql <> '' THEN
        PERFORM owsync._hub_exec(sql);
    END IF;
    RETURN sql;
END
$$;

-- After a run's schema drift, before it commits: the hub gets the new tables
-- and columns first, so that the rows with them do not stop the hub's apply
-- worker.  Best effort: with the hub away, the fleet tick does it later.
CREATE FUNCTION owsync._hub_follow(p_client text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT owsync._hub_schemas(p_client) <@ owsync._published() OR (SELECT hub FROM owsync.edge) IS NULL THEN
        RETURN;
    END IF;
    PERFORM owsync._hub_catch_up(owsync._hub_schemas(p_client));
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'owsync %: the hub could not take the new schema now: %', p_client, SQLERRM
        USING HINT = 'The fleet tick (job owsync-fleet) brings it to the hub when it can be reached.';
END
$$;

-- On an edge: its catalog copy gets the columns its catalog tables gained
-- since prepare_edge made it (an upgrade adds some: client.versions_from),
-- filled from the catalog.  The hub gets them first when it can be reached
-- (otherwise its apply waits for the next fleet tick, which adds them).
DO $$
DECLARE
    e text := (SELECT edge FROM owsync.edge);
    t record;
    added text[];
BEGIN
    IF e IS NULL THEN
        RETURN;
    END IF;
    FOR t IN SELECT * FROM owsync._edge_copied() LOOP
        added := ARRAY(SELECT a.attname::text FROM pg_attribute a
                        WHERE a.attrelid = format('owsync.%I', t.table_name)::regclass AND a.attnum > 0
                          AND NOT a.attisdropped
                          AND NOT EXISTS (SELECT 1 FROM pg_attribute x
                                           WHERE x.attrelid = format('%I.%I', owsync._edge_schema(e), t.table_name)::regclass
                                             AND x.attname = a.attname AND NOT x.attisdropped)
                        ORDER BY a.attnum);
        CONTINUE WHEN cardinality(added) = 0;
        EXECUTE (SELECT string_agg(format('ALTER TABLE %I.%I ADD COLUMN %I %s', owsync._edge_schema(e), t.table_name,
                                          a.attname, format_type(a.atttypid, a.atttypmod)), '; ' ORDER BY a.attnum)
                   FROM pg_attribute a
                  WHERE a.attrelid = format('owsync.%I', t.table_name)::regclass AND a.attname = ANY (added));
        EXECUTE format('UPDATE %I.%I d SET (%s) = ROW(%s) FROM owsync.%I s WHERE %s',
                       owsync._edge_schema(e), t.table_name,
                       (SELECT string_agg(format('%I', c), ', ') FROM unnest(added) c),
                       (SELECT string_agg(format('s.%I', c), ', ') FROM unnest(added) c), t.table_name,
                       (SELECT string_agg(format('d.%1$I = s.%1$I', btrim(k)), ' AND ')
                          FROM unnest(string_to_array(t.key_columns, ',')) k));
    END LOOP;
    IF (SELECT hub FROM owsync.edge) IS NOT NULL THEN
        BEGIN
            PERFORM owsync._hub_catch_up(ARRAY[owsync._edge_schema(e)]);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'owsync edge %: the hub could not take the new columns of the catalog copy now: %', e, SQLERRM
                USING HINT = 'The fleet tick (job owsync-fleet) brings them to the hub when it can be reached.';
        END;
    END IF;
END
$$;
-- Conflicts: rows of a mirror changed in PostgreSQL by anyone but the sync,
-- which the source then changes too.
--
-- Recording.  Every mirror table with a key has a row trigger,
-- owsync_mirror_change, AFTER INSERT, UPDATE or DELETE, which notes the
-- change in owsync.mirror_change: one pending entry per key, updated by
-- later edits, keeping the row as the sync left it (old_row; after a
-- conflict the mirror won, the source's version) and the row now (new_row;
-- NULL: deleted).  An entry whose row is back as old_row (an insert deleted
-- again, an edit undone, a row given the source's version) goes away, and
-- settles a pending conflict of the row.  The trigger's
-- WHEN clause skips the rows the sync writes itself: the sync (and
-- resolve_conflict) turn owsync.applying on, transaction-local, around their
-- writes, so a row they write costs one test of a setting.  This is
-- bookkeeping, not a security boundary: whoever may write to a mirror may
-- also SET owsync.applying and edit unrecorded.  Not recorded either: a
-- TRUNCATE of a mirror table, and tables without a key (replaced as a whole
-- by every run, their edits are lost).
--
-- Detection.  When a run changes (inserts, updates or deletes) a row with a
-- pending mirror change, that is a conflict, recorded in owsync.conflict and
-- decided by the client's conflict_policy (options, default source_wins):
--
--   source_wins  the source's version is applied; the mirror's is kept in the
--                conflict row
--   target_wins  the mirror's version (or its delete, or its insert) stays;
--                the source's is kept in the conflict row
--   newest_wins  the version with the higher updated_at wins (a row deleted
--                in the mirror counts from the time of its delete; ties
--                and rows deleted at the source, which gives no time, and
--                tables without updated_at go to the source, as the
--                conflict's note says)
--   manual       the mirror's row is left alone and the conflict is pending
--                until owsync.resolve_conflict(id, 'source' | 'target')
--
-- The digests always follow the source, whoever wins: the next run does not
-- apply the same source version again.  A mirror change the source's
-- version was applied over is settled and goes; one that won (target_wins,
-- newest_wins) stays pending, so the row stays PostgreSQL's and every later
-- source change of it is a conflict again (each source version in the log).
-- A row both sides changed alike (both deleted it, or the mirror already
-- has the source's version) is no conflict.
-- A pending manual conflict is updated in place by later source changes of
-- its row: resolving it applies the newest.  A mirror change on a row the
-- source did not change stays pending and is no conflict.  Conflicts never
-- fail a run; each run counts them per table (owsync.run_table.conflicts).
--
-- Row images are json, not jsonb: json keeps the exact text of json
-- columns, so a version put back into the mirror (a full sync,
-- resolve_conflict) is byte for byte the one taken.
--
-- The tables mirror_change and conflict are in 20_catalog.sql, the view
-- conflicts in 60_views.sql.

-- Note one change of a mirror row (see above).
CREATE FUNCTION owsync._note_mirror_change(p_client text, p_table text, p_key jsonb, p_old json, p_new json)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO owsync.mirror_change AS mc (client, table_name, key, op, old_row, new_row, changed_at, changed_by)
    SELECT p_client, p_table, p_key,
           CASE WHEN p_old IS NULL THEN 'insert' WHEN p_new IS NULL THEN 'delete' ELSE 'update' END,
           p_old, p_new, clock_timestamp(), session_user
     WHERE EXISTS (SELECT 1 FROM owsync.client c WHERE c.client = p_client)
    ON CONFLICT (client, table_name, key) DO UPDATE
       SET op = CASE WHEN mc.old_row IS NULL THEN 'insert' WHEN EXCLUDED.new_row IS NULL THEN 'delete'
                     ELSE 'update' END,
           new_row = EXCLUDED.new_row, changed_at = EXCLUDED.changed_at, changed_by = EXCLUDED.changed_by;
    -- back as the sync left it (or given the source's version): nothing
    -- pending, and a pending conflict of the row is decided
    WITH settled AS (
        DELETE FROM owsync.mirror_change mc
         WHERE mc.client = p_client AND mc.table_name = p_table AND mc.key = p_key
           AND mc.old_row::text IS NOT DISTINCT FROM mc.new_row::text
        RETURNING mc.key)
    UPDATE owsync.conflict x
       SET decided = 'source', decided_at = now(), resolved_by = session_user,
           note = 'the mirror was given the source''s version'
     WHERE x.client = p_client AND x.table_name = p_table AND x.key = p_key AND x.decided IS NULL
       AND EXISTS (SELECT 1 FROM settled);
$$;

-- The trigger of every mirror table with a key (its arguments: the key
-- columns); the mirror schema is named after the client.  An UPDATE that
-- changes the key is a delete of the old key and an insert of the new one.
-- SECURITY DEFINER: whoever may write to a mirror table has its changes
-- recorded.  CREATE OR REPLACE: every mirror table's trigger depends on it
-- (an upgrade replaces it in place).
CREATE OR REPLACE FUNCTION owsync._mirror_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    old_r json;
    new_r json;
    old_k jsonb;
    new_k jsonb;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        old_r := row_to_json(OLD);
        old_k := (SELECT jsonb_object_agg(k, old_r::jsonb -> k) FROM unnest(TG_ARGV) k);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_r := row_to_json(NEW);
        new_k := (SELECT jsonb_object_agg(k, new_r::jsonb -> k) FROM unnest(TG_ARGV) k);
    END IF;
    IF TG_OP = 'UPDATE' AND old_k <> new_k THEN
        PERFORM owsync._note_mirror_change(TG_TABLE_SCHEMA, TG_TABLE_NAME, old_k, old_r, NULL);
        PERFORM owsync._note_mirror_change(TG_TABLE_SCHEMA, TG_TABLE_NAME, new_k, NULL, new_r);
    ELSE
        PERFORM owsync._note_mirror_change(TG_TABLE_SCHEMA, TG_TABLE_NAME, coalesce(new_k, old_k), old_r, new_r);
    END IF;
    RETURN NULL;
END
$$;

-- Watch a mirror table (called when it is created).
CREATE FUNCTION owsync._watch_mirror(p_client text, p_table text, p_keys text[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF cardinality(p_keys) > 0 THEN
        EXECUTE format('CREATE TRIGGER owsync_mirror_change AFTER INSERT OR UPDATE OR DELETE ON %I.%I
                        FOR EACH ROW WHEN (pg_catalog.current_setting(%L, true) IS DISTINCT FROM %L)
                        EXECUTE FUNCTION owsync._mirror_changed(%s)',
                       p_client, p_table, 'owsync.applying', 'on',
                       (SELECT string_agg(quote_literal(k), ', ') FROM unnest(p_keys) k));
    END IF;
END
$$;

-- Stop watching a client's mirror tables (unregistered, its data kept).
CREATE FUNCTION owsync._unwatch_mirror(p_client text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tr record;
BEGIN
    FOR tr IN SELECT t.tgrelid::regclass AS rel FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
               WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = p_client)
                 AND t.tgname = 'owsync_mirror_change' LOOP
        EXECUTE format('DROP TRIGGER owsync_mirror_change ON %s', tr.rel);
    END LOOP;
END
$$;

-- The keys of one table with a pending mirror change that a run looks at:
-- key, what the source did (NULL: nothing), its version, and the decision.
CREATE FUNCTION owsync._new_candidates() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF to_regclass('pg_temp.owsync_cand') IS NOT NULL THEN
        DROP TABLE pg_temp.owsync_cand;
    END IF;
    CREATE TEMP TABLE owsync_cand (
        key        jsonb PRIMARY KEY,
        old_digest bigint,
        source_op  text,
        source_row json,
        mirror_op  text,
        mirror_row json,
        mirror_at  bigint,
        agreed     boolean NOT NULL DEFAULT false,
        winner     text,
        note       text
    ) ON COMMIT DROP;
END
$$;

-- Delete from rel (alias x) the rows of the candidates the mirror keeps
-- (the source's version did not win), of those the source deleted only when
-- deletes_only.
CREATE FUNCTION owsync._delete_kept(t owsync.client_table, rel text, deletes_only boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('DELETE FROM %s x USING pg_temp.owsync_cand c, jsonb_populate_record(NULL::%I.%I, c.key) k
                     WHERE c.winner IS DISTINCT FROM %L AND %s%s',
                   rel, (owsync.client_names(t.client)).mirror_schema, t.table_name, 'source',
                   owsync._key_match(t.key_columns, 'k', 'x'),
                   CASE WHEN deletes_only THEN format(' AND c.source_op = %L', 'delete') ELSE '' END);
END
$$;

-- Decide the conflicts among the candidates (source_op set) by the client's
-- policy, record them, and settle the mirror changes the source's version
-- wins over.  A row both sides changed alike (both deleted it, or the
-- mirror already has the source's version) is no conflict: its mirror
-- change is settled.  A row the mirror keeps has the source's version as
-- its mirror change's old_row from now on: what the mirror is compared with
-- (an edit that makes the row equal to the source's version settles it).
-- Returns the number of conflicts.
CREATE FUNCTION owsync._decide_conflicts(t owsync.client_table, p_run bigint) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    client_policy text := (SELECT owsync._options(c.options) ->> 'conflict_policy' FROM owsync.client c
                            WHERE c.client = t.client);
    nconflicts bigint;
BEGIN
    UPDATE pg_temp.owsync_cand c
       SET mirror_op = mc.op, mirror_row = mc.new_row,
           mirror_at = CASE WHEN mc.new_row IS NULL		-- deleted: when
                            THEN (extract(epoch FROM mc.changed_at)
                                  * CASE t.watermark_unit WHEN 'ns' THEN 1000000000 ELSE 1 END)::bigint
                            ELSE (mc.new_row ->> t.watermark_column)::bigint END,
           agreed = mc.new_row::jsonb IS NOT DISTINCT FROM c.source_row::jsonb
      FROM owsync.mirror_change mc
     WHERE mc.client = t.client AND mc.table_name = t.table_name AND mc.key = c.key
       AND c.source_op IS NOT NULL;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    UPDATE pg_temp.owsync_cand c
       SET winner = CASE WHEN c.agreed OR client_policy NOT IN ('target_wins', 'newest_wins', 'manual')
                         THEN 'source'
                         WHEN client_policy = 'target_wins' THEN 'target'
                         WHEN client_policy = 'manual' THEN NULL
                         WHEN t.watermark_column IS NULL OR c.source_op = 'delete' THEN 'source'
                         WHEN c.mirror_at > (c.source_row ->> t.watermark_column)::bigint THEN 'target'
                         ELSE 'source' END,
           note = CASE WHEN c.agreed THEN 'the mirror has the source''s version'
                       WHEN client_policy <> 'newest_wins' THEN NULL
                       WHEN t.watermark_column IS NULL THEN 'no updated_at: the source wins'
                       WHEN c.source_op = 'delete' THEN 'deleted at the source, which gives no time: the source wins'
                       ELSE format('%s: mirror %s, source %s', t.watermark_column, coalesce(c.mirror_at::text, 'null'),
                                   coalesce(c.source_row ->> t.watermark_column, 'null')) END
     WHERE c.source_op IS NOT NULL;

    -- a pending conflict of the row is updated (decided, if the policy
    -- changed since or the sides agree now); the others are new
    WITH pending AS (
        UPDATE owsync.conflict x
           SET run_id = p_run, detected_at = now(), policy = client_policy,
               mirror_op = c.mirror_op, source_op = c.source_op, mirror_row = c.mirror_row,
               source_row = c.source_row, decided = c.winner,
               decided_at = CASE WHEN c.winner IS NOT NULL THEN now() END, note = c.note
          FROM pg_temp.owsync_cand c
         WHERE x.client = t.client AND x.table_name = t.table_name AND x.key = c.key
           AND x.decided IS NULL AND c.source_op IS NOT NULL
        RETURNING x.key)
    INSERT INTO owsync.conflict (client, table_name, key, run_id, policy, mirror_op, source_op, mirror_row,
                                 source_row, decided, decided_at, note)
    SELECT t.client, t.table_name, c.key, p_run, client_policy, c.mirror_op, c.source_op, c.mirror_row,
           c.source_row, c.winner, CASE WHEN c.winner IS NOT NULL THEN now() END, c.note
      FROM pg_temp.owsync_cand c
     WHERE c.source_op IS NOT NULL AND NOT c.agreed AND c.key NOT IN (SELECT p.key FROM pending p)
     ORDER BY c.key;
    SELECT count(*) INTO nconflicts FROM pg_temp.owsync_cand c WHERE c.source_op IS NOT NULL AND NOT c.agreed;

    DELETE FROM owsync.mirror_change mc
     USING pg_temp.owsync_cand c
     WHERE mc.client = t.client AND mc.table_name = t.table_name AND mc.key = c.key AND c.winner = 'source';
    UPDATE owsync.mirror_change mc
       SET old_row = c.source_row,
           op = CASE WHEN c.source_row IS NULL THEN 'insert' WHEN mc.new_row IS NULL THEN 'delete' ELSE 'update' END
      FROM pg_temp.owsync_cand c
     WHERE mc.client = t.client AND mc.table_name = t.table_name AND mc.key = c.key
       AND c.source_op IS NOT NULL AND c.winner IS DISTINCT FROM 'source';
    RETURN nconflicts;
END
$$;

-- Incremental and reconcile runs, before the apply: the staged rows
-- (pg_temp.owsync_stage) and the source's deletes (pg_temp.owsync_gone,
-- when gone) of keys with a pending mirror change are candidates; the rows
-- the mirror keeps (the mirror's version won, is pending, or the source did
-- not change the row) move to pg_temp.owsync_held, out of the apply, and
-- the source's deletes of them leave the digests at once.  After the apply,
-- owsync._release_held() puts the held rows back into the stage, for the
-- digests and the watermark.  Returns the number of conflicts.
CREATE FUNCTION owsync._hold_conflicts(t owsync.client_table, p_run bigint, gone boolean) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n record := owsync.client_names(t.client);
    mirror text := format('%I.%I', n.mirror_schema, t.table_name);
    dig text := format('%I.%I', n.digest_schema, t.table_name);
    s_cols text;
    nconflicts bigint;
BEGIN
    SELECT string_agg(format('s.%I', a.attname), ', ' ORDER BY a.attnum) INTO s_cols
      FROM pg_attribute a
     WHERE a.attrelid = 'pg_temp.owsync_stage'::regclass AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname <> 'owsync_digest';
    PERFORM owsync._new_candidates();
    EXECUTE format('INSERT INTO pg_temp.owsync_cand (key, source_op, source_row)
                    SELECT mc.key,
                           CASE WHEN d.owsync_digest IS NULL THEN %1$L
                                WHEN d.owsync_digest <> s.owsync_digest THEN %2$L END,
                           (SELECT row_to_json(r) FROM (SELECT %3$s) r)
                      FROM owsync.mirror_change mc
                     CROSS JOIN LATERAL jsonb_populate_record(NULL::%4$s, mc.key) k
                      JOIN pg_temp.owsync_stage s ON %6$s
                      LEFT JOIN %5$s d ON %7$s
                     WHERE mc.client = $1 AND mc.table_name = $2',
                   'insert', 'update', s_cols, mirror, dig,
                   owsync._key_match(t.key_columns, 'k', 's'), owsync._key_match(t.key_columns, 'd', 's'))
      USING t.client, t.table_name;
    IF gone THEN
        EXECUTE format('INSERT INTO pg_temp.owsync_cand (key, source_op)
                        SELECT mc.key, %L
                          FROM owsync.mirror_change mc
                         CROSS JOIN LATERAL jsonb_populate_record(NULL::%s, mc.key) k
                          JOIN pg_temp.owsync_gone g ON %s
                         WHERE mc.client = $1 AND mc.table_name = $2',
                       'delete', mirror, owsync._key_match(t.key_columns, 'k', 'g'))
          USING t.client, t.table_name;
    END IF;
    nconflicts := owsync._decide_conflicts(t, p_run);

    IF to_regclass('pg_temp.owsync_held') IS NOT NULL THEN
        DROP TABLE pg_temp.owsync_held;
    END IF;
    CREATE TEMP TABLE owsync_held ON COMMIT DROP AS SELECT * FROM pg_temp.owsync_stage WITH NO DATA;
    EXECUTE format('WITH h AS (DELETE FROM pg_temp.owsync_stage s
                                USING pg_temp.owsync_cand c, jsonb_populate_record(NULL::%1$s, c.key) k
                                WHERE c.winner IS DISTINCT FROM %2$L AND %3$s
                               RETURNING s.*)
                    INSERT INTO pg_temp.owsync_held SELECT * FROM h',
                   mirror, 'source', owsync._key_match(t.key_columns, 'k', 's'));
    IF gone THEN
        PERFORM owsync._delete_kept(t, 'pg_temp.owsync_gone', false);
        PERFORM owsync._delete_kept(t, dig, true);
    END IF;
    RETURN nconflicts;
END
$$;

-- After the apply: the held rows go back into the stage, for the digests and
-- the watermark.
CREATE FUNCTION owsync._release_held() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO pg_temp.owsync_stage SELECT * FROM pg_temp.owsync_held;
END
$$;

-- Full runs reload a mirror table (DELETE and INSERT): before, the keys
-- with a pending mirror change are candidates, with their digests; after,
-- what the source did is known from the reloaded digests, the conflicts are
-- decided, and the rows the mirror keeps get the mirror's version back (the
-- mirror change's new_row, or no row).  A full sync thus changes a row with
-- a pending mirror change exactly as an incremental sync would: reloading
-- is how it reads, not a reason to drop what PostgreSQL wrote.
CREATE FUNCTION owsync._full_conflicts_before(t owsync.client_table) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n record := owsync.client_names(t.client);
BEGIN
    PERFORM owsync._new_candidates();
    EXECUTE format('INSERT INTO pg_temp.owsync_cand (key, old_digest)
                    SELECT mc.key, d.owsync_digest
                      FROM owsync.mirror_change mc
                     CROSS JOIN LATERAL jsonb_populate_record(NULL::%I.%I, mc.key) k
                      LEFT JOIN %I.%I d ON %s
                     WHERE mc.client = $1 AND mc.table_name = $2',
                   n.mirror_schema, t.table_name, n.digest_schema, t.table_name,
                   owsync._key_match(t.key_columns, 'k', 'd'))
      USING t.client, t.table_name;
END
$$;

-- After the reload: what the source did to each candidate, the conflicts
-- decided, the mirror's version put back where it won.  Returns the number
-- of conflicts.
CREATE FUNCTION owsync._full_conflicts_after(t owsync.client_table, p_run bigint) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n record := owsync.client_names(t.client);
    mirror text := format('%I.%I', n.mirror_schema, t.table_name);
    dig text := format('%I.%I', n.digest_schema, t.table_name);
    nconflicts bigint;
BEGIN
    EXECUTE format('UPDATE pg_temp.owsync_cand c
                       SET source_op = x.source_op, source_row = x.source_row
                      FROM (SELECT c2.key,
                                   CASE WHEN c2.old_digest IS NULL AND d.owsync_digest IS NULL THEN NULL
                                        WHEN c2.old_digest IS NULL THEN %1$L
                                        WHEN d.owsync_digest IS NULL THEN %2$L
                                        WHEN c2.old_digest <> d.owsync_digest THEN %3$L END AS source_op,
                                   CASE WHEN d.owsync_digest IS NOT NULL THEN row_to_json(m) END AS source_row
                              FROM pg_temp.owsync_cand c2
                             CROSS JOIN LATERAL jsonb_populate_record(NULL::%4$s, c2.key) k
                              LEFT JOIN %5$s d ON %6$s
                              LEFT JOIN %4$s m ON %7$s) x
                     WHERE x.key = c.key',
                   'insert', 'delete', 'update', mirror, dig,
                   owsync._key_match(t.key_columns, 'k', 'd'), owsync._key_match(t.key_columns, 'k', 'm'));
    nconflicts := owsync._decide_conflicts(t, p_run);
    PERFORM owsync._delete_kept(t, mirror, false);
    EXECUTE format('INSERT INTO %1$s
                    SELECT r.* FROM pg_temp.owsync_cand c
                      JOIN owsync.mirror_change mc ON mc.client = $1 AND mc.table_name = $2 AND mc.key = c.key
                     CROSS JOIN LATERAL json_populate_record(NULL::%1$s, mc.new_row) r
                     WHERE c.winner IS DISTINCT FROM %2$L AND mc.new_row IS NOT NULL',
                   mirror, 'source')
      USING t.client, t.table_name;
    RETURN nconflicts;
END
$$;

-- Decide a conflict by hand: 'source' applies the source's version kept in
-- the conflict (its row, or its delete) to the mirror, 'target' keeps the
-- mirror's.  Either way the conflict is decided and the row's mirror change
-- is settled: later source changes of the row apply as usual.  A pending
-- conflict (manual) can be resolved, and so can the latest conflict of a row
-- whose mirror change the policy let win (target_wins, newest_wins), to give
-- the row back to the source.  Waits for a running sync of the client.
CREATE FUNCTION owsync.resolve_conflict(conflict_id bigint, winner text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    x owsync.conflict;
    ct owsync.client_table;
    mirror text;
    src text;
    cols text;
    scols text;
    was text;
BEGIN
    PERFORM owsync._require_admin();
    IF winner IS NULL OR winner NOT IN ('source', 'target') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid winner %L', winner),
            HINT = 'Use source (apply the source''s version) or target (keep the mirror''s).';
    END IF;
    SELECT * INTO x FROM owsync.conflict c WHERE c.conflict_id = resolve_conflict.conflict_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('conflict %s does not exist', conflict_id);
    END IF;
    -- the client's run lock, for this transaction: no sync writes the row meanwhile
    PERFORM owsync._lock_client(x.client);
    SELECT * INTO x FROM owsync.conflict c WHERE c.conflict_id = resolve_conflict.conflict_id FOR UPDATE;
    IF x.decided IS NOT NULL
       AND NOT (x.decided = 'target' AND x.resolved_by IS NULL
                AND NOT EXISTS (SELECT 1 FROM owsync.conflict c
                                 WHERE c.client = x.client AND c.table_name = x.table_name AND c.key = x.key
                                   AND c.conflict_id > x.conflict_id)
                AND EXISTS (SELECT 1 FROM owsync.mirror_change mc
                             WHERE mc.client = x.client AND mc.table_name = x.table_name AND mc.key = x.key)) THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('conflict %s is already decided', conflict_id),
            DETAIL = format('The %s won it%s.', CASE x.decided WHEN 'source' THEN 'source' ELSE 'mirror' END,
                            CASE WHEN x.resolved_by IS NULL THEN format(' in run %s', x.run_id)
                                 ELSE format(', resolved by %s', x.resolved_by) END),
            HINT = 'Only a pending conflict, or the latest conflict of a row the mirror''s version won, can be resolved.';
    END IF;
    SELECT * INTO ct FROM owsync.client_table c WHERE c.client = x.client AND c.table_name = x.table_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('table %s of client %L is not synced', x.table_name, x.client);
    END IF;
    mirror := format('%I.%I', (owsync.client_names(x.client)).mirror_schema, x.table_name);
    src := format('%I.%I', (owsync.client_names(x.client)).src_schema, x.table_name);
    IF winner = 'source' THEN
        was := owsync._applying('on');
        EXECUTE format('DELETE FROM %1$s m USING jsonb_populate_record(NULL::%1$s, $1) k WHERE %2$s',
                       mirror, owsync._key_match(ct.key_columns, 'k', 'm'))
          USING x.key;
        -- the source's version as its file holds it now, read through its
        -- foreign table (the copy in source_row is JSON, where a json
        -- column's JSON null and SQL NULL look alike); a column only the
        -- mirror has keeps NULL, a row the source no longer has stays deleted
        SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum),
               string_agg(format('s.%I', a.attname), ', ' ORDER BY a.attnum) INTO cols, scols
          FROM pg_attribute a
         WHERE a.attrelid = mirror::regclass AND a.attnum > 0 AND NOT a.attisdropped
           AND EXISTS (SELECT 1 FROM pg_attribute f WHERE f.attrelid = src::regclass
                          AND f.attname = a.attname AND NOT f.attisdropped);
        EXECUTE format('INSERT INTO %1$s (%2$s) SELECT %3$s FROM %4$s s, jsonb_populate_record(NULL::%1$s, $1) k WHERE %5$s',
                       mirror, cols, scols, src, owsync._key_match(ct.key_columns, 'k', 's'))
          USING x.key;
        PERFORM owsync._applying(was);
    END IF;
    DELETE FROM owsync.mirror_change mc
     WHERE mc.client = x.client AND mc.table_name = x.table_name AND mc.key = x.key;
    UPDATE owsync.conflict c
       SET decided = winner, decided_at = now(), resolved_by = session_user
     WHERE c.conflict_id = x.conflict_id;
END
$$;
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
-- Row versions: what each run replaces, kept so that a client can be
-- restored as it stood after any run of its retention window (55_restore.sql)
-- and a row's past can be listed (56_versions.sql).
--
-- Per client, schema owsync_<client>_versions (owsync's own: no reader role
-- has any right on it) holds, per mirror table of the same name, the
-- versions the client's runs replaced:
--
--   owsync_run  the run that replaced it
--   owsync_op   'u' the version an update overwrote, 'd' the version a
--               delete removed, 'i' the run inserted the key (only the key
--               columns are set); for a table without key, 's' a row of the
--               set the run replaced and 'e' the mark that it did (the set
--               may have been empty)
--   owsync_ord  (a table without key) the row's number within its set
--   the mirror's columns, all nullable, large values as the mirror stores
--   them (copied compressed, never recompressed)
--
-- keyed by (key, owsync_run), or (owsync_run, owsync_ord) without key: a
-- primary key, so that the hub can subscribe to it and a purge is a DELETE.
--
-- The state after run R is then, per key: the oldest version kept by a run
-- after R (none when that run inserted the key), or the mirror's row when no
-- run after R changed the key (owsync._as_of_select).  Runs record only what
-- they change; a nothing-changed run records nothing.
--
-- client.versions_from is the oldest run whose state can be given back:
-- the registration (its first load is not recorded: nothing came before),
-- the last run before the upgrade that brought versions, or, once the
-- retention (option versions_retention, default 1 day) is reached, the
-- newest run that finished before it; older versions are purged by each
-- run.  With option versions_interval, an update of a row that already has
-- a version kept within the current interval (intervals counted from the
-- epoch, by run start) is not kept: the state at the start of each interval
-- stays exact, and an as-of restore gives that (it says so).  Inserts and
-- deletes are always kept.

-- The mirror's columns, in order, quoted and joined with ", " (prefixed by
-- alias, when given).
CREATE FUNCTION owsync._column_list(rel regclass, alias text DEFAULT NULL) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(coalesce(alias || '.', '') || quote_ident(a.attname), ', ' ORDER BY a.attnum)
      FROM pg_attribute a
     WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
$$;

-- The key columns of a table, from its primary key ('{}': none).
CREATE FUNCTION owsync._primary_key(rel regclass) RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(a.attname::text ORDER BY k.o), '{}')
      FROM pg_index i
      CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, o)
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
     WHERE i.indrelid = rel AND i.indisprimary
$$;

-- The bytes a client's kept versions take (tables, indexes, TOAST).
CREATE FUNCTION owsync._versions_bytes(p_client text) RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = owsync._versions_schema(p_client) AND c.relkind = 'r'
$$;

-- Make the versions table of a mirror table exist with every column the
-- mirror has (a column added by drift is added here too).  Returns its name,
-- qualified and quoted.
CREATE FUNCTION owsync._versions_table(p_client text, p_table text, keys text[]) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    vs name := owsync._versions_schema(p_client);
    mirror regclass := format('%I.%I', p_client, p_table)::regclass;
    v text := format('%I.%I', vs, p_table);
    col record;
BEGIN
    IF to_regclass(v) IS NULL THEN
        IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = vs) THEN
            EXECUTE format('CREATE SCHEMA %I', vs);
        END IF;
        EXECUTE format('CREATE TABLE %s (owsync_run bigint NOT NULL, owsync_op "char" NOT NULL%s, %s, PRIMARY KEY (%s))',
                       v, CASE WHEN cardinality(keys) = 0 THEN ', owsync_ord integer NOT NULL' ELSE '' END,
                       (SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', '
                                          ORDER BY a.attnum)
                          FROM pg_attribute a WHERE a.attrelid = mirror AND a.attnum > 0 AND NOT a.attisdropped),
                       CASE WHEN cardinality(keys) = 0 THEN 'owsync_run, owsync_ord'
                            ELSE (SELECT string_agg(format('%I', k), ', ') FROM unnest(keys) k) || ', owsync_run' END);
        IF cardinality(keys) > 0 THEN
            -- the purge deletes by run
            EXECUTE format('CREATE INDEX ON %s (owsync_run)', v);
        END IF;
    END IF;
    FOR col IN SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type
                 FROM pg_attribute a
                WHERE a.attrelid = mirror AND a.attnum > 0 AND NOT a.attisdropped
                  AND NOT EXISTS (SELECT 1 FROM pg_attribute x
                                   WHERE x.attrelid = v::regclass AND x.attname = a.attname AND NOT x.attisdropped)
                ORDER BY a.attnum LOOP
        EXECUTE format('ALTER TABLE %s ADD COLUMN %I %s', v, col.attname, col.type);
    END LOOP;
    -- large values compressed as in the mirror
    FOR col IN SELECT a.attname, CASE a.attcompression WHEN 'l' THEN 'lz4' WHEN 'p' THEN 'pglz'
                                                       ELSE 'default' END AS method
                 FROM pg_attribute a JOIN pg_attribute x ON x.attname = a.attname
                WHERE a.attrelid = mirror AND x.attrelid = v::regclass AND a.attcompression <> x.attcompression
                  AND NOT x.attisdropped LOOP
        EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET COMPRESSION %s', v, col.attname, col.method);
    END LOOP;
    RETURN v;
END
$$;

-- The versions a run is about to replace by applying the stage (the MERGE
-- of owsync._apply): the mirror's version of each row whose digest changed
-- (unless versions_interval holds one of it already), and the keys the stage
-- inserts.  The stage holds the run's changed rows, few against the mirror:
-- each is looked up by key through the indexes (no hash join, which would
-- read the whole mirror and digest table to find them).
CREATE FUNCTION owsync._keep_replaced(t owsync.client_table, p owsync._sync_plan) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET enable_hashjoin = off
AS $$
DECLARE
    v text := owsync._versions_table(t.client, t.table_name, t.key_columns);
BEGIN
    IF p.setlist IS NOT NULL THEN
        EXECUTE format('INSERT INTO %1$s (owsync_run, owsync_op, %2$s)
                        SELECT $1, %3$L, %4$s FROM pg_temp.owsync_stage s JOIN %5$s m ON %6$s
                          LEFT JOIN %7$s d ON %8$s
                         WHERE d.owsync_digest IS DISTINCT FROM s.owsync_digest%9$s',
                       v, owsync._column_list(p.mirror::regclass), 'u', owsync._column_list(p.mirror::regclass, 'm'),
                       p.mirror, p.on_key, p.dig, owsync._key_match(t.key_columns, 'd', 's'),
                       owsync._within_interval(t, p, v))
          USING p.run_id, p.interval_run;
    END IF;
    EXECUTE format('INSERT INTO %1$s (owsync_run, owsync_op, %2$s)
                    SELECT $1, %3$L, %4$s FROM pg_temp.owsync_stage s
                     WHERE NOT EXISTS (SELECT 1 FROM %5$s m WHERE %6$s)',
                   v, p.keylist, 'i', (SELECT string_agg(format('s.%I', k), ', ') FROM unnest(t.key_columns) k),
                   p.mirror, p.on_key)
      USING p.run_id;
END
$$;

-- The condition that leaves out an update of row m when versions_interval
-- holds a version of it kept since the interval began ('' without the
-- bound).  The statement's $2 is that interval's first run.
CREATE FUNCTION owsync._within_interval(t owsync.client_table, p owsync._sync_plan, v text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p.interval_run IS NULL THEN ''
                ELSE format(' AND NOT EXISTS (SELECT 1 FROM %s v WHERE %s AND v.owsync_run >= $2)',
                            v, owsync._key_match(t.key_columns, 'v', 'm')) END
$$;

-- Hard deletes, keeping the versions they remove: the mirror's rows whose
-- keys the source lost (pg_temp.owsync_gone) deleted.  Returns the rows
-- deleted.
CREATE FUNCTION owsync._delete_gone(t owsync.client_table, p owsync._sync_plan) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v text;
    deleted bigint;
BEGIN
    IF p.keep_versions THEN
        v := owsync._versions_table(t.client, t.table_name, t.key_columns);
        EXECUTE format('WITH gone AS (DELETE FROM %1$s m USING pg_temp.owsync_gone s WHERE %2$s RETURNING m.*)
                        INSERT INTO %3$s (owsync_run, owsync_op, %4$s) SELECT $1, %5$L, %4$s FROM gone',
                       p.mirror, p.on_key, v, owsync._column_list(p.mirror::regclass), 'd')
          USING p.run_id;
    ELSE
        EXECUTE format('DELETE FROM %1$s m USING pg_temp.owsync_gone s WHERE %2$s', p.mirror, p.on_key);
    END IF;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END
$$;

-- Before a full reload of a keyed table, with the keys it moves in
-- pg_temp.owsync_moved (44_sync_table.sql): the versions the reload replaces
-- kept, the mirror's rows whose key is gone or whose digest changed, and the
-- keys it adds.  (A row the digests say is unchanged but that differs from the
-- source, a mirror edited by hand past its triggers, is repaired by the
-- reload without a version: that state was no run's.)
CREATE FUNCTION owsync._keep_reloaded(t owsync.client_table, p owsync._sync_plan) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v text := owsync._versions_table(t.client, t.table_name, t.key_columns);
BEGIN
    EXECUTE format('INSERT INTO %1$s (owsync_run, owsync_op, %2$s)
                    SELECT $1, s.owsync_op, %3$s FROM pg_temp.owsync_moved s JOIN %4$s m ON %5$s
                     WHERE s.owsync_op = %6$L OR (s.owsync_op = %7$L%8$s)',
                   v, owsync._column_list(p.mirror::regclass), owsync._column_list(p.mirror::regclass, 'm'),
                   p.mirror, p.on_key, 'd', 'u',
                   CASE WHEN p.setlist IS NULL THEN ' AND false' ELSE owsync._within_interval(t, p, v) END)
      USING p.run_id, p.interval_run;
    EXECUTE format('INSERT INTO %1$s (owsync_run, owsync_op, %2$s)
                    SELECT $1, owsync_op, %2$s FROM pg_temp.owsync_moved WHERE owsync_op = %3$L',
                   v, p.keylist, 'i')
      USING p.run_id;
END
$$;

-- A table without key, replaced as a whole: the set it held kept (with the
-- mark 'e'), unless the reload left it the same, checked by the caller
-- with owsync._set_signature().
CREATE FUNCTION owsync._keep_set(t owsync.client_table, p owsync._sync_plan) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v text := owsync._versions_table(t.client, t.table_name, t.key_columns);
    cols text := owsync._column_list(p.mirror::regclass);
BEGIN
    EXECUTE format('INSERT INTO %1$s (owsync_run, owsync_op, owsync_ord) VALUES ($1, %2$L, 0)', v, 'e')
      USING p.run_id;
    EXECUTE format('INSERT INTO %1$s (owsync_run, owsync_op, owsync_ord, %2$s)
                    SELECT $1, %3$L, row_number() OVER (), %2$s FROM %4$s',
                   v, cols, 's', p.mirror)
      USING p.run_id;
END
$$;

-- The rows of a table without key, as one value: equal before and after a
-- reload, the set did not change.
CREATE FUNCTION owsync._set_signature(rel text) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sig text;
BEGIN
    EXECUTE format('SELECT count(*) || %L || md5(coalesce(string_agg(r::text, E''\n'' ORDER BY r::text), %L)) FROM %s r',
                   ':', '', rel)
      INTO sig;
    RETURN sig;
END
$$;

-- A set kept by this run that the reload left the same is dropped again.
CREATE FUNCTION owsync._drop_kept_set(t owsync.client_table, p owsync._sync_plan) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('DELETE FROM %I.%I WHERE owsync_run = $1', owsync._versions_schema(t.client), t.table_name)
      USING p.run_id;
END
$$;

-- The first run of the versions_interval interval that run p_run started
-- in: an update of a row with a version kept by it or a later run is not
-- kept (NULL: no bound, every version kept).
CREATE FUNCTION owsync._interval_run(p_client text, p_run bigint, opts jsonb) RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (SELECT min(x.run_id) FROM owsync.run x
             WHERE x.client = p_client
               AND x.started_at >= date_bin((opts ->> 'versions_interval')::interval, r.started_at,
                                            timestamptz 'epoch'))
      FROM owsync.run r
     WHERE r.run_id = p_run AND (opts ->> 'versions_interval')::interval > interval '0'
$$;

-- Purge what is older than the retention, after run p_run succeeded: the
-- newest run that finished before it becomes the oldest the client can be
-- restored to, and the versions its state does not need (kept by it or
-- earlier runs) go.  Each table's purge is one DELETE by run, through the
-- index on owsync_run; the window may reach a 24th of the retention further
-- back than it, never less.  With versions_retention 0 nothing is kept: the
-- window is run p_run alone (its state is the mirror's).
CREATE FUNCTION owsync._purge_versions(p_client text, p_run bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c owsync.client;
    keep interval;
    cutoff bigint;
    v record;
BEGIN
    SELECT * INTO c FROM owsync.client WHERE client = p_client;
    IF c.versions_from IS NULL THEN
        RETURN;
    END IF;
    keep := (owsync._options(c.options) ->> 'versions_retention')::interval;
    IF keep = interval '0' THEN
        cutoff := p_run;
    -- in batches: once the window's start is past the retention by a 24th
    -- of it (an hour for a day), so that most runs skip this
    ELSIF (SELECT r.finished_at FROM owsync.run r WHERE r.run_id = c.versions_from) >= now() - keep - keep / 24 THEN
        RETURN;
    ELSE
        SELECT max(r.run_id) INTO cutoff FROM owsync.run r
         WHERE r.client = p_client AND r.status = 'succeeded' AND r.finished_at < now() - keep;
    END IF;
    IF cutoff IS NULL OR cutoff <= c.versions_from THEN
        RETURN;
    END IF;
    FOR v IN SELECT x.relname FROM pg_class x
              WHERE x.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = owsync._versions_schema(p_client))
                AND x.relkind = 'r' LOOP
        EXECUTE format('DELETE FROM %I.%I WHERE owsync_run <= $1', owsync._versions_schema(p_client), v.relname)
          USING cutoff;
    END LOOP;
    UPDATE owsync.client SET versions_from = cutoff WHERE client = p_client;
END
$$;

-- The SELECT giving a table's rows as they stood after run p_run: from its
-- mirror table and its versions table (NULL: none kept), local or the
-- hub's copies, keyed by keys ('{}': a table without key, kept as sets).
-- The columns are the mirror's; a column the versions table lacks (added
-- after its last version) reads as NULL.
CREATE FUNCTION owsync._as_of_select(mirror regclass, versions regclass, keys text[], p_run bigint) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cols text := owsync._column_list(mirror);
    v_cols text;
BEGIN
    IF versions IS NULL THEN
        RETURN format('SELECT %s FROM %s', cols, mirror);
    END IF;
    SELECT string_agg(CASE WHEN x.attname IS NULL THEN format('NULL::%s AS %I', format_type(a.atttypid, a.atttypmod), a.attname)
                           ELSE format('v.%I', a.attname) END, ', ' ORDER BY a.attnum)
      INTO v_cols
      FROM pg_attribute a
      LEFT JOIN pg_attribute x ON x.attrelid = versions AND x.attname = a.attname AND NOT x.attisdropped
     WHERE a.attrelid = mirror AND a.attnum > 0 AND NOT a.attisdropped;
    IF cardinality(keys) = 0 THEN
        RETURN format('SELECT %1$s FROM %2$s m WHERE NOT EXISTS (SELECT 1 FROM %3$s v WHERE v.owsync_run > %4$s)
                       UNION ALL
                       SELECT %5$s FROM %3$s v
                        WHERE v.owsync_op = %6$L
                          AND v.owsync_run = (SELECT min(x.owsync_run) FROM %3$s x WHERE x.owsync_run > %4$s)',
                      owsync._column_list(mirror, 'm'), mirror, versions, p_run, v_cols, 's');
    END IF;
    RETURN format('SELECT %1$s FROM %2$s m
                    WHERE NOT EXISTS (SELECT 1 FROM %3$s v WHERE %4$s AND v.owsync_run > %5$s)
                   UNION ALL
                   SELECT %6$s FROM (SELECT DISTINCT ON (%7$s) * FROM %3$s
                                      WHERE owsync_run > %5$s ORDER BY %7$s, owsync_run) v
                    WHERE v.owsync_op <> %8$L',
                  owsync._column_list(mirror, 'm'), mirror, versions, owsync._key_match(keys, 'v', 'm'), p_run,
                  v_cols, (SELECT string_agg(format('%I', k), ', ') FROM unnest(keys) k), 'i');
END
$$;

-- The run an as-of restore gives the state after: for a time, the last
-- successful run that finished at or before it (with versions_interval, the
-- last that started before that interval began, where kept versions are
-- exact); for a run id, that run, which must have succeeded.  Refused
-- outside the client's window: from the end of its run versions_from to
-- now.  Also returns when that run finished, the moment the state is exact
-- for, and the interval (NULL: every version kept).  See _as_of_window.
CREATE FUNCTION owsync._as_of_run(p_client text, p_at timestamptz, p_run bigint,
                                  OUT run_id bigint, OUT finished_at timestamptz, OUT exact_at timestamptz,
                                  OUT granularity interval)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c owsync.client;
BEGIN
    SELECT * INTO c FROM owsync.client x WHERE x.client = p_client;
    SELECT * INTO run_id, finished_at, exact_at, granularity
      FROM owsync._as_of_window(p_client, p_at, p_run, c.versions_from, c.options, 'owsync.run');
END
$$;

-- owsync._as_of_run() from the facts it needs: the client's versions_from
-- and options, and a relation of its runs (owsync.run, or the hub's copy of
-- its edge's runs) with run_id, client, status, started_at and finished_at.
CREATE FUNCTION owsync._as_of_window(p_client text, p_at timestamptz, p_run bigint, p_versions_from bigint,
                                     p_options jsonb, p_runs regclass,
                                     OUT run_id bigint, OUT finished_at timestamptz, OUT exact_at timestamptz,
                                     OUT granularity interval)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    oldest timestamptz;
    window_text text;
BEGIN
    IF p_versions_from IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('client %L keeps no row versions', p_client),
            DETAIL = 'Versions are kept from the first run after registration on, unless versions_retention is 0.',
            HINT = 'Restore the client as it is now, without as_of or run_id.';
    END IF;
    EXECUTE format('SELECT r.finished_at FROM %s r WHERE r.run_id = $1', p_runs) INTO oldest USING p_versions_from;
    window_text := format('Client %s can be restored as it stood at any moment from %s (the end of run %s) to now.',
                          p_client, oldest, p_versions_from);
    granularity := nullif((owsync._options(p_options) ->> 'versions_interval')::interval, interval '0');
    IF p_run IS NOT NULL THEN
        EXECUTE format('SELECT r.run_id, r.finished_at FROM %s r
                         WHERE r.run_id = $1 AND r.client = $2 AND r.status = %L', p_runs, 'succeeded')
          INTO run_id, finished_at USING p_run, p_client;
        IF run_id IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('run %s is not a successful run of client %L', p_run, p_client),
                HINT = 'owsync.history lists the client''s runs.';
        END IF;
        IF run_id < p_versions_from THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('run %s of client %L is older than its kept versions reach', p_run, p_client),
                DETAIL = window_text;
        END IF;
        exact_at := finished_at;
        granularity := NULL;
        RETURN;
    END IF;
    IF p_at < oldest THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('client %L cannot be restored as of %s', p_client, p_at),
            DETAIL = window_text,
            HINT = 'Its option versions_retention sets how far back versions are kept.';
    ELSIF p_at > now() THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('client %L cannot be restored as of %s, a time to come', p_client, p_at),
            DETAIL = window_text;
    END IF;
    exact_at := CASE WHEN granularity IS NULL THEN p_at
                     ELSE date_bin(granularity, p_at, timestamptz 'epoch') END;
    EXECUTE format('SELECT r.run_id, r.finished_at FROM %s r
                     WHERE r.client = $1 AND r.status = %L AND r.run_id >= $2
                       AND CASE WHEN $3 IS NULL THEN r.finished_at <= $4 ELSE r.started_at < $5 END
                     ORDER BY r.run_id DESC LIMIT 1', p_runs, 'succeeded')
      INTO run_id, finished_at USING p_client, p_versions_from, granularity, p_at, exact_at;
    IF run_id IS NULL THEN
        -- within the first interval of the window: its first run's state
        run_id := p_versions_from;
        finished_at := oldest;
        exact_at := oldest;
    END IF;
END
$$;

-- The relation holding a table's rows that an as-of restore to run p_run
-- reads: the mirror table, or, when a later run retired it (replaced at the
-- source by a table without its key, see owsync._retire_table), the kept
-- <table>_before_<run> of the first such run.
CREATE FUNCTION owsync._as_of_table(p_schema name, p_table text, p_run bigint) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT c.relname::text FROM pg_class c
                      CROSS JOIN LATERAL (SELECT substring(c.relname FROM '_before_([0-9]+)$')::bigint AS s) r
                     WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = p_schema)
                       AND c.relkind IN ('r', 'f') AND r.s > p_run
                       AND c.relname = left(p_table, 63 - length('_before_' || r.s)) || '_before_' || r.s
                     ORDER BY r.s LIMIT 1),
                    p_table)
$$;

-- Temporary views of a client's tables as they stood after run p_run, one
-- per table named in tabs, in that order: over the mirror and versions
-- schemas given (the client's own, or the hub's copies of them), keyed by
-- keys (one text[] per table, as a JSON array of arrays; NULL: each mirror
-- table's primary key).  A later call replaces them; owsync._drop_as_of_views()
-- drops them.
CREATE FUNCTION owsync._as_of_views(p_mirror name, p_versions name, tabs text[], p_run bigint,
                                    keys jsonb DEFAULT NULL) RETURNS regclass[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rels regclass[] := '{}';
    rel text;
    view text;
    k text[];
BEGIN
    FOR i IN 1 .. coalesce(cardinality(tabs), 0) LOOP
        rel := owsync._as_of_table(p_mirror, tabs[i], p_run);
        view := format('pg_temp.%I', 'owsync_as_of_' || i);
        k := CASE WHEN keys IS NULL THEN owsync._primary_key(format('%I.%I', p_mirror, rel)::regclass)
                  ELSE ARRAY(SELECT jsonb_array_elements_text(keys -> (i - 1))) END;
        EXECUTE format('DROP VIEW IF EXISTS %s', view);
        EXECUTE format('CREATE TEMP VIEW %s AS %s', view,
                       owsync._as_of_select(format('%I.%I', p_mirror, rel)::regclass,
                                            to_regclass(format('%I.%I', p_versions, rel)), k, p_run));
        rels := rels || view::regclass;
    END LOOP;
    RETURN rels;
END
$$;

-- What a restore as of a past run adds to its report: the moment asked,
-- the run whose state it wrote, when that run finished, the moment the state
-- is exact for, and versions_interval (see owsync._as_of_run()).
CREATE FUNCTION owsync._as_of_report(as_of timestamptz, run_id bigint, finished_at timestamptz,
                                     exact_at timestamptz, granularity interval) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object('as_of', as_of, 'state_after_run', run_id, 'run_finished_at', finished_at,
                              'exact_at', exact_at, 'versions_interval', granularity)
$$;

-- Drop the views owsync._as_of_views() made.
CREATE FUNCTION owsync._drop_as_of_views(rels regclass[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r regclass;
BEGIN
    FOREACH r IN ARRAY coalesce(rels, '{}') LOOP
        EXECUTE format('DROP VIEW %s', r);
    END LOOP;
END
$$;
-- Syncing one table of a client, within its run (48_run.sql).  Per table:
--
--   full         the mirror and the digests are made equal to the source,
--                every row compared, only what differs written;
--   incremental  1. the fast path: rows with updated_at >= watermark - overlap
--                   (the condition runs in SQLite);
--                2. the key diff: when the hash of the source's key set (computed
--                   by SQLite over the key's index) moved since the last sync,
--                   and rows the fast path fetched do not explain it, the
--                   source's keys (a keys-only scan) find rows the mirror
--                   lacks (inserted without a new updated_at) and rows the
--                   source lost (hard deletes); in a large table, only the keys
--                   of the buckets whose hash moved are compared (see
--                   owsync.key_buckets());
--                3. digests, for tables without updated_at and, when a
--                   reconcile is due (options->>'reconcile_interval', default
--                   1 hour), for all tables: the digest of every source row,
--                   computed by SQLite, against the digest stored at the last
--                   sync; only rows whose digest changed are fetched;
--                then MERGE, updating a row only when its digest changed;
--   reconcile    incremental with step 3 for every table;
--   set          a table without key is replaced as a whole, every run.
--
-- owsync._sync_table(), at the end of this file, plans the table's sync
-- (owsync._plan_table()) and runs these steps, each a function:
--
--   _full_reload        full and set
--   _unchanged          nothing moved since the last sync: done
--   _stage_window       1. the fast path, into the stage
--   _keys_explained     the key set moved only by rows the fast path staged
--   _key_diff           2. (narrowed to buckets by _diff_buckets, or whole
--                       by _diff_all) and 3. with digests
--   _list_quarantined,  rows to fetch by key: found by 2. or 3., or waiting
--   _fetch_by_key       in quarantine
--   _apply              MERGE, then the digests
--   _apply_deletes      the keys the source lost
--   _advance_watermark  the watermark and its window's signature
--
-- Work tables (temporary, dropped at commit): pg_temp.owsync_stage (rows
-- read, with their digests), owsync_fetch (keys to fetch), owsync_gone
-- (keys the source lost), owsync_diff (the whole key diff).

-- The signature of rows of a table: the count and the sum of their digests
-- (computed by SQLite for a source table; stored, for a digest table), of
-- the rows with updated_at >= since (the fast path's window), or of all rows
-- when wm_column is NULL.  Equal signatures: the rows are the same.
CREATE FUNCTION owsync._window_sig(src text, wm_column text, since bigint) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sig text;
BEGIN
    EXECUTE format('SELECT count(*) || %L || coalesce(sum(owsync_digest), 0) FROM %s%s', ':', src,
                   CASE WHEN wm_column IS NULL THEN '' ELSE format(' WHERE %I >= $1', wm_column) END)
      INTO sig USING since;
    RETURN sig;
END
$$;

-- A sum taken modulo 2^64, as a signed 64-bit integer: how the hashes of
-- keys add up in owsync.key_buckets().
CREATE FUNCTION owsync._wrap64(x numeric) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT
AS $$
    SELECT (CASE WHEN m >= 9223372036854775808 THEN m - 18446744073709551616 ELSE m END)::bigint
      FROM (SELECT ((x % 18446744073709551616) + 18446744073709551616) % 18446744073709551616 AS m) w
$$;

-- How many bits of a key's hash bucket a table's key set: about 8 keys a
-- bucket, none for small tables and for keys without owsync_key_hash in the
-- digest table (keys of types the hash does not cover).
CREATE FUNCTION owsync._key_bits(dig text, nrows bigint) RETURNS integer
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN CASE WHEN nrows < 16 OR NOT EXISTS (SELECT 1 FROM pg_attribute a
                                                WHERE a.attrelid = dig::regclass AND a.attname = 'owsync_key_hash')
                THEN 0
                ELSE least(16, floor(log(2, nrows / 8.0)))::integer END;
END
$$;

-- Store what a run learnt about a table in its catalog row: the number of
-- bits of its key buckets and their hashes (NULL keeps them), and, with
-- p_window, the watermark and the signature of the fast path's window (as
-- given: NULL is none).
CREATE FUNCTION owsync._store_state(t owsync.client_table, p_key_bits integer DEFAULT NULL,
                                    p_key_buckets bigint[] DEFAULT NULL, p_window boolean DEFAULT false,
                                    p_watermark bigint DEFAULT NULL, p_window_sig text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE owsync.client_table c
       SET key_bits = coalesce(p_key_bits, c.key_bits),
           key_buckets = coalesce(p_key_buckets, c.key_buckets),
           watermark = CASE WHEN p_window THEN p_watermark ELSE c.watermark END,
           window_sig = CASE WHEN p_window THEN p_window_sig ELSE c.window_sig END
     WHERE c.client = t.client AND c.table_name = t.table_name;
END
$$;

-- The fast path's overlap in a table's watermark unit (options->>'overlap_seconds',
-- default 60): it reads rows with updated_at >= watermark - overlap, so that
-- a row committed late with an updated_at a little below the watermark is
-- still read.
CREATE FUNCTION owsync._overlap(options jsonb, unit text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (options ->> 'overlap_seconds')::bigint * CASE unit WHEN 'ns' THEN 1000000000 ELSE 1 END;
END
$$;

-- A table compared in full (a reconcile, a table without updated_at) gets
-- the number of buckets its size calls for now.
CREATE FUNCTION owsync._resize_buckets(t owsync.client_table, server text, dig text, nrows bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bits integer := owsync._key_bits(dig, nrows);
BEGIN
    IF bits <> t.key_bits THEN
        PERFORM owsync._store_state(t, p_key_bits => bits,
                                    p_key_buckets => owsync.key_buckets(server, t.table_name, t.key_columns, bits));
    END IF;
END
$$;

-- Load an empty table by an INSERT of nrows rows: from 10,000 rows on, its
-- primary key and indexes are dropped first and built again after, about
-- twice as fast as maintaining them row by row (below, building them, new
-- files synced, costs more).  Returns the rows inserted.
CREATE FUNCTION owsync._bulk_insert(rel text, stmt text, nrows bigint) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    idx record;
    rebuild text[] := '{}';
    inserted bigint;
BEGIN
    FOR idx IN SELECT i.indexrelid::regclass AS name, c.conname, pg_get_constraintdef(c.oid) AS condef,
                      pg_get_indexdef(i.indexrelid) AS indexdef
                 FROM pg_index i
                 LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                WHERE i.indrelid = rel::regclass AND nrows >= 10000 LOOP
        IF idx.conname IS NOT NULL THEN
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', rel, idx.conname);
            rebuild := rebuild || format('ALTER TABLE %s ADD CONSTRAINT %I %s', rel, idx.conname, idx.condef);
        ELSE
            EXECUTE format('DROP INDEX %s', idx.name);
            rebuild := rebuild || idx.indexdef;
        END IF;
    END LOOP;
    EXECUTE stmt;
    GET DIAGNOSTICS inserted = ROW_COUNT;
    FOREACH stmt IN ARRAY rebuild LOOP
        EXECUTE stmt;
    END LOOP;
    RETURN inserted;
END
$$;

-- Make a digest table equal to the source's keys and digests in
-- pg_temp.owsync_reload (nrows rows).  An empty one (a registration, a new
-- table) is loaded in bulk and analyzed at once, so that the next run's key
-- diff is not planned blind (without statistics, a few moved buckets are
-- compared with every digest by a nested loop).  A loaded one gets only
-- what differs (pg_temp.owsync_moved): keys the source lost deleted,
-- digests that moved updated, new keys inserted.
CREATE FUNCTION owsync._load_digests(p owsync._sync_plan, nrows bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF owsync._loaded(p.dig) THEN
        EXECUTE format('DELETE FROM %1$s m USING pg_temp.owsync_moved s WHERE %2$s AND s.owsync_op = %3$L',
                       p.dig, p.on_key, 'd');
        EXECUTE format('UPDATE %1$s m SET owsync_digest = s.owsync_digest FROM pg_temp.owsync_moved s
                         WHERE %2$s AND s.owsync_op = %3$L', p.dig, p.on_key, 'u');
        EXECUTE format('INSERT INTO %1$s (%2$s, owsync_digest) SELECT %2$s, owsync_digest FROM pg_temp.owsync_moved
                         WHERE owsync_op = %3$L', p.dig, p.keylist, 'i');
        RETURN;
    END IF;
    PERFORM owsync._bulk_insert(p.dig, format('INSERT INTO %1$s (%2$s, owsync_digest)
                                                SELECT %2$s, owsync_digest FROM pg_temp.owsync_reload',
                                               p.dig, p.keylist), nrows);
    EXECUTE format('ANALYZE %s', p.dig);
END
$$;

-- Keep a row that cannot be read: its key, the reason, and every value as
-- storage class and bytes, read through a foreign table of raw columns.
CREATE FUNCTION owsync._quarantine(t owsync.client_table, k jsonb, p_sqlstate text, p_reason text,
                                   p_run bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n record := owsync.client_names(t.client);
    probe name := owsync._probe_schema(t.client);
    raw_table text := format('%I.%I', probe, t.table_name);
    raw jsonb;
BEGIN
    IF to_regclass(raw_table) IS NULL THEN
        IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = probe) THEN
            EXECUTE format('CREATE SCHEMA %I', probe);
        END IF;
        -- key columns typed (to find the row), every column raw
        EXECUTE format('CREATE FOREIGN TABLE %s (%s, %s) SERVER %I OPTIONS (table %L)', raw_table,
            (SELECT string_agg(format('%I %s OPTIONS (column_name %L, key %L)', 'owsync_key_' || a.attname,
                                      format_type(a.atttypid, a.atttypmod), a.attname, 'true'), ', ')
               FROM pg_attribute a
              WHERE a.attrelid = format('%I.%I', n.src_schema, t.table_name)::regclass
                AND a.attname = ANY (t.key_columns)),
            (SELECT string_agg(format('%I text OPTIONS (column_name %L, raw %L)', a.attname, a.attname, 'true'),
                               ', ' ORDER BY a.attnum)
               FROM pg_attribute a
              WHERE a.attrelid = format('%I.%I', n.src_schema, t.table_name)::regclass
                AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> 'owsync_digest'),
            n.server, t.table_name);
    END IF;
    EXECUTE format('SELECT to_jsonb(r) - %s FROM %s r WHERE %s',
                   (SELECT string_agg(quote_literal('owsync_key_' || kc), ' - ') FROM unnest(t.key_columns) kc),
                   raw_table,
                   (SELECT string_agg(format('%I = %L', 'owsync_key_' || e.key, e.value #>> '{}'), ' AND ')
                      FROM jsonb_each(k) e))
      INTO raw;
    INSERT INTO owsync.quarantine AS q (client, table_name, key, sqlstate, reason, raw, first_run, last_run)
    VALUES (t.client, t.table_name, k, p_sqlstate, p_reason, coalesce(raw, '{}'), p_run, p_run)
    ON CONFLICT (client, table_name, key) DO UPDATE
       SET sqlstate = EXCLUDED.sqlstate, reason = EXCLUDED.reason, raw = EXCLUDED.raw,
           last_run = EXCLUDED.last_run, last_seen = now();
    RAISE WARNING 'owsync %: row % of table % quarantined: %', t.client, k, t.table_name, p_reason;
END
$$;

-- Rows of one table whose keys are listed in pg_temp.owsync_fetch, fetched
-- into pg_temp.owsync_stage in batches: the first key column's IN list runs
-- in SQLite (using its index), the full key is matched here.  With
-- quarantine, a batch that cannot be read is retried key by key and a row
-- that cannot be read alone is quarantined.  Returns rows read, quarantined.
CREATE FUNCTION owsync._fetch_by_key(t owsync.client_table, p owsync._sync_plan,
                                     OUT fetched bigint, OUT quarantined bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    batch text[];
    got bigint;
    k jsonb;
    cond text;
    st text; msg text; det text;
BEGIN
    fetched := 0;
    quarantined := 0;
    FOR batch IN EXECUTE format(
        'SELECT array_agg(DISTINCT %1$I::text) FROM (SELECT %1$I, (row_number() OVER ()) / 500 AS b
           FROM pg_temp.owsync_fetch) f GROUP BY b', t.key_columns[1]) LOOP
        BEGIN
            EXECUTE format('INSERT INTO pg_temp.owsync_stage SELECT %s, owsync_digest FROM %s
                             WHERE %I IN (%s) AND (%s) IN (SELECT %s FROM pg_temp.owsync_fetch)',
                           p.cols, p.src, t.key_columns[1],
                           (SELECT string_agg(quote_literal(v), ', ') FROM unnest(batch) v),
                           p.keylist, p.keylist);
            GET DIAGNOSTICS got = ROW_COUNT;
            fetched := fetched + got;
        EXCEPTION WHEN data_exception THEN
            IF NOT p.quarantine THEN
                RAISE;
            END IF;
            -- one row at a time: the ones that read go to the stage
            FOR k IN EXECUTE format('SELECT to_jsonb(f) FROM (SELECT %s FROM pg_temp.owsync_fetch
                                      WHERE %I::text = ANY ($1)) f', p.keylist, t.key_columns[1])
                       USING batch LOOP
                cond := (SELECT string_agg(format('%I = %L', e.key, e.value #>> '{}'), ' AND ')
                           FROM jsonb_each(k) e);
                BEGIN
                    EXECUTE format('INSERT INTO pg_temp.owsync_stage SELECT %s, owsync_digest FROM %s WHERE %s',
                                   p.cols, p.src, cond);
                    GET DIAGNOSTICS got = ROW_COUNT;
                    fetched := fetched + got;
                EXCEPTION WHEN data_exception THEN
                    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
                    PERFORM owsync._quarantine(t, k, st, concat_ws(': ', msg, nullif(det, '')), p.run_id);
                    quarantined := quarantined + 1;
                END;
            END LOOP;
        END;
    END LOOP;
END
$$;

-- What one table's sync works with (owsync._sync_plan): the names of its
-- relations, the source's columns (a column removed at the source stays in
-- the mirror only), its key, and what this run does to it.
CREATE FUNCTION owsync._plan_table(t owsync.client_table, reconcile boolean, p_run bigint)
RETURNS owsync._sync_plan
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n record := owsync.client_names(t.client);
    p owsync._sync_plan;
BEGIN
    p.run_id := p_run;
    p.server := n.server;
    p.mirror := format('%I.%I', n.mirror_schema, t.table_name);
    p.src := format('%I.%I', n.src_schema, t.table_name);
    p.dig := format('%I.%I', n.digest_schema, t.table_name);
    p.opts := (SELECT owsync._options(options) FROM owsync.client WHERE client = t.client);
    p.keylist := (SELECT string_agg(format('%I', k), ', ') FROM unnest(t.key_columns) k);
    p.on_key := (SELECT string_agg(format('m.%1$I = s.%1$I', k), ' AND ') FROM unnest(t.key_columns) k);
    p.use_digests := reconcile OR t.watermark_column IS NULL;
    p.quarantine := p.opts ->> 'on_bad_row' = 'quarantine';
    p.pending := EXISTS (SELECT 1 FROM owsync.mirror_change mc
                          WHERE mc.client = t.client AND mc.table_name = t.table_name);
    -- versions are kept from the run after registration on
    p.keep_versions := (p.opts ->> 'versions_retention')::interval > interval '0'
                       AND (SELECT versions_from IS NOT NULL FROM owsync.client WHERE client = t.client);
    IF p.keep_versions AND (p.opts ->> 'versions_interval')::interval > interval '0' THEN
        p.interval_run := owsync._interval_run(t.client, p_run, p.opts);
    END IF;
    SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum),
           string_agg(format('s.%I', a.attname), ', ' ORDER BY a.attnum),
           string_agg(format('%1$I = s.%1$I', a.attname), ', ' ORDER BY a.attnum)
             FILTER (WHERE NOT (a.attname = ANY (t.key_columns))),
           -- (the source's values as the mirror's column types: a column
           -- retyped at the source keeps its type in the mirror)
           format('record_image_ne(ROW(%s), ROW(%s))',
                  string_agg(format('m.%I', a.attname), ', ' ORDER BY a.attnum)
                    FILTER (WHERE NOT (a.attname = ANY (t.key_columns))),
                  string_agg(format('s.%I::%s', a.attname, format_type(ma.atttypid, ma.atttypmod)), ', '
                             ORDER BY a.attnum)
                    FILTER (WHERE NOT (a.attname = ANY (t.key_columns))))
      INTO p.cols, p.s_cols, p.setlist, p.differ
      FROM pg_attribute a
      LEFT JOIN pg_attribute ma ON ma.attrelid = p.mirror::regclass AND ma.attname = a.attname
     WHERE a.attrelid = p.src::regclass AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname <> 'owsync_digest';
    RETURN p;
END
$$;

-- Does a table hold any row?
CREATE FUNCTION owsync._loaded(rel text) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    found boolean;
BEGIN
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', rel) INTO found;
    RETURN found;
END
$$;

-- The source's keys and digests, read into pg_temp.owsync_reload (one read
-- of the file; a full reload keeps versions and deletes by them, and the
-- digests are made equal to them), analyzed.
CREATE FUNCTION owsync._read_source_keys(p owsync._sync_plan) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    nrows bigint;
BEGIN
    IF to_regclass('pg_temp.owsync_reload') IS NOT NULL THEN
        DROP TABLE pg_temp.owsync_reload;
    END IF;
    EXECUTE format('CREATE TEMP TABLE owsync_reload ON COMMIT DROP AS SELECT %s, owsync_digest FROM %s',
                   p.keylist, p.src);
    GET DIAGNOSTICS nrows = ROW_COUNT;
    ANALYZE pg_temp.owsync_reload;
    RETURN nrows;
END
$$;

-- How the source's keys and digests in pg_temp.owsync_reload differ from
-- the digest table (the mirror as the last run left it), into
-- pg_temp.owsync_moved: each key the source lost (owsync_op 'd'), whose
-- digest moved ('u') or that is new ('i'), with its new digest; one hash
-- full join of two narrow tables, analyzed.
CREATE FUNCTION owsync._diff_reload(t owsync.client_table, p owsync._sync_plan) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF to_regclass('pg_temp.owsync_moved') IS NOT NULL THEN
        DROP TABLE pg_temp.owsync_moved;
    END IF;
    EXECUTE format('CREATE TEMP TABLE owsync_moved ON COMMIT DROP AS
                    SELECT %1$s, CASE WHEN s.%2$s IS NULL THEN %3$L WHEN m.%2$s IS NULL THEN %4$L ELSE %5$L END
                                 AS owsync_op, s.owsync_digest
                      FROM pg_temp.owsync_reload s FULL JOIN %6$s m ON %7$s
                     WHERE s.%2$s IS NULL OR m.%2$s IS NULL OR s.owsync_digest <> m.owsync_digest',
                   (SELECT string_agg(format('coalesce(s.%1$I, m.%1$I) AS %1$I', k), ', ')
                      FROM unnest(t.key_columns) k),
                   format('%I', t.key_columns[1]), 'd', 'i', 'u', p.dig, p.on_key);
    ANALYZE pg_temp.owsync_moved;
END
$$;

-- The source's rows merged into a loaded keyed mirror table: rows it lacks
-- inserted, rows that differ from the source's in any byte of any column (a
-- byte image compare, record_image_ne) updated.  Rows are matched by key
-- through the mirror's primary key, one lookup each, whatever the
-- statistics (a hash join would hash either side whole).  Returns the rows
-- written.
CREATE FUNCTION owsync._merge_source(p owsync._sync_plan) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET enable_hashjoin = off
AS $$
DECLARE
    written bigint;
BEGIN
    EXECUTE format('MERGE INTO %1$s m USING (SELECT %2$s FROM %3$s) s ON %4$s
                     %5$s
                     WHEN NOT MATCHED THEN INSERT (%2$s) VALUES (%6$s)',
                   p.mirror, p.cols, p.src, p.on_key,
                   -- a table of key columns only has nothing to update
                   CASE WHEN p.setlist IS NOT NULL
                        THEN format('WHEN MATCHED AND %s THEN UPDATE SET %s', p.differ, p.setlist)
                        ELSE '' END,
                   p.s_cols);
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;

-- Make a keyed mirror table equal to the source, with the source's keys in
-- pg_temp.owsync_reload, writing only what differs (so a full sync of an
-- unchanged table leaves no dead rows, and a published mirror ships only
-- its changes): rows whose key the source lost deleted, then the source
-- merged (_merge_source).  An empty mirror (the first load) is loaded in
-- bulk, nrows rows.  Returns the rows inserted, updated and deleted.
CREATE FUNCTION owsync._apply_source(p owsync._sync_plan, nrows bigint,
                                     OUT inserted bigint, OUT updated bigint, OUT deleted bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    before bigint;
    written bigint;
BEGIN
    updated := 0;
    deleted := 0;
    IF NOT owsync._loaded(p.mirror) THEN
        inserted := owsync._bulk_insert(p.mirror, format('INSERT INTO %s (%s) SELECT %s FROM %s',
                                                         p.mirror, p.cols, p.cols, p.src), nrows);
        RETURN;
    END IF;
    EXECUTE format('DELETE FROM %1$s m WHERE NOT EXISTS (SELECT 1 FROM pg_temp.owsync_reload s WHERE %2$s)',
                   p.mirror, p.on_key);
    GET DIAGNOSTICS deleted = ROW_COUNT;
    -- the MERGE's inserts, told from its updates by this transaction's count
    before := pg_stat_get_xact_tuples_inserted(p.mirror::regclass);
    written := owsync._merge_source(p);
    inserted := pg_stat_get_xact_tuples_inserted(p.mirror::regclass) - before;
    updated := written - inserted;
END
$$;

-- Full reload (mode full, or a table without key): the mirror made equal to
-- the source's rows and the digests reloaded, and the key buckets, the
-- watermark and its window's signature stored.  A keyed table is compared
-- and only what differs is written (_apply_source); a table without key is
-- replaced as a whole.  Rows changed in the mirror are decided as
-- conflicts, as an incremental run would.  The versions the reload
-- replaces are kept first (43_versions.sql).
CREATE FUNCTION owsync._full_reload(t owsync.client_table, p owsync._sync_plan,
    OUT path text, OUT rows_read bigint, OUT inserted bigint, OUT updated bigint, OUT deleted bigint,
    OUT conflicts bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bits integer;
    newwm bigint;
    before text;			-- a table without key: its set before the reload
BEGIN
    path := CASE WHEN cardinality(t.key_columns) = 0 THEN 'set' ELSE 'full' END;
    conflicts := 0;
    updated := 0;
    IF p.pending THEN
        PERFORM owsync._full_conflicts_before(t);
    END IF;
    IF cardinality(t.key_columns) > 0 THEN
        rows_read := owsync._read_source_keys(p);
        -- (a first load without versions needs no diff: all its keys are new)
        IF p.keep_versions OR owsync._loaded(p.dig) THEN
            PERFORM owsync._diff_reload(t, p);
        END IF;
        IF p.keep_versions THEN
            PERFORM owsync._keep_reloaded(t, p);
        END IF;
        SELECT * INTO inserted, updated, deleted FROM owsync._apply_source(p, rows_read);
        PERFORM owsync._load_digests(p, rows_read);
        bits := owsync._key_bits(p.dig, rows_read);
        PERFORM owsync._store_state(t, p_key_bits => bits,
                                    p_key_buckets => owsync.key_buckets(p.server, t.table_name, t.key_columns, bits));
    ELSE
        IF p.keep_versions THEN
            before := owsync._set_signature(p.mirror);
            PERFORM owsync._keep_set(t, p);
        END IF;
        IF owsync._is_edge() THEN
            -- published, a table without key has no replica identity: logical
            -- replication carries its TRUNCATE, not a DELETE (38_fleet.sql)
            EXECUTE format('SELECT count(*) FROM %s', p.mirror) INTO deleted;
            EXECUTE format('TRUNCATE %s', p.mirror);
        ELSE
            EXECUTE format('DELETE FROM %s', p.mirror);
            GET DIAGNOSTICS deleted = ROW_COUNT;
        END IF;
        EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM %s', p.mirror, p.cols, p.cols, p.src);
        GET DIAGNOSTICS inserted = ROW_COUNT;
        rows_read := inserted;
        IF p.keep_versions AND owsync._set_signature(p.mirror) = before THEN
            PERFORM owsync._drop_kept_set(t, p);
        END IF;
    END IF;
    IF t.watermark_column IS NOT NULL THEN
        EXECUTE format('SELECT max(%I) FROM %s', t.watermark_column, p.mirror) INTO newwm;
        PERFORM owsync._store_state(t, p_window => true, p_watermark => newwm,
            p_window_sig => owsync._window_sig(p.src, t.watermark_column,
                                               newwm - owsync._overlap(p.opts, t.watermark_unit)));
    END IF;
    -- after the watermark: the mirror's versions put back do not move it
    IF p.pending THEN
        conflicts := owsync._full_conflicts_after(t, p.run_id);
    END IF;
END
$$;

-- The unchanged check: a table the file's other changes did not touch is
-- settled without work tables.  Its key set did not move (the caller knows),
-- none of its rows waits in quarantine, and either the fast path's window
-- has the signature (count and digest sum) it had at the end of the last
-- sync, or, with digests due (a reconcile, a table without updated_at), the
-- whole table has the count and digest sum of the digests stored at the
-- last sync; then it gets the number of buckets its size calls for.
CREATE FUNCTION owsync._unchanged(t owsync.client_table, p owsync._sync_plan) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sig text;
    same boolean;
BEGIN
    IF EXISTS (SELECT 1 FROM owsync.quarantine q
                WHERE q.client = t.client AND q.table_name = t.table_name) THEN
        RETURN false;
    END IF;
    IF p.use_digests THEN
        sig := owsync._window_sig(p.src, NULL, NULL);
        same := sig = owsync._window_sig(p.dig, NULL, NULL);
        IF same THEN
            PERFORM owsync._resize_buckets(t, p.server, p.dig, split_part(sig, ':', 1)::bigint);
        END IF;
    ELSE
        same := t.watermark IS NOT NULL AND t.window_sig IS NOT NULL
                AND owsync._window_sig(p.src, t.watermark_column, t.watermark - p.overlap) = t.window_sig;
    END IF;
    RETURN same;
END
$$;

-- Fresh work tables for one table, shaped like its mirror (planning them
-- reads no SQLite): the stage (rows read, with their digests) and the keys
-- to fetch.  The previous table's are dropped (all go at commit).
CREATE FUNCTION owsync._new_work_tables(p owsync._sync_plan) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF to_regclass('pg_temp.owsync_stage') IS NOT NULL THEN
        DROP TABLE pg_temp.owsync_stage, pg_temp.owsync_fetch, pg_temp.owsync_gone;
    END IF;
    IF to_regclass('pg_temp.owsync_diff') IS NOT NULL THEN
        DROP TABLE pg_temp.owsync_diff;
    END IF;
    EXECUTE format('CREATE TEMP TABLE owsync_stage ON COMMIT DROP AS
                    SELECT %s, 0::bigint AS owsync_digest FROM %s WITH NO DATA', p.cols, p.mirror);
    EXECUTE format('CREATE TEMP TABLE owsync_fetch ON COMMIT DROP AS SELECT %s FROM %s WITH NO DATA',
                   p.keylist, p.mirror);
END
$$;

-- The fast path: the rows with updated_at >= watermark - overlap (the
-- condition runs in SQLite) into the stage.  With quarantine, a window that
-- cannot be read is listed for fetching by key instead.  Returns the rows
-- staged, and whether the window was staged whole.
CREATE FUNCTION owsync._stage_window(t owsync.client_table, p owsync._sync_plan,
                                     OUT staged bigint, OUT whole boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    staged := 0;
    whole := false;
    BEGIN
        EXECUTE format('INSERT INTO pg_temp.owsync_stage SELECT %s, owsync_digest FROM %s WHERE %I >= $1',
                       p.cols, p.src, t.watermark_column)
          USING t.watermark - p.overlap;
        GET DIAGNOSTICS staged = ROW_COUNT;
        whole := true;
    EXCEPTION WHEN data_exception THEN
        IF NOT p.quarantine THEN
            RAISE;
        END IF;
        -- a row in the range could not be read: fetch the range by key
        EXECUTE format('INSERT INTO pg_temp.owsync_fetch SELECT %s FROM %s WHERE %I >= $1',
                       p.keylist, p.src, t.watermark_column)
          USING t.watermark - p.overlap;
    END;
END
$$;

-- Did the key set move only by new rows the fast path staged?  Then its
-- hash is the last one plus theirs, no key needs comparing, and the new
-- buckets (kb) are stored.  Returns the hashes of the staged keys the
-- digests lack, and whether they explain the move.
CREATE FUNCTION owsync._keys_explained(t owsync.client_table, p owsync._sync_plan, kb bigint[],
                                       OUT added bigint[], OUT explained boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('SELECT array_agg(owsync.key_hash(%1$s)) FROM pg_temp.owsync_stage s
                     WHERE NOT EXISTS (SELECT 1 FROM %2$s m WHERE %3$s)',
                   (SELECT string_agg(format('s.%I', k), ', ') FROM unnest(t.key_columns) k), p.dig, p.on_key)
      INTO added;
    explained := false;
    IF added IS NOT NULL
       AND owsync._wrap64(t.key_buckets[0] + (SELECT sum(h) FROM unnest(added) h)) = kb[0] THEN
        explained := true;
        PERFORM owsync._store_state(t, p_key_buckets => kb);
    END IF;
END
$$;

-- The key diff narrowed to buckets: in a large table whose key set changed
-- by a few keys, only the buckets whose hash moved (beyond the keys the fast
-- path added) are compared: the stored keys of those buckets (by their
-- hash, through its index) against the hashes of the source's keys in
-- them.  A stored key the source lacks is gone.  A source key that neither
-- the mirror nor the fast path has (a row inserted with an old updated_at)
-- needs the whole diff: then it returns false.  (Keys are told apart by
-- their 64-bit hash here; a reconcile compares them in full.)
CREATE FUNCTION owsync._diff_buckets(t owsync.client_table, p owsync._sync_plan, kb bigint[], added bigint[])
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    bits integer := t.key_bits;
    moved integer[] := owsync.moved_buckets(kb, t.key_buckets, added);
    src_h bigint[];
    narrowed boolean := false;
BEGIN
    IF cardinality(moved) BETWEEN 1 AND (1 << bits) / 8 THEN
        src_h := ARRAY(SELECT owsync.key_hashes(p.server, t.table_name, t.key_columns, bits, moved));
        EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM unnest($1) h
                                            WHERE h <> ALL ($2)
                                              AND NOT EXISTS (SELECT 1 FROM %s d WHERE d.owsync_key_hash = h))',
                       p.dig)
          INTO narrowed USING src_h, coalesce(added, '{}');
        IF narrowed THEN
            -- bucket b holds the hashes [b << (64 - bits), (b + 1) << (64 - bits)),
            -- read as unsigned; signed, bucket b >= 2^(bits - 1) is below 0
            EXECUTE format('INSERT INTO pg_temp.owsync_gone
                            SELECT %1$s FROM unnest($1::bigint[]) r(lo)
                              JOIN %2$s d ON d.owsync_key_hash BETWEEN r.lo AND r.lo + $2
                             WHERE d.owsync_key_hash <> ALL ($3)',
                           (SELECT string_agg(format('d.%I', k), ', ') FROM unnest(t.key_columns) k), p.dig)
              USING (SELECT array_agg((CASE WHEN b >= 1 << (bits - 1) THEN b - (1 << bits) ELSE b END)::bigint
                                      << (64 - bits))
                       FROM unnest(moved) b),
                    ((1::bigint << (63 - bits)) - 1) * 2 + 1,
                    src_h;
        END IF;
    END IF;
    RETURN narrowed;
END
$$;

-- The whole key diff, and with digests the digest compare, in one pass: the
-- source's keys (and digests) streamed from SQLite against the digest table
-- (the mirror's key set, but narrow) as a hash full join.  Keys the source
-- lost are gone; keys the mirror lacks and (with digests) keys whose digest
-- changed are listed for fetching, unless the fast path staged them.
CREATE FUNCTION owsync._diff_all(t owsync.client_table, p owsync._sync_plan) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('CREATE TEMP TABLE owsync_diff ON COMMIT DROP AS
                    SELECT %1$s, s.owsync_digest IS NULL AS gone
                      FROM (SELECT %2$s%3$s FROM %4$s) s
                      FULL JOIN %5$s m ON %6$s
                     WHERE s.%7$I IS NULL OR m.%7$I IS NULL%8$s',
                   (SELECT string_agg(format('coalesce(s.%1$I, m.%1$I) AS %1$I', k), ', ')
                      FROM unnest(t.key_columns) k),
                   p.keylist,
                   CASE WHEN p.use_digests THEN ', owsync_digest' ELSE ', 0::bigint AS owsync_digest' END,
                   p.src, p.dig, p.on_key, t.key_columns[1],
                   CASE WHEN p.use_digests THEN ' OR s.owsync_digest <> m.owsync_digest' ELSE '' END);
    EXECUTE format('INSERT INTO pg_temp.owsync_gone SELECT %1$s FROM pg_temp.owsync_diff WHERE gone', p.keylist);
    EXECUTE format('INSERT INTO pg_temp.owsync_fetch
                      SELECT %1$s FROM pg_temp.owsync_diff WHERE NOT gone
                      EXCEPT SELECT %1$s FROM pg_temp.owsync_stage', p.keylist);
END
$$;

-- The key diff, when the key set moved or digests are due: keys the source
-- lost into pg_temp.owsync_gone, keys to fetch into pg_temp.owsync_fetch;
-- narrowed to the moved buckets when it can be.  Returns how far it
-- compared: none, buckets or all.
CREATE FUNCTION owsync._key_diff(t owsync.client_table, p owsync._sync_plan, kb bigint[], added bigint[],
                                 keys_moved boolean)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    diff_needed boolean := keys_moved OR p.use_digests;
    narrowed boolean := false;
BEGIN
    EXECUTE format('CREATE TEMP TABLE owsync_gone ON COMMIT DROP AS SELECT %s FROM %s WITH NO DATA',
                   p.keylist, p.mirror);
    IF diff_needed AND NOT p.use_digests AND t.key_bits > 0 THEN
        narrowed := owsync._diff_buckets(t, p, kb, added);
    END IF;
    IF diff_needed AND NOT narrowed THEN
        PERFORM owsync._diff_all(t, p);
    END IF;
    RETURN CASE WHEN narrowed THEN 'buckets' WHEN diff_needed THEN 'all' ELSE 'none' END;
END
$$;

-- Rows in quarantine are retried every run: their keys are listed for
-- fetching (one gone from the source reads as nothing, and leaves the
-- quarantine).
CREATE FUNCTION owsync._list_quarantined(t owsync.client_table, p owsync._sync_plan) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM owsync.quarantine q WHERE q.client = t.client AND q.table_name = t.table_name) THEN
        EXECUTE format('INSERT INTO pg_temp.owsync_fetch
                          SELECT %1$s FROM jsonb_populate_recordset(NULL::pg_temp.owsync_fetch,
                                  (SELECT jsonb_agg(q.key) FROM owsync.quarantine q
                                    WHERE q.client = $1 AND q.table_name = $2))
                          EXCEPT SELECT %1$s FROM pg_temp.owsync_stage
                          EXCEPT SELECT %1$s FROM pg_temp.owsync_fetch', p.keylist)
          USING t.client, t.table_name;
    END IF;
END
$$;

-- Apply the stage to the mirror: new rows inserted, rows whose digest
-- changed updated (MERGE), then the digests stored.  Rows held out for
-- conflicts (40_conflicts.sql) go back into the stage before the digests,
-- which follow the source.  The versions the MERGE replaces are kept first
-- (43_versions.sql).  Returns the rows inserted and updated.
CREATE FUNCTION owsync._apply(t owsync.client_table, p owsync._sync_plan, OUT inserted bigint, OUT updated bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM %1$s m WHERE %2$s)),
                           count(*) FILTER (WHERE EXISTS (SELECT 1 FROM %1$s m WHERE %2$s)
                                              AND NOT EXISTS (SELECT 1 FROM %3$s m WHERE %2$s
                                                                 AND m.owsync_digest = s.owsync_digest))
                      FROM pg_temp.owsync_stage s', p.mirror, p.on_key, p.dig)
      INTO inserted, updated;
    IF p.keep_versions AND inserted + updated > 0 THEN
        PERFORM owsync._keep_replaced(t, p);
    END IF;
    EXECUTE format('MERGE INTO %1$s m
                    USING (SELECT s.*, d.owsync_digest AS owsync_old_digest
                             FROM pg_temp.owsync_stage s LEFT JOIN %2$s d USING (%3$s)) s
                       ON %4$s
                     %5$s
                     WHEN NOT MATCHED THEN
                          INSERT (%6$s) VALUES (%7$s)',
                   p.mirror, p.dig, p.keylist, p.on_key,
                   -- a table of key columns only has nothing to update
                   CASE WHEN p.setlist IS NOT NULL
                        THEN 'WHEN MATCHED AND s.owsync_old_digest IS DISTINCT FROM s.owsync_digest THEN UPDATE SET '
                             || p.setlist
                        ELSE '' END,
                   p.cols, p.s_cols);
    IF p.pending THEN
        PERFORM owsync._release_held();
    END IF;
    EXECUTE format('INSERT INTO %1$s AS d (%2$s, owsync_digest) SELECT %2$s, owsync_digest FROM pg_temp.owsync_stage
                    ON CONFLICT (%2$s) DO UPDATE SET owsync_digest = EXCLUDED.owsync_digest
                    WHERE d.owsync_digest IS DISTINCT FROM EXCLUDED.owsync_digest', p.dig, p.keylist);
END
$$;

-- Hard deletes: the keys the source lost (pg_temp.owsync_gone) leave the
-- mirror (their versions kept) and the digests, by key, and the key set's new buckets (kb) are
-- stored; analyzed first, so that a few keys are deleted through the index
-- rather than by hashing the whole table.  Returns the rows deleted.
CREATE FUNCTION owsync._apply_deletes(t owsync.client_table, p owsync._sync_plan, kb bigint[]) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    deleted bigint;
BEGIN
    ANALYZE pg_temp.owsync_gone;
    deleted := owsync._delete_gone(t, p);
    EXECUTE format('DELETE FROM %1$s m USING pg_temp.owsync_gone s WHERE %2$s', p.dig, p.on_key);
    PERFORM owsync._store_state(t, p_key_buckets => kb);
    RETURN deleted;
END
$$;

-- Advance the watermark to the highest value of the snapshot (never now()),
-- with the signature of the next run's window.  That window lies inside
-- this run's (the watermark only grows), so when the fast path staged its
-- window whole (window_staged), the stage holds every row of the next
-- window and nothing else: the signature needs no second read of the file.
-- No signature while rows are quarantined.
CREATE FUNCTION owsync._advance_watermark(t owsync.client_table, p owsync._sync_plan, window_staged boolean,
                                          quarantined bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    newwm bigint;
BEGIN
    EXECUTE format('SELECT max(%I) FROM pg_temp.owsync_stage', t.watermark_column) INTO newwm;
    newwm := greatest(t.watermark, newwm);
    PERFORM owsync._store_state(t, p_window => true, p_watermark => newwm,
        p_window_sig => CASE WHEN newwm IS NULL OR quarantined > 0 THEN NULL
                             WHEN window_staged
                             THEN owsync._window_sig('pg_temp.owsync_stage', t.watermark_column, newwm - p.overlap)
                             ELSE owsync._window_sig(p.src, t.watermark_column, newwm - p.overlap) END);
END
$$;

-- Sync one table: the steps above, top to bottom.  Returns what it did.
CREATE FUNCTION owsync._sync_table(t owsync.client_table, mode text, reconcile boolean, p_run bigint,
    OUT path text, OUT rows_read bigint, OUT inserted bigint, OUT updated bigint, OUT deleted bigint,
    OUT quarantined bigint, OUT key_diff text, OUT conflicts bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p owsync._sync_plan := owsync._plan_table(t, reconcile, p_run);
    kb bigint[];				-- the source's key buckets now ([0]: the whole key set)
    keys_moved boolean;
    window_staged boolean := false;
    added bigint[];				-- hashes of the keys the fast path added
    explained boolean;
    fetched bigint;
    nrows bigint;
BEGIN
    rows_read := 0; inserted := 0; updated := 0; deleted := 0; quarantined := 0; key_diff := 'none';
    conflicts := 0;

    IF mode = 'full' OR cardinality(t.key_columns) = 0 THEN
        BEGIN
            SELECT * INTO path, rows_read, inserted, updated, deleted, conflicts FROM owsync._full_reload(t, p);
            RETURN;
        EXCEPTION WHEN data_exception THEN
            -- a row could not be read (the reload is undone): with quarantine,
            -- go row by row below, comparing every row; a table without key
            -- cannot name its bad row, so the error stands
            IF NOT p.quarantine OR cardinality(t.key_columns) = 0 THEN
                RAISE;
            END IF;
            EXECUTE format('DELETE FROM %s', p.dig);
            p.use_digests := true;
        END;
    END IF;

    path := CASE WHEN mode = 'full' THEN 'full' WHEN p.use_digests THEN 'digest' ELSE 'incremental' END;
    kb := owsync.key_buckets(p.server, t.table_name, t.key_columns, t.key_bits);
    keys_moved := t.key_buckets[0] IS DISTINCT FROM kb[0];
    p.overlap := owsync._overlap(p.opts, t.watermark_unit);
    IF mode <> 'full' AND NOT keys_moved THEN
        IF owsync._unchanged(t, p) THEN
            path := 'unchanged';
            RETURN;
        END IF;
    END IF;

    PERFORM owsync._new_work_tables(p);
    IF t.watermark_column IS NOT NULL AND t.watermark IS NOT NULL AND mode <> 'full' THEN
        SELECT * INTO rows_read, window_staged FROM owsync._stage_window(t, p);
    END IF;
    IF keys_moved AND NOT p.use_digests AND t.key_buckets IS NOT NULL THEN
        SELECT * INTO added, explained FROM owsync._keys_explained(t, p, kb);
        keys_moved := NOT explained;
    END IF;
    key_diff := owsync._key_diff(t, p, kb, added, keys_moved);
    PERFORM owsync._list_quarantined(t, p);
    SELECT * INTO fetched, quarantined FROM owsync._fetch_by_key(t, p);
    rows_read := rows_read + fetched;
    -- rows changed in the mirror: conflicts decided, the rows the mirror keeps held out of the apply
    IF p.pending THEN
        conflicts := owsync._hold_conflicts(t, p_run, keys_moved);
    END IF;

    SELECT * INTO inserted, updated FROM owsync._apply(t, p);
    IF keys_moved THEN
        deleted := owsync._apply_deletes(t, p, kb);
    END IF;
    -- compared in full, the table's buckets follow its size
    IF p.use_digests THEN
        EXECUTE format('SELECT count(*) FROM %s', p.dig) INTO nrows;
        PERFORM owsync._resize_buckets(t, p.server, p.dig, nrows);
    END IF;
    -- quarantined rows not quarantined again by this run read fine now, or are gone
    DELETE FROM owsync.quarantine q
     WHERE q.client = t.client AND q.table_name = t.table_name AND q.last_run <> p_run;
    IF t.watermark_column IS NOT NULL THEN
        PERFORM owsync._advance_watermark(t, p, window_staged, quarantined);
    END IF;
END
$$;
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
-- A client's run: CALL owsync.sync(client [, mode]).
--
-- One PostgreSQL transaction for the data, so one SQLite snapshot for all
-- tables (connection.c): the mirror, the digests and the watermarks move
-- together or not at all.  Each table is synced by owsync._sync_table()
-- (44_sync_table.sql).

-- Settings for a run's own statements, to the end of its transaction: hash
-- joins in memory, no JIT (plans are small and run once), staged values
-- compressed like the mirror's.
CREATE FUNCTION owsync._run_settings() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM set_config('work_mem', '32MB', true);
    PERFORM set_config('jit', 'off', true);
    -- key diffs join unsorted keys: hash joins, never sort 100k text keys
    PERFORM set_config('enable_mergejoin', 'off', true);
    IF owsync._has_lz4() THEN
        PERFORM set_config('default_toast_compression', 'lz4', true);
    END IF;
END
$$;

-- Sync every table of a client (but those removed at the source), each error
-- naming its table: tables new at the source are loaded in full, tables
-- with a new column compared in full.  Each table the run had to read gets
-- its row in owsync.run_table (one the unchanged check settled does not:
-- a fleet's history would hold a row per table per run), and each table a
-- progress NOTICE when interactive.
CREATE FUNCTION owsync._sync_tables(p_client text, p_mode text, reconcile boolean, p_run bigint,
                                    new_tables text[], widened text[], interactive boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t owsync.client_table;
    r record;
    started timestamptz;
    secs numeric;
    st text; msg text; det text; hnt text;
BEGIN
    FOR t IN SELECT * FROM owsync.client_table WHERE client = p_client AND removed_at IS NULL
              ORDER BY table_name LOOP
        started := clock_timestamp();
        PERFORM set_config('application_name', left(format('owsync %s: %s', p_client, t.table_name), 63), true);
        BEGIN
            r := owsync._sync_table(t,
                                    CASE WHEN t.table_name = ANY (new_tables) THEN 'full' ELSE p_mode END,
                                    reconcile OR t.table_name = ANY (widened), p_run);
        EXCEPTION WHEN OTHERS OR query_canceled THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                                    det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
            PERFORM owsync._reraise(st, msg, det, hnt, t.table_name);
        END;
        IF r.path <> 'unchanged' THEN
            INSERT INTO owsync.run_table (run_id, table_name, path, rows_read, inserted, updated, deleted,
                                          quarantined, conflicts, key_diff, seconds)
            VALUES (p_run, t.table_name, r.path, r.rows_read, r.inserted, r.updated, r.deleted, r.quarantined,
                    r.conflicts, r.key_diff, round(extract(epoch FROM clock_timestamp() - started)::numeric, 3));
        END IF;
        secs := extract(epoch FROM clock_timestamp() - started)::numeric;
        CONTINUE WHEN NOT interactive;
        RAISE NOTICE 'owsync %.%: % read, % inserted, % updated, % deleted% (%, % s, % rows/s)',
            p_client, t.table_name, r.rows_read, r.inserted, r.updated, r.deleted,
            CASE WHEN r.quarantined > 0 THEN format(', %s quarantined', r.quarantined) ELSE '' END
            || CASE WHEN r.conflicts > 0 THEN format(', %s conflicts', r.conflicts) ELSE '' END,
            r.path, round(secs, 3), round(r.rows_read / greatest(secs, 0.001));
    END LOOP;
END
$$;

-- One run's work, without transaction control: the source's schema
-- captured and its drift applied, then every table synced unless nothing
-- was committed to the file since the last run, then what the run found
-- recorded.  Returns the run id.
CREATE FUNCTION owsync._run(p_client text, p_mode text, p_run bigint DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c owsync.client;
    rid bigint := p_run;
    reconcile boolean;
    interactive boolean;		-- progress NOTICEs: not for pg_cron's runs (its log)
    drift record;
    cap record;
    n record := owsync.client_names(p_client);
    probe name := owsync._probe_schema(p_client);
    was_applying text := owsync._applying('on');	-- the run's writes are not mirror changes
BEGIN
    SELECT * INTO c FROM owsync.client WHERE client = p_client;
    IF rid IS NULL THEN
        INSERT INTO owsync.run (client, mode, status) VALUES (p_client, p_mode, 'running')
        RETURNING run_id INTO rid;
    END IF;
    interactive := NOT (SELECT x.scheduled FROM owsync.run x WHERE x.run_id = rid);
    reconcile := p_mode = 'reconcile'
                 OR (p_mode = 'incremental' AND
                     (c.last_reconcile_at IS NULL OR
                      c.last_reconcile_at < now() - (owsync._options(c.options) ->> 'reconcile_interval')::interval));

    -- nothing committed to the file since the last run (and no reconcile
    -- due): the mirror is current; no snapshot is taken, no table read, and
    -- the schema and journal mode are the last run's
    IF p_mode = 'incremental' AND NOT reconcile AND owsync.source_marker(n.server) = c.change_marker THEN
        UPDATE owsync.run
           SET source_unchanged = true,
               (source_schema_id, journal_mode) =
                   (SELECT r.source_schema_id, r.journal_mode FROM owsync.run r	-- index run_client_started
                     WHERE r.client = p_client AND r.run_id <> rid AND r.source_schema_id IS NOT NULL
                     ORDER BY r.started_at DESC LIMIT 1)
         WHERE run_id = rid;
        IF interactive THEN
            RAISE NOTICE 'owsync %: nothing committed to the source since the last run', p_client;
        END IF;
    ELSE
        PERFORM owsync._run_settings();
        SELECT '{}'::text[] AS new_tables, '{}'::text[] AS widened INTO drift;
        cap := owsync._capture_schema(p_client, rid);
        IF cap.drifted THEN
            SELECT * INTO drift FROM owsync._apply_drift(p_client, rid);
        END IF;
        PERFORM owsync._sync_tables(p_client, p_mode, reconcile, rid, drift.new_tables, drift.widened,
                                    interactive);
        UPDATE owsync.client SET change_marker = cap.change_marker WHERE client = p_client;
    END IF;

    IF reconcile OR p_mode = 'full' THEN
        UPDATE owsync.client SET last_reconcile_at = now() WHERE client = p_client;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = probe) THEN
        EXECUTE format('DROP SCHEMA %I CASCADE', probe);
    END IF;
    IF EXISTS (SELECT 1 FROM owsync.client_table WHERE client = p_client AND table_name = 'alembic_version') THEN
        EXECUTE format('UPDATE owsync.run SET alembic_revision = (SELECT string_agg(version_num, %L) FROM %I.alembic_version)
                         WHERE run_id = $1', ',', n.mirror_schema)
          USING rid;
    END IF;
    IF p_run IS NULL THEN
        UPDATE owsync.run SET status = 'succeeded', finished_at = clock_timestamp() WHERE run_id = rid;
    END IF;
    PERFORM owsync._applying(was_applying);
    RETURN rid;
END
$$;

-- After a run: count consecutive failures and back off, alert after
-- options->>'alert_after_failures' (default 3) failures in a row and on the
-- recovery that follows, and purge the client's history older than
-- owsync.history_retention (runs, and, for a client on a pg_cron job of its
-- own, that job's run details: the dispatcher pool's are purged once an
-- hour, not per run, see _dispatch_begin) and, after a success, its row
-- versions older than their retention.
--
-- Backoff: after k failures in a row, no scheduled run starts before
-- min(backoff_max, backoff_base * 2^(k-1)) has passed since the failed run
-- started (options, default 1 minute and 1 hour; 5 seconds early counts as on
-- time, for the minute ticks): the dispatcher pool passes the client over,
-- and a run started by pg_cron itself is skipped.  A run called by hand is
-- never skipped; a success resets the count.
CREATE FUNCTION owsync._account_run(p_client text, p_run bigint) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c owsync.client;
    opts jsonb;
    r owsync.run;
    n integer;
    event text;
    payload jsonb;
    keep interval := coalesce(nullif(current_setting('owsync.history_retention', true), ''), '30d')::interval;
BEGIN
    SELECT * INTO c FROM owsync.client WHERE client = p_client;
    opts := owsync._options(c.options);
    SELECT * INTO r FROM owsync.run WHERE run_id = p_run;
    IF r.status = 'succeeded' THEN
        event := CASE WHEN c.alerting THEN 'recovered' END;
        UPDATE owsync.client SET consecutive_failures = 0, next_attempt_at = NULL, alerting = false
         WHERE client = p_client AND (consecutive_failures <> 0 OR alerting);
    ELSIF r.status = 'failed' THEN
        n := c.consecutive_failures + 1;
        event := CASE WHEN NOT c.alerting AND n >= (opts ->> 'alert_after_failures')::integer
                      THEN 'failing' END;
        UPDATE owsync.client
           SET consecutive_failures = n,
               next_attempt_at = r.started_at
                   + least((opts ->> 'backoff_max')::interval,
                           (opts ->> 'backoff_base')::interval * power(2, least(n - 1, 20))),
               alerting = alerting OR event IS NOT NULL
         WHERE client = p_client;
    END IF;
    IF event IS NOT NULL THEN
        payload := jsonb_build_object('client', p_client, 'event', event, 'run_id', p_run,
                                      'consecutive_failures', coalesce(n, c.consecutive_failures),
                                      'sqlstate', r.sqlstate, 'error', left(r.error, 1000),
                                      'error_table', r.error_table, 'at', r.finished_at);
        INSERT INTO owsync.alert (client, event, run_id, payload) VALUES (p_client, event, p_run, payload);
        PERFORM pg_notify('owsync_alert', payload::text);
    END IF;

    IF r.status = 'succeeded' THEN
        PERFORM owsync._purge_versions(p_client, p_run);
    END IF;
    IF keep > interval '0' THEN
        -- (the successful runs whose state its versions can give back stay:
        -- an as-of restore reads their times and schemas; but a run that
        -- found nothing committed to the file goes after a day, as a
        -- realtime client makes 1,440 a day: the state it confirmed is the
        -- one of the run before it, which stays)
        DELETE FROM owsync.run
         WHERE client = p_client AND run_id <> p_run
           AND (started_at < now() - keep
                AND NOT (status = 'succeeded' AND run_id >= coalesce(c.versions_from, p_run))
                OR started_at < now() - least(keep, interval '1 day')
                AND source_unchanged AND status = 'succeeded' AND run_id IS DISTINCT FROM c.versions_from);
        DELETE FROM owsync.conflict WHERE client = p_client AND decided_at < now() - keep;
        IF c.cron_schedule LIKE '% seconds' AND to_regclass('cron.job_run_details') IS NOT NULL THEN
            BEGIN
                EXECUTE 'DELETE FROM cron.job_run_details d USING cron.job j
                          WHERE d.jobid = j.jobid AND j.jobname = $1 AND d.end_time < now() - $2'
                  USING 'owsync:' || p_client, keep;
            EXCEPTION WHEN insufficient_privilege THEN
                RAISE WARNING 'owsync %: cannot purge the pg_cron run details of job owsync:%: %',
                    p_client, p_client, SQLERRM;
            END;
        END IF;
    END IF;
END
$$;

-- Record a run as skipped, and why.
CREATE FUNCTION owsync._skip_run(p_run bigint, p_why text) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE owsync.run SET status = 'skipped', finished_at = clock_timestamp(), error = p_why
     WHERE run_id = p_run
$$;

-- CALL owsync.sync(client, mode): the run row is committed before and after
-- the work, which runs in a subtransaction, so a failed run leaves the mirror
-- as it was and still leaves its history row.  A second concurrent run of
-- the same client returns at once as 'skipped'.
--
-- A procedure that commits can have neither SET search_path nor SECURITY
-- DEFINER, so sync() is a shell that only calls three functions that have
-- both (for owsync_admin, see 90_security.sql), between its commits; it uses
-- no operator, so nothing on the caller's search_path can stand in.
--
--   _start_run   checks the call, records the run, or records it skipped
--                (a scheduled run of a disabled or backing-off client; the
--                dispatcher pool passes those over: p_dispatched, a run it
--                claimed, holding the client's run lock)
--   _work_run    takes the client's lock (or records the run skipped), does
--                the work in a subtransaction, records the outcome, counts
--                failures and alerts (_account_run)
--   _finish_run  lets the lock go; reports a skipped or failed run
CREATE FUNCTION owsync._start_run(p_client text, p_mode text, p_dispatched boolean DEFAULT false) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c owsync.client;
    rid bigint;
    scheduled boolean;
BEGIN
    PERFORM owsync._require_admin();
    SELECT * INTO c FROM owsync.client x WHERE x.client = p_client;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('client %L is not registered', p_client),
            HINT = 'Register it with owsync.register_client().';
    END IF;
    IF p_mode IS NULL OR p_mode NOT IN ('incremental', 'full', 'reconcile') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid sync mode %L', p_mode),
            HINT = 'Use incremental, full or reconcile.';
    END IF;
    -- A lock this session still holds comes from a run of its own that was
    -- interrupted between its commit and its unlock (it cannot be running
    -- now): let it go.  (But the one a dispatcher took for this run.)
    WHILE NOT p_dispatched AND owsync._holds_lock(c.client_id) LOOP
        PERFORM pg_advisory_unlock(owsync._run_lock_class(), c.client_id);
    END LOOP;
    -- scheduled: started by the dispatcher pool (50_schedule.sql), or by
    -- pg_cron (its background workers, or its connections, named pg_cron)
    SELECT p_dispatched OR a.backend_type = 'pg_cron' OR a.application_name = 'pg_cron' INTO scheduled
      FROM pg_stat_get_activity(pg_backend_pid()) a;
    INSERT INTO owsync.run (client, mode, status, scheduled)
    VALUES (c.client, p_mode, 'running', coalesce(scheduled, false))
    RETURNING run_id INTO rid;
    -- this commit holds only the run's row: lost in a crash, so is the run
    -- (nothing to flush for)
    PERFORM set_config('synchronous_commit', 'off', true);
    IF scheduled AND NOT c.enabled THEN
        PERFORM owsync._skip_run(rid, 'the client''s sync is disabled');
    ELSIF scheduled AND c.next_attempt_at > now() + interval '5 seconds' THEN
        PERFORM owsync._skip_run(rid, format('backing off after %s failed run(s) in a row (see owsync.status)',
                                             c.consecutive_failures));
    END IF;
    RETURN rid;
END
$$;

-- sync()'s work between its commits: the run lock, the run in a
-- subtransaction, its outcome recorded and accounted for.
CREATE FUNCTION owsync._work_run(p_run bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r owsync.run;
    c owsync.client;
    unchanged boolean;
    st text; msg text; det text; hnt text; tbl text;
BEGIN
    PERFORM owsync._require_admin();
    SELECT * INTO r FROM owsync.run WHERE run_id = p_run;
    IF r.status <> 'running' THEN
        RETURN;					-- skipped by _start_run
    END IF;
    SELECT * INTO c FROM owsync.client WHERE client = r.client;
    IF NOT pg_try_advisory_lock(owsync._run_lock_class(), c.client_id) THEN
        PERFORM owsync._skip_run(p_run, 'another sync or a restore of this client was running');
        RETURN;
    END IF;
    BEGIN
        -- holding the lock, any other run of this client still marked
        -- running was abandoned (its session ended before it finished)
        UPDATE owsync.run x SET status = 'failed', finished_at = clock_timestamp(),
               error = 'abandoned: the session running it ended before it finished'
         WHERE x.client = c.client AND x.status = 'running' AND x.run_id <> p_run;
        PERFORM owsync._run(c.client, r.mode, p_run);
        UPDATE owsync.run SET status = 'succeeded', finished_at = clock_timestamp() WHERE run_id = p_run
        RETURNING source_unchanged INTO unchanged;
        -- a run that found nothing committed to the file wrote only history:
        -- its commit does not wait for the disk (a crash may lose its row,
        -- never data); a run that wrote the mirror commits durably
        IF unchanged THEN
            PERFORM set_config('synchronous_commit', 'off', true);
        END IF;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        -- a cancel (statement_timeout, pg_cancel_backend) is recorded like any
        -- failure, and raised again by _finish_run once the lock is released
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                                hnt = PG_EXCEPTION_HINT, tbl = TABLE_NAME;
        UPDATE owsync.run SET status = 'failed', finished_at = clock_timestamp(),
               sqlstate = st, error = msg, error_detail = nullif(det, ''), error_hint = nullif(hnt, ''),
               error_table = nullif(tbl, '')
         WHERE run_id = p_run;
    END;
    -- the run's outcome is recorded whatever happens here
    BEGIN
        PERFORM owsync._account_run(c.client, p_run);
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'owsync %: could not account for run %: %', c.client, p_run, SQLERRM;
    END;
END
$$;

-- sync()'s last step: the run lock let go; a skipped run reported, a failed
-- one raised again with its SQLSTATE.
CREATE FUNCTION owsync._finish_run(p_run bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r owsync.run;
    c owsync.client;
    msg text;
    det text;
BEGIN
    PERFORM owsync._require_admin();
    SELECT * INTO r FROM owsync.run WHERE run_id = p_run;
    SELECT * INTO c FROM owsync.client WHERE client = r.client;
    IF owsync._holds_lock(c.client_id) THEN
        PERFORM pg_advisory_unlock(owsync._run_lock_class(), c.client_id);
    END IF;
    IF r.status = 'skipped' THEN
        RAISE NOTICE 'owsync: this run of client % is skipped: %', r.client, r.error;
    ELSIF r.status = 'failed' THEN
        msg := format('sync of client %s failed%s: %s', r.client,
                      CASE WHEN r.error_table IS NOT NULL THEN format(' in table %s', r.error_table) ELSE '' END,
                      r.error);
        det := concat_ws(E'\n', r.error_detail,
                         format('Run %s is recorded as failed; the mirror is unchanged.', p_run));
        IF r.error_hint IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = r.sqlstate, MESSAGE = msg, DETAIL = det,
                TABLE = coalesce(r.error_table, '');
        END IF;
        RAISE EXCEPTION USING ERRCODE = r.sqlstate, MESSAGE = msg, DETAIL = det, HINT = r.error_hint,
            TABLE = coalesce(r.error_table, '');
    END IF;
END
$$;

-- CALL owsync.sync(client, mode): the three steps above, with a commit
-- between each.
CREATE PROCEDURE owsync.sync(client text, mode text DEFAULT 'incremental')
LANGUAGE plpgsql
AS $$
DECLARE
    rid bigint;
BEGIN
    rid := owsync._start_run(client, mode);
    COMMIT;
    PERFORM owsync._work_run(rid);
    COMMIT;
    PERFORM owsync._finish_run(rid);
END
$$;
-- Scheduling.  A client's schedule is one of
--
--   manual     no scheduled runs: syncs run when called
--   realtime   every minute
--   5min       every 5 minutes, at a minute offset derived from the name
--   hourly     every hour, at a minute derived from the name
--   daily      every day between 01:00 and 04:59 (UTC), at a time derived
--              from the name, so that a fleet is spread out rather than all
--              at :00
--   a 5-field cron expression ('*/2 * * * *': minute, hour, day of month,
--              month, day of week; numbers, ranges, steps and lists), read
--              in UTC as pg_cron 1.4 reads its own
--   'N seconds' (1-59), where pg_cron supports it (1.5 and later)
--
-- Every schedule in minutes is served by the dispatcher pool: the pg_cron
-- jobs owsync:dispatch:1 .. owsync:dispatch:N (N from set_sync_workers(),
-- default 2), each running CALL owsync.dispatch() every minute.  A
-- dispatcher runs, in its own backend, the clients that are due, most
-- overdue first, each exactly as CALL owsync.sync(client) does, until none
-- is due.  A client is due when its schedule has fired since its last
-- scheduled start, or since it was scheduled (owsync.sync_due.due_at), it
-- is enabled, and it is not backing off (owsync.client.next_attempt_at,
-- 5 seconds early counting as on time, for the minute ticks).  Two
-- dispatchers never run one client at once (each claims a client's row
-- with a row lock and moves its due time on before it commits, and holds
-- the client's run lock while it runs it); a client synced by hand or
-- restored at that moment is passed over until the next tick, not recorded
-- as a skipped run.
--
-- Why a pool: pg_cron starts a backend for every run of a job, so a job per
-- client costs a backend start, a catalog load and the compilation of the
-- sync's functions per run; with hundreds of realtime clients on a small
-- server that is most of the work, and more than pg_cron starts in a
-- minute.  A dispatcher pays that once per tick for all the clients it
-- runs.  The pool's jobs exist while at least one enabled client is on a
-- schedule in minutes (none on a server of manual clients).
--
-- A schedule in seconds keeps a job of its own, owsync:<client>, running
-- CALL owsync.sync('<client>') (the pool ticks by the minute).
--
-- pg_cron runs in one database (cron.database_name).  When that is this
-- database, owsync calls it directly; when it is another one, owsync reaches
-- it through dblink (CREATE EXTENSION dblink here) and creates its jobs with
-- cron.schedule_in_database, their names ending in @<this database>
-- (owsync:dispatch:1@<database>) so that two databases' jobs do not mix.
-- The connection is owsync.cron_connection, by default the server's own
-- socket, port and the cron database, as the extension's owner.
--
-- Without pg_cron everything else works; setting a schedule other than
-- manual fails and says how to get pg_cron.

-- A value for a libpq connection string, quoted.
CREATE FUNCTION owsync._conninfo_quote(v text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT '''' || replace(replace(v, '\', '\\'), '''', '\''') || ''''
$$;

-- pg_cron as seen from this database.  mode: 'local' (its extension is
-- here), 'remote' (it runs in another database, and dblink is here), or
-- NULL; version (for remote, read through dblink); database: the one its
-- launcher serves; conn and dblink: how to reach it when remote.
CREATE FUNCTION owsync._cron(OUT mode text, OUT version text, OUT database text, OUT conn text,
                             OUT dblink text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    socket text := btrim(split_part(current_setting('unix_socket_directories'), ',', 1));
BEGIN
    version := (SELECT extversion FROM pg_extension WHERE extname = 'pg_cron');
    database := current_setting('cron.database_name', true);
    IF version IS NOT NULL THEN
        mode := 'local';
        RETURN;
    END IF;
    dblink := (SELECT quote_ident(n.nspname) || '.dblink' FROM pg_extension e
                 JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'dblink');
    IF database IS NULL OR database = current_database() OR dblink IS NULL THEN
        RETURN;
    END IF;
    mode := 'remote';
    conn := coalesce(nullif(current_setting('owsync.cron_connection', true), ''),
                     format('dbname=%s host=%s port=%s user=%s', owsync._conninfo_quote(database),
                            owsync._conninfo_quote(coalesce(nullif(socket, ''), 'localhost')),
                            current_setting('port'), owsync._conninfo_quote(current_user)));
    EXECUTE format('SELECT v FROM %s($1, $2) AS t(v text)', dblink)
      INTO version USING conn, 'SELECT extversion FROM pg_extension WHERE extname = ''pg_cron''';
    IF version IS NULL THEN
        mode := NULL;		-- no pg_cron extension over there either
    END IF;
END
$$;

-- Run a query that returns one text value in pg_cron's database.
-- (mode, conn, dblink: from owsync._cron())
CREATE FUNCTION owsync._cron_query(mode text, conn text, dblink text, sql text) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v text;
BEGIN
    IF mode = 'local' THEN
        EXECUTE sql INTO v;
    ELSE
        EXECUTE format('SELECT v FROM %s($1, $2) AS t(v text)', dblink) INTO v USING conn, sql;
    END IF;
    RETURN v;
END
$$;

-- The name of a client's pg_cron job.
CREATE FUNCTION owsync._job_name(mode text, p_client text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'owsync:' || p_client || CASE WHEN mode = 'remote' THEN '@' || current_database() ELSE '' END
$$;

-- A number from 0 to n - 1 derived from the client's name (and a salt), the
-- same on every server: md5 of the name, not hashtext.
CREATE FUNCTION owsync._spread(client text, salt text, n integer) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (('x' || substr(md5(salt || ':' || client), 1, 8))::bit(32)::bigint % n)::integer
$$;

-- The values one field of a cron expression names, in order: '*', a
-- number, a range a-b, a step */n or a-b/n, or a list of these, every value
-- from lo to hi (a field as pg_cron reads it, without names of months and
-- days); NULL when the field is not one.
CREATE FUNCTION owsync._cron_field(field text, lo integer, hi integer) RETURNS integer[]
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part text;
    m text[];
    a integer;
    b integer;
    vals integer[] := '{}';
BEGIN
    FOREACH part IN ARRAY string_to_array(field, ',') LOOP
        -- m[2] the first value, m[4] the last, m[6] the step
        m := regexp_match(part, '^(\*|(\d{1,4})(-(\d{1,4}))?)(/(\d{1,4}))?$');
        IF m IS NULL OR (m[2] IS NOT NULL AND m[3] IS NULL AND m[5] IS NOT NULL) THEN
            RETURN NULL;			-- (a step needs a range: 5/10 is refused, as by pg_cron)
        END IF;
        a := coalesce(m[2]::integer, lo);
        b := coalesce(m[4]::integer, CASE WHEN m[1] = '*' THEN hi ELSE a END);
        IF a < lo OR b > hi OR a > b OR coalesce(m[6]::integer, 1) < 1 THEN
            RETURN NULL;
        END IF;
        vals := vals || ARRAY(SELECT generate_series(a, b, coalesce(m[6]::integer, 1)));
    END LOOP;
    RETURN ARRAY(SELECT DISTINCT v FROM unnest(vals) v ORDER BY v);
END
$$;

-- When a cron expression next fires after a time (NULL: never, or not an
-- expression of 5 fields): the first minute after it whose minute, hour and
-- month the expression names, on a day it names.  As in cron, a day is
-- named by its day of month and its day of week when either field starts
-- with '*', and by either of them when both are restricted; Sunday is 0 or
-- 7.  Read in UTC, as pg_cron 1.4 reads its own jobs.
CREATE FUNCTION owsync._next_run(expr text, after timestamptz) RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f text[] := regexp_split_to_array(btrim(expr), ' +');
    mins integer[];
    hours integer[];
    doms integer[];
    months integer[];
    dows integer[];
    t timestamp := date_trunc('minute', after AT TIME ZONE 'UTC') + interval '1 minute';
    day date := t::date;
    by_dom boolean;
    by_dow boolean;
    h integer;
    m integer;
BEGIN
    IF cardinality(f) <> 5 THEN
        RETURN NULL;
    END IF;
    mins := owsync._cron_field(f[1], 0, 59);
    hours := owsync._cron_field(f[2], 0, 23);
    doms := owsync._cron_field(f[3], 1, 31);
    months := owsync._cron_field(f[4], 1, 12);
    dows := ARRAY(SELECT DISTINCT d % 7 FROM unnest(owsync._cron_field(f[5], 0, 7)) d ORDER BY 1);
    IF mins IS NULL OR hours IS NULL OR doms IS NULL OR months IS NULL OR cardinality(dows) = 0 THEN
        RETURN NULL;
    END IF;
    -- day by day (month by month while the month is not named), for eight
    -- years: a day that comes at all comes in them (February 29th does)
    FOR i IN 1 .. 8 * 366 LOOP
        IF NOT extract(month FROM day)::integer = ANY (months) THEN
            day := ((day - extract(day FROM day)::integer + 1) + interval '1 month')::date;
            CONTINUE;
        END IF;
        by_dom := extract(day FROM day)::integer = ANY (doms);
        by_dow := extract(dow FROM day)::integer = ANY (dows);
        IF (by_dom AND by_dow) OR ((by_dom OR by_dow) AND f[3] NOT LIKE '*%' AND f[5] NOT LIKE '*%') THEN
            h := (SELECT min(x) FROM unnest(hours) x WHERE day > t::date OR x >= extract(hour FROM t));
            WHILE h IS NOT NULL LOOP
                m := (SELECT min(x) FROM unnest(mins) x WHERE day + make_interval(hours => h, mins => x) >= t);
                IF m IS NOT NULL THEN
                    RETURN (day + make_interval(hours => h, mins => m)) AT TIME ZONE 'UTC';
                END IF;
                h := (SELECT min(x) FROM unnest(hours) x WHERE x > h);
            END LOOP;
        END IF;
        day := day + 1;
    END LOOP;
    RETURN NULL;
END
$$;

-- The cron expression of a schedule (NULL for manual), or an error saying
-- what a schedule may be.
CREATE FUNCTION owsync._cron_expr(client text, schedule text) RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s text := lower(btrim(schedule));
    secs integer;
    pgcron record;
    f text[];
    field constant text[] := '{minute, hour, "day of month", month, "day of week"}';
    lo constant integer[] := '{0, 0, 1, 1, 0}';
    hi constant integer[] := '{59, 23, 31, 12, 7}';
BEGIN
    CASE s
        WHEN 'manual' THEN RETURN NULL;
        WHEN 'realtime' THEN RETURN '* * * * *';
        WHEN '5min' THEN RETURN format('%s-59/5 * * * *', owsync._spread(client, 'minute', 5));
        WHEN 'hourly' THEN RETURN format('%s * * * *', owsync._spread(client, 'minute', 60));
        WHEN 'daily' THEN RETURN format('%s %s * * *', owsync._spread(client, 'minute', 60),
                                        1 + owsync._spread(client, 'hour', 4));
        ELSE NULL;
    END CASE;
    IF s ~ '^[0-9]+ ?(s|sec|secs|second|seconds)$' THEN
        secs := substring(s FROM '^[0-9]+')::integer;
        IF secs < 1 OR secs > 59 THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('invalid schedule %L for client %L', schedule, client),
                DETAIL = 'A schedule in seconds runs every 1 to 59 seconds.',
                HINT = 'For a minute or more, use realtime, 5min, hourly, daily or a cron expression.';
        END IF;
        pgcron := owsync._cron();		-- (once: reaching a remote pg_cron connects)
        IF coalesce((regexp_match(pgcron.version, '^(\d+)\.(\d+)'))::integer[] < '{1,5}', true) THEN
            RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
                MESSAGE = format('schedule %L needs pg_cron 1.5 or later', schedule),
                DETAIL = format('The pg_cron here is %s; it schedules by the minute only.',
                                coalesce(pgcron.version, 'not installed')),
                HINT = 'Use realtime (every minute), or upgrade pg_cron.';
        END IF;
        RETURN format('%s seconds', secs);
    END IF;
    -- five fields of digits, *, ranges, lists and steps, each value in its
    -- field's range, and a day that comes
    IF s ~ '^[0-9*,/-]+( +[0-9*,/-]+){4}$' THEN
        s := regexp_replace(s, ' +', ' ', 'g');
        f := string_to_array(s, ' ');
        FOR i IN 1 .. 5 LOOP
            IF owsync._cron_field(f[i], lo[i], hi[i]) IS NULL THEN
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = format('invalid schedule %L for client %L', schedule, client),
                    DETAIL = format('Its %s field, %s, is not a list of values from %s to %s, ranges (a-b) and steps (*/n, a-b/n).',
                                    field[i], f[i], lo[i], hi[i]),
                    HINT = 'A cron expression has five fields: minute, hour, day of month, month, day of week (Sunday is 0 or 7).';
            END IF;
        END LOOP;
        IF owsync._next_run(s, now()) IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('invalid schedule %L for client %L', schedule, client),
                DETAIL = 'It names no day that comes (such as February 30th).';
        END IF;
        RETURN s;
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
        MESSAGE = format('invalid schedule %L for client %L', schedule, client),
        HINT = 'Use manual, realtime, 5min, hourly, daily, a 5-field cron expression such as ''*/2 * * * *'', or ''N seconds''.';
END
$$;

-- The size of the dispatcher pool: owsync.sync_pool, 2 when not set.
CREATE FUNCTION owsync._sync_workers() RETURNS integer
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce((SELECT p.workers FROM owsync.sync_pool p), 2)
$$;

-- pg_cron's jobs of this database made to match the catalog: the pool's,
-- owsync:dispatch:1 .. N (every minute, CALL owsync.dispatch()), while a
-- client is in owsync.sync_due, none otherwise; and of the clients named,
-- a job of its own (owsync:<client>, CALL owsync.sync('<client>')) for each
-- one enabled on a schedule in seconds, none for the others.  A job already
-- as wanted is left alone (pg_cron ends the running worker of a job that
-- changes or goes).  Without pg_cron nothing changes; with p_scheduling (a
-- client being given a schedule) that is an error saying how to get it.
-- Returns the number of the pool's jobs.
CREATE FUNCTION owsync._cron_match(p_clients text[], p_scheduling text DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pgcron record := owsync._cron();
    suffix text := CASE WHEN pgcron.mode = 'remote' THEN '@' || current_database() ELSE '' END;
    pool integer := CASE WHEN EXISTS (SELECT 1 FROM owsync.sync_due) THEN owsync._sync_workers() ELSE 0 END;
    own text[] := ARRAY(SELECT owsync._job_name(pgcron.mode, x) FROM unnest(p_clients) x);
    wanted jsonb;
    have jsonb;
    stale text[];
    missing jsonb;
BEGIN
    SELECT coalesce(jsonb_object_agg(w.name, jsonb_build_object('schedule', w.schedule, 'command', w.command,
                                                                'database', current_database(), 'active', true)), '{}')
      INTO wanted
      FROM (SELECT format('owsync:dispatch:%s%s', k, suffix) AS name, '* * * * *' AS schedule,
                   'CALL owsync.dispatch()' AS command
              FROM generate_series(1, pool) k
            UNION ALL
            SELECT owsync._job_name(pgcron.mode, c.client), c.cron_schedule, format('CALL owsync.sync(%L)', c.client)
              FROM owsync.client c
             WHERE c.client = ANY (p_clients) AND c.enabled AND c.cron_schedule LIKE '% seconds') w;
    IF pgcron.mode IS NULL THEN
        IF p_scheduling IS NOT NULL THEN
            PERFORM owsync._require_cron(p_scheduling);
        ELSIF wanted <> '{}' THEN
            RAISE WARNING 'owsync: pg_cron is not installed here: scheduled clients are not run'
                USING HINT = 'Install pg_cron, or call CALL owsync.dispatch() every minute yourself.';
        END IF;
        RETURN 0;
    END IF;
    have := owsync._cron_query(pgcron.mode, pgcron.conn, pgcron.dblink, format(
        'SELECT coalesce(jsonb_object_agg(jobname, jsonb_build_object(''schedule'', schedule, ''command'', command,
                                                                      ''database'', database, ''active'', active)), ''{}'')::text
           FROM cron.job WHERE jobname LIKE ''owsync:dispatch:%%'' OR jobname = ANY (%L::text[])', own))::jsonb;
    -- ours: the pool's jobs of this database, and the named clients' jobs
    stale := ARRAY(SELECT h.key FROM jsonb_each(have) h
                    WHERE (h.key LIKE 'owsync:dispatch:%' AND regexp_replace(h.key, '^owsync:dispatch:[0-9]+', '') = suffix
                           OR h.key = ANY (own))
                      AND h.value IS DISTINCT FROM wanted -> h.key);
    missing := (SELECT coalesce(jsonb_agg(w.value || jsonb_build_object('name', w.key)), '[]') FROM jsonb_each(wanted) w
                 WHERE w.value IS DISTINCT FROM have -> w.key);
    IF cardinality(stale) > 0 THEN
        PERFORM owsync._cron_query(pgcron.mode, pgcron.conn, pgcron.dblink, format(
            'SELECT count(cron.unschedule(jobid))::text FROM cron.job WHERE jobname = ANY (%L::text[])', stale));
    END IF;
    IF jsonb_array_length(missing) > 0 THEN
        PERFORM owsync._cron_query(pgcron.mode, pgcron.conn, pgcron.dblink, format(
            'SELECT count(%s)::text FROM jsonb_to_recordset(%L::jsonb) AS j(name text, schedule text, command text)',
            CASE WHEN pgcron.mode = 'local' THEN 'cron.schedule(j.name, j.schedule, j.command)'
                 ELSE format('cron.schedule_in_database(j.name, j.schedule, j.command, %L, %L, true)',
                             current_database(), current_user) END,
            missing));
    END IF;
    IF cardinality(stale) > 0 OR jsonb_array_length(missing) > 0 THEN
        -- pg_cron's scheduler may miss the change: it reloads its jobs on the
        -- SIGHUP this transaction sends it once committed (src/owsync_fdw.c)
        PERFORM owsync._reload_cron_at_commit();
    END IF;
    RETURN pool;
END
$$;

-- A client's place in the dispatcher pool made to match its row: a row in
-- owsync.sync_due while it is enabled on a schedule in minutes, due when
-- its schedule next fires (kept while its cron expression stays), none
-- otherwise; the expression noted in owsync.client.cron_schedule (only when
-- it changes: an edge publishes the row).  Returns the expression (NULL:
-- not scheduled).
CREATE FUNCTION owsync._sync_due_row(p_client text) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c owsync.client;
    expr text;
BEGIN
    SELECT * INTO c FROM owsync.client WHERE client = p_client;
    expr := CASE WHEN c.enabled THEN owsync._cron_expr(p_client, c.schedule) END;
    IF expr IS NULL OR expr LIKE '% seconds' THEN
        DELETE FROM owsync.sync_due WHERE client = p_client;
    ELSIF c.cron_schedule IS DISTINCT FROM expr
          OR NOT EXISTS (SELECT 1 FROM owsync.sync_due WHERE client = p_client) THEN
        INSERT INTO owsync.sync_due AS d (client, due_at) VALUES (p_client, owsync._next_run(expr, now()))
        ON CONFLICT (client) DO UPDATE SET due_at = excluded.due_at;
    END IF;
    IF c.cron_schedule IS DISTINCT FROM expr THEN
        UPDATE owsync.client SET cron_schedule = expr WHERE client = p_client;
    END IF;
    RETURN expr;
END
$$;

-- A client's scheduling made to match its row (_sync_due_row), and pg_cron's
-- jobs with it (_cron_match): for set_schedule, enable_sync, disable_sync,
-- register_client and unregister_client.
CREATE FUNCTION owsync._sync_job(p_client text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    expr text := owsync._sync_due_row(p_client);
BEGIN
    PERFORM owsync._cron_match(ARRAY[p_client], CASE WHEN expr IS NOT NULL THEN p_client END);
END
$$;

-- Every client's scheduling made to match its row, and pg_cron's jobs with
-- them: the last step of an upgrade (src/upgrade/epilogue.sql), and of
-- set_sync_workers.  A client whose stored schedule this version refuses
-- is left unscheduled, with a warning.  Returns the number of the pool's
-- jobs.
CREATE FUNCTION owsync._schedule_all() RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c owsync.client;
BEGIN
    FOR c IN SELECT * FROM owsync.client x ORDER BY x.client LOOP
        BEGIN
            PERFORM owsync._sync_due_row(c.client);
        EXCEPTION WHEN invalid_parameter_value OR feature_not_supported THEN
            RAISE WARNING 'owsync %: schedule % is not run: %', c.client, c.schedule, SQLERRM
                USING HINT = 'Set another with owsync.set_schedule().';
            DELETE FROM owsync.sync_due WHERE client = c.client;
            UPDATE owsync.client SET cron_schedule = NULL WHERE client = c.client AND cron_schedule IS NOT NULL;
        END;
    END LOOP;
    RETURN owsync._cron_match(ARRAY(SELECT x.client FROM owsync.client x));
END
$$;

-- An error saying how to get pg_cron, unless its extension is in this database.
CREATE FUNCTION owsync._require_cron(p_client text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pgcron record := owsync._cron();
BEGIN
    IF pgcron.mode IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('cannot schedule client %L: pg_cron is not installed in database %s',
                             p_client, current_database()),
            DETAIL = CASE WHEN pgcron.database IS NULL
                          THEN 'pg_cron is not loaded by this server.'
                          ELSE format('pg_cron''s launcher serves database %s.', pgcron.database) END,
            HINT = CASE WHEN pgcron.database IS NULL
                        THEN 'Add pg_cron to shared_preload_libraries, restart, and CREATE EXTENSION pg_cron; or use the manual schedule and call owsync.sync() yourself.'
                        WHEN pgcron.database <> current_database() AND pgcron.dblink IS NULL
                        THEN format('CREATE EXTENSION dblink here, and owsync schedules its jobs in database %s; or install owsync_fdw there.',
                                    pgcron.database)
                        WHEN pgcron.database <> current_database()
                        THEN format('CREATE EXTENSION pg_cron in database %s.', pgcron.database)
                        ELSE 'CREATE EXTENSION pg_cron;' END;
    END IF;
END
$$;

-- Set a client's schedule and make its scheduling match; returns the cron
-- expression ('manual' when not scheduled).
CREATE FUNCTION owsync.set_schedule(client text, schedule text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    expr text;
BEGIN
    PERFORM owsync._require_admin();
    PERFORM owsync._registered(client);
    expr := owsync._cron_expr(client, schedule);
    UPDATE owsync.client c SET schedule = lower(btrim(set_schedule.schedule))
     WHERE c.client = set_schedule.client;
    PERFORM owsync._sync_job(client);
    RETURN coalesce(expr, 'manual');
END
$$;

COMMENT ON FUNCTION owsync.set_schedule(text, text) IS
    'schedule a client''s syncs: manual, realtime, 5min, hourly, daily, a cron expression (run by the dispatcher pool) or ''N seconds'' (a pg_cron job of its own); returns the cron expression';

-- enable_sync / disable_sync: the client's scheduling follows its enabled flag.
CREATE FUNCTION owsync._set_enabled(p_client text, p_enabled boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM owsync._require_admin();
    PERFORM owsync._registered(p_client);
    UPDATE owsync.client c SET enabled = p_enabled WHERE c.client = p_client;
    PERFORM owsync._sync_job(p_client);
END
$$;

-- Schedule a client's syncs again, on its kept schedule (due when it next
-- fires).
CREATE FUNCTION owsync.enable_sync(client text) RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT owsync._set_enabled(client, true);
END;

-- Stop a client's scheduled syncs; its schedule is kept.
CREATE FUNCTION owsync.disable_sync(client text) RETURNS void
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT owsync._set_enabled(client, false);
END;

COMMENT ON FUNCTION owsync.disable_sync(text) IS
    'stop a client''s scheduled syncs (its schedule is kept for enable_sync); CALL owsync.sync() still works by hand';

-- Set the number of dispatchers (0 to 32; 0 stops the pool: the scheduled
-- clients then wait for a CALL owsync.dispatch() from elsewhere) and make
-- every client's scheduling and pg_cron's jobs match.  Returns the number
-- of the pool's jobs pg_cron has now (none while no enabled client is on a
-- schedule in minutes).
CREATE FUNCTION owsync.set_sync_workers(workers integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    slots integer := nullif(current_setting('cron.max_running_jobs', true), '')::integer;
BEGIN
    PERFORM owsync._require_admin();
    IF workers IS NULL OR workers < 0 OR workers > 32 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('invalid number of sync workers: %s', coalesce(workers::text, 'NULL')),
            DETAIL = 'The dispatcher pool has 0 to 32 workers (0: none, the scheduled clients wait).',
            HINT = 'A worker runs one client at a time: enough of them to run every due client within its minute (docs/OPERATIONS.md).';
    END IF;
    IF workers > slots THEN
        RAISE WARNING 'owsync: % sync workers are more than pg_cron runs at once (cron.max_running_jobs = %)',
            workers, slots
            USING HINT = 'Raise cron.max_running_jobs (and max_worker_processes) and restart the server.';
    END IF;
    INSERT INTO owsync.sync_pool AS p (workers) VALUES (set_sync_workers.workers)
    ON CONFLICT (one_row) DO UPDATE SET workers = excluded.workers;
    RETURN owsync._schedule_all();
END
$$;

COMMENT ON FUNCTION owsync.set_sync_workers(integer) IS
    'set the number of dispatchers (pg_cron jobs owsync:dispatch:N, default 2) that run the scheduled clients; 0 stops them; returns the number of dispatcher jobs now';

-- A dispatcher's next client: the most overdue due one (see the top of this
-- file) that no other dispatcher holds, claimed by taking its run lock (kept
-- until _dispatch_release) and moving its due time on to when its schedule
-- next fires, and its run recorded as scheduled (_start_run).  A due client
-- whose run lock is taken (synced by hand, or restored) is added to busy and
-- passed over in this pass.  run_id NULL: no client is due.
CREATE FUNCTION owsync._dispatch_claim(INOUT busy text[], OUT run_id bigint, OUT client_id integer)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d record;
BEGIN
    PERFORM owsync._require_admin();
    LOOP
        SELECT x.client, c.client_id AS id, c.cron_schedule INTO d
          FROM owsync.sync_due x JOIN owsync.client c ON c.client = x.client
         WHERE x.due_at <= now() AND c.enabled
           AND (c.next_attempt_at IS NULL OR c.next_attempt_at <= now() + interval '5 seconds')
           AND x.client <> ALL (busy)
         ORDER BY x.due_at, x.client
         LIMIT 1
           FOR UPDATE OF x SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        EXIT WHEN pg_try_advisory_lock(owsync._run_lock_class(), d.id);
        busy := busy || d.client;
    END LOOP;
    UPDATE owsync.sync_due SET due_at = owsync._next_run(d.cron_schedule, now()) WHERE client = d.client;
    run_id := owsync._start_run(d.client, 'incremental', true);
    client_id := d.id;
END
$$;

-- After a dispatched run: the client's SQLite file closed (the dispatcher
-- goes on in the same backend: it would otherwise keep every client's file
-- open, see _close_sources), and the dispatcher's hold on the client's run
-- lock let go.
CREATE FUNCTION owsync._dispatch_release(p_client_id integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM owsync._close_sources();
    WHILE owsync._holds_lock(p_client_id) AND pg_advisory_unlock(owsync._run_lock_class(), p_client_id) LOOP
    END LOOP;
END
$$;

-- pg_cron's run details of owsync's jobs in this database (their commands
-- call owsync) older than owsync.history_retention, deleted; returns how
-- many.  Only where pg_cron's tables are in this database.
CREATE FUNCTION owsync._purge_cron_details() RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    keep interval := coalesce(nullif(current_setting('owsync.history_retention', true), ''), '30d')::interval;
    n bigint := 0;
BEGIN
    PERFORM owsync._require_admin();
    IF keep > interval '0' AND to_regclass('cron.job_run_details') IS NOT NULL THEN
        BEGIN
            EXECUTE 'DELETE FROM cron.job_run_details
                      WHERE database = current_database() AND command LIKE ''CALL owsync.%'' AND end_time < now() - $1'
              USING keep;
            GET DIAGNOSTICS n = ROW_COUNT;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'owsync: cannot purge the pg_cron run details of owsync''s jobs: %', SQLERRM;
        END;
    END IF;
    RETURN n;
END
$$;

-- The start of a dispatcher's pass: in the first minute of each hour,
-- pg_cron's run details of owsync's jobs past the retention go
-- (_purge_cron_details), so that the pool's runs, two or more a minute, do
-- not pile up there; not per run: the table has no index to find them.
CREATE FUNCTION owsync._dispatch_begin() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM owsync._require_admin();
    IF date_trunc('hour', now()) = date_trunc('minute', now()) THEN
        PERFORM owsync._purge_cron_details();
    END IF;
END
$$;

-- CALL owsync.dispatch(): run the clients that are due, one after another,
-- each as CALL owsync.sync(client) runs it (its three steps with a commit
-- between each, the run recorded as scheduled), until none is due; what the
-- pool's pg_cron jobs run every minute.  A failed run is recorded (and
-- backed off) as any scheduled run, and the dispatcher goes on with the
-- next client; a cancel stops it.
--
-- Like sync(), a procedure that commits: a shell over SECURITY DEFINER
-- functions, using no operator.
CREATE PROCEDURE owsync.dispatch()
LANGUAGE plpgsql
AS $$
DECLARE
    claim record;
    busy text[] := ARRAY[]::text[];
BEGIN
    PERFORM owsync._dispatch_begin();
    LOOP
        claim := owsync._dispatch_claim(busy);
        EXIT WHEN claim.run_id IS NULL;
        busy := claim.busy;
        COMMIT;
        PERFORM owsync._work_run(claim.run_id);
        COMMIT;
        BEGIN
            PERFORM owsync._finish_run(claim.run_id);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING '%', SQLERRM;
        END;
        PERFORM owsync._dispatch_release(claim.client_id);
    END LOOP;
END
$$;

COMMENT ON PROCEDURE owsync.dispatch() IS
    'run the scheduled clients that are due, most overdue first, until none is; what the dispatcher pool''s pg_cron jobs call every minute';
-- Looking at a client without syncing it.

-- What the next sync would bring, per table, read live from SQLite in one
-- snapshot: rows whose updated_at passed the watermark, and (from the digest
-- of every source row against the digests stored at the last sync) new,
-- changed and deleted rows.  Costs a read of the whole file.
CREATE FUNCTION owsync.pending(client text)
RETURNS TABLE (table_name text, updated_since_sync bigint, new_rows bigint,
               changed_rows bigint, deleted_rows bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t owsync.client_table;
    n record;
    on_key text;
BEGIN
    PERFORM owsync._require_admin();
    n := owsync._registered(client);
    FOR t IN SELECT * FROM owsync.client_table ct
              WHERE ct.client = pending.client AND ct.removed_at IS NULL ORDER BY ct.table_name LOOP
        table_name := t.table_name;
        updated_since_sync := NULL;
        IF t.watermark_column IS NOT NULL AND t.watermark IS NOT NULL THEN
            EXECUTE format('SELECT count(*) FROM %I.%I WHERE %I > $1', n.src_schema, t.table_name,
                           t.watermark_column)
              INTO updated_since_sync USING t.watermark;
        END IF;
        IF cardinality(t.key_columns) = 0 THEN
            new_rows := NULL; changed_rows := NULL; deleted_rows := NULL;	-- synced as a set
        ELSE
            on_key := (SELECT string_agg(format('s.%1$I = d.%1$I', k), ' AND ') FROM unnest(t.key_columns) k);
            EXECUTE format('SELECT count(*) FILTER (WHERE d.owsync_digest IS NULL),
                                   count(*) FILTER (WHERE s.%3$I IS NOT NULL AND d.owsync_digest IS NOT NULL
                                                      AND s.owsync_digest <> d.owsync_digest),
                                   count(*) FILTER (WHERE s.%3$I IS NULL)
                              FROM %1$I.%2$I s FULL JOIN %4$I.%2$I d ON %5$s',
                           n.src_schema, t.table_name, t.key_columns[1], n.digest_schema, on_key)
              INTO new_rows, changed_rows, deleted_rows;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Is the mirror equal to the source?  Per table, every column of every row
-- compared as text (independent of digests and watermarks): rows in each,
-- rows missing from the mirror, extra rows, rows whose content differs.
-- Tables removed at the source are left out.  Costs a read of the whole
-- file and of the whole mirror.
CREATE FUNCTION owsync.verify(client text)
RETURNS TABLE (table_name text, source_rows bigint, mirror_rows bigint,
               missing bigint, extra bigint, differing bigint)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t owsync.client_table;
    n record;
    cols text;
    src_row text;
    mir_row text;
    on_key text;
BEGIN
    PERFORM owsync._require_admin();
    n := owsync._registered(client);
    FOR t IN SELECT * FROM owsync.client_table ct
              WHERE ct.client = verify.client AND ct.removed_at IS NULL ORDER BY ct.table_name LOOP
        -- the columns the source has (a column dropped at the source stays in the mirror)
        SELECT string_agg(format('%I::text', a.attname), ', ' ORDER BY a.attnum),
               string_agg(format('s.%I::text', a.attname), ', ' ORDER BY a.attnum),
               string_agg(format('m.%I::text', a.attname), ', ' ORDER BY a.attnum)
          INTO cols, src_row, mir_row
          FROM pg_attribute a
         WHERE a.attrelid = format('%I.%I', n.src_schema, t.table_name)::regclass
           AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> 'owsync_digest';
        table_name := t.table_name;
        IF cardinality(t.key_columns) > 0 THEN
            on_key := (SELECT string_agg(format('s.%1$I = m.%1$I', k), ' AND ') FROM unnest(t.key_columns) k);
            EXECUTE format('SELECT count(s.%5$I), count(m.%5$I),
                                   count(*) FILTER (WHERE m.%5$I IS NULL),
                                   count(*) FILTER (WHERE s.%5$I IS NULL),
                                   count(*) FILTER (WHERE s.%5$I IS NOT NULL AND m.%5$I IS NOT NULL
                                                      AND ROW(%6$s) IS DISTINCT FROM ROW(%7$s))
                              FROM %1$I.%2$I s FULL JOIN %3$I.%2$I m ON %4$s',
                           n.src_schema, t.table_name, n.mirror_schema, on_key, t.key_columns[1],
                           src_row, mir_row)
              INTO source_rows, mirror_rows, missing, extra, differing;
        ELSE
            EXECUTE format('SELECT (SELECT count(*) FROM %1$I.%2$I), (SELECT count(*) FROM %3$I.%2$I),
                                   (SELECT count(*) FROM (SELECT %4$s FROM %1$I.%2$I EXCEPT ALL
                                                          SELECT %4$s FROM %3$I.%2$I) x),
                                   (SELECT count(*) FROM (SELECT %4$s FROM %3$I.%2$I EXCEPT ALL
                                                          SELECT %4$s FROM %1$I.%2$I) x)',
                           n.src_schema, t.table_name, n.mirror_schema, cols)
              INTO source_rows, mirror_rows, missing, extra;
            differing := NULL;		-- no key: a changed row counts as missing + extra
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;
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
-- A row's past, from the versions its client's runs kept (43_versions.sql):
-- what an operator looks at to choose the moment to restore to.

-- The key columns of a client's table as a condition on alias a, from a
-- key given as JSON ({"id": "..."}); an error naming client, table and key
-- unless it names exactly the table's key columns.
CREATE FUNCTION owsync._key_condition(p_client text, p_table text, keys text[], key jsonb, a text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF cardinality(keys) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
            MESSAGE = format('table %s of client %L has no key: its rows have no identity to follow', p_table, p_client),
            HINT = 'Restore the client as of a moment to see the table then.';
    END IF;
    IF jsonb_typeof(key) IS DISTINCT FROM 'object'
       OR (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(key) k) IS DISTINCT FROM
          (SELECT array_agg(k ORDER BY k) FROM unnest(keys) k)
       OR EXISTS (SELECT 1 FROM jsonb_each(key) e WHERE jsonb_typeof(e.value) IN ('null', 'object', 'array')) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('key %s does not name a row of table %s of client %L', key, p_table, p_client),
            DETAIL = format('The table''s key is (%s).', array_to_string(keys, ', ')),
            HINT = format('Give it as a JSON object, e.g. {"%s": ...}.', keys[1]);
    END IF;
    RETURN (SELECT string_agg(format('%s.%I = %L', a, k, key ->> k), ' AND ') FROM unnest(keys) k);
END
$$;

-- The versions of one row of a client's table, oldest first: the row as
-- the client's oldest restorable state has it ('oldest', at the end of run
-- versions_from), then each run that changed it: 'insert', 'update' (the
-- row as that run left it) or 'delete' (row NULL).  The last row is the
-- mirror's now.  With versions_interval, updates within one interval show
-- as one, with the row the interval ended with.  key: {"id": "..."}.
CREATE FUNCTION owsync.row_versions(client text, table_name text, key jsonb)
RETURNS TABLE (run_id bigint, at timestamptz, operation text, "row" jsonb)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c owsync.client;
    mirror regclass;
    versions regclass;
    keys text[];
    current jsonb;
    e record;
    pending record;		-- the change waiting for the row it left
    drop_cols text[] := ARRAY['owsync_run', 'owsync_op'];
BEGIN
    PERFORM owsync._require_admin();
    PERFORM owsync._registered(client);
    SELECT * INTO c FROM owsync.client x WHERE x.client = row_versions.client;
    mirror := to_regclass(format('%I.%I', client, table_name));
    IF mirror IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_table',
            MESSAGE = format('client %L has no table %s', client, table_name);
    END IF;
    keys := owsync._primary_key(mirror);
    versions := to_regclass(format('%I.%I', owsync._versions_schema(client), table_name));
    EXECUTE format('SELECT to_jsonb(m) FROM %s m WHERE %s', mirror,
                   owsync._key_condition(client, table_name, keys, key, 'm'))
      INTO current;

    SELECT NULL::bigint AS run, NULL::text AS op INTO pending;
    IF versions IS NOT NULL THEN
        FOR e IN EXECUTE format('SELECT v.owsync_run AS run, v.owsync_op::text AS op, to_jsonb(v) - $1 AS payload
                                   FROM %s v WHERE %s ORDER BY v.owsync_run',
                                versions, owsync._key_condition(client, table_name, keys, key, 'v'))
                   USING drop_cols LOOP
            IF pending.run IS NULL THEN
                IF e.op <> 'i' THEN
                    RETURN QUERY SELECT c.versions_from, r.finished_at, 'oldest'::text, e.payload
                                   FROM owsync.run r WHERE r.run_id = c.versions_from;
                END IF;
            ELSE
                RETURN QUERY SELECT pending.run, r.finished_at,
                                    CASE pending.op WHEN 'i' THEN 'insert' WHEN 'u' THEN 'update' ELSE 'delete' END,
                                    CASE WHEN pending.op = 'd' OR e.op = 'i' THEN NULL ELSE e.payload END
                               FROM owsync.run r WHERE r.run_id = pending.run;
            END IF;
            pending := e;
        END LOOP;
    END IF;
    IF pending.run IS NULL THEN
        IF current IS NOT NULL THEN
            RETURN QUERY SELECT c.versions_from, r.finished_at, 'oldest'::text, current
                           FROM owsync.run r WHERE r.run_id = c.versions_from;
        END IF;
    ELSE
        RETURN QUERY SELECT pending.run, r.finished_at,
                            CASE pending.op WHEN 'i' THEN 'insert' WHEN 'u' THEN 'update' ELSE 'delete' END,
                            CASE WHEN pending.op = 'd' THEN NULL ELSE current END
                       FROM owsync.run r WHERE r.run_id = pending.run;
    END IF;
END
$$;

COMMENT ON FUNCTION owsync.row_versions IS 'the versions of one row of a client''s table, oldest first, from the versions its runs kept: run, when it finished, insert/update/delete, and the row as that run left it';
-- One chat as it was: a chat and its messages as a client's mirror held them
-- after a run of its window (43_versions.sql), in the JSON that Open WebUI's
-- own "Export chat (.json)" downloads and its chat import accepts, so that a
-- user's one lost or mangled chat comes back without rolling the whole
-- client back.
--
-- The format, from Open WebUI 0.12.4's source: the chat menu's export
-- (front end, downloadJSONExport) saves JSON.stringify([chat]), where chat is
-- what GET /api/v1/chats/{id} answers its owner (routers/chats.py
-- get_chat_by_id): a ChatResponse (models/chats.py) of the chat row, namely
-- id, user_id, title, chat, updated_at, created_at (epoch seconds), share_id,
-- archived, pinned, meta, variables, folder_id, tasks, summary,
-- current_message_id and context_usage, whose chat JSON (the message tree in
-- history.messages and history.currentId, and the older flat messages list)
-- is the stored one with shared_chat_response's touches: each user message
-- names its author (user_id, and user {id, name}, the name from the message
-- or else from table user), a message of another author loses its meta, and
-- share_mode is "continue" (the owner may write).  The import (Settings >
-- Chats > Import, POST /api/v1/chats/import) takes the same list: per item
-- chat, meta, variables, pinned, archived, folder_id, created_at, updated_at
-- (ChatImportForm); it gives the chat a new id, makes the importing user its
-- owner and the author of its messages, and takes the title from chat.title.
--
-- The export reads table chat (and table user for authors' names) as of the
-- moment.  Table chat_message holds a copy of each message that Open WebUI
-- writes beside history.messages; it is not a part of the export: GET and the
-- export read history.messages, and the import writes a chat_message row for
-- each message of history.messages (ChatTable.import_chats), so they are made
-- anew.  What the export leaves as stored: context_usage is null (an estimate
-- Open WebUI computes when asked and the import ignores), and
-- history.currentId is not repaired as Open WebUI repairs it when it reads
-- the chat (it does so again after the import).  A JSON value goes through
-- jsonb: key order and number forms (1.50) may differ from the stored text,
-- the values do not; a value jsonb cannot hold (a \u0000 or a lone surrogate
-- escape) is an error.

-- The rows, as JSON, of a client's table (keyed by column id) whose id is in
-- ids, as they stood after run p_run (NULL: as the mirror holds them now);
-- none when the client has no such table.
CREATE FUNCTION owsync._rows_by_id_as_of(p_client text, p_table text, ids text[], p_run bigint) RETURNS SETOF jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ms name := (owsync._registered(p_client)).mirror_schema;
    rel text := CASE WHEN p_run IS NULL THEN p_table ELSE owsync._as_of_table(ms, p_table, p_run) END;
    mirror regclass := to_regclass(format('%I.%I', ms, rel));
BEGIN
    IF mirror IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format('SELECT to_jsonb(r) FROM (%s) r WHERE r.id = ANY ($1)',
                                CASE WHEN p_run IS NULL THEN format('SELECT * FROM %s', mirror)
                                     ELSE owsync._as_of_select(mirror,
                                                               to_regclass(format('%I.%I', owsync._versions_schema(p_client), rel)),
                                                               owsync._primary_key(mirror), p_run) END)
      USING ids;
END
$$;

-- The messages of a chat's JSON: those of history.messages, then those of
-- the flat messages list.
CREATE FUNCTION owsync._chat_messages(chat jsonb) RETURNS SETOF jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.value FROM jsonb_each(CASE WHEN jsonb_typeof(chat #> '{history,messages}') = 'object'
                                        THEN chat #> '{history,messages}' ELSE '{}' END) e
    UNION ALL
    SELECT e.value FROM jsonb_array_elements(CASE WHEN jsonb_typeof(chat -> 'messages') = 'array'
                                                  THEN chat -> 'messages' ELSE '[]' END) e
$$;

-- The author Open WebUI takes a message to have: its user_id, or its user's
-- id, or the chat's owner.
CREATE FUNCTION owsync._chat_author(m jsonb, owner text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(nullif(m ->> 'user_id', ''), nullif(m #>> '{user,id}', ''), owner)
$$;

-- One message as the owner's GET shows it: a user message names its author
-- (user_id, and user from authors, {id: {id, name}}, or with an empty name),
-- a message of another author than the owner loses its meta.
CREATE FUNCTION owsync._chat_export_message(m jsonb, owner text, authors jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN jsonb_typeof(m) IS DISTINCT FROM 'object' THEN m
                WHEN coalesce(nullif(y ->> 'user_id', ''), owner) = owner THEN y
                ELSE y - 'meta' END
      FROM (SELECT CASE WHEN m ->> 'role' = 'user'
                        THEN m || jsonb_build_object('user_id', a, 'user',
                                                     coalesce(authors -> a, jsonb_build_object('id', a, 'name', '')))
                        ELSE m END AS y
              FROM (SELECT owsync._chat_author(m, owner) AS a) x) y
$$;

-- A chat's JSON as its owner's GET shows it: each message as
-- owsync._chat_export_message() makes it, and share_mode "continue".
CREATE FUNCTION owsync._chat_export_json(chat jsonb, owner text, authors jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT chat || jsonb_build_object('share_mode', 'continue')
           || CASE WHEN jsonb_typeof(chat #> '{history,messages}') = 'object' THEN
                   jsonb_build_object('history', (chat -> 'history') || jsonb_build_object('messages',
                       (SELECT coalesce(jsonb_object_agg(e.key, owsync._chat_export_message(e.value, owner, authors)), '{}')
                          FROM jsonb_each(chat #> '{history,messages}') e)))
                   ELSE '{}' END
           || CASE WHEN jsonb_typeof(chat -> 'messages') = 'array' THEN
                   jsonb_build_object('messages',
                       (SELECT coalesce(jsonb_agg(owsync._chat_export_message(e.value, owner, authors) ORDER BY e.n), '[]')
                          FROM jsonb_array_elements(chat -> 'messages') WITH ORDINALITY e(value, n)))
                   ELSE '{}' END
$$;

-- One chat of a client as it stood after the run owsync._as_of_run() gives
-- for as_of (NULL: as the mirror holds it now), in Open WebUI's chat export
-- format: a JSON array holding the chat (see above).  An error naming client,
-- chat and moment when the chat did not exist then.
CREATE FUNCTION owsync.chat_export(client text, chat_id text, as_of timestamptz DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    run bigint;
    finished timestamptz;
    c jsonb;			-- the chat row
    chat jsonb;
    owner text;
    authors jsonb;		-- {id: {id, name}} of user messages' authors
BEGIN
    PERFORM owsync._require_admin();
    PERFORM owsync._registered(client);
    IF as_of IS NOT NULL THEN
        SELECT r.run_id, r.finished_at INTO run, finished FROM owsync._as_of_run(client, as_of, NULL) r;
    END IF;
    SELECT r INTO c FROM owsync._rows_by_id_as_of(client, 'chat', ARRAY[chat_id], run) r;
    IF c IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found',
            MESSAGE = CASE WHEN as_of IS NULL THEN format('client %L has no chat %L', client, chat_id)
                           ELSE format('client %L had no chat %L as of %s', client, chat_id, as_of) END,
            DETAIL = CASE WHEN as_of IS NULL THEN 'Its mirror holds no chat of that id now.'
                          ELSE format('As of then, its mirror stood as run %s left it, which finished at %s.',
                                      run, finished) END,
            HINT = format('owsync.row_versions(%L, %L, %L) lists when the chat existed and what it was.',
                          client, 'chat', jsonb_build_object('id', chat_id));
    END IF;
    owner := c ->> 'user_id';
    chat := CASE WHEN jsonb_typeof(c -> 'chat') = 'object' THEN c -> 'chat' ELSE '{}' END;
    -- authors named by their messages, then the others by table user as of then
    SELECT coalesce(jsonb_object_agg(a, jsonb_build_object('id', a, 'name', m #> '{user,name}')), '{}') INTO authors
      FROM owsync._chat_messages(chat) m CROSS JOIN LATERAL owsync._chat_author(m, owner) a
     WHERE m ->> 'role' = 'user' AND m #>> '{user,id}' = a AND coalesce(m #>> '{user,name}', '') <> '';
    SELECT authors || coalesce(jsonb_object_agg(u ->> 'id', jsonb_build_object('id', u -> 'id', 'name', u -> 'name')), '{}')
      INTO authors
      FROM owsync._rows_by_id_as_of(client, 'user',
                                    ARRAY(SELECT DISTINCT owsync._chat_author(m, owner) FROM owsync._chat_messages(chat) m
                                           WHERE m ->> 'role' = 'user'
                                             AND NOT authors ? owsync._chat_author(m, owner)), run) u;
    RETURN jsonb_build_array(jsonb_build_object(
        'id', c -> 'id', 'user_id', c -> 'user_id', 'title', c -> 'title',
        'chat', owsync._chat_export_json(chat, owner, authors),
        'updated_at', c -> 'updated_at', 'created_at', c -> 'created_at', 'share_id', c -> 'share_id',
        'archived', CASE jsonb_typeof(c -> 'archived') WHEN 'boolean' THEN c -> 'archived'
                        WHEN 'number' THEN to_jsonb((c ->> 'archived')::numeric <> 0) ELSE 'false' END,
        'pinned', CASE jsonb_typeof(c -> 'pinned') WHEN 'boolean' THEN c -> 'pinned'
                       WHEN 'number' THEN to_jsonb((c ->> 'pinned')::numeric <> 0) END,
        'meta', CASE WHEN jsonb_typeof(c -> 'meta') = 'object' THEN c -> 'meta' ELSE '{}' END,
        'variables', CASE WHEN jsonb_typeof(c -> 'variables') = 'object' THEN c -> 'variables' ELSE '{}' END,
        'folder_id', c -> 'folder_id',
        'tasks', CASE WHEN jsonb_typeof(c -> 'tasks') = 'array' THEN c -> 'tasks' END,
        'summary', c -> 'summary', 'current_message_id', c -> 'current_message_id',
        'context_usage', NULL));
END
$$;

COMMENT ON FUNCTION owsync.chat_export IS 'one chat of a client as it stood at a moment of its window (as_of NULL: now), in Open WebUI''s chat export format, which its chat import accepts: [ {id, user_id, title, chat: {history: {messages, currentId}, ...}, ...} ]';
-- What an operator reads in psql.  Two views for people, each one line per
-- row within 120 columns (times as ages, errors cut to their first line), and
-- the same facts with every column typed and in full in the _detail views,
-- for queries, scripts and the full error text.  The views run as their
-- caller (security_invoker): a role sees the rows its policies let it see.

-- '12s', '3m05s', '2h07m', '4d03h': a duration the way an eye reads it.
CREATE FUNCTION owsync._age(span interval) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN s < 60 THEN s || 's'
            WHEN s < 3600 THEN s / 60 || 'm' || lpad((s % 60)::text, 2, '0') || 's'
            WHEN s < 86400 THEN s / 3600 || 'h' || lpad((s % 3600 / 60)::text, 2, '0') || 'm'
            ELSE s / 86400 || 'd' || lpad((s % 86400 / 3600)::text, 2, '0') || 'h' END
  FROM (SELECT round(abs(extract(epoch FROM span)))::bigint) AS x(s)
$$;

-- The first line of a message, cut to width characters.
CREATE FUNCTION owsync._brief(message text, width integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN length(l) > width THEN left(l, width - 3) || '...' ELSE l END
  FROM (SELECT split_part(message, E'\n', 1)) AS x(l)
$$;

CREATE VIEW owsync.history_detail WITH (security_invoker = true) AS
SELECT r.run_id, r.client, r.mode, r.status, r.scheduled, r.started_at, r.source_unchanged,
       r.finished_at - r.started_at AS duration,
       t.tables, t.rows_read, t.inserted, t.updated, t.deleted, t.quarantined, t.conflicts,
       r.sqlstate, r.error_table, r.error
  FROM owsync.run r
  -- (a succeeded run that read no table changed no row: 0; a failed run's
  -- counts went with its rollback: NULL)
  CROSS JOIN LATERAL (SELECT CASE WHEN r.status = 'succeeded' THEN 0 END AS zero) z
  CROSS JOIN LATERAL (SELECT count(*) AS tables, coalesce(sum(rows_read), z.zero) AS rows_read,
                             coalesce(sum(inserted), z.zero) AS inserted, coalesce(sum(updated), z.zero) AS updated,
                             coalesce(sum(deleted), z.zero) AS deleted,
                             coalesce(sum(quarantined), z.zero) AS quarantined,
                             coalesce(sum(conflicts), z.zero) AS conflicts
                        FROM owsync.run_table rt WHERE rt.run_id = r.run_id) t;

COMMENT ON VIEW owsync.history_detail IS 'one row per sync run: status, per-run row counts (conflicts: rows changed in the mirror and at the source, see owsync.conflicts), the error of a failed run in full';

CREATE VIEW owsync.history WITH (security_invoker = true) AS
SELECT h.run_id, h.client, h.started_at::timestamp(0) AS started, h.mode, h.status,
       round(extract(epoch FROM h.duration), 3) AS seconds,
       CASE WHEN h.error IS NOT NULL THEN owsync._brief(h.error, 30)
            WHEN h.source_unchanged THEN 'unchanged'
            WHEN h.status = 'succeeded' THEN
                 '+' || h.inserted || ' ~' || h.updated || ' -' || h.deleted
                 || CASE WHEN h.quarantined > 0 THEN ' !' || h.quarantined ELSE '' END
                 || CASE WHEN h.conflicts > 0 THEN ' *' || h.conflicts ELSE '' END
       END AS result
  FROM owsync.history_detail h;

COMMENT ON VIEW owsync.history IS 'one line per sync run for psql: start (session time zone), seconds taken, and the rows changed as +inserted ~updated -deleted !quarantined *conflicts, unchanged when nothing was committed to the source since the last run, or the error cut short (in full in owsync.history_detail)';

CREATE VIEW owsync.status_detail WITH (security_invoker = true) AS
SELECT c.client, c.enabled, c.schedule, c.cron_schedule AS cron_job,
       last.started_at AS last_run_at, last.status AS last_status, last.error AS last_error,
       c.consecutive_failures AS failures, c.next_attempt_at,
       CASE WHEN d.client IS NOT NULL		-- the pool's: when due, at the minute its backoff ends
            THEN greatest(d.due_at, date_trunc('minute', c.next_attempt_at - interval '5 seconds' + interval '59.999999 seconds'))
            ELSE owsync._next_run(c.cron_schedule, greatest(now(), c.next_attempt_at - interval '5 seconds'))
       END AS next_run_at,
       ok.finished_at AS last_success_at,
       now() - ok.finished_at AS lag,
       (SELECT sum(s.n_live_tup)::bigint FROM pg_catalog.pg_stat_user_tables s
         WHERE s.schemaname = c.client) AS mirror_rows,
       (SELECT count(*) FROM owsync.quarantine q WHERE q.client = c.client) AS quarantined_rows,
       (SELECT count(*) FROM owsync.mirror_change mc WHERE mc.client = c.client) AS mirror_changes,
       (SELECT count(*) FROM owsync.conflict x WHERE x.client = c.client AND x.decided IS NULL) AS pending_conflicts,
       e.bad_options, e.option_errors,
       owsync._versions_bytes(c.client) AS versions_bytes,
       (SELECT r.finished_at FROM owsync.run r WHERE r.run_id = c.versions_from) AS restorable_from
  FROM owsync.client c
  LEFT JOIN owsync.sync_due d ON d.client = c.client
  CROSS JOIN LATERAL (SELECT array_agg(coalesce(x.option, 'options') ORDER BY x.option) AS bad_options,
                             array_agg(x.message || ' (' || x.hint || ')' ORDER BY x.option) AS option_errors
                        FROM owsync._option_errors(c.client, c.options) x) e
  LEFT JOIN LATERAL (SELECT r.* FROM owsync.run r
                      WHERE r.client = c.client AND r.status <> 'skipped'
                      ORDER BY r.run_id DESC LIMIT 1) last ON true
  LEFT JOIN LATERAL (SELECT r.* FROM owsync.run r
                      WHERE r.client = c.client AND r.status = 'succeeded'
                      ORDER BY r.run_id DESC LIMIT 1) ok ON true;

COMMENT ON VIEW owsync.status_detail IS 'one row per client: schedule and the cron expression it runs by (cron_job: the dispatcher pool runs it, or, for a schedule in seconds, a pg_cron job of its own), last run and its outcome, failures in a row and the backoff, next run (in the past: due, waiting for a dispatcher), last success, lag, rows in the mirror (statistics), quarantined rows, rows changed in the mirror (pending in owsync.mirror_change), conflicts pending resolution, the stored options that register_client() or set_options() would refuse now (their names, and why), the bytes of its kept row versions and the oldest moment it can be restored to (owsync.restore options as_of)';

CREATE VIEW owsync.status WITH (security_invoker = true) AS
SELECT d.client, d.enabled, d.schedule, d.cron_job,
       d.last_status || ' ' || owsync._age(now() - d.last_run_at) || ' ago' AS last_run,
       CASE WHEN d.next_run_at <= now() THEN 'due'
            ELSE 'in ' || owsync._age(d.next_run_at - now()) END AS next_run,
       coalesce(owsync._age(d.lag), 'never') AS lag,
       CASE WHEN d.last_status = 'failed' THEN
                 owsync._brief(CASE WHEN d.failures > 1 THEN d.failures || 'x: ' ELSE '' END
                               || d.last_error, 24)
            WHEN d.quarantined_rows > 0 THEN d.quarantined_rows || ' quarantined'
            WHEN d.bad_options IS NOT NULL THEN owsync._brief('bad options: ' || array_to_string(d.bad_options, ', '), 24)
            WHEN d.pending_conflicts > 0 THEN d.pending_conflicts || ' conflicts pending' END AS problem
  FROM owsync.status_detail d;

COMMENT ON VIEW owsync.status IS 'one line per client for psql: schedule and its cron expression, outcome and age of the last run, next run, lag since the last success, the problem if any: failures in a row and the error cut short, rows quarantined, options to fix, or conflicts pending (in full in owsync.status_detail)';

-- One row per client, every column a number: the shape postgres_exporter's
-- custom queries turn into Prometheus metrics (docs/postgres_exporter.yaml).
CREATE VIEW owsync.metrics WITH (security_invoker = true) AS
SELECT c.client,
       c.enabled::integer AS enabled,
       (c.schedule <> 'manual')::integer AS scheduled,
       c.consecutive_failures,
       (c.next_attempt_at IS NOT NULL AND c.next_attempt_at > now())::integer AS backing_off,
       extract(epoch FROM now() - ok.finished_at) AS lag_seconds,
       extract(epoch FROM ok.finished_at) AS last_success_timestamp_seconds,
       extract(epoch FROM ok.finished_at - ok.started_at) AS last_success_duration_seconds,
       coalesce(t.inserted, 0) AS last_success_inserted_rows,
       coalesce(t.updated, 0) AS last_success_updated_rows,
       coalesce(t.deleted, 0) AS last_success_deleted_rows,
       (SELECT coalesce(sum(s.n_live_tup), 0)::bigint FROM pg_catalog.pg_stat_user_tables s
         WHERE s.schemaname = c.client) AS mirror_rows,
       (SELECT count(*) FROM owsync.quarantine q WHERE q.client = c.client) AS quarantined_rows,
       (SELECT count(*) FROM owsync.mirror_change mc WHERE mc.client = c.client) AS mirror_changes,
       (SELECT count(*) FROM owsync.conflict x WHERE x.client = c.client AND x.decided IS NULL) AS pending_conflicts,
       n.succeeded AS runs_succeeded, n.failed AS runs_failed, n.skipped AS runs_skipped,
       owsync._versions_bytes(c.client) AS versions_bytes,
       (SELECT extract(epoch FROM r.finished_at) FROM owsync.run r WHERE r.run_id = c.versions_from)
         AS restorable_from_timestamp_seconds
  FROM owsync.client c
  LEFT JOIN LATERAL (SELECT r.* FROM owsync.run r
                      WHERE r.client = c.client AND r.status = 'succeeded'
                      ORDER BY r.run_id DESC LIMIT 1) ok ON true
  LEFT JOIN LATERAL (SELECT sum(rt.inserted) AS inserted, sum(rt.updated) AS updated, sum(rt.deleted) AS deleted
                       FROM owsync.run_table rt WHERE rt.run_id = ok.run_id) t ON true
  LEFT JOIN LATERAL (SELECT count(*) FILTER (WHERE r.status = 'succeeded') AS succeeded,
                            count(*) FILTER (WHERE r.status = 'failed') AS failed,
                            count(*) FILTER (WHERE r.status = 'skipped') AS skipped
                       FROM owsync.run r WHERE r.client = c.client) n ON true;

COMMENT ON VIEW owsync.metrics IS 'one row per client, numbers only (runs counted over the kept history): for postgres_exporter, see docs/postgres_exporter.yaml';

-- One row per conflict, for people (both versions are in owsync.conflict).
CREATE VIEW owsync.conflicts WITH (security_invoker = true) AS
SELECT x.conflict_id, x.client, x.table_name, x.key, x.policy, x.mirror_op, x.source_op,
       coalesce(x.decided, 'pending') AS winner, x.detected_at, x.decided_at, x.resolved_by, x.run_id, x.note
  FROM owsync.conflict x;

COMMENT ON VIEW owsync.conflicts IS 'one row per conflict (a row changed in the mirror and at the source): the key, the policy, what each side did, the winner (source, target, or pending until owsync.resolve_conflict), when; both versions in owsync.conflict';
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
-- The fleet: setting up an edge and its hub, the tick that keeps the hub
-- up to date, repairs, and restoring a client from the hub.  The design is in
-- 38_fleet.sql and docs/ARCHITECTURE.md ("Fleet").
--
--   prepare_edge(edge)                 this server becomes an edge
--   CALL attach_hub(hub, edge_conninfo) it feeds the hub from now on
--   CALL fleet_tick()                  the hub brought up to date (job owsync-fleet, every minute)
--   CALL repair_hub()                  after the hub lost this edge's slot: re-seeded
--   forget_edge(edge)                  a lost host's subscription dropped at the hub
--   CALL detach_hub()                  this edge stops feeding the hub
--   CALL restore_from_hub(client, target_path)
--
-- Statements that cannot run in a transaction block at the hub (ALTER
-- SUBSCRIPTION ... REFRESH PUBLICATION) run there through dblink, each as
-- its own top-level statement.  The replication slot is made here, in a
-- transaction that has written nothing (a slot waits for every transaction
-- with writes to end, this one's included), so the procedures commit
-- between their steps.

-- An error unless the session's user is a superuser: the fleet's setup
-- makes a REPLICATION role, publications and subscriptions.
CREATE FUNCTION owsync._require_superuser(what text) RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT owsync._session_is_superuser() THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('permission denied: only a superuser may %s', what),
            DETAIL = 'It creates a replication role, a publication and replication slots.';
    END IF;
END
$$;

-- A libpq connection string (keyword = value, values optionally quoted) as
-- a json object.
CREATE FUNCTION owsync._conninfo_parse(conninfo text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m text[];
    r jsonb := '{}';
    rest text := btrim(conninfo);
BEGIN
    IF rest ~ '^postgres(ql)?://' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'a connection URI is not accepted here',
            HINT = 'Write it as keyword = value pairs: host=... port=... dbname=... user=... password=...';
    END IF;
    WHILE rest <> '' LOOP
        m := regexp_match(rest, '^([a-z_]+)\s*=\s*(''((?:[^''\\]|\\.)*)''|[^\s'']*)\s*(.*)$', 's');
        IF m IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('invalid connection string at %L', left(rest, 20)),
                HINT = 'Write it as keyword = value pairs: host=... port=... dbname=... user=... password=...';
        END IF;
        r := r || jsonb_build_object(m[1], CASE WHEN left(m[2], 1) = ''''
                                                THEN regexp_replace(m[3], '\\(.)', '\1', 'g') ELSE m[2] END);
        rest := m[4];
    END LOOP;
    RETURN r;
END
$$;

-- A json object of libpq keywords and values as a connection string.
CREATE FUNCTION owsync._conninfo(kv jsonb) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(k || '=' || owsync._conninfo_quote(v), ' ' ORDER BY k) FROM jsonb_each_text(kv) AS x(k, v)
$$;

-- The server settings an edge needs; an error naming each one missing.
CREATE FUNCTION owsync._edge_settings() RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    wrong text[] := '{}';
BEGIN
    IF current_setting('wal_level') <> 'logical' THEN
        wrong := wrong || format('wal_level is %s: set wal_level = logical (a restart is needed)', current_setting('wal_level'));
    END IF;
    IF current_setting('max_replication_slots')::integer < 1 THEN
        wrong := wrong || 'max_replication_slots is 0: set it to at least 2 (a restart is needed)'::text;
    END IF;
    IF current_setting('max_wal_senders')::integer < 1 THEN
        wrong := wrong || 'max_wal_senders is 0: set it to at least 2 (a restart is needed)'::text;
    END IF;
    IF current_setting('max_slot_wal_keep_size') = '-1' THEN
        wrong := wrong || ('max_slot_wal_keep_size is -1: a hub away for long would make this server keep WAL '
                           'until its disk is full; bound it (for example 10GB, a day of this edge''s WAL)')::text;
    END IF;
    IF cardinality(wrong) > 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = 'this server cannot be an edge yet',
            DETAIL = array_to_string(wrong, E'\n'),
            HINT = 'Change the settings with ALTER SYSTEM (or postgresql.conf), restart, and call owsync.prepare_edge() again.';
    END IF;
    RETURN jsonb_build_object('wal_level', current_setting('wal_level'),
                              'max_replication_slots', current_setting('max_replication_slots'),
                              'max_wal_senders', current_setting('max_wal_senders'),
                              'max_slot_wal_keep_size', current_setting('max_slot_wal_keep_size'));
END
$$;

-- Make this server an edge named edge: its settings checked, the
-- replication role owsync_replicator (allowed logical replication only by
-- pg_hba.conf, see docs/OPERATIONS.md), the publication owsync_edge and the
-- copy of the catalog in owsync_edge_<edge>.  Again with the same name: no
-- change.  Returns what it checked and made.
CREATE FUNCTION owsync.prepare_edge(edge text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cur owsync.edge := owsync._edge();
    settings jsonb;
    sch name;
    t record;
    other text[];
BEGIN
    PERFORM owsync._require_superuser('prepare an edge');
    IF edge IS NULL OR edge !~ '^[a-z_][a-z0-9_]*$' OR length(edge) > 40 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_name',
            MESSAGE = format('invalid edge name %L', edge),
            HINT = 'An edge name is a lower-case identifier of at most 40 characters, such as the host''s name: fra1_host3.';
    END IF;
    IF cur.edge IS NOT NULL AND cur.edge <> edge THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('this server is already edge %s', cur.edge),
            HINT = 'An edge keeps its name: the hub knows its clients by it.';
    END IF;
    settings := owsync._edge_settings();
    sch := owsync._edge_schema(edge);
    -- owsync_replicator may decode every change of this database
    other := ARRAY(SELECT DISTINCT n.nspname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'owsync', 'cron')
                      AND n.nspname NOT LIKE 'pg\_%' AND n.nspname NOT LIKE 'owsync\_%'
                      AND n.nspname NOT IN (SELECT x.client FROM owsync.client x) ORDER BY 1);
    IF cardinality(other) > 0 THEN
        RAISE WARNING 'database % holds other data than owsync''s: schema %', current_database(), array_to_string(other, ', ')
            USING DETAIL = 'The replication role owsync_replicator can decode every change made in this database.',
                  HINT = 'Keep owsync in a database of its own (docs/OPERATIONS.md, "Fleet").';
    END IF;
    IF cur.edge IS NULL THEN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'owsync_replicator') THEN
            CREATE ROLE owsync_replicator LOGIN REPLICATION NOINHERIT;
        END IF;
        EXECUTE format('CREATE SCHEMA %I', sch);
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO owsync_replicator', sch);
        INSERT INTO owsync.edge (edge) VALUES (prepare_edge.edge);
        FOR t IN SELECT * FROM owsync._edge_copied() LOOP
            EXECUTE format('CREATE TABLE %I.%I (LIKE owsync.%I, PRIMARY KEY (%s))', sch, t.table_name, t.table_name,
                           t.key_columns);
            EXECUTE format('INSERT INTO %I.%I SELECT * FROM owsync.%I', sch, t.table_name, t.table_name);
            EXECUTE format('GRANT SELECT ON %I.%I TO owsync_replicator', sch, t.table_name);
        END LOOP;
        IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = 'owsync_edge') THEN
            CREATE PUBLICATION owsync_edge;
        END IF;
    END IF;
    RETURN jsonb_build_object('edge', edge, 'catalog_copy', sch, 'publication', 'owsync_edge', 'other_data', other,
                              'replication_role', 'owsync_replicator', 'settings', settings,
                              'pg_hba', format('host %s owsync_replicator <the hub''s address>/32 scram-sha-256',
                                               current_database()));
END
$$;

-- The hub's own objects, made by the first edge that attaches: schema
-- owsync_fleet with the registry of edges (edge), of client names (client)
-- and of re-seed stashes (stash).  Plain SQL: the hub needs no owsync_fdw.
CREATE FUNCTION owsync._hub_setup_sql() RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT $sql$
CREATE SCHEMA IF NOT EXISTS owsync_fleet;
CREATE TABLE IF NOT EXISTS owsync_fleet.edge (
    edge              text PRIMARY KEY,
    edge_no           integer GENERATED ALWAYS AS IDENTITY UNIQUE,
    system_identifier text NOT NULL,
    subscription      name NOT NULL,
    edge_conninfo     text,
    attached_at       timestamptz NOT NULL DEFAULT now(),
    forgotten_at      timestamptz,
    last_seen         timestamptz,
    wal_lsn           pg_lsn,
    lag_bytes         numeric,
    lag_seconds       numeric,
    slot_status       text,
    problem           text,
    clients           jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS owsync_fleet.client (
    client       text PRIMARY KEY,
    edge         text NOT NULL,
    claimed_at   timestamptz NOT NULL DEFAULT now(),
    released_at  timestamptz,
    contested_by text[] NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS owsync_fleet.stash (
    stash       text PRIMARY KEY,
    schema_name text NOT NULL,
    edge        text NOT NULL,
    stashed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE SEQUENCE IF NOT EXISTS owsync_fleet.stash_seq;
REVOKE ALL ON SCHEMA owsync_fleet FROM PUBLIC;
$sql$
$$;

-- The trigger function that keeps the hub's copies read-only: each copy has
-- it as a statement trigger, which the apply worker (session_replication_role
-- replica) does not fire.
CREATE FUNCTION owsync._hub_read_only_sql() RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT $sql$
CREATE OR REPLACE FUNCTION owsync_fleet.read_only() RETURNS trigger
LANGUAGE plpgsql AS $f$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'read_only_sql_transaction',
        MESSAGE = format('%I.%I is a copy kept by logical replication from an owsync edge: it is read-only',
                         TG_TABLE_SCHEMA, TG_TABLE_NAME),
        HINT = 'Change the data at its edge: a row written here would stop the replication of every client of that edge.';
END
$f$;
$sql$
$$;

-- The hub's views over every edge's copy of its catalog (rebuilt when an
-- edge attaches or is forgotten): owsync_fleet.run, fleet_detail (one line
-- per client, the problem in full), fleet (the same, its problem cut to fit
-- 120 columns)
-- and metrics (for postgres_exporter).
CREATE FUNCTION owsync._hub_views_sql(edges text[]) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT format($sql$
DROP VIEW IF EXISTS owsync_fleet.metrics, owsync_fleet.fleet, owsync_fleet.fleet_detail, owsync_fleet.run;
CREATE VIEW owsync_fleet.run AS
%s;
CREATE VIEW owsync_fleet.fleet_detail AS
SELECT c.client, c.edge,
       (e.clients -> c.client ->> 'status') AS last_run,
       date_trunc('second', now() - (e.clients -> c.client ->> 'at')::timestamptz) AS run_age,
       round(e.lag_seconds, 1) AS lag_s, e.lag_bytes::bigint AS lag_bytes,
       date_trunc('second', now() - h.last_arrived) AS hub_age,
       CASE WHEN e.forgotten_at IS NOT NULL
              THEN format('edge %%s forgotten: restore the client on another edge', c.edge)
            WHEN c.released_at IS NOT NULL
              THEN 'registered on no edge (this copy is kept)'
            WHEN cardinality(c.contested_by) > 0
              THEN format('name also registered on edge %%s', array_to_string(c.contested_by, ', '))
            WHEN e.slot_status = 'lost'
              THEN format('slot lost: CALL owsync.repair_hub() on edge %%s (it removed WAL this server had not received)', c.edge)
            WHEN s.subenabled IS DISTINCT FROM true
              THEN format('subscription %%s is missing or disabled', e.subscription)
            WHEN st.pid IS NULL
              THEN coalesce(e.problem, 'not streaming: the edge cannot be reached, or the apply keeps failing (see this server''s log)')
            WHEN e.last_seen < now() - interval '5 minutes'
              THEN format('edge silent for %%s (its fleet tick has not reached this server)', date_trunc('second', now() - e.last_seen))
            WHEN EXISTS (SELECT 1 FROM owsync_fleet.stash x WHERE x.schema_name = c.client)
              THEN format('re-seeding: until the copy is complete, the former one is in %%s',
                          (SELECT string_agg(x.stash, ', ' ORDER BY x.stashed_at) FROM owsync_fleet.stash x
                            WHERE x.schema_name = c.client))
            WHEN EXISTS (SELECT 1 FROM pg_subscription_rel sr JOIN pg_class k ON k.oid = sr.srrelid
                          WHERE sr.srsubid = s.oid AND k.relnamespace = to_regnamespace(c.client)
                            AND sr.srsubstate <> 'r')
              THEN 'first copy in progress'
            WHEN e.problem IS NOT NULL THEN e.problem
            WHEN e.clients -> c.client ->> 'status' = 'failed'
              THEN 'last run failed: ' || (e.clients -> c.client ->> 'error')
       END AS problem
  FROM owsync_fleet.client c
  LEFT JOIN owsync_fleet.edge e ON e.edge = c.edge
  LEFT JOIN pg_catalog.pg_subscription s ON s.subname = e.subscription AND s.subdbid =
            (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
  LEFT JOIN pg_catalog.pg_stat_subscription st ON st.subid = s.oid AND st.relid IS NULL
  LEFT JOIN LATERAL (SELECT max(r.finished_at) AS last_arrived FROM owsync_fleet.run r
                      WHERE r.edge = c.edge AND r.client = c.client AND r.status = 'succeeded') h ON true;
CREATE VIEW owsync_fleet.fleet AS
SELECT client, edge, last_run, run_age, lag_s, lag_bytes, hub_age,
       CASE WHEN length(problem) > 32 THEN left(problem, 31) || '…' ELSE problem END AS problem
  FROM owsync_fleet.fleet_detail;
CREATE VIEW owsync_fleet.metrics AS
SELECT client, edge, extract(epoch FROM run_age) AS run_age_seconds, extract(epoch FROM hub_age) AS hub_age_seconds,
       lag_s AS lag_seconds, lag_bytes, (problem IS NOT NULL)::integer AS problem
  FROM owsync_fleet.fleet_detail;
$sql$,
    coalesce((SELECT string_agg(format('SELECT %L::text AS edge, run_id, client, mode, status, started_at, finished_at, error, error_table FROM %I.run',
                                       e, owsync._edge_schema(e)), E'\nUNION ALL ' ORDER BY e)
                FROM unnest(edges) e),
             'SELECT NULL::text AS edge, NULL::bigint AS run_id, NULL::text AS client, NULL::text AS mode, NULL::text AS status, '
             'NULL::timestamptz AS started_at, NULL::timestamptz AS finished_at, NULL::text AS error, NULL::text AS error_table WHERE false'))
$$;

-- Rebuild the hub's fleet views over the edges whose catalog copy is there.
CREATE FUNCTION owsync._hub_views() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM owsync._hub_exec(owsync._hub_views_sql(ARRAY(
        SELECT jsonb_array_elements_text(owsync._hub_json(
            'SELECT coalesce(jsonb_agg(e.edge ORDER BY e.edge), ''[]'') FROM owsync_fleet.edge e
              WHERE to_regclass(format(''%I.run'', ''owsync_edge_'' || e.edge)) IS NOT NULL')))));
END
$$;

-- Keep (or create) the foreign server owsync_hub and its user mapping from a
-- connection string: host, port, dbname and the like on the server, user and
-- password on the mapping (for the extension's owner, who runs the fleet's
-- calls; readable by superusers only).
CREATE FUNCTION owsync._hub_server(hub text) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
    kv jsonb := owsync._conninfo_parse(hub);
    srv jsonb;
    um jsonb;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'owsync_link') THEN
        CREATE SCHEMA owsync_link;
    END IF;
    IF owsync._dblink_schema() IS NULL THEN
        CREATE EXTENSION dblink SCHEMA owsync_link;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'postgres_fdw') THEN
        CREATE EXTENSION postgres_fdw SCHEMA owsync_link;
    END IF;
    um := jsonb_strip_nulls(jsonb_build_object('user', kv ->> 'user', 'password', kv ->> 'password'));
    srv := (kv - 'user' - 'password')
           || jsonb_build_object('connect_timeout', coalesce(kv ->> 'connect_timeout', '10'),
                                 'application_name', 'owsync edge ' || (SELECT edge FROM owsync.edge));
    DROP SERVER IF EXISTS owsync_hub CASCADE;
    EXECUTE format('CREATE SERVER owsync_hub FOREIGN DATA WRAPPER postgres_fdw OPTIONS (%s)',
                   (SELECT string_agg(format('%I %L', k, v), ', ') FROM jsonb_each_text(srv) AS x(k, v)));
    EXECUTE format('CREATE USER MAPPING FOR CURRENT_USER SERVER owsync_hub%s',
                   CASE WHEN um = '{}' THEN '' ELSE format(' OPTIONS (%s)', (SELECT string_agg(format('%I %L', k, v), ', ')
                                                                             FROM jsonb_each_text(um) AS x(k, v))) END);
    RETURN concat_ws(' ', 'host=' || (kv ->> 'host'), 'port=' || (kv ->> 'port'), 'dbname=' || (kv ->> 'dbname'));
END
$$;

-- attach_hub's first step: the hub server (when given), the hub's registry,
-- this edge registered there (an edge name held by another server is
-- refused; so is any client name another edge holds), run ids moved into
-- this edge's range, and a fresh password for owsync_replicator, returned
-- for the subscription.
CREATE FUNCTION owsync._attach_prepare(hub text, edge_conninfo text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e owsync.edge := owsync._edge();
    me text;
    no jsonb;
    taken jsonb;
    pw text := encode(sha256(convert_to(gen_random_uuid()::text || clock_timestamp()::text, 'UTF8')), 'hex');
BEGIN
    PERFORM owsync._require_superuser('attach an edge to a hub');
    IF e.edge IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = 'this server is not an edge yet',
            HINT = 'Call owsync.prepare_edge(edge_name) first.';
    END IF;
    PERFORM owsync._edge_settings();
    IF _attach_prepare.hub IS NOT NULL THEN
        UPDATE owsync.edge SET hub = owsync._hub_server(_attach_prepare.hub);
    ELSIF NOT EXISTS (SELECT 1 FROM pg_foreign_server WHERE srvname = 'owsync_hub') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'no hub given, and this edge has none',
            HINT = 'CALL owsync.attach_hub(''host=... port=... dbname=... user=... password=...'', ''host=... port=... dbname=...'').';
    END IF;
    IF _attach_prepare.edge_conninfo IS NOT NULL THEN
        UPDATE owsync.edge x SET edge_conninfo = owsync._conninfo(owsync._conninfo_parse(_attach_prepare.edge_conninfo)
                                                                  - 'user' - 'password');
    END IF;
    e := owsync._edge();
    IF e.edge_conninfo IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'no edge connection string given',
            HINT = 'Say how the hub reaches this database: ''host=... port=... dbname=...''.';
    END IF;
    -- a superuser, or (PostgreSQL 16 and later) a member of pg_create_subscription
    IF NOT owsync._hub_json('SELECT to_jsonb(rolsuper OR coalesce((SELECT pg_has_role(current_user, oid, ''MEMBER'')
                                                                  FROM pg_roles WHERE rolname = ''pg_create_subscription''), false))
                               FROM pg_roles WHERE rolname = current_user')::boolean THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = 'the hub''s role may not create subscriptions',
            HINT = 'Connect to the hub as a superuser (PostgreSQL 15), or as a member of pg_create_subscription that may create schemas (16 and later).';
    END IF;
    PERFORM owsync._hub_exec(owsync._hub_setup_sql() || owsync._hub_read_only_sql());

    me := (SELECT system_identifier::text FROM pg_control_system()) || '/' || current_database();
    no := owsync._hub_json(format(
        'WITH r AS (INSERT INTO owsync_fleet.edge AS x (edge, system_identifier, subscription, edge_conninfo)
                    VALUES (%L, %L, %L, %L)
                    ON CONFLICT (edge) DO UPDATE SET edge_conninfo = excluded.edge_conninfo, forgotten_at = NULL,
                                                     attached_at = now()
                     WHERE x.system_identifier = excluded.system_identifier
                    RETURNING edge_no)
         SELECT coalesce((SELECT to_jsonb(edge_no) FROM r),
                         (SELECT to_jsonb(system_identifier) FROM owsync_fleet.edge WHERE edge = %1$L))',
        e.edge, me, 'owsync_' || e.edge, e.edge_conninfo));
    IF jsonb_typeof(no) <> 'number' THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('edge name %s is taken at the hub by another server', e.edge),
            DETAIL = format('The hub knows edge %s as server %s; this is %s.', e.edge, no ->> 0, me),
            HINT = 'Prepare this server under another name, or forget the other edge first (owsync.forget_edge).';
    END IF;
    taken := owsync._hub_json(format(
        'SELECT coalesce(jsonb_object_agg(client, edge), ''{}'') FROM owsync_fleet.client
          WHERE client = ANY (%L::text[]) AND edge <> %L AND released_at IS NULL',
        ARRAY(SELECT client FROM owsync.client), e.edge));
    IF taken <> '{}' THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('edge %s cannot attach: %s', e.edge,
                             (SELECT string_agg(format('client %s is registered on edge %s', k, v), '; ' ORDER BY k)
                                FROM jsonb_each_text(taken) AS x(k, v))),
            DETAIL = 'Client names are unique across the fleet: the hub holds each client in a schema of its name.',
            HINT = 'Unregister the client on one of the two edges (or register it here under another name), then attach.';
    END IF;
    UPDATE owsync.edge SET edge_no = (no ->> 0)::integer, attached_at = now(), problem = NULL;
    -- run ids unique across the fleet from now on
    PERFORM setval('owsync.run_run_id_seq', (no ->> 0)::bigint * 1000000000000)
      FROM owsync.run_run_id_seq s WHERE s.last_value < (no ->> 0)::bigint * 1000000000000;
    EXECUTE format('ALTER ROLE owsync_replicator PASSWORD %L', pw);
    RETURN pw;
END
$$;

-- This edge's replication slot, made unless it exists, in a transaction
-- that has written nothing.
CREATE FUNCTION owsync._make_slot() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    slot name := 'owsync_' || (SELECT edge FROM owsync.edge);
BEGIN
    PERFORM owsync._require_superuser('attach an edge to a hub');
    IF NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = slot) THEN
        PERFORM pg_create_logical_replication_slot(slot, 'pgoutput');
    END IF;
END
$$;

-- The state of a subscription of the hub's database: 'enabled', 'disabled',
-- or NULL when there is none.
CREATE FUNCTION owsync._hub_subscription(sub text) RETURNS text
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT owsync._hub_json(format(
        'SELECT to_jsonb(CASE WHEN subenabled THEN ''enabled'' ELSE ''disabled'' END) FROM pg_subscription
          WHERE subname = %L AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())', sub)) ->> 0
$$;

-- Drop a subscription at the hub, if there is one, without touching its
-- slot (the hub is told it has none): its edge drops the slot, or is gone.
CREATE FUNCTION owsync._hub_drop_subscription(sub text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF owsync._hub_subscription(sub) IS NOT NULL THEN
        PERFORM owsync._hub_exec(format('ALTER SUBSCRIPTION %I DISABLE', sub));
        PERFORM owsync._hub_exec(format('ALTER SUBSCRIPTION %I SET (slot_name = NONE)', sub));
        PERFORM owsync._hub_exec(format('DROP SUBSCRIPTION %I', sub));
    END IF;
END
$$;

-- The hub's subscription to this edge (over the slot made here; each table
-- copied first, then streamed), and the pg_cron job owsync-fleet that runs
-- the fleet tick every minute.
CREATE FUNCTION owsync._subscribe(pw text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e owsync.edge := owsync._edge();
    conn text := e.edge_conninfo || ' user=owsync_replicator password=' || owsync._conninfo_quote(pw);
BEGIN
    PERFORM owsync._require_superuser('attach an edge to a hub');
    IF owsync._hub_subscription('owsync_' || e.edge) IS NOT NULL THEN
        PERFORM owsync._hub_exec(format('ALTER SUBSCRIPTION %I CONNECTION %L', 'owsync_' || e.edge, conn));
        PERFORM owsync._hub_exec(format('ALTER SUBSCRIPTION %I ENABLE', 'owsync_' || e.edge));
    ELSE
        PERFORM owsync._hub_exec(format(
            'CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION owsync_edge
               WITH (create_slot = false, slot_name = %L, copy_data = true)',
            'owsync_' || e.edge, conn, 'owsync_' || e.edge));
    END IF;
    PERFORM owsync._hub_views();
    PERFORM owsync._fleet_job(true);
END
$$;

-- The pg_cron job owsync-fleet (every minute: CALL owsync.fleet_tick()),
-- scheduled or removed; nothing without pg_cron (the tick is then called
-- by hand or by another scheduler).
CREATE FUNCTION owsync._fleet_job(wanted boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pgcron record := owsync._cron();
    job text := 'owsync-fleet' || CASE WHEN pgcron.mode = 'remote' THEN '@' || current_database() ELSE '' END;
BEGIN
    IF pgcron.mode IS NULL THEN
        IF wanted THEN
            RAISE WARNING 'owsync: pg_cron is not installed here: call CALL owsync.fleet_tick() every minute yourself';
        END IF;
        RETURN;
    END IF;
    PERFORM owsync._cron_query(pgcron.mode, pgcron.conn, pgcron.dblink, CASE
        WHEN NOT wanted THEN format('SELECT count(cron.unschedule(jobid))::text FROM cron.job WHERE jobname = %L', job)
        WHEN pgcron.mode = 'local' THEN format('SELECT cron.schedule(%L, %L, %L)::text', job, '* * * * *', 'CALL owsync.fleet_tick()')
        ELSE format('SELECT cron.schedule_in_database(%L, %L, %L, %L, %L, true)::text', job, '* * * * *',
                    'CALL owsync.fleet_tick()', current_database(), current_user) END);
END
$$;

-- CALL owsync.attach_hub(hub, edge_conninfo): this edge feeds the hub from
-- now on.  hub: a libpq connection string to the hub's database, as a role
-- that may create schemas and subscriptions there; edge_conninfo: how the
-- hub reaches this database (host, port, dbname: the subscription connects
-- as owsync_replicator with a password made here).  With both NULL, the hub
-- and the address known are kept (owsync.repair_hub() does so).
CREATE PROCEDURE owsync.attach_hub(hub text DEFAULT NULL, edge_conninfo text DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    pw text;
BEGIN
    pw := owsync._attach_prepare(hub, edge_conninfo);
    COMMIT;
    PERFORM owsync._fleet_converge(true);
    COMMIT;
    PERFORM owsync._make_slot();
    COMMIT;
    PERFORM owsync._subscribe(pw);
    COMMIT;
    PERFORM owsync._fleet_report(true);
END
$$;

-- Empty a schema at the hub by moving it aside: renamed to
-- owsync_stash_<n> and noted in owsync_fleet.stash, dropped by a later tick
-- once the fresh copy is complete (the hub never holds less than before).
CREATE FUNCTION owsync._hub_stash_sql(schemas name[], edge text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT format($sql$
DO $s$
DECLARE
    s text;
    n text;
BEGIN
    FOREACH s IN ARRAY %L::text[] LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = s);
        n := 'owsync_stash_' || nextval('owsync_fleet.stash_seq');
        EXECUTE format('ALTER SCHEMA %%I RENAME TO %%I', s, n);
        INSERT INTO owsync_fleet.stash (stash, schema_name, edge) VALUES (n, s, %L);
    END LOOP;
END
$s$;
$sql$, schemas, edge)
$$;

-- The fleet tick's first step: the publication made to hold what the hub
-- should have.  Client names are claimed at the hub (a name another edge
-- holds is noted in owsync.edge.contested, and at the hub, and not
-- published); a schema newly published gets a fresh hub copy (the former one
-- stashed); the hub's tables and readers made to match; schemas of clients
-- no longer registered leave the publication and their names are released
-- (their hub copies stay).  Returns false when the hub could not be reached
-- (the reason in owsync.edge.problem).  With strict (attach_hub), an error
-- is raised instead.
CREATE FUNCTION owsync._fleet_converge(strict boolean DEFAULT false) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e owsync.edge := owsync._edge();
    published name[] := owsync._published();
    wanted name[];
    fresh name[];
    held_elsewhere text[] := '{}';
    c record;
    holder text;
    s name;
    why text;
    det text;
BEGIN
    PERFORM owsync._require_admin();
    IF e.hub IS NULL THEN
        RETURN false;
    END IF;
    BEGIN
        wanted := ARRAY[owsync._edge_schema(e.edge)];
        FOR c IN SELECT x.client FROM owsync.client x ORDER BY 1 LOOP
            -- a published mirror: the name was claimed before
            IF (owsync.client_names(c.client)).mirror_schema = ANY (published) THEN
                PERFORM owsync._hub_versions(c.client);
                wanted := wanted || owsync._hub_schemas(c.client);
                CONTINUE;
            END IF;
            holder := owsync._hub_claim(c.client);
            IF holder IS NULL THEN
                PERFORM owsync._hub_versions(c.client);
                wanted := wanted || owsync._hub_schemas(c.client);
            ELSE
                held_elsewhere := held_elsewhere || c.client;
                PERFORM owsync._hub_exec(format(
                    'UPDATE owsync_fleet.client SET contested_by = array_append(contested_by, %L)
                      WHERE client = %L AND NOT %1$L = ANY (contested_by)', e.edge, c.client));
            END IF;
        END LOOP;
        fresh := ARRAY(SELECT unnest(wanted) EXCEPT SELECT unnest(published));
        IF cardinality(fresh) > 0 THEN
            PERFORM owsync._hub_exec(owsync._hub_stash_sql(fresh, e.edge));
        END IF;
        PERFORM owsync._hub_catch_up(wanted);
        FOREACH s IN ARRAY fresh LOOP
            EXECUTE format('GRANT USAGE ON SCHEMA %I TO owsync_replicator', s);
            EXECUTE format('ALTER PUBLICATION owsync_edge ADD TABLES IN SCHEMA %I', s);
        END LOOP;
        PERFORM owsync._grant_replicator(wanted);
        FOREACH s IN ARRAY ARRAY(SELECT unnest(published) EXCEPT SELECT unnest(wanted)) LOOP
            EXECUTE format('ALTER PUBLICATION owsync_edge DROP TABLES IN SCHEMA %I', s);
        END LOOP;
        -- claims of this edge for clients it does not have (unregistered,
        -- or a registration that failed after its claim) are released, and
        -- so are its contests of names it no longer has
        PERFORM owsync._hub_exec(format(
            'UPDATE owsync_fleet.client SET released_at = now()
              WHERE edge = %1$L AND released_at IS NULL AND NOT client = ANY (%2$L::text[]);
             UPDATE owsync_fleet.client SET contested_by = array_remove(contested_by, %1$L)
              WHERE %1$L = ANY (contested_by) AND NOT client = ANY (%2$L::text[])',
            e.edge, ARRAY(SELECT x.client FROM owsync.client x)));
        UPDATE owsync.edge SET contested = held_elsewhere, problem = NULL, last_tick = now();
        RETURN true;
    EXCEPTION WHEN OTHERS THEN
        IF strict THEN
            RAISE;
        END IF;
        GET STACKED DIAGNOSTICS why = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
        why := concat_ws(': ', why, nullif(btrim(det), ''));
        UPDATE owsync.edge SET problem = 'hub: ' || why;
        RAISE WARNING 'owsync edge %: the hub could not be brought up to date: %', e.edge, why;
        RETURN false;
    END;
END
$$;

-- Make a client's versions schema exist (it is published with its mirror),
-- and, while its runs keep versions, a versions table for each of its
-- mirror tables with every column of it.  A run makes these lazily; a table
-- it made would reach the hub only at the next tick's refresh of the
-- subscription, and an as-of restore from the hub meanwhile would miss its
-- rows.  Made here, before publication and at each tick, they are copied
-- with the rest (a drift's new table waits for the tick, like its mirror
-- table).
CREATE FUNCTION owsync._hub_versions(p_client text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    vs name := owsync._versions_schema(p_client);
    t record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = vs) THEN
        EXECUTE format('CREATE SCHEMA %I', vs);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM owsync.client c
                    WHERE c.client = p_client AND c.versions_from IS NOT NULL
                      AND (owsync._options(c.options) ->> 'versions_retention')::interval > interval '0') THEN
        RETURN;
    END IF;
    FOR t IN SELECT ct.table_name, ct.key_columns FROM owsync.client_table ct
              WHERE ct.client = p_client AND ct.removed_at IS NULL
                AND to_regclass(format('%I.%I', p_client, ct.table_name)) IS NOT NULL
              ORDER BY 1 LOOP
        PERFORM owsync._versions_table(p_client, t.table_name, t.key_columns);
    END LOOP;
END
$$;

-- SELECT on every table of the published schemas for owsync_replicator (the
-- hub's first copy of a table reads it as that role), where it lacks it.
CREATE FUNCTION owsync._grant_replicator(schemas name[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t regclass;
BEGIN
    FOR t IN SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = ANY (schemas) AND c.relkind = 'r'
                AND NOT has_table_privilege('owsync_replicator', c.oid, 'SELECT') LOOP
        EXECUTE format('GRANT SELECT ON %s TO owsync_replicator', t);
    END LOOP;
END
$$;

-- The fleet tick's second step, after the first committed: the hub's
-- subscription refreshed when its tables are not the publication's (new
-- tables are then copied, then streamed), finished re-seeds' stashes
-- dropped, and this edge's lag, slot and clients reported to the hub's
-- registry.  A slot the edge had to give up (WAL past
-- max_slot_wal_keep_size) is alerted once: NOTIFY owsync_alert.
CREATE FUNCTION owsync._fleet_report(reach_hub boolean) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e owsync.edge := owsync._edge();
    sub text := 'owsync_' || e.edge;
    slot record;
    local_tables text[];
    hub_tables text[];
    clients jsonb;
    apply_problem text;
    why text;
    det text;
BEGIN
    PERFORM owsync._require_admin();
    SELECT s.wal_status, pg_current_wal_lsn() AS lsn,
           pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn) AS lag_bytes,
           extract(epoch FROM r.replay_lag) AS lag_seconds
      INTO slot
      FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
     WHERE s.slot_name = sub;
    IF slot.wal_status = 'lost' AND NOT e.slot_lost_alerted THEN
        PERFORM pg_notify('owsync_alert', jsonb_build_object('event', 'slot_lost', 'edge', e.edge, 'slot', sub,
            'hint', 'CALL owsync.repair_hub() re-seeds this edge''s clients at the hub', 'at', now())::text);
        UPDATE owsync.edge SET slot_lost_alerted = true;
    END IF;
    IF e.hub IS NULL OR NOT reach_hub THEN
        RETURN;
    END IF;
    SELECT coalesce(jsonb_object_agg(x.client, jsonb_build_object('status', r.status, 'at', r.finished_at,
                                                                  'error', r.error)), '{}')
      INTO clients
      FROM owsync.client x
      LEFT JOIN LATERAL (SELECT * FROM owsync.run y WHERE y.client = x.client AND y.status IN ('succeeded', 'failed')
                          ORDER BY y.run_id DESC LIMIT 1) r ON true;
    BEGIN
        local_tables := ARRAY(SELECT schemaname || '.' || tablename FROM pg_publication_tables
                               WHERE pubname = 'owsync_edge' ORDER BY 1);
        hub_tables := ARRAY(SELECT jsonb_array_elements_text(owsync._hub_json(format(
            'SELECT coalesce(jsonb_agg(n.nspname || ''.'' || c.relname ORDER BY 1), ''[]'')
               FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
               JOIN pg_class c ON c.oid = r.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE s.subname = %L AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())',
            sub))) ORDER BY 1);
        IF local_tables IS DISTINCT FROM hub_tables AND slot.wal_status IS DISTINCT FROM 'lost'
           AND owsync._hub_subscription(sub) = 'enabled' THEN
            PERFORM owsync._hub_exec(format('ALTER SUBSCRIPTION %I REFRESH PUBLICATION', sub));
        END IF;
        apply_problem := owsync._hub_apply_problem(sub);
        PERFORM owsync._hub_exec(owsync._hub_drop_stashes_sql(e.edge) || format(
            'UPDATE owsync_fleet.edge SET last_seen = now(), wal_lsn = %2$L, lag_bytes = %3$L, lag_seconds = %4$L,
                    slot_status = %5$L, problem = %6$L, clients = %7$L
              WHERE edge = %1$L',
            e.edge, slot.lsn, slot.lag_bytes, slot.lag_seconds, coalesce(slot.wal_status, 'missing'),
            apply_problem, clients));
        UPDATE owsync.edge SET problem = apply_problem WHERE apply_problem IS NOT NULL;
        UPDATE owsync.edge SET last_tick = now();
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS why = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
        why := concat_ws(': ', why, nullif(btrim(det), ''));
        UPDATE owsync.edge SET problem = 'hub: ' || why;
        RAISE WARNING 'owsync edge %: could not report to the hub: %', e.edge, why;
    END;
END
$$;

-- The statement that drops the hub's stashes of an edge's re-seeds once
-- every table of the fresh copy has been copied (state r in
-- pg_subscription_rel).
CREATE FUNCTION owsync._hub_drop_stashes_sql(edge text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT format($sql$
DO $d$
DECLARE
    x record;
BEGIN
    FOR x IN SELECT stash FROM owsync_fleet.stash t
              WHERE t.edge = %L
                AND NOT EXISTS (SELECT 1 FROM pg_subscription_rel r JOIN pg_class c ON c.oid = r.srrelid
                                 WHERE c.relnamespace = to_regnamespace(t.schema_name) AND r.srsubstate <> 'r')
                AND EXISTS (SELECT 1 FROM pg_subscription_rel r JOIN pg_class c ON c.oid = r.srrelid
                             WHERE c.relnamespace = to_regnamespace(t.schema_name)) LOOP
        EXECUTE format('DROP SCHEMA %%I CASCADE', x.stash);
        DELETE FROM owsync_fleet.stash WHERE stash = x.stash;
    END LOOP;
END
$d$;
$sql$, edge)
$$;

-- Why the hub's subscription to this edge is not applying, or NULL when it
-- is.  PostgreSQL keeps an apply worker's error only in the server log: with
-- logging_collector on (and a role allowed to read it, as the superuser the
-- edge connects as is), the last error of this subscription's worker names
-- its table; otherwise the count of errors is what there is.
CREATE FUNCTION owsync._hub_apply_problem(sub text) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st jsonb;
    m text[];
BEGIN
    st := owsync._hub_json(format($q$
        SELECT jsonb_build_object(
                 'origin', 'pg_' || s.oid, 'enabled', s.subenabled,
                 'errors', coalesce(ss.apply_error_count, 0) + coalesce(ss.sync_error_count, 0),
                 'streaming', EXISTS (SELECT 1 FROM pg_stat_subscription st
                                       WHERE st.subid = s.oid AND st.relid IS NULL AND st.pid IS NOT NULL),
                 'log', (SELECT pg_read_file(f, greatest(0, (pg_stat_file(f)).size - 262144), 262144)
                           FROM pg_current_logfile() f
                          WHERE f IS NOT NULL AND (pg_has_role(current_user, 'pg_read_server_files', 'MEMBER')
                                                   OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))))
          FROM pg_subscription s LEFT JOIN pg_stat_subscription_stats ss ON ss.subid = s.oid
         WHERE s.subname = %L AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())$q$, sub));
    IF st IS NULL OR (st ->> 'streaming')::boolean OR NOT (st ->> 'enabled')::boolean
       OR (st ->> 'errors')::integer = 0 THEN
        RETURN NULL;
    END IF;
    -- the latest error of this subscription's apply worker
    SELECT x INTO m
      FROM regexp_matches(coalesce(st ->> 'log', ''),
               'ERROR:\s+([^\n]*)\n(?:[^\n]*DETAIL:\s+([^\n]*)\n)?[^\n]*CONTEXT:\s+processing remote data for '
               || 'replication origin "' || (st ->> 'origin') || '" during message type "(\w+)" for replication target '
               || 'relation "([^"]+)"', 'g') WITH ORDINALITY AS r(x, n)
     ORDER BY n DESC LIMIT 1;
    IF m IS NULL THEN
        RETURN format('the hub''s apply worker for this edge failed %s times (its server log says why)', st ->> 'errors');
    END IF;
    RETURN format('apply stopped on %s (%s): %s', m[4], m[3], concat_ws(' ', m[1], m[2]));
END
$$;

-- CALL owsync.fleet_tick(): bring the hub up to date with this edge (see
-- _fleet_converge and _fleet_report).  Run every minute by the pg_cron job
-- owsync-fleet; never an error for a hub that cannot be reached (it is
-- reported in owsync.edge_status).
CREATE PROCEDURE owsync.fleet_tick()
LANGUAGE plpgsql
AS $$
DECLARE
    reached boolean;
BEGIN
    reached := owsync._fleet_converge();
    COMMIT;
    PERFORM owsync._fleet_report(reached);
END
$$;

-- The hub's subscription to this edge dropped (not its slot: the hub is
-- told that it has none) and this edge's slot dropped; the publication
-- emptied, so that an attach starts each hub copy afresh.
CREATE FUNCTION owsync._unsubscribe() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e owsync.edge := owsync._edge();
    sub text := 'owsync_' || e.edge;
    s name;
    pid integer;
BEGIN
    PERFORM owsync._require_superuser('detach an edge from its hub');
    PERFORM owsync._hub_drop_subscription(sub);
    -- the walsender of the disabled subscription may not have noticed yet
    SELECT active_pid INTO pid FROM pg_replication_slots WHERE slot_name = sub;
    IF pid IS NOT NULL THEN
        PERFORM pg_terminate_backend(pid, 10000);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = sub) THEN
        PERFORM pg_drop_replication_slot(sub);
    END IF;
    FOREACH s IN ARRAY owsync._published() LOOP
        EXECUTE format('ALTER PUBLICATION owsync_edge DROP TABLES IN SCHEMA %I', s);
    END LOOP;
    UPDATE owsync.edge SET slot_lost_alerted = false;
END
$$;

-- CALL owsync.repair_hub(): after the hub lost this edge's slot (the edge
-- removed WAL the hub had not received: owsync.edge_status.slot_status
-- 'lost'), every copy of this edge at the hub is made again: subscription
-- and slot made anew, each hub copy stashed and copied afresh.
CREATE PROCEDURE owsync.repair_hub()
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM owsync._unsubscribe();
    COMMIT;
    CALL owsync.attach_hub();
END
$$;

-- CALL owsync.detach_hub(): this edge stops feeding its hub: the
-- subscription, the slot, the pg_cron job and the hub server go, its client
-- names are released at the hub; the hub's copies stay.
CREATE PROCEDURE owsync.detach_hub()
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM owsync._unsubscribe();
    COMMIT;
    PERFORM owsync._detach();
END
$$;

-- detach_hub's last step: names released at the hub, the job and the hub
-- server gone.
CREATE FUNCTION owsync._detach() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
    e owsync.edge := owsync._edge();
BEGIN
    PERFORM owsync._require_superuser('detach an edge from its hub');
    PERFORM owsync._hub_exec(format(
        'UPDATE owsync_fleet.client SET released_at = now() WHERE edge = %L AND released_at IS NULL;
         UPDATE owsync_fleet.edge SET problem = ''detached'' WHERE edge = %1$L', e.edge));
    PERFORM owsync._fleet_job(false);
    EXECUTE format('SELECT %I.dblink_disconnect(%L)', owsync._dblink_schema(), 'owsync_hub');
    DROP SERVER owsync_hub CASCADE;
    UPDATE owsync.edge SET hub = NULL, attached_at = NULL, problem = NULL, contested = '{}';
END
$$;

-- owsync.forget_edge(edge): a lost host's edge, from any other edge of the
-- hub: its subscription dropped at the hub (its slot went with the host), its
-- client names released, so that they can be restored and registered
-- elsewhere.  Its hub copies stay.
CREATE FUNCTION owsync.forget_edge(edge text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sub text := 'owsync_' || edge;
BEGIN
    PERFORM owsync._require_superuser('forget an edge');
    IF edge = (SELECT x.edge FROM owsync.edge x) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('edge %s is this server', edge),
            HINT = 'To stop this edge feeding the hub, CALL owsync.detach_hub().';
    END IF;
    IF owsync._hub_json(format('SELECT to_jsonb(count(*)) FROM owsync_fleet.edge WHERE edge = %L', edge))::integer = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('the hub knows no edge %s', edge);
    END IF;
    PERFORM owsync._hub_drop_subscription(sub);
    PERFORM owsync._hub_exec(format(
        'UPDATE owsync_fleet.client SET released_at = now() WHERE edge = %L AND released_at IS NULL;
         UPDATE owsync_fleet.edge SET forgotten_at = now() WHERE edge = %1$L', edge));
END
$$;

-- Drop schemas (those that exist) and what they hold, without a NOTICE for
-- each object.
CREATE FUNCTION owsync._drop_schemas_quietly(schemas name[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET client_min_messages = warning
AS $$
DECLARE
    s name;
BEGIN
    FOREACH s IN ARRAY schemas LOOP
        EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', s);
    END LOOP;
END
$$;

-- Restore a client from the hub's copy into target_path, on any edge of the
-- hub (the client need not be registered here): its tables read through
-- postgres_fdw in one snapshot of the hub, with the schema and journal mode
-- its edge captured last, through the same checks as owsync.restore().
-- options: {"register": true} registers the client here on the new file,
-- with the schedule and options it had on its edge (which must have
-- released the name: unregistered there, or forgotten), and with its
-- history (owsync._adopt_history); {"as_of": "<time>"}
-- or {"run_id": <run>} restores it as it stood after that run, like
-- owsync.restore() does, from the hub's copies of its mirror and versions
-- and of its edge's catalog (runs, versions_from, captured schemas).
CREATE FUNCTION owsync._restore_from_hub(p_client text, p_target text, p_overwrite boolean, p_options jsonb)
RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    src text;
    stage name := ('owsync_' || p_client || '_hub')::name;
    vstage name := ('owsync_' || p_client || '_hubv')::name;
    cat name := ('owsync_' || p_client || '_hubcat')::name;
    captured jsonb;
    jm text;
    quarantined bigint;
    plan record;
    missing text;
    rels regclass[];
    t0 timestamptz := clock_timestamp();
    report jsonb;
    reg jsonb;
    register boolean;
    opt record;
    past record;		-- as of a past run: owsync._as_of_window()
BEGIN
    PERFORM owsync._require_admin();
    PERFORM owsync._check_client_name(p_client);
    SELECT * INTO opt FROM owsync._restore_options(p_options, 'register');
    register := opt.flag_value;
    IF register AND (opt.as_of IS NOT NULL OR opt.run_id IS NOT NULL) THEN
        RAISE EXCEPTION USING ERRCODE = 'feature_not_supported',
            MESSAGE = 'a client registered from the hub is restored as it is now',
            DETAIL = 'Its kept versions go with it, and they lead to its latest state.',
            HINT = 'Restore it as of that moment without "register", then register the file with owsync.register_client().';
    END IF;
    src := owsync._hub_source_edge(p_client, register);
    PERFORM owsync._drop_schemas_quietly(ARRAY[stage, vstage, cat]);
    PERFORM owsync._hub_stage(p_client, src, stage, cat);
    EXECUTE format('SELECT to_jsonb(c) FROM %I.client c WHERE client = $1', cat) INTO reg USING p_client;
    SELECT NULL::bigint AS run_id INTO past;
    IF opt.as_of IS NOT NULL OR opt.run_id IS NOT NULL THEN
        past := owsync._as_of_window(p_client, opt.as_of, opt.run_id, (reg ->> 'versions_from')::bigint,
                                     coalesce(reg -> 'options', '{}'), format('%I.run', cat)::regclass);
        PERFORM owsync._hub_versions_stage(p_client, vstage);
        EXECUTE format('SELECT s.ddl FROM %1$I.source_schema s
                         WHERE s.schema_id = (SELECT r.source_schema_id FROM %1$I.run r WHERE r.run_id = $1)', cat)
          INTO captured USING past.run_id;
    ELSE
        EXECUTE format('SELECT ddl FROM %I.source_schema WHERE client = $1 ORDER BY schema_id DESC LIMIT 1', cat)
          INTO captured USING p_client;
    END IF;
    EXECUTE format('SELECT journal_mode FROM %I.run WHERE client = $1 AND journal_mode IS NOT NULL
                       AND run_id <= coalesce($2, run_id)
                     ORDER BY run_id DESC LIMIT 1', cat) INTO jm USING p_client, past.run_id;
    EXECUTE format('SELECT count(*) FROM %I.quarantine WHERE client = $1', cat) INTO quarantined USING p_client;
    IF captured IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('the hub has no captured schema of client %L', p_client),
            DETAIL = format('Edge %s''s catalog copy at the hub holds none%s.', src,
                            CASE WHEN past.run_id IS NULL THEN '' ELSE format(' for run %s', past.run_id) END);
    END IF;
    IF quarantined > 0 AND past.run_id IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('client %L has %s quarantined rows, which its copy does not hold', p_client, quarantined),
            DETAIL = 'A restore from the copy would lose them.',
            HINT = format('Fix the rows at the source on edge %s and sync.', src);
    END IF;
    plan := owsync._replay_plan(captured);
    SELECT string_agg(t, ', ') INTO missing FROM unnest(plan.tabs) t
     WHERE to_regclass(format('%I.%I', stage, CASE WHEN past.run_id IS NULL THEN t
                                                   ELSE owsync._as_of_table(stage, t, past.run_id) END)) IS NULL;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('the hub''s copy of client %L has no table %s', p_client, missing),
            HINT = 'Wait for the hub to catch up with the edge (owsync_fleet.fleet at the hub), then try again.';
    END IF;
    rels := CASE WHEN past.run_id IS NULL
                 THEN ARRAY(SELECT format('%I.%I', stage, t)::regclass FROM unnest(plan.tabs) WITH ORDINALITY u(t, o) ORDER BY o)
                 ELSE owsync._as_of_views(stage, vstage, plan.tabs, past.run_id,
                                          owsync._hub_keys(p_client, stage, plan.tabs, past.run_id)) END;
    report := owsync._write_report(p_target, p_overwrite, format('restore of %s from the hub', p_client),
                                   plan.ddl, plan.labels, plan.tabs, rels,
                                   CASE WHEN coalesce(jm, 'wal') = 'wal' THEN 'wal' ELSE 'delete' END, true)
              || jsonb_build_object('left_out_tables', owsync._left_out_tables(stage, plan.tabs));
    IF past.run_id IS NOT NULL THEN
        PERFORM owsync._drop_as_of_views(rels);
        report := report || owsync._as_of_report(opt.as_of, past.run_id, past.finished_at, past.exact_at,
                                                 past.granularity);
    END IF;
    IF register THEN
        PERFORM owsync.register_client(p_client, p_target, coalesce(reg ->> 'schedule', 'manual'),
                                       coalesce(reg -> 'options', '{}'));
        report := report || jsonb_build_object('history', owsync._adopt_history(p_client, stage, vstage, cat,
                                                                                 (reg ->> 'versions_from')::bigint));
    END IF;
    PERFORM owsync._drop_schemas_quietly(ARRAY[stage, vstage, cat]);
    RETURN jsonb_build_object('client', p_client, 'from_edge', src, 'registered', register,
                              'seconds', round(extract(epoch FROM clock_timestamp() - t0)::numeric, 3)) || report;
END
$$;

-- The edge whose copy of a client the hub holds (the one that claimed its
-- name last), for a restore from the hub: an error when the hub holds none,
-- or, to register the client here, when another edge still holds the name.
CREATE FUNCTION owsync._hub_source_edge(p_client text, register boolean) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    claim jsonb := owsync._hub_json(format('SELECT to_jsonb(c) FROM owsync_fleet.client c WHERE client = %L', p_client));
    src text := claim ->> 'edge';
BEGIN
    IF src IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_object',
            MESSAGE = format('the hub holds no copy of client %L', p_client);
    END IF;
    IF register AND claim ->> 'released_at' IS NULL AND src <> (SELECT edge FROM owsync.edge) THEN
        RAISE EXCEPTION USING ERRCODE = 'duplicate_object',
            MESSAGE = format('client %L is registered on edge %s', p_client, src),
            HINT = format('Unregister it on edge %s first (or, if that host is lost, SELECT owsync.forget_edge(%L)).', src, src);
    END IF;
    RETURN src;
END
$$;

-- The hub's copy of a client's mirror imported into schema stage, and of
-- its edge's catalog (the tables a restore reads) into schema cat (both
-- made here).
CREATE FUNCTION owsync._hub_stage(p_client text, src text, stage name, cat name) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('CREATE SCHEMA %I', stage);
    EXECUTE format('CREATE SCHEMA %I', cat);
    EXECUTE format('IMPORT FOREIGN SCHEMA %I FROM SERVER owsync_hub INTO %I', p_client, stage);
    EXECUTE format('IMPORT FOREIGN SCHEMA %I LIMIT TO (client, source_schema, run, quarantine) FROM SERVER owsync_hub INTO %I',
                   owsync._edge_schema(src), cat);
END
$$;

-- A client just registered here from the hub's copy (restore_from_hub's
-- register) keeps its history: the hub's copies of its kept versions, of
-- its runs from versions_from on and of the schemas they captured come into
-- this edge's versions schema and catalog, and versions_from goes back to
-- the former edge's (p_versions_from; later when runs of the window have
-- ids taken here: runs from before the former edge's attach), so that an
-- as-of restore to before the move works here, and from the hub once this
-- edge has published them.
-- The mirror here was loaded from the file restored from the hub's mirror
-- in the same snapshot as the versions read, so they lead to its state.
-- Mirror tables the former edge retired (<table>_before_<run>) come too, as
-- plain tables: a restore to before their retirement reads them.  Run ids
-- keep their order only when the former edge's are below this edge's
-- (edge_no order): otherwise nothing is copied, and the report says why.
-- The registration's captured schema stays the client's newest.  Returns
-- what was copied.
CREATE FUNCTION owsync._adopt_history(p_client text, stage name, vstage name, cat name, p_versions_from bigint)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    reg_run bigint := (SELECT c.versions_from FROM owsync.client c WHERE c.client = p_client);
    vfrom bigint;			-- the oldest run whose state can be given back here
    newest bigint;
    runs bigint;
    kept jsonb;
BEGIN
    IF p_versions_from IS NULL OR reg_run IS NULL THEN
        RETURN jsonb_build_object('kept', false, 'why', 'the client kept no versions');
    END IF;
    EXECUTE format('SELECT max(run_id) FROM %I.run WHERE client = $1', cat) INTO newest USING p_client;
    IF newest >= reg_run THEN
        RAISE WARNING 'owsync %: its history is not kept here: its former edge''s run ids (up to %) are above this edge''s (%)',
            p_client, newest, reg_run
            USING HINT = 'Run ids keep their order when a client moves to an edge attached after its former one.';
        RETURN jsonb_build_object('kept', false, 'why', format('its former edge''s run ids (up to %s) are above this edge''s (%s)',
                                                                newest, reg_run));
    END IF;
    -- runs from before the former edge was attached have ids another edge
    -- may use too: the window starts after the last of them that is taken here
    EXECUTE format('SELECT min(r.run_id) FROM %1$I.run r
                     WHERE r.client = $1 AND r.status = %2$L AND r.run_id >= $2
                       AND NOT EXISTS (SELECT 1 FROM %1$I.run x JOIN owsync.run l ON l.run_id = x.run_id
                                        WHERE x.client = $1 AND x.run_id >= r.run_id)', cat, 'succeeded')
      INTO vfrom USING p_client, p_versions_from;
    IF vfrom IS NULL THEN
        RETURN jsonb_build_object('kept', false, 'why', 'its former edge''s run ids are taken here');
    END IF;
    BEGIN
        PERFORM owsync._hub_versions_stage(p_client, vstage);
    EXCEPTION WHEN object_not_in_prerequisite_state THEN
        RETURN jsonb_build_object('kept', false, 'why', 'the hub holds no versions of the client');
    END;

    runs := owsync._adopt_runs(p_client, cat, vfrom, reg_run);
    kept := owsync._adopt_versions(p_client, stage, vstage, vfrom);
    UPDATE owsync.client c SET versions_from = vfrom WHERE c.client = p_client;
    RETURN jsonb_build_object('kept', true, 'versions_from', vfrom, 'runs', runs) || kept;
END
$$;

-- _adopt_history's runs: the hub's copies of a client's runs from vfrom on
-- (the columns both catalogs have) and of the schemas they captured, in
-- their order, then the registration's (run reg_run) again as the newest.
-- Returns the runs copied.
CREATE FUNCTION owsync._adopt_runs(p_client text, cat name, vfrom bigint, reg_run bigint) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    map jsonb := '{}';
    s record;
    sid bigint;
    cols text;
    runs bigint;
BEGIN
    FOR s IN EXECUTE format('SELECT x.schema_id, x.captured_at, x.schema_version, x.ddl FROM %I.source_schema x
                              WHERE x.schema_id IN (SELECT r.source_schema_id FROM %1$I.run r
                                                     WHERE r.client = $1 AND r.run_id >= $2)
                              ORDER BY x.schema_id', cat) USING p_client, vfrom LOOP
        INSERT INTO owsync.source_schema (client, captured_at, schema_version, ddl)
        VALUES (p_client, s.captured_at, s.schema_version, s.ddl) RETURNING schema_id INTO sid;
        map := map || jsonb_build_object(s.schema_id::text, sid);
    END LOOP;
    FOR s IN SELECT x.* FROM owsync.source_schema x
              WHERE x.schema_id IN (SELECT r.source_schema_id FROM owsync.run r WHERE r.run_id = reg_run) LOOP
        INSERT INTO owsync.source_schema (client, captured_at, schema_version, ddl)
        VALUES (p_client, s.captured_at, s.schema_version, s.ddl) RETURNING schema_id INTO sid;
        UPDATE owsync.run SET source_schema_id = sid WHERE source_schema_id = s.schema_id;
        DELETE FROM owsync.source_schema WHERE schema_id = s.schema_id;
    END LOOP;
    -- the runs (the columns both catalogs have)
    SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum) INTO cols
      FROM pg_attribute a
     WHERE a.attrelid = 'owsync.run'::regclass AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname <> 'source_schema_id'
       AND EXISTS (SELECT 1 FROM pg_attribute x WHERE x.attrelid = format('%I.run', cat)::regclass
                                                  AND x.attname = a.attname AND NOT x.attisdropped);
    EXECUTE format('INSERT INTO owsync.run (%1$s, source_schema_id) OVERRIDING SYSTEM VALUE
                    SELECT %1$s, ($3 ->> source_schema_id::text)::bigint FROM %2$I.run
                     WHERE client = $1 AND run_id >= $2', cols, cat)
      USING p_client, vfrom, map;
    GET DIAGNOSTICS runs = ROW_COUNT;
    RETURN runs;
END
$$;

-- _adopt_history's versions: the hub's copies of a client's kept versions
-- of runs after vfrom, into its versions tables here, and the mirror tables
-- its former edge retired, as plain tables with their keys.  Returns the
-- rows copied and the retired tables.
CREATE FUNCTION owsync._adopt_versions(p_client text, stage name, vstage name, vfrom bigint) RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    shapes jsonb := owsync._hub_json(owsync._table_shapes_sql(ARRAY[p_client::name]));
    t record;
    k text[];
    v text;
    cols text;
    rows bigint := 0;
    n bigint;
    retired text[] := '{}';
BEGIN
    FOR t IN SELECT c.relname FROM pg_class c
              WHERE c.relnamespace = stage::regnamespace AND c.relname ~ '_before_[0-9]+$'
                AND to_regclass(format('%I.%I', p_client, c.relname)) IS NULL ORDER BY 1 LOOP
        k := ARRAY(SELECT jsonb_array_elements_text(CASE WHEN jsonb_typeof(shapes -> (p_client || '.' || t.relname) -> 'key') = 'array'
                                                         THEN shapes -> (p_client || '.' || t.relname) -> 'key' ELSE '[]' END));
        EXECUTE format('CREATE TABLE %I.%I AS SELECT * FROM %I.%I', p_client, t.relname, stage, t.relname);
        IF cardinality(k) > 0 THEN
            EXECUTE format('ALTER TABLE %I.%I ADD PRIMARY KEY (%s)', p_client, t.relname,
                           (SELECT string_agg(format('%I', x), ', ') FROM unnest(k) x));
        END IF;
        retired := retired || t.relname::text;
    END LOOP;
    FOR t IN SELECT c.relname FROM pg_class c
              WHERE c.relnamespace = vstage::regnamespace
                AND to_regclass(format('%I.%I', p_client, c.relname)) IS NOT NULL ORDER BY 1 LOOP
        k := coalesce((SELECT ct.key_columns FROM owsync.client_table ct WHERE ct.client = p_client AND ct.table_name = t.relname),
                      owsync._primary_key(format('%I.%I', p_client, t.relname)::regclass));
        v := owsync._versions_table(p_client, t.relname, k);
        SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum) INTO cols
          FROM pg_attribute a
         WHERE a.attrelid = v::regclass AND a.attnum > 0 AND NOT a.attisdropped
           AND EXISTS (SELECT 1 FROM pg_attribute x WHERE x.attrelid = format('%I.%I', vstage, t.relname)::regclass
                                                      AND x.attname = a.attname AND NOT x.attisdropped);
        EXECUTE format('INSERT INTO %s (%s) SELECT %2$s FROM %I.%I WHERE owsync_run > $1', v, cols, vstage, t.relname)
          USING vfrom;
        GET DIAGNOSTICS n = ROW_COUNT;
        rows := rows + n;
    END LOOP;
    RETURN jsonb_build_object('versions', rows, 'retired_tables', retired);
END
$$;

-- The hub's copy of a client's versions schema imported into schema stage
-- (made here); an error when the hub holds none.
CREATE FUNCTION owsync._hub_versions_stage(p_client text, stage name) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT owsync._hub_json(format('SELECT to_jsonb(EXISTS (SELECT FROM pg_namespace WHERE nspname = %L))',
                                   owsync._versions_schema(p_client)))::boolean THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('the hub holds no versions of client %L', p_client),
            HINT = 'Its edge publishes them at its next fleet tick (job owsync-fleet).';
    END IF;
    EXECUTE format('CREATE SCHEMA %I', stage);
    EXECUTE format('IMPORT FOREIGN SCHEMA %I FROM SERVER owsync_hub INTO %I', owsync._versions_schema(p_client), stage);
END
$$;

-- The keys of the hub's mirror tables that an as-of restore to run p_run
-- reads for tabs (see owsync._as_of_table), in that order, as
-- owsync._as_of_views() takes them: foreign tables have no primary key, the
-- hub's tables have the edge's.
CREATE FUNCTION owsync._hub_keys(p_client text, stage name, tabs text[], p_run bigint) RETURNS jsonb
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(jsonb_agg(CASE WHEN jsonb_typeof(k.key) = 'array' THEN k.key ELSE '[]' END ORDER BY u.o), '[]')
      FROM (SELECT owsync._hub_json(owsync._table_shapes_sql(ARRAY[p_client::name])) AS shapes) s
     CROSS JOIN unnest(tabs) WITH ORDINALITY u(t, o)
     CROSS JOIN LATERAL (SELECT s.shapes -> (p_client || '.' || owsync._as_of_table(stage, u.t, p_run)) -> 'key' AS key) k
$$;

-- CALL owsync.restore_from_hub(client, target_path [, overwrite, options]):
-- see owsync._restore_from_hub().
CREATE PROCEDURE owsync.restore_from_hub(client text, target_path text, overwrite boolean DEFAULT false,
                                         options jsonb DEFAULT '{}', INOUT report jsonb DEFAULT NULL)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    report := owsync._restore_from_hub(client, target_path, overwrite, options);
END
$$;

-- This edge as it feeds its hub: one line.
CREATE VIEW owsync.edge_status AS
SELECT e.edge, e.hub, e.attached_at, s.slot_name AS slot, s.wal_status AS slot_status,
       pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint AS lag_bytes,
       round(extract(epoch FROM r.replay_lag)::numeric, 1) AS lag_s,
       e.last_tick, cardinality(owsync._published()) AS schemas_published,
       CASE WHEN s.wal_status = 'lost'
              THEN 'the slot is lost (WAL the hub had not received was removed): CALL owsync.repair_hub()'
            WHEN e.hub IS NOT NULL AND s.slot_name IS NULL THEN 'no replication slot: CALL owsync.attach_hub()'
            WHEN cardinality(e.contested) > 0
              THEN format('names held by other edges, not published: %s', array_to_string(e.contested, ', '))
            ELSE e.problem END AS problem
  FROM owsync.edge e
  LEFT JOIN pg_replication_slots s ON s.slot_name = 'owsync_' || e.edge
  LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid;
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
    owsync._restore_from_hub(text, text, boolean, jsonb) TO owsync_admin;
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
