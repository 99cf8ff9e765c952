--
-- Scheduling on pg_cron: one job owsync:<client> per scheduled client, the
-- named tiers spread over the hour by the client's name, cron expressions,
-- seconds refused by pg_cron 1.4, enable/disable/unregister; failures in a
-- row, backoff of scheduled runs, alerts and recovery; history retention.
-- (pg_cron itself firing a sync: sql/schedule_remote.sql, which waits for
-- pg_cron's next minute once, for a client in pg_cron's database and one in
-- another.)
--
\set SHOW_CONTEXT never
CREATE EXTENSION owsync_fdw;
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" schedule
SET owsync.allowed_directories = '/tmp/owsync_regress/schedule';
ALTER DATABASE contrib_regression SET owsync.allowed_directories = '/tmp/owsync_regress/schedule';
SET client_min_messages = warning;

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
-- the next start of a job (pg_cron 1.4 reads expressions in UTC), for what
-- owsync.status shows; NULL for expressions it does not follow
SELECT e, owsync._next_run(e, t) AT TIME ZONE 'UTC' AS next_utc
  FROM (VALUES ('* * * * *'), ('3-59/5 * * * *'), ('*/2 * * * *'), ('28 * * * *'), ('28 2 * * *'),
               ('0 0 1 1 *')) v(e),
       (VALUES ('2026-11-22 19:58:30+00'::timestamptz), ('2026-11-22 02:28:00+00')) w(t)
 ORDER BY e, t;
-- refused: seconds on pg_cron 1.4, bad expressions; pg_cron checks values
SELECT owsync.set_schedule('sched_a', '30 seconds');
SELECT owsync.set_schedule('sched_a', '0 seconds');
SELECT owsync.set_schedule('sched_a', 'every day');
SELECT owsync.set_schedule('sched_a', '* * * *');
SELECT owsync.set_schedule('sched_a', '61 * * * *');
SELECT owsync.set_schedule('nobody', 'hourly');

-- the jobs: one per enabled, scheduled client (schedules that do not fire
-- while the test runs: New Year's midnight, and sched_a's night time)
SELECT count(*) FROM owsync.register_client('sched_b', '/tmp/owsync_regress/schedule/b.db', '0 0 1 1 *');
SELECT owsync.set_schedule('sched_a', 'daily');
SELECT jobname, j.schedule, j.schedule = owsync._cron_expr(c.client, c.schedule) AS as_set,
       command, j.database, active
  FROM cron.job j JOIN owsync.client c ON j.jobname = 'owsync:' || c.client ORDER BY jobname;
SELECT owsync.disable_sync('sched_b');
SELECT jobname FROM cron.job ORDER BY 1;
SELECT client, enabled, schedule, cron_job IS NOT NULL AS has_job,
       next_run_at > now() AND next_run_at <= now() + interval '1 day' AS next_run_within_a_day
  FROM owsync.status_detail ORDER BY 1;
SELECT owsync.enable_sync('sched_b');
SELECT owsync.set_schedule('sched_b', 'manual');
SELECT jobname FROM cron.job ORDER BY 1;
SELECT owsync.unregister_client('sched_a', drop_data => true);
SELECT count(*) AS jobs FROM cron.job;

