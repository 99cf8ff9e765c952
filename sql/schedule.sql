--
-- Scheduling: the named tiers spread over the hour by the client's name,
-- cron expressions (owsync computes when they fire), seconds refused by
-- pg_cron 1.4; the dispatcher pool's pg_cron jobs for each state of the
-- catalog (set_sync_workers, enable/disable/unregister); owsync.dispatch()
-- running exactly the clients that are due; failures in a row, backoff,
-- alerts and recovery; history retention.
-- (pg_cron itself firing the pool: sql/schedule_remote.sql, which waits for
-- pg_cron's next minute once, for a client in pg_cron's database and one in
-- another; two dispatchers at once: specs/dispatch.spec.)
--
\set SHOW_CONTEXT never
CREATE EXTENSION owsync_fdw;
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" schedule
SET owsync.allowed_directories = '/tmp/owsync_regress/schedule';
ALTER DATABASE contrib_regression SET owsync.allowed_directories = '/tmp/owsync_regress/schedule';
SET client_min_messages = warning;
\setenv PGHOST :HOST
\setenv PGPORT :PORT
\getenv abs_srcdir PG_ABS_SRCDIR
\i :abs_srcdir/test/fixtures/wait_for.sql

-- without pg_cron's extension: manual works, scheduling says how to get it
SELECT count(*) AS tables FROM owsync.register_client('sched_a', '/tmp/owsync_regress/schedule/a.db');
SELECT owsync.set_schedule('sched_a', 'hourly');
SELECT owsync.register_client('sched_b', '/tmp/owsync_regress/schedule/b.db', 'realtime');
SELECT count(*) AS registered FROM owsync.client;

CREATE EXTENSION pg_cron;
-- each tier's cron expression; the minute (and the hour of daily) come from
-- the client's name
SELECT s AS schedule, owsync.set_schedule('sched_a', s) AS cron
  FROM unnest(ARRAY['realtime', '5min', 'hourly', 'daily', '*/2 * * * *', ' Manual ']) s;
SELECT owsync._cron_expr('sched_a', 'hourly') = owsync._cron_expr('sched_a', 'hourly') AS stable,
       owsync._cron_expr('sched_a', 'hourly') <> owsync._cron_expr('sched_b', 'hourly') AS differs;
-- a fleet of 50 is spread: many distinct minutes, daily runs between 01:00 and 04:59
SELECT count(DISTINCT split_part(owsync._cron_expr(n, 'hourly'), ' ', 1)) > 30 AS hourly_spread,
       bool_and(split_part(owsync._cron_expr(n, 'daily'), ' ', 2)::int BETWEEN 1 AND 4) AS daily_at_night,
       count(DISTINCT split_part(owsync._cron_expr(n, 'daily'), ' ', 2)) AS daily_hours,
       count(DISTINCT owsync._cron_expr(n, '5min')) AS five_minute_offsets
  FROM (SELECT 'client_' || i AS n FROM generate_series(1, 50) i) f;
-- when an expression next fires after a time, in UTC as pg_cron 1.4 reads
-- it (2026-11-22 is a Sunday): lists, ranges and steps in every field; a
-- day named by day of month and day of week when either is '*', by either
-- when both are restricted; Sunday as 0 or 7; February 29th; NULL for a day
-- that never comes and for what is not 5 fields
SELECT e, owsync._next_run(e, t) AT TIME ZONE 'UTC' AS next_utc
  FROM (VALUES ('* * * * *'), ('3-59/5 * * * *'), ('*/2 * * * *'), ('28 * * * *'), ('28 2 * * *'),
               ('0 0 1 1 *'), ('15,45 8-18/2 * * *'), ('0 9 * * 1-5'), ('0 12 * * 7'), ('0 0 13 * 5'),
               ('0 0 13 * *'), ('*/20 * 1,15 * *'), ('0 0 29 2 *'), ('0 0 30 2 *'), ('30 seconds')) v(e),
       (VALUES ('2026-11-22 19:58:30+00'::timestamptz), ('2026-11-22 02:28:00+00')) w(t)
 ORDER BY e, t;
