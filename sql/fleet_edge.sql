--
-- The fleet's edge side on one server (the hub and two edges together are
-- test/fleet/): what prepare_edge checks, the connection strings it takes,
-- the statements that bring a hub's tables up to this edge's, and the calls
-- that need a hub refusing clearly without one.
--
\set SHOW_CONTEXT never
CREATE EXTENSION owsync_fdw;
SET client_min_messages = warning;

-- this cluster runs wal_level = replica and an unbounded slot WAL size:
-- prepare_edge says what to change, and changes nothing
SHOW wal_level;
SELECT owsync.prepare_edge('edge_one');
SELECT count(*) AS edges FROM owsync.edge;
SELECT count(*) AS publications FROM pg_publication;
SELECT owsync.prepare_edge('Edge-One');

-- only superusers make edges and attach them
CREATE ROLE regress_fleet_admin LOGIN IN ROLE owsync_admin;
SET ROLE regress_fleet_admin;
SELECT owsync.prepare_edge('edge_one');
CALL owsync.attach_hub('host=/nowhere dbname=hub', 'host=/here dbname=edge');
RESET ROLE;

-- connection strings as libpq reads them: keyword = value, values quoted or
-- not (\' and \\ inside quotes); a URI is refused
SELECT owsync._conninfo_parse($$host=/tmp/x port = 5432 dbname='my db' password='it\'s \\ secret'$$);
SELECT owsync._conninfo(owsync._conninfo_parse('dbname=hub host=h1 port=6000'));
SELECT owsync._conninfo_parse('postgresql://user@host/db');
SELECT owsync._conninfo_parse('host=h1 port');

-- the hub's tables made to match the edge's: a missing table created with
-- its primary key and the read-only trigger, a missing column added, a
-- reader granted (its role made when missing) and a former one revoked;
-- nothing when they match
SELECT owsync._hub_catch_up_sql(
  '{"c1.chat": {"schema": "c1", "table": "chat", "key": ["id"], "readers": ["c1_reader"],
                "columns": [["id", "text"], ["title", "text"], ["meta", "json"]]},
    "c1.tag":  {"schema": "c1", "table": "tag", "key": null, "readers": [],
                "columns": [["name", "text"], ["user id", "text"]]}}',
  '{"c1.tag":  {"schema": "c1", "table": "tag", "key": null, "readers": ["old_reader"],
                "columns": [["name", "text"]]}}');
SELECT owsync._hub_catch_up_sql(
  '{"c1.tag": {"schema": "c1", "table": "tag", "key": null, "readers": [], "columns": [["name", "text"]]}}',
  '{"c1.tag": {"schema": "c1", "table": "tag", "key": null, "readers": [], "columns": [["name", "text"]]}}') = '' AS matches;
-- the shapes are read the same way on both sides: here, of a client-like schema
CREATE SCHEMA regress_shape;
CREATE TABLE regress_shape.t (id text PRIMARY KEY, n bigint, doc json);
CREATE TABLE regress_shape.keyless (a text);
GRANT USAGE ON SCHEMA regress_shape TO regress_fleet_admin;
GRANT SELECT ON regress_shape.t TO regress_fleet_admin;
DO $$
DECLARE
  j jsonb;
BEGIN
  EXECUTE owsync._table_shapes_sql(ARRAY['regress_shape'::name]) INTO j;
  RAISE WARNING '%', jsonb_pretty(j);
END $$;

-- without a hub: the fleet tick has nothing to do, the calls that need the
-- hub say so, and registration is not asked about names
CALL owsync.fleet_tick();
CALL owsync.restore_from_hub('c1', '/tmp/owsync_regress/nowhere.db');
SELECT owsync.forget_edge('edge_two');
SELECT * FROM owsync.edge_status;

DROP SCHEMA regress_shape CASCADE;
DROP EXTENSION owsync_fdw;
DROP ROLE regress_fleet_admin;
