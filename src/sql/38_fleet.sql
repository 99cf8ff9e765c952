-- The fleet, edge side: what every run and registration needs when this
-- server is an edge feeding a hub (the setup calls: 78_fleet.sql).
--
-- An edge publishes (publication owsync_edge) the tables of its clients'
-- mirror and versions schemas (_hub_schemas) and of a copy of its own
-- catalog (schema owsync_edge_<edge>); the hub, any PostgreSQL without
-- owsync_fdw, subscribes.  The publication lists each table, never a
-- schema: for a publication of schemas, PostgreSQL 15 scans all of pg_class
-- once per schema each time the hub asks for its tables (each table's first
-- copy, each refresh), seconds a call at hundreds of clients.  DDL is not replicated, so the edge makes each published table
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

-- The tables in this edge's publication: those it lists, and the
-- persistent tables of any schema it lists (as an edge made by an earlier
-- version has it until its fleet tick lists their tables instead:
-- _publish_by_table).  Read from the catalogs (pg_publication_tables would
-- scan pg_class once for each schema the publication lists).
CREATE FUNCTION owsync._publication_tables() RETURNS SETOF oid
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.prrelid
      FROM pg_publication p JOIN pg_publication_rel r ON r.prpubid = p.oid
     WHERE p.pubname = 'owsync_edge'
    UNION
    SELECT c.oid
      FROM pg_publication p
      JOIN pg_publication_namespace pn ON pn.pnpubid = p.oid
      JOIN pg_class c ON c.relnamespace = pn.pnnspid AND c.relkind = 'r' AND c.relpersistence = 'p'
     WHERE p.pubname = 'owsync_edge'
$$;

-- The schemas in this edge's publication: those of its tables (a schema
-- with a table in it is published; its tables made since are added by the
-- fleet tick), any it lists, and the versions schema of each of those
-- (a client's two schemas are published together, and its versions schema
-- holds no table while its runs keep no versions).
CREATE FUNCTION owsync._published() RETURNS name[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH s AS (SELECT c.relnamespace AS nsp FROM pg_class c WHERE c.oid IN (SELECT owsync._publication_tables())
               UNION
               SELECT pn.pnnspid FROM pg_publication p JOIN pg_publication_namespace pn ON pn.pnpubid = p.oid
                WHERE p.pubname = 'owsync_edge')
    SELECT coalesce(array_agg(n.nspname ORDER BY n.nspname), '{}')
      FROM pg_namespace n
     WHERE n.oid IN (SELECT nsp FROM s)
        OR n.nspname IN (SELECT owsync._versions_schema(m.nspname) FROM pg_namespace m WHERE m.oid IN (SELECT nsp FROM s))
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

-- The shapes (as _table_shapes_sql gives them) of the versions tables the
-- mirror tables of the clients whose versions schemas are among schemas
-- call for while they keep versions: a run makes a versions table, or adds
-- a column to it, when it first keeps a version that needs it
-- (owsync._versions_table: the mirror's columns after owsync_run,
-- owsync_op and, without key, owsync_ord; keyed by the mirror's key and
-- owsync_run, or by owsync_run and owsync_ord).  A drift adds mirror tables
-- and columns in the run that then keeps their versions, so the hub gets
-- them from here first.  One pass over pg_class for all of them.
CREATE FUNCTION owsync._versions_shapes(schemas name[]) RETURNS jsonb
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
      FROM (SELECT owsync._versions_schema(x.client)::text AS vs, n.oid AS mirror
              FROM owsync.client x JOIN pg_namespace n ON n.nspname = (owsync.client_names(x.client)).mirror_schema
             WHERE owsync._versions_schema(x.client) = ANY (schemas) AND x.versions_from IS NOT NULL
               AND (owsync._options(x.options) ->> 'versions_retention')::interval > interval '0') v
      JOIN pg_class c ON c.relnamespace = v.mirror AND c.relkind = 'r'
      CROSS JOIN LATERAL (SELECT jsonb_agg(a.attname ORDER BY u.i) AS key
                            FROM pg_constraint x CROSS JOIN LATERAL unnest(x.conkey) WITH ORDINALITY u(att, i)
                            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.att
                           WHERE x.conrelid = c.oid AND x.contype = 'p') k
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

-- The most tables one transaction of the fleet's setup makes or changes,
-- at the hub (_hub_catch_up) or here (_fleet_converge's batches: the tables
-- added to or dropped from the publication, and the versions tables made).
-- A transaction keeps a lock on every relation it makes until it commits,
-- about 6 for a table made at the hub (the table, its TOAST table and index,
-- its primary key, its row type and key constraint) and 7 for a versions
-- table here (and its run index); ALTER PUBLICATION locks each table it adds
-- (and each it drops, with its membership): about 700 of the lock table's
-- 6,400 entries at PostgreSQL's defaults (max_locks_per_transaction 64 x
-- max_connections 100), however many clients an edge holds.
CREATE FUNCTION owsync._fleet_batch() RETURNS integer
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 100
$$;

-- Make the hub's tables of some schemas match this edge's (see
-- _hub_catch_up_sql; a versions schema with the tables and columns its
-- client's runs will need, _versions_shapes), schema by schema, in
-- transactions at the hub that each make or change at most
-- _fleet_batch() tables (a schema needing more goes in one of its own).
-- Each transaction commits there on its own: one that fails leaves those
-- before it made, and the next call finds what is still missing.  Returns
-- the statements run ('' when none were needed).
CREATE FUNCTION owsync._hub_catch_up(schemas name[]) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q text := owsync._table_shapes_sql(schemas);
    local jsonb;
    s record;
    one text;
    batch text := '';
    tables integer := 0;
    n integer;
    done text := '';
BEGIN
    EXECUTE q INTO local;
    local := owsync._shapes_with(local, owsync._versions_shapes(schemas));
    FOR s IN SELECT l.tables AS local, coalesce(h.tables, '{}') AS hub
               FROM (SELECT v ->> 'schema' AS sch, jsonb_object_agg(k, v) AS tables
                       FROM jsonb_each(local) AS x(k, v) GROUP BY 1) l
               LEFT JOIN (SELECT v ->> 'schema' AS sch, jsonb_object_agg(k, v) AS tables
                            FROM jsonb_each(owsync._hub_json(q)) AS x(k, v) GROUP BY 1) h USING (sch)
              ORDER BY l.sch LOOP
        one := owsync._hub_catch_up_sql(s.local, s.hub);
        CONTINUE WHEN one = '';
        -- the tables its statements make or change
        n := regexp_count(one, '^(CREATE TABLE|ALTER TABLE|GRANT SELECT|REVOKE SELECT) ', 1, 'n');
        IF tables > 0 AND tables + n > owsync._fleet_batch() THEN
            PERFORM owsync._hub_exec(batch);
            done := done || batch;
            batch := '';
            tables := 0;
        END IF;
        batch := batch || one;
        tables := tables + n;
    END LOOP;
    IF batch <> '' THEN
        PERFORM owsync._hub_exec(batch);
        done := done || batch;
    END IF;
    RETURN done;
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