-- failures: a scheduled run (pg_cron's connections are named pg_cron) of a
-- client whose file is broken fails; the next one backs off; a run by hand
-- does not; the third failure in a row raises one alert, the success after
-- it another
-- (another session listens to owsync_alert meanwhile, and writes down what
-- it hears: it waits for a lock this session holds until the alerts are
-- raised, and the notifications reach it when that wait ends)
\setenv PGHOST :HOST
\setenv PGPORT :PORT
\getenv abs_srcdir PG_ABS_SRCDIR
\i :abs_srcdir/test/fixtures/wait_for.sql
SELECT pg_advisory_lock(hashtext('regress_listener'));
\! { psql -X -d contrib_regression -c "SET application_name = 'regress_listener'" -c 'LISTEN owsync_alert' -c "SELECT pg_advisory_lock(hashtext('regress_listener'))" > /tmp/owsync_regress/schedule/listen.out 2>&1; touch /tmp/owsync_regress/schedule/listen.done; } &
SELECT pg_temp.wait_for($$SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                                          WHERE a.application_name = 'regress_listener' AND NOT l.granted)$$) AS listening;
-- b.db becomes a file of text (b.good keeps the database)
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" schedule-broken
SET application_name = 'pg_cron';
CALL owsync.sync('sched_b');
SELECT client, failures, next_attempt_at - last_run_at AS backoff, last_status FROM owsync.status_detail;
CALL owsync.sync('sched_b');
SELECT mode, status, scheduled, error FROM owsync.run ORDER BY run_id DESC LIMIT 1;
RESET application_name;
CALL owsync.sync('sched_b');
SELECT client, failures, next_attempt_at - last_run_at AS backoff, last_status FROM owsync.status_detail;
SELECT count(*) AS alerts FROM owsync.alert;
CALL owsync.sync('sched_b');
CALL owsync.sync('sched_b');
SELECT client, failures, next_attempt_at - last_run_at AS backoff, last_status FROM owsync.status_detail;
SELECT client, regexp_replace(last_run, ' [0-9dhms]+ ago$', ' Ns ago') AS last_run, problem FROM owsync.status;
-- ages in owsync.status, from seconds to days
SELECT i AS span, owsync._age(i) FROM unnest('{0, 59.4 s, 59.6 s, 61 s, 2 h 7 min 30 s, 3 days 4 hours 59 min}'::interval[]) i;
SELECT client, event, payload ->> 'consecutive_failures' AS failures, payload ->> 'sqlstate' AS sqlstate,
       payload ->> 'error' AS error, payload ? 'at' AS dated FROM owsync.alert ORDER BY alert_id;
-- the same in the metrics view (numbers for postgres_exporter)
SELECT client, enabled, scheduled, consecutive_failures, backing_off, runs_failed, runs_skipped,
       lag_seconds > 0 AS lagging
  FROM owsync.metrics;
\! mv /tmp/owsync_regress/schedule/b.good /tmp/owsync_regress/schedule/b.db
CALL owsync.sync('sched_b');
SELECT client, failures, next_attempt_at, last_status FROM owsync.status_detail;
SELECT event, payload ->> 'consecutive_failures' AS failures FROM owsync.alert ORDER BY alert_id;
-- the same two alerts as notifications, in order
SELECT pg_advisory_unlock(hashtext('regress_listener'));
\! sh "$PG_ABS_SRCDIR/test/fixtures/wait_file.sh" /tmp/owsync_regress/schedule/listen.done && python3 "$PG_ABS_SRCDIR/test/fixtures/alerts_heard.py" /tmp/owsync_regress/schedule/listen.out
SELECT status, scheduled, count(*) FROM owsync.run WHERE client = 'sched_b' GROUP BY 1, 2 ORDER BY 1, 2;

-- retention: runs older than owsync.history_retention go at the next run, and
-- so do the pg_cron run details of the client's job
SELECT owsync.set_schedule('sched_b', '0 0 1 1 *') IS NOT NULL AS scheduled;
INSERT INTO cron.job_run_details (jobid, runid, job_pid, database, username, command, status, return_message, start_time, end_time)
SELECT jobid, 1000 + g, 1, 'contrib_regression', 'x', 'old', 'succeeded', 'CALL', now() - '3 days'::interval, now() - '3 days'::interval
  FROM cron.job, generate_series(1, 3) g WHERE jobname = 'owsync:sched_b';
UPDATE owsync.run SET started_at = now() - '3 days'::interval WHERE client = 'sched_b' AND status = 'failed';
SET owsync.history_retention = '2d';
SHOW owsync.history_retention;
CALL owsync.sync('sched_b');
SELECT status, count(*) FROM owsync.run WHERE client = 'sched_b' GROUP BY 1 ORDER BY 1;
SELECT count(*) AS old_cron_details FROM cron.job_run_details WHERE runid > 1000;
RESET owsync.history_retention;
SET owsync.history_retention = '-1';
SET owsync.history_retention = 0;
SHOW owsync.history_retention;
RESET owsync.history_retention;

SELECT owsync.unregister_client('sched_b', drop_data => true);
SELECT count(*) AS jobs FROM cron.job;
DROP EXTENSION pg_cron;
DROP EXTENSION owsync_fdw;
ALTER DATABASE contrib_regression RESET owsync.allowed_directories;
\! rm -rf /tmp/owsync_regress/schedule
