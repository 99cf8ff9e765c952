-- The first part of every upgrade script: the routines, views and types of the installed
-- version go, so that the rest of the script (the catalog steps, then the current version's
-- routine files: see assemble.sh) creates them exactly as a fresh install does.  Tables and
-- their rows stay.
--
-- Kept, because objects outside the extension depend on them (each is defined with CREATE OR
-- REPLACE in src/sql):
--   owsync_fdw_handler, owsync_fdw_validator  the foreign data wrapper
--   key_hash                                  generated columns of the digest tables
--   _mirror_changed                           the triggers on mirror tables
--   _may_read_mirror                          row level security policies
--   _copy_to_edge                             the triggers copying the catalog to an edge's schema
-- A view or routine of a user's that depends on a dropped one stops the upgrade, which then
-- changes nothing: drop it first, and create it again afterwards.
DO $$
DECLARE
    ext oid := (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'owsync_fdw');
    obj record;
BEGIN
    -- newest first: a view or a BEGIN ATOMIC function is newer than what it uses
    FOR obj IN
        SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' END AS kind, c.oid::regclass::text AS name, c.oid
          FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class c ON c.oid = d.objid
         WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.refobjid = ext AND d.deptype = 'e'
           AND d.classid = 'pg_catalog.pg_class'::regclass AND c.relkind = 'v'
        UNION ALL
        SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, p.oid::regprocedure::text, p.oid
          FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_proc p ON p.oid = d.objid
         WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.refobjid = ext AND d.deptype = 'e'
           AND d.classid = 'pg_catalog.pg_proc'::regclass
           AND p.proname NOT IN ('owsync_fdw_handler', 'owsync_fdw_validator', 'key_hash',
                                 '_mirror_changed', '_may_read_mirror', '_copy_to_edge')
        UNION ALL
        SELECT 'TYPE', t.oid::regtype::text, t.oid
          FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_type t ON t.oid = d.objid
         WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.refobjid = ext AND d.deptype = 'e'
           AND d.classid = 'pg_catalog.pg_type'::regclass AND t.typtype IN ('c', 'd', 'e')
           AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid) = 'c')
         ORDER BY 3 DESC
    LOOP
        EXECUTE format('DROP %s %s', obj.kind, obj.name);
    END LOOP;
END
$$;