-- refused: seconds on pg_cron 1.4, what is not a schedule, values out of
-- their field's range, a step without a range, a day that never comes
SELECT owsync.set_schedule('sched_a', '30 seconds');
SELECT owsync.set_schedule('sched_a', '0 seconds');
SELECT owsync.set_schedule('sched_a', 'every day');
SELECT owsync.set_schedule('sched_a', '* * * *');
SELECT owsync.set_schedule('sched_a', '61 * * * *');
SELECT owsync.set_schedule('sched_a', '0 0 * * 8');
SELECT owsync.set_schedule('sched_a', '5/10 * * * *');
SELECT owsync.set_schedule('sched_a', '0 20-4 * * *');
SELECT owsync.set_schedule('sched_a', '0 0 30 2 *');
SELECT owsync.set_schedule('nobody', 'hourly');

-- the dispatcher pool's jobs follow the catalog: none while every client
-- is manual
SELECT count(*) AS jobs FROM cron.job;
-- an enabled client on a schedule in minutes: the pool's two jobs, each
-- every minute (schedules that do not fire while the test runs: New Year's
-- midnight, and sched_a's night time)
SELECT count(*) FROM owsync.register_client('sched_b', '/tmp/owsync_regress/schedule/b.db', '0 0 1 1 *');
SELECT owsync.set_schedule('sched_a', 'daily');
SELECT jobname, schedule, command, database, active FROM cron.job ORDER BY jobname;
-- owsync.status shows each client's expression and when it runs next
SELECT client, enabled, schedule, cron_job,
       next_run_at > now() AND next_run_at <= now() + interval '1 day' AS next_run_within_a_day,
       next_run_at AT TIME ZONE 'UTC'
         = make_timestamp(extract(year FROM now() AT TIME ZONE 'UTC')::int + 1, 1, 1, 0, 0, 0) AS at_new_year
  FROM owsync.status_detail ORDER BY 1;
-- set_sync_workers sets their number
SELECT owsync.set_sync_workers(3);
SELECT jobname FROM cron.job ORDER BY 1;
SELECT owsync.set_sync_workers(1);
SELECT jobname FROM cron.job ORDER BY 1;
SELECT owsync.set_sync_workers(33);
SELECT owsync.set_sync_workers(2);
-- disabling the last client the pool serves removes them, enabling one
-- brings them back; so does unregistering the last one
SELECT owsync.disable_sync('sched_b');
SELECT count(*) AS jobs FROM cron.job;
SELECT owsync.disable_sync('sched_a');
SELECT count(*) AS jobs FROM cron.job;
SELECT client, enabled, schedule, cron_job, next_run_at FROM owsync.status_detail ORDER BY 1;
SELECT owsync.enable_sync('sched_a');
SELECT count(*) AS jobs FROM cron.job;
SELECT owsync.enable_sync('sched_b');
SELECT owsync.set_schedule('sched_b', 'manual');
SELECT owsync.unregister_client('sched_a', drop_data => true);
SELECT count(*) AS jobs FROM cron.job;

-- owsync.dispatch() runs the clients that are due, most overdue first, each
-- as sync() runs it and recorded as scheduled, and no other.  With no
-- workers the pool has no jobs (once pg_cron's last one has left, only the
-- calls here dispatch); the clients are made due by moving their due times
-- back.
SELECT owsync.set_sync_workers(0);
SELECT pg_temp.wait_for($$SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity
                                             WHERE backend_type = 'pg_cron' AND datname = current_database())$$)
       AS no_dispatcher_left;
SELECT count(*) FROM owsync.register_client('sched_c', '/tmp/owsync_regress/schedule/c.db', '0 0 1 1 *');
SELECT count(*) FROM owsync.register_client('sched_d', '/tmp/owsync_regress/schedule/d.db', '0 0 1 1 *');
SELECT owsync.set_schedule('sched_b', '0 0 1 1 *');
SELECT owsync.disable_sync('sched_d');
SELECT count(*) AS jobs FROM cron.job;
UPDATE owsync.sync_due SET due_at = now() - interval '2 minutes' WHERE client = 'sched_c';
UPDATE owsync.sync_due SET due_at = now() - interval '1 minute' WHERE client = 'sched_b';
SELECT client, enabled, next_run FROM owsync.status ORDER BY 1;
SELECT max(run_id) AS before FROM owsync.run \gset
CALL owsync.dispatch();
SELECT client, mode, status, scheduled, source_unchanged FROM owsync.run WHERE run_id > :before ORDER BY run_id;
-- each is due again when its schedule next fires; nothing is due now, so
-- the next call runs nothing
SELECT client, due_at AT TIME ZONE 'UTC'
                 = make_timestamp(extract(year FROM now() AT TIME ZONE 'UTC')::int + 1, 1, 1, 0, 0, 0) AS at_new_year
  FROM owsync.sync_due ORDER BY 1;
