-- 0.4 to 0.5: row versions (43_versions.sql).  A client's runs keep what
-- they replace from its last successful run before the upgrade on; its
-- versions schema and tables are made by the first run that keeps one.
-- On an edge, the trigger copying client rows to the edge's catalog copy
-- is off for this UPDATE (it calls routines the upgrade has dropped until
-- the routine files make them again); 38_fleet.sql then gives the copy the
-- new column, filled.
ALTER TABLE owsync.client ADD COLUMN versions_from bigint;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                WHERE tgrelid = 'owsync.client'::regclass AND tgname = 'owsync_copy_to_edge') THEN
        ALTER TABLE owsync.client DISABLE TRIGGER owsync_copy_to_edge;
    END IF;
END
$$;
UPDATE owsync.client c
   SET versions_from = (SELECT max(r.run_id) FROM owsync.run r WHERE r.client = c.client AND r.status = 'succeeded');
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
                WHERE tgrelid = 'owsync.client'::regclass AND tgname = 'owsync_copy_to_edge') THEN
        ALTER TABLE owsync.client ENABLE TRIGGER owsync_copy_to_edge;
    END IF;
END
$$;
