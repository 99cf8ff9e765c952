--
-- pg_cron in another database: pg_cron runs in contrib_regression
-- (cron.database_name), owsync in regress_owsync_remote, which reaches it
-- through dblink and creates its dispatcher pool's jobs there with
-- cron.schedule_in_database, named owsync:dispatch:N@<database>; pg_cron
-- runs them in owsync's database.  And pg_cron firing the pools, in both
-- databases: a client of owsync in contrib_regression too (near_a, its
-- pool's jobs as in sql/schedule.sql) is made realtime with the remote one,
-- so that one minute of pg_cron makes each pool sync its client.
--
\set SHOW_CONTEXT never
CREATE EXTENSION pg_cron;
CREATE DATABASE regress_owsync_remote;
ALTER DATABASE regress_owsync_remote SET owsync.allowed_directories = '/tmp/owsync_regress/schedule_remote';
ALTER DATABASE contrib_regression SET owsync.allowed_directories = '/tmp/owsync_regress/schedule_remote';
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" schedule_remote
CREATE EXTENSION owsync_fdw;
SET owsync.allowed_directories = '/tmp/owsync_regress/schedule_remote';
SET client_min_messages = warning;
-- (hourly: the pool's jobs are there, and pg_cron has loaded them, well
-- before near_a is made realtime)
SELECT count(*) AS tables FROM owsync.register_client('near_a', '/tmp/owsync_regress/schedule_remote/near.db', 'hourly');
\c regress_owsync_remote
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE EXTENSION owsync_fdw;
-- without dblink, the hint says what to do
SELECT owsync.register_client('far_a', '/tmp/owsync_regress/schedule_remote/far.db', 'realtime');
CREATE EXTENSION dblink;
SELECT count(*) AS tables FROM owsync.register_client('far_a', '/tmp/owsync_regress/schedule_remote/far.db', '0 0 1 1 *');
SELECT owsync.set_schedule('far_a', 'hourly') = owsync._cron_expr('far_a', 'hourly') AS hourly;
SELECT client, schedule, cron_job = owsync._cron_expr('far_a', 'hourly') AS job_as_set FROM owsync.status;
\c contrib_regression
SELECT jobname, schedule, command, database, username = current_user AS as_owner, active FROM cron.job ORDER BY jobname;
\c regress_owsync_remote
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT owsync.set_sync_workers(3);
\c contrib_regression
SELECT jobname FROM cron.job WHERE jobname LIKE '%@regress_owsync_remote' ORDER BY jobname;
\c regress_owsync_remote
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT owsync.set_sync_workers(2);
SELECT owsync.disable_sync('far_a');
SELECT cron_job FROM owsync.status;
\c contrib_regression
SELECT jobname FROM cron.job ORDER BY jobname;
\c regress_owsync_remote
\set SHOW_CONTEXT never
SET client_min_messages = warning;
SELECT owsync.enable_sync('far_a');

-- pg_cron fires: changes made at both sources arrive within the minute
-- after the clients are made realtime; the remote pool runs in owsync's
-- database
SELECT now() AS far_set \gset
\! sqlite3 /tmp/owsync_regress/schedule_remote/far.db "UPDATE chat SET title = 'changed far away', updated_at = (SELECT max(updated_at) FROM chat) + 5 WHERE rowid = (SELECT min(rowid) FROM chat);"
SELECT owsync.set_schedule('far_a', 'realtime');
\c contrib_regression
SET client_min_messages = warning;
\! sqlite3 /tmp/owsync_regress/schedule_remote/near.db "UPDATE chat SET title = 'changed nearby', updated_at = (SELECT max(updated_at) FROM chat) + 5 WHERE rowid = (SELECT min(rowid) FROM chat);"
SELECT owsync.set_schedule('near_a', 'realtime');
SELECT due_at AS near_due FROM owsync.sync_due WHERE client = 'near_a' \gset
\getenv abs_srcdir PG_ABS_SRCDIR
\i :abs_srcdir/test/fixtures/wait_for.sql
SELECT pg_temp.wait_for($$SELECT EXISTS (SELECT 1 FROM owsync.run WHERE client = 'near_a' AND scheduled
                                            AND status = 'succeeded' AND started_at >= $$ || quote_literal(:'near_due') || $$)
                          AND (SELECT count(DISTINCT jobname) FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                                WHERE d.status = 'succeeded') = 4$$, 90) AS synced;
SELECT DISTINCT jobname, d.database, status, return_message FROM cron.job_run_details d JOIN cron.job j USING (jobid)
 WHERE d.status IN ('succeeded', 'failed') ORDER BY jobname;
-- its run started in the minute it was due
SELECT mode, status, scheduled, started_at < :'near_due'::timestamptz + interval '30 seconds' AS within_its_minute
  FROM owsync.run
 WHERE client = 'near_a' AND scheduled AND status = 'succeeded' AND started_at >= :'near_due'
 ORDER BY run_id LIMIT 1;
SELECT title FROM near_a.chat WHERE title = 'changed nearby';
SELECT owsync.unregister_client('near_a', drop_data => true);
DROP EXTENSION owsync_fdw;
\c regress_owsync_remote
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\i :abs_srcdir/test/fixtures/wait_for.sql
SELECT pg_temp.wait_for($$SELECT EXISTS (SELECT 1 FROM owsync.run WHERE client = 'far_a' AND scheduled
                                            AND status = 'succeeded' AND started_at > $$ || quote_literal(:'far_set') || $$)$$)
       AS far_synced;
SELECT title FROM far_a.chat WHERE title = 'changed far away';
SELECT owsync.unregister_client('far_a', drop_data => true);
\c contrib_regression
SELECT count(*) AS jobs FROM cron.job;
-- (pg_cron's worker for the last run may still be leaving the database)
DO $$
BEGIN
    FOR i IN 1 .. 1200 LOOP
        PERFORM pg_stat_clear_snapshot();
        EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = 'regress_owsync_remote');
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;
DROP DATABASE regress_owsync_remote;
DROP EXTENSION pg_cron;
ALTER DATABASE contrib_regression RESET owsync.allowed_directories;
\! rm -rf /tmp/owsync_regress/schedule_remote
