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
-- between their steps; they also commit between the batches in which an
-- edge's clients are published (_fleet_converge), so that no transaction
-- holds locks on more than a batch's new tables.

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
-- scheduled or removed, and pg_cron's scheduler told to reload its jobs
-- once this transaction commits (see _cron_match: the setup around it makes
-- more catalog changes than its invalidation would survive); nothing without
-- pg_cron (the tick is then called by hand or by another scheduler).
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
    PERFORM owsync._reload_cron_at_commit();
END
$$;

-- CALL owsync.attach_hub(hub, edge_conninfo): this edge feeds the hub from
-- now on.  hub: a libpq connection string to the hub's database, as a role
-- that may create schemas and subscriptions there; edge_conninfo: how the
-- hub reaches this database (host, port, dbname: the subscription connects
-- as owsync_replicator with a password made here).  With both NULL, the hub
-- and the address known are kept (owsync.repair_hub() does so).  Each step
-- commits, and the clients are published in batches (_fleet_converge), so
-- an edge of any number of clients attaches within the default lock table;
-- after a failure or a crash part way, calling it again goes on from what
-- the committed steps left.
CREATE PROCEDURE owsync.attach_hub(hub text DEFAULT NULL, edge_conninfo text DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    pw text;
BEGIN
    pw := owsync._attach_prepare(hub, edge_conninfo);
    COMMIT;
    -- the clients published in batches, each committed (see _fleet_converge)
    WHILE owsync._fleet_converge(true) = 'more' LOOP
        COMMIT;
    END LOOP;
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

-- The fleet tick's first step, one batch of it: the publication made to
-- hold what the hub should have, table by table.  Client names are claimed
-- at the hub (a name another edge holds is noted in owsync.edge.contested,
-- and at the hub, and not published); a schema newly published gets a
-- fresh hub copy (the former one stashed); the hub's tables and readers
-- made to match, then the tables not yet in the publication added to it
-- (those of the schemas newly published, and those made since in the
-- schemas published: a drift's new mirror table, a new versions table; the
-- hub's refresh of its subscription then copies them); tables of clients
-- no longer registered leave the publication and their names are released
-- (their hub copies stay).  A table dropped here leaves the publication
-- with it; one renamed stays in it.
-- A publication that still lists schemas is first made to list their
-- tables (_publish_by_table), a batch per call.  Clients with tables not
-- yet in the publication, or versions tables not yet made, are taken a
-- batch at a time (_fleet_batch_clients): a call that leaves some for a
-- later one returns 'more' once it has published its batch (only the
-- batch's schemas are then caught up at the hub, before the new tables
-- here commit), and the caller commits and calls again; the call that
-- finds none left does the rest, over every client, and returns 'done'
-- (or 'more' when the tables it drops from the publication would pass
-- _fleet_batch()).  So an edge of hundreds of new clients never holds more
-- locks in one transaction than a batch takes.  Each batch commits on its
-- own: after a crash between batches, the clients of the committed ones
-- are published with their hub copies made; the interrupted batch may have
-- claimed names, stashed hub copies and made hub tables (the hub commits
-- each step as it goes) without its publication here, and the next call
-- takes it again: the claim holds, the half-made copy is stashed in turn,
-- and the copy is made afresh.
-- Returns 'unreached' when the hub could not be reached (the reason in
-- owsync.edge.problem).  With strict (attach_hub), an error is raised
-- instead.
CREATE FUNCTION owsync._fleet_converge(strict boolean DEFAULT false) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e owsync.edge := owsync._edge();
    published name[];
    b record;
    wanted name[];
    scope name[];
    c record;
    s name;
    added integer;
    gone regclass[];
    why text;
    det text;
BEGIN
    PERFORM owsync._require_admin();
    IF e.hub IS NULL THEN
        RETURN 'unreached';
    END IF;
    BEGIN
        IF owsync._publish_by_table() THEN
            RETURN 'more';
        END IF;
        published := owsync._published();
        SELECT * INTO b FROM owsync._fleet_batch_clients(e.edge, published);
        wanted := ARRAY[owsync._edge_schema(e.edge)];
        IF NOT b.more THEN
            -- every client claimed here before or in this batch
            FOR c IN SELECT x.client FROM owsync.client x WHERE NOT x.client = ANY (b.held) ORDER BY 1 LOOP
                PERFORM owsync._hub_versions(c.client);
                wanted := wanted || owsync._hub_schemas(c.client);
            END LOOP;
        END IF;
        IF cardinality(b.fresh) > 0 THEN
            PERFORM owsync._hub_exec(owsync._hub_stash_sql(b.fresh, e.edge));
        END IF;
        scope := CASE WHEN b.more THEN b.taken ELSE wanted END;
        PERFORM owsync._hub_catch_up(scope);
        FOREACH s IN ARRAY b.fresh LOOP
            EXECUTE format('GRANT USAGE ON SCHEMA %I TO owsync_replicator', s);
        END LOOP;
        PERFORM owsync._grant_replicator(scope);
        added := owsync._publish_tables(scope);
        IF b.more THEN
            RETURN 'more';
        END IF;
        -- the tables of schemas no longer wanted, a batch at a time
        gone := ARRAY(SELECT k.oid::regclass FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace
                       WHERE k.oid IN (SELECT owsync._publication_tables()) AND NOT n.nspname = ANY (wanted)
                       ORDER BY 1 LIMIT greatest(owsync._fleet_batch() - added, 0) + 1);
        IF cardinality(gone) > owsync._fleet_batch() - added THEN
            IF owsync._fleet_batch() - added > 0 THEN
                EXECUTE format('ALTER PUBLICATION owsync_edge DROP TABLE %s',
                               array_to_string(gone[1:owsync._fleet_batch() - added]::text[], ', '));
            END IF;
            RETURN 'more';
        ELSIF cardinality(gone) > 0 THEN
            EXECUTE format('ALTER PUBLICATION owsync_edge DROP TABLE %s', array_to_string(gone::text[], ', '));
        END IF;
        -- claims of this edge for clients it does not have (unregistered,
        -- or a registration that failed after its claim) are released, and
        -- so are its contests of names it no longer has
        PERFORM owsync._hub_exec(format(
            'UPDATE owsync_fleet.client SET released_at = now()
              WHERE edge = %1$L AND released_at IS NULL AND NOT client = ANY (%2$L::text[]);
             UPDATE owsync_fleet.client SET contested_by = array_remove(contested_by, %1$L)
              WHERE %1$L = ANY (contested_by) AND NOT client = ANY (%2$L::text[])',
            e.edge, ARRAY(SELECT x.client FROM owsync.client x)));
        UPDATE owsync.edge SET contested = b.held, problem = NULL, last_tick = now();
        RETURN 'done';
    EXCEPTION WHEN OTHERS THEN
        IF strict THEN
            RAISE;
        END IF;
        GET STACKED DIAGNOSTICS why = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
        why := concat_ws(': ', why, nullif(btrim(det), ''));
        UPDATE owsync.edge SET problem = 'hub: ' || why;
        RAISE WARNING 'owsync edge %: the hub could not be brought up to date: %', e.edge, why;
        RETURN 'unreached';
    END;
END
$$;

-- The persistent tables (the ones logical replication carries) of some
-- schemas that are not in this edge's publication, with their schemas: one
-- pass over pg_class.
CREATE FUNCTION owsync._unpublished(schemas name[], OUT schema_name name, OUT rel regclass)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT n.nspname, c.oid::regclass
      FROM pg_namespace n
      JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind = 'r' AND c.relpersistence = 'p'
     WHERE n.nspname = ANY (schemas)
       AND NOT c.oid IN (SELECT owsync._publication_tables())
$$;

-- Add to this edge's publication the tables of some schemas that are not
-- in it yet, in one statement (it locks each).  Returns how many.
CREATE FUNCTION owsync._publish_tables(schemas name[]) RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tables regclass[] := ARRAY(SELECT u.rel FROM owsync._unpublished(schemas) u ORDER BY 1);
BEGIN
    IF cardinality(tables) > 0 THEN
        EXECUTE format('ALTER PUBLICATION owsync_edge ADD TABLE %s', array_to_string(tables::text[], ', '));
    END IF;
    RETURN cardinality(tables);
END
$$;

-- A publication that lists schemas (as an edge made by an earlier version
-- has it) made to list their tables instead, schema by schema: in one
-- statement its tables are added and in the next the schema is dropped, in
-- one transaction, so that the publication's tables never change and the
-- hub copies nothing again.  Done here, a batch of schemas of at most
-- _fleet_batch() tables a call (at least one schema), rather than in the
-- upgrade: the upgrade is one transaction, and adding a table to a
-- publication locks it until commit, which an edge of hundreds of clients'
-- tables would not fit in the lock table.  Returns whether it changed
-- anything (the caller commits and calls again until it does not).
CREATE FUNCTION owsync._publish_by_table() RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s record;
    size integer := 0;
BEGIN
    FOR s IN SELECT n.nspname,
                    coalesce(array_agg(c.oid::regclass ORDER BY c.relname)
                               FILTER (WHERE c.oid IS NOT NULL
                                         AND NOT EXISTS (SELECT 1 FROM pg_publication_rel r
                                                          WHERE r.prpubid = p.oid AND r.prrelid = c.oid)),
                             '{}') AS tables
               FROM pg_publication p
               JOIN pg_publication_namespace pn ON pn.pnpubid = p.oid
               JOIN pg_namespace n ON n.oid = pn.pnnspid
               LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind = 'r' AND c.relpersistence = 'p'
              WHERE p.pubname = 'owsync_edge'
              GROUP BY n.nspname
              ORDER BY n.nspname LOOP
        EXIT WHEN size > 0 AND size + cardinality(s.tables) > owsync._fleet_batch();
        IF cardinality(s.tables) > 0 THEN
            EXECUTE format('ALTER PUBLICATION owsync_edge ADD TABLE %s', array_to_string(s.tables::text[], ', '));
        END IF;
        EXECUTE format('ALTER PUBLICATION owsync_edge DROP TABLES IN SCHEMA %I', s.nspname);
        size := size + greatest(cardinality(s.tables), 1);
    END LOOP;
    RETURN size > 0;
END
$$;

-- _fleet_converge's batch: in name order, the clients with tables not yet
-- in the publication (in a schema of theirs, _hub_schemas, newly published
-- or made since it was) or versions tables not yet made
-- (_hub_versions_missing), while those tables add up to at most
-- _fleet_batch() (at least one client is taken): each claimed at the hub
-- unless its mirror is published already (a name another edge holds is
-- noted there, left out, and counts nothing), then its versions tables
-- made.  Returns the schemas newly published (with this edge's catalog
-- copy while it is not), the schemas of the clients taken (with those newly
-- published: their tables at the hub are made before this transaction
-- commits, and then added to the publication), the names other edges hold,
-- and whether clients are left for a later batch (held is then not
-- complete).
CREATE FUNCTION owsync._fleet_batch_clients(edge text, published name[],
                                            OUT fresh name[], OUT taken name[], OUT held text[], OUT more boolean)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    size integer;
    c record;
BEGIN
    fresh := ARRAY(SELECT owsync._edge_schema(edge) EXCEPT SELECT unnest(published));
    size := (SELECT count(*) FROM owsync._unpublished(ARRAY[owsync._edge_schema(edge)]));
    taken := CASE WHEN size > 0 THEN ARRAY[owsync._edge_schema(edge)] ELSE fresh END;
    held := '{}';
    more := false;
    -- the tables of each client's schemas that are not in the publication
    -- (counted once, by schema: not again for each client)
    FOR c IN WITH u AS MATERIALIZED (SELECT t.schema_name, count(*)::integer AS n
                          FROM owsync._unpublished(ARRAY(SELECT unnest(owsync._hub_schemas(x.client)) FROM owsync.client x)) t
                         GROUP BY 1)
             SELECT y.client, y.claimed, y.schemas, y.tables + y.missing AS size
               FROM (SELECT x.client, (owsync.client_names(x.client)).mirror_schema = ANY (published) AS claimed,
                            ARRAY(SELECT unnest(owsync._hub_schemas(x.client)) EXCEPT SELECT unnest(published)) AS schemas,
                            coalesce((SELECT sum(u.n) FROM u WHERE u.schema_name = ANY (owsync._hub_schemas(x.client))), 0)::integer
                              AS tables,
                            coalesce(m.missing, 0) AS missing
                       FROM owsync.client x LEFT JOIN owsync._hub_versions_missing() m ON m.client = x.client) y
              WHERE cardinality(y.schemas) + y.tables + y.missing > 0
              ORDER BY 1 LOOP
        IF size > 0 AND size + c.size > owsync._fleet_batch() THEN
            more := true;
            RETURN;
        END IF;
        IF NOT c.claimed AND owsync._hub_claim(c.client) IS NOT NULL THEN
            held := held || c.client;
            PERFORM owsync._hub_exec(format(
                'UPDATE owsync_fleet.client SET contested_by = array_append(contested_by, %L)
                  WHERE client = %L AND NOT %1$L = ANY (contested_by)', edge, c.client));
            CONTINUE;
        END IF;
        PERFORM owsync._hub_versions(c.client);
        fresh := fresh || c.schemas;
        taken := taken || owsync._hub_schemas(c.client);
        size := size + c.size;
    END LOOP;
END
$$;

-- The clients whose runs keep versions and that have mirror tables without
-- a versions table yet (the tables _hub_versions makes), with how many.
CREATE FUNCTION owsync._hub_versions_missing(OUT client text, OUT missing integer)
RETURNS SETOF record
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT ct.client, count(*)::integer
      FROM owsync.client x
      JOIN owsync.client_table ct ON ct.client = x.client AND ct.removed_at IS NULL
     WHERE x.versions_from IS NOT NULL
       AND (owsync._options(x.options) ->> 'versions_retention')::interval > interval '0'
       AND to_regclass(format('%I.%I', x.client, ct.table_name)) IS NOT NULL
       AND to_regclass(format('%I.%I', owsync._versions_schema(x.client), ct.table_name)) IS NULL
     GROUP BY ct.client
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
        local_tables := ARRAY(SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                               WHERE c.oid IN (SELECT owsync._publication_tables())
                               ORDER BY 1);
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
        PERFORM owsync._hub_drop_stashes(e.edge);
        PERFORM owsync._hub_exec(format(
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

-- The hub's stashes of an edge's re-seeds whose fresh copy is complete
-- (every table of it copied: state r in pg_subscription_rel), as a query at
-- the hub: each stash and the tables it holds.
CREATE FUNCTION owsync._hub_done_stashes_sql(edge text) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT format($sql$
SELECT t.stash, (SELECT count(*) FROM pg_class c WHERE c.relnamespace = to_regnamespace(t.stash) AND c.relkind = 'r') AS tables
  FROM owsync_fleet.stash t
 WHERE t.edge = %L
   AND NOT EXISTS (SELECT 1 FROM pg_subscription_rel r JOIN pg_class c ON c.oid = r.srrelid
                    WHERE c.relnamespace = to_regnamespace(t.schema_name) AND r.srsubstate <> 'r')
   AND EXISTS (SELECT 1 FROM pg_subscription_rel r JOIN pg_class c ON c.oid = r.srrelid
                WHERE c.relnamespace = to_regnamespace(t.schema_name))
$sql$, edge)
$$;

-- The statement that drops some of the hub's stashes of an edge's re-seeds,
-- those of them whose fresh copy is complete as it runs.
CREATE FUNCTION owsync._hub_drop_stashes_sql(edge text, stashes text[]) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
SELECT format($sql$
DO $d$
DECLARE
    x record;
BEGIN
    FOR x IN SELECT d.stash FROM (%s) d WHERE d.stash = ANY (%L::text[]) LOOP
        EXECUTE format('DROP SCHEMA %%I CASCADE', x.stash);
        DELETE FROM owsync_fleet.stash WHERE stash = x.stash;
    END LOOP;
END
$d$;
$sql$, owsync._hub_done_stashes_sql(edge), stashes)
$$;

-- Drop the hub's stashes of this edge's re-seeds whose fresh copy is
-- complete, in transactions at the hub that each drop at most
-- _fleet_batch() tables (a stash holding more goes alone): a transaction
-- locks every relation it drops.
CREATE FUNCTION owsync._hub_drop_stashes(edge text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    x record;
    batch text[] := '{}';
    tables bigint := 0;
BEGIN
    FOR x IN SELECT j ->> 0 AS stash, (j ->> 1)::bigint AS tables
               FROM jsonb_array_elements(owsync._hub_json(format(
                        'SELECT coalesce(jsonb_agg(jsonb_build_array(d.stash, d.tables) ORDER BY d.stash), ''[]'') FROM (%s) d',
                        owsync._hub_done_stashes_sql(edge)))) j LOOP
        IF tables > 0 AND tables + x.tables > owsync._fleet_batch() THEN
            PERFORM owsync._hub_exec(owsync._hub_drop_stashes_sql(edge, batch));
            batch := '{}';
            tables := 0;
        END IF;
        batch := batch || x.stash;
        tables := tables + x.tables;
    END LOOP;
    IF cardinality(batch) > 0 THEN
        PERFORM owsync._hub_exec(owsync._hub_drop_stashes_sql(edge, batch));
    END IF;
END
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
-- _fleet_converge, whose batches of new clients each commit, and
-- _fleet_report).  Run every minute by the pg_cron job owsync-fleet; never
-- an error for a hub that cannot be reached (it is reported in
-- owsync.edge_status).
CREATE PROCEDURE owsync.fleet_tick()
LANGUAGE plpgsql
AS $$
DECLARE
    state text;
BEGIN
    LOOP
        state := owsync._fleet_converge();
        COMMIT;
        EXIT WHEN state <> 'more';
    END LOOP;
    PERFORM owsync._fleet_report(state = 'done');
END
$$;

-- The hub's subscription to this edge dropped (not its slot: the hub is
-- told that it has none) and this edge's slot dropped; the publication is
-- emptied next (_unpublish).
CREATE FUNCTION owsync._unsubscribe() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e owsync.edge := owsync._edge();
    sub text := 'owsync_' || e.edge;
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
    UPDATE owsync.edge SET slot_lost_alerted = false;
END
$$;

-- One batch of emptying this edge's publication, so that an attach starts
-- each hub copy afresh: any schema it lists, and at most _fleet_batch() of
-- its tables (dropping a table from it locks the table and its membership
-- until commit).  Returns whether tables are left for another call, once
-- this one has committed.
CREATE FUNCTION owsync._unpublish() RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s name;
    gone regclass[];
BEGIN
    PERFORM owsync._require_superuser('detach an edge from its hub');
    FOR s IN SELECT n.nspname FROM pg_publication p JOIN pg_publication_namespace pn ON pn.pnpubid = p.oid
               JOIN pg_namespace n ON n.oid = pn.pnnspid
              WHERE p.pubname = 'owsync_edge' LOOP
        EXECUTE format('ALTER PUBLICATION owsync_edge DROP TABLES IN SCHEMA %I', s);
    END LOOP;
    gone := ARRAY(SELECT r.prrelid::regclass FROM pg_publication p JOIN pg_publication_rel r ON r.prpubid = p.oid
                   WHERE p.pubname = 'owsync_edge' ORDER BY 1 LIMIT owsync._fleet_batch() + 1);
    IF cardinality(gone) > 0 THEN
        EXECUTE format('ALTER PUBLICATION owsync_edge DROP TABLE %s',
                       array_to_string(gone[1:owsync._fleet_batch()]::text[], ', '));
    END IF;
    RETURN cardinality(gone) > owsync._fleet_batch();
END
$$;

-- CALL owsync.repair_hub(): after the hub lost this edge's slot (the edge
-- removed WAL the hub had not received: owsync.edge_status.slot_status
-- 'lost'), every copy of this edge at the hub is made again: subscription
-- and slot made anew, each hub copy stashed and copied afresh.  The
-- publication is emptied in batches, each committed: after a failure part
-- way, call it again.
CREATE PROCEDURE owsync.repair_hub()
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM owsync._unsubscribe();
    COMMIT;
    WHILE owsync._unpublish() LOOP
        COMMIT;
    END LOOP;
    COMMIT;
    CALL owsync.attach_hub();
END
$$;

-- CALL owsync.detach_hub(): this edge stops feeding its hub: the
-- subscription, the slot, the publication's tables (in batches, each
-- committed: after a failure part way, call it again), the pg_cron job and
-- the hub server go, its client names are released at the hub; the hub's
-- copies stay.
CREATE PROCEDURE owsync.detach_hub()
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM owsync._unsubscribe();
    COMMIT;
    WHILE owsync._unpublish() LOOP
        COMMIT;
    END LOOP;
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
