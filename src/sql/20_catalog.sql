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
										-- path's window, [watermark - overlap, ...); of
										-- the stored digests for a table without updated_at
    window_updated   bigint[],			-- those rows' updated_at and digests (NULL: more
    window_digests   bigint[],			-- than 4,096 rows, or not known), 44_sync_table.sql
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
