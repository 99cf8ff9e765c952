-- The last part of every upgrade script, once the routines exist again:
-- every client's scheduling made to match its row, and pg_cron's jobs with
-- it (owsync._schedule_all, 50_schedule.sql), as a fresh install would have
-- them: the dispatcher pool's jobs while a client is on a schedule in
-- minutes, a job of its own only for a schedule in seconds, and the jobs of
-- one client each that earlier versions made, gone.  When pg_cron cannot
-- be reached (in another database, over dblink), the upgrade still
-- completes and says so; owsync.set_sync_workers() makes the jobs match
-- later.
DO $$
BEGIN
    PERFORM owsync._schedule_all();
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING 'owsync: the upgrade could not make pg_cron''s jobs match the schedules: %', SQLERRM
        USING HINT = 'Once pg_cron can be reached, run SELECT owsync.set_sync_workers(n) (2 by default).';
END
$$;