CALL owsync.dispatch();
SELECT count(*) AS runs FROM owsync.run WHERE run_id > :before;
-- a realtime client is due again at the minute after its start
SELECT owsync.set_schedule('sched_c', 'realtime');
UPDATE owsync.sync_due SET due_at = now() - interval '1 minute' WHERE client = 'sched_c';
CALL owsync.dispatch();
SELECT d.due_at = date_trunc('minute', r.started_at) + interval '1 minute' AS due_next_minute
  FROM owsync.sync_due d JOIN owsync.run r USING (client)
 WHERE r.run_id = (SELECT max(run_id) FROM owsync.run WHERE client = 'sched_c');
SELECT owsync.set_schedule('sched_c', 'manual');

-- failures: a dispatched run of a client whose file is broken fails (the
-- dispatcher warns and goes on); while it backs off, the dispatcher passes
-- it over, due or not, without a run; a run by hand does not back off; a
-- run pg_cron starts itself (a job of its own, for a schedule in seconds;
-- its connections are named pg_cron) is recorded as skipped; the third
-- failure in a row raises one alert, the success after it another
-- (another session listens to owsync_alert meanwhile, and writes down what
-- it hears: it waits for a lock this session holds until the alerts are
-- raised, and the notifications reach it when that wait ends)
SELECT pg_advisory_lock(hashtext('regress_listener'));
\! { psql -X -d contrib_regression -c "SET application_name = 'regress_listener'" -c 'LISTEN owsync_alert' -c "SELECT pg_advisory_lock(hashtext('regress_listener'))" > /tmp/owsync_regress/schedule/listen.out 2>&1; touch /tmp/owsync_regress/schedule/listen.done; } &
SELECT pg_temp.wait_for($$SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                                          WHERE a.application_name = 'regress_listener' AND NOT l.granted)$$) AS listening;
-- b.db becomes a file of text (b.good keeps the database)
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" schedule-broken
UPDATE owsync.sync_due SET due_at = now() - interval '1 minute' WHERE client = 'sched_b';
CALL owsync.dispatch();
SELECT client, failures, next_attempt_at - last_run_at AS backoff, last_status FROM owsync.status_detail
 WHERE client = 'sched_b';
SELECT max(run_id) AS before FROM owsync.run \gset
UPDATE owsync.sync_due SET due_at = now() - interval '1 minute' WHERE client = 'sched_b';
SELECT client, next_run_at > now() AS waits, next_run_at >= next_attempt_at - interval '5 seconds' AS for_its_backoff
  FROM owsync.status_detail WHERE client = 'sched_b';
CALL owsync.dispatch();
SELECT count(*) AS runs FROM owsync.run WHERE run_id > :before;
SET application_name = 'pg_cron';
CALL owsync.sync('sched_b');
SELECT mode, status, scheduled, error FROM owsync.run ORDER BY run_id DESC LIMIT 1;
RESET application_name;
CALL owsync.sync('sched_b');
SELECT client, failures, next_attempt_at - last_run_at AS backoff, last_status FROM owsync.status_detail
 WHERE client = 'sched_b';
SELECT count(*) AS alerts FROM owsync.alert;
CALL owsync.sync('sched_b');
CALL owsync.sync('sched_b');
SELECT client, failures, next_attempt_at - last_run_at AS backoff, last_status FROM owsync.status_detail
 WHERE client = 'sched_b';
SELECT client, regexp_replace(last_run, ' [0-9dhms]+ ago$', ' Ns ago') AS last_run, problem FROM owsync.status
 WHERE client = 'sched_b';
