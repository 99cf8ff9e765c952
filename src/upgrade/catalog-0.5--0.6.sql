-- 0.5 to 0.6: scheduled syncs run in a pool of dispatchers rather than one
-- pg_cron job per client (50_schedule.sql).  The pool's tables start empty:
-- once the routines exist again, the upgrade's last step (epilogue.sql)
-- fills owsync.sync_due and makes pg_cron's jobs match.
CREATE TABLE owsync.sync_pool (
    one_row boolean PRIMARY KEY DEFAULT true CHECK (one_row),
    workers integer NOT NULL CHECK (workers BETWEEN 0 AND 32)
);
CREATE TABLE owsync.sync_due (
    client text PRIMARY KEY REFERENCES owsync.client ON DELETE CASCADE,
    due_at timestamptz
) WITH (fillfactor = 50);
SELECT pg_catalog.pg_extension_config_dump('owsync.sync_pool', '');
SELECT pg_catalog.pg_extension_config_dump('owsync.sync_due', '');
ALTER TABLE owsync.sync_due ENABLE ROW LEVEL SECURITY;
