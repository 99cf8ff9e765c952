-- What an operator reads in psql: one row per run, one row per client.

CREATE VIEW owsync.history AS
SELECT r.run_id, r.client, r.mode, r.status, r.scheduled, r.started_at, r.source_unchanged,
       r.finished_at - r.started_at AS duration,
       t.tables, t.rows_read, t.inserted, t.updated, t.deleted, t.quarantined,
       r.sqlstate, r.error_table, r.error
  FROM owsync.run r
  LEFT JOIN LATERAL (SELECT count(*) AS tables, sum(rows_read) AS rows_read,
                            sum(inserted) AS inserted, sum(updated) AS updated, sum(deleted) AS deleted,
                            sum(quarantined) AS quarantined
                       FROM owsync.run_table rt WHERE rt.run_id = r.run_id) t ON true;

COMMENT ON VIEW owsync.history IS 'one row per sync run, newest last: status, per-run row counts, the error of a failed run';

CREATE VIEW owsync.status AS
SELECT c.client, c.enabled, c.schedule, c.cron_schedule AS cron_job,
       last.started_at AS last_run_at, last.status AS last_status, last.error AS last_error,
       c.consecutive_failures AS failures, c.next_attempt_at,
       owsync._next_run(c.cron_schedule,
                        greatest(now(), c.next_attempt_at - interval '5 seconds')) AS next_run_at,
       ok.finished_at AS last_success_at,
       now() - ok.finished_at AS lag,
       (SELECT sum(s.n_live_tup)::bigint FROM pg_catalog.pg_stat_user_tables s
         WHERE s.schemaname = c.client) AS mirror_rows,
       (SELECT count(*) FROM owsync.quarantine q WHERE q.client = c.client) AS quarantined_rows
  FROM owsync.client c
  LEFT JOIN LATERAL (SELECT r.* FROM owsync.run r
                      WHERE r.client = c.client AND r.status <> 'skipped'
                      ORDER BY r.run_id DESC LIMIT 1) last ON true
  LEFT JOIN LATERAL (SELECT r.* FROM owsync.run r
                      WHERE r.client = c.client AND r.status = 'succeeded'
                      ORDER BY r.run_id DESC LIMIT 1) ok ON true;

COMMENT ON VIEW owsync.status IS 'one row per client: schedule and its pg_cron job, last run and its outcome, failures in a row and the backoff, last success, lag, rows in the mirror (statistics)';

-- One row per client, every column a number: the shape postgres_exporter's
-- custom queries turn into Prometheus metrics (docs/postgres_exporter.yaml).
CREATE VIEW owsync.metrics AS
SELECT c.client,
       c.enabled::integer AS enabled,
       (c.schedule <> 'manual')::integer AS scheduled,
       c.consecutive_failures,
       (c.next_attempt_at IS NOT NULL AND c.next_attempt_at > now())::integer AS backing_off,
       extract(epoch FROM now() - ok.finished_at) AS lag_seconds,
       extract(epoch FROM ok.finished_at) AS last_success_timestamp_seconds,
       extract(epoch FROM ok.finished_at - ok.started_at) AS last_success_duration_seconds,
       coalesce(t.inserted, 0) AS last_success_inserted_rows,
       coalesce(t.updated, 0) AS last_success_updated_rows,
       coalesce(t.deleted, 0) AS last_success_deleted_rows,
       (SELECT coalesce(sum(s.n_live_tup), 0)::bigint FROM pg_catalog.pg_stat_user_tables s
         WHERE s.schemaname = c.client) AS mirror_rows,
       (SELECT count(*) FROM owsync.quarantine q WHERE q.client = c.client) AS quarantined_rows,
       n.succeeded AS runs_succeeded, n.failed AS runs_failed, n.skipped AS runs_skipped
  FROM owsync.client c
  LEFT JOIN LATERAL (SELECT r.* FROM owsync.run r
                      WHERE r.client = c.client AND r.status = 'succeeded'
                      ORDER BY r.run_id DESC LIMIT 1) ok ON true
  LEFT JOIN LATERAL (SELECT sum(rt.inserted) AS inserted, sum(rt.updated) AS updated, sum(rt.deleted) AS deleted
                       FROM owsync.run_table rt WHERE rt.run_id = ok.run_id) t ON true
  LEFT JOIN LATERAL (SELECT count(*) FILTER (WHERE r.status = 'succeeded') AS succeeded,
                            count(*) FILTER (WHERE r.status = 'failed') AS failed,
                            count(*) FILTER (WHERE r.status = 'skipped') AS skipped
                       FROM owsync.run r WHERE r.client = c.client) n ON true;

COMMENT ON VIEW owsync.metrics IS 'one row per client, numbers only (runs counted over the kept history): for postgres_exporter, see docs/postgres_exporter.yaml';