-- ages in owsync.status, from seconds to days
SELECT i AS span, owsync._age(i) FROM unnest('{0, 59.4 s, 59.6 s, 61 s, 2 h 7 min 30 s, 3 days 4 hours 59 min}'::interval[]) i;
SELECT client, event, payload ->> 'consecutive_failures' AS failures, payload ->> 'sqlstate' AS sqlstate,
       payload ->> 'error' AS error, payload ? 'at' AS dated FROM owsync.alert ORDER BY alert_id;
-- the same in the metrics view (numbers for postgres_exporter)
SELECT client, enabled, scheduled, consecutive_failures, backing_off, runs_failed, runs_skipped,
       lag_seconds > 0 AS lagging
  FROM owsync.metrics WHERE client = 'sched_b';
\! mv /tmp/owsync_regress/schedule/b.good /tmp/owsync_regress/schedule/b.db
CALL owsync.sync('sched_b');
SELECT client, failures, next_attempt_at, last_status FROM owsync.status_detail WHERE client = 'sched_b';
SELECT event, payload ->> 'consecutive_failures' AS failures FROM owsync.alert ORDER BY alert_id;
-- the same two alerts as notifications, in order
SELECT pg_advisory_unlock(hashtext('regress_listener'));
\! sh "$PG_ABS_SRCDIR/test/fixtures/wait_file.sh" /tmp/owsync_regress/schedule/listen.done && python3 "$PG_ABS_SRCDIR/test/fixtures/alerts_heard.py" /tmp/owsync_regress/schedule/listen.out
SELECT status, scheduled, count(*) FROM owsync.run WHERE client = 'sched_b' GROUP BY 1, 2 ORDER BY 1, 2;

-- retention: runs older than owsync.history_retention go at the next run;
-- pg_cron's run details of owsync's jobs in this database (the pool's, and
-- any calling owsync) go once an hour, when a dispatcher starts in the
-- first minute of it (here called directly); others stay
INSERT INTO cron.job_run_details (jobid, runid, job_pid, database, username, command, status, return_message, start_time, end_time)
SELECT 0, 1000 + row_number() OVER (), 1, d, 'x', c, 'succeeded', 'CALL', now() - '3 days'::interval, now() - '3 days'::interval
  FROM (VALUES ('contrib_regression', 'CALL owsync.dispatch()'), ('contrib_regression', 'CALL owsync.sync(''x'')'),
               ('contrib_regression', 'SELECT 1'), ('postgres', 'CALL owsync.dispatch()')) v(d, c),
       generate_series(1, 3) g;
UPDATE owsync.run SET started_at = now() - '3 days'::interval WHERE client = 'sched_b' AND status = 'failed';
SET owsync.history_retention = '2d';
SHOW owsync.history_retention;
CALL owsync.sync('sched_b');
SELECT status, count(*) FROM owsync.run WHERE client = 'sched_b' GROUP BY 1 ORDER BY 1;
SELECT owsync._purge_cron_details() AS purged;
SELECT database, command, count(*) AS old_cron_details FROM cron.job_run_details WHERE runid > 1000 GROUP BY 1, 2 ORDER BY 1, 2;
RESET owsync.history_retention;
-- a successful run that found nothing committed to the file goes once a day
-- old, within the retention too; one that read the file stays
UPDATE owsync.run SET started_at = now() - '2 days'::interval WHERE client = 'sched_b' AND status = 'succeeded';
SELECT source_unchanged, count(*) AS two_days_old FROM owsync.run WHERE client = 'sched_b' AND started_at < now() - '1 day'::interval GROUP BY 1 ORDER BY 1;
CALL owsync.sync('sched_b');
SELECT source_unchanged, count(*) AS two_days_old FROM owsync.run WHERE client = 'sched_b' AND started_at < now() - '1 day'::interval GROUP BY 1 ORDER BY 1;
SET owsync.history_retention = '-1';
SET owsync.history_retention = 0;
SHOW owsync.history_retention;
RESET owsync.history_retention;

SELECT owsync.unregister_client(client, drop_data => true) FROM owsync.client ORDER BY client;
SELECT count(*) AS jobs FROM cron.job;
DROP EXTENSION pg_cron;
DROP EXTENSION owsync_fdw;
ALTER DATABASE contrib_regression RESET owsync.allowed_directories;
\! rm -rf /tmp/owsync_regress/schedule
