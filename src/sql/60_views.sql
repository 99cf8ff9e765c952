-- What an operator reads in psql.  Two views for people, each one line per
-- row within 120 columns (times as ages, errors cut to their first line), and
-- the same facts with every column typed and in full in the _detail views,
-- for queries, scripts and the full error text.  The views run as their
-- caller (security_invoker): a role sees the rows its policies let it see.

-- '12s', '3m05s', '2h07m', '4d03h': a duration the way an eye reads it.
CREATE FUNCTION owsync._age(span interval) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN s < 60 THEN s || 's'
            WHEN s < 3600 THEN s / 60 || 'm' || lpad((s % 60)::text, 2, '0') || 's'
            WHEN s < 86400 THEN s / 3600 || 'h' || lpad((s % 3600 / 60)::text, 2, '0') || 'm'
            ELSE s / 86400 || 'd' || lpad((s % 86400 / 3600)::text, 2, '0') || 'h' END
  FROM (SELECT round(abs(extract(epoch FROM span)))::bigint) AS x(s)
$$;

-- The first line of a message, cut to width characters.
CREATE FUNCTION owsync._brief(message text, width integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
SELECT CASE WHEN length(l) > width THEN left(l, width - 3) || '...' ELSE l END
  FROM (SELECT split_part(message, E'\n', 1)) AS x(l)
$$;

CREATE VIEW owsync.history_detail WITH (security_invoker = true) AS
SELECT r.run_id, r.client, r.mode, r.status, r.scheduled, r.started_at, r.source_unchanged,
       r.finished_at - r.started_at AS duration,
       t.tables, t.rows_read, t.inserted, t.updated, t.deleted, t.quarantined, t.conflicts,
       r.sqlstate, r.error_table, r.error
  FROM owsync.run r
  -- (a succeeded run that read no table changed no row: 0; a failed run's
  -- counts went with its rollback: NULL)
  CROSS JOIN LATERAL (SELECT CASE WHEN r.status = 'succeeded' THEN 0 END AS zero) z
  CROSS JOIN LATERAL (SELECT count(*) AS tables, coalesce(sum(rows_read), z.zero) AS rows_read,
                             coalesce(sum(inserted), z.zero) AS inserted, coalesce(sum(updated), z.zero) AS updated,
                             coalesce(sum(deleted), z.zero) AS deleted,
                             coalesce(sum(quarantined), z.zero) AS quarantined,
                             coalesce(sum(conflicts), z.zero) AS conflicts
                        FROM owsync.run_table rt WHERE rt.run_id = r.run_id) t;

COMMENT ON VIEW owsync.history_detail IS 'one row per sync run: status, per-run row counts (conflicts: rows changed in the mirror and at the source, see owsync.conflicts), the error of a failed run in full';

CREATE VIEW owsync.history WITH (security_invoker = true) AS
SELECT h.run_id, h.client, h.started_at::timestamp(0) AS started, h.mode, h.status,
       round(extract(epoch FROM h.duration), 3) AS seconds,
       CASE WHEN h.error IS NOT NULL THEN owsync._brief(h.error, 30)
            WHEN h.source_unchanged THEN 'unchanged'
            WHEN h.status = 'succeeded' THEN
                 '+' || h.inserted || ' ~' || h.updated || ' -' || h.deleted
                 || CASE WHEN h.quarantined > 0 THEN ' !' || h.quarantined ELSE '' END
                 || CASE WHEN h.conflicts > 0 THEN ' *' || h.conflicts ELSE '' END
       END AS result
  FROM owsync.history_detail h;

COMMENT ON VIEW owsync.history IS 'one line per sync run for psql: start (session time zone), seconds taken, and the rows changed as +inserted ~updated -deleted !quarantined *conflicts, unchanged when nothing was committed to the source since the last run, or the error cut short (in full in owsync.history_detail)';

CREATE VIEW owsync.status_detail WITH (security_invoker = true) AS
SELECT c.client, c.enabled, c.schedule, c.cron_schedule AS cron_job,
       last.started_at AS last_run_at, last.status AS last_status, last.error AS last_error,
       c.consecutive_failures AS failures, c.next_attempt_at,
       CASE WHEN d.client IS NOT NULL		-- the pool's: when due, at the minute its backoff ends
            THEN greatest(d.due_at, date_trunc('minute', c.next_attempt_at - interval '5 seconds' + interval '59.999999 seconds'))
            ELSE owsync._next_run(c.cron_schedule, greatest(now(), c.next_attempt_at - interval '5 seconds'))
       END AS next_run_at,
       ok.finished_at AS last_success_at,
       now() - ok.finished_at AS lag,
       (SELECT sum(s.n_live_tup)::bigint FROM pg_catalog.pg_stat_user_tables s
         WHERE s.schemaname = c.client) AS mirror_rows,
       (SELECT count(*) FROM owsync.quarantine q WHERE q.client = c.client) AS quarantined_rows,
       (SELECT count(*) FROM owsync.mirror_change mc WHERE mc.client = c.client) AS mirror_changes,
       (SELECT count(*) FROM owsync.conflict x WHERE x.client = c.client AND x.decided IS NULL) AS pending_conflicts,
       e.bad_options, e.option_errors,
       owsync._versions_bytes(c.client) AS versions_bytes,
       (SELECT r.finished_at FROM owsync.run r WHERE r.run_id = c.versions_from) AS restorable_from
  FROM owsync.client c
  LEFT JOIN owsync.sync_due d ON d.client = c.client
  CROSS JOIN LATERAL (SELECT array_agg(coalesce(x.option, 'options') ORDER BY x.option) AS bad_options,
                             array_agg(x.message || ' (' || x.hint || ')' ORDER BY x.option) AS option_errors
                        FROM owsync._option_errors(c.client, c.options) x) e
  LEFT JOIN LATERAL (SELECT r.* FROM owsync.run r
                      WHERE r.client = c.client AND r.status <> 'skipped'
                      ORDER BY r.run_id DESC LIMIT 1) last ON true
  LEFT JOIN LATERAL (SELECT r.* FROM owsync.run r
                      WHERE r.client = c.client AND r.status = 'succeeded'
                      ORDER BY r.run_id DESC LIMIT 1) ok ON true;

COMMENT ON VIEW owsync.status_detail IS 'one row per client: schedule and the cron expression it runs by (cron_job: the dispatcher pool runs it, or, for a schedule in seconds, a pg_cron job of its own), last run and its outcome, failures in a row and the backoff, next run (in the past: due, waiting for a dispatcher), last success, lag, rows in the mirror (statistics), quarantined rows, rows changed in the mirror (pending in owsync.mirror_change), conflicts pending resolution, the stored options that register_client() or set_options() would refuse now (their names, and why), the bytes of its kept row versions and the oldest moment it can be restored to (owsync.restore options as_of)';

CREATE VIEW owsync.status WITH (security_invoker = true) AS
SELECT d.client, d.enabled, d.schedule, d.cron_job,
       d.last_status || ' ' || owsync._age(now() - d.last_run_at) || ' ago' AS last_run,
       CASE WHEN d.next_run_at <= now() THEN 'due'
            ELSE 'in ' || owsync._age(d.next_run_at - now()) END AS next_run,
       coalesce(owsync._age(d.lag), 'never') AS lag,
       CASE WHEN d.last_status = 'failed' THEN
                 owsync._brief(CASE WHEN d.failures > 1 THEN d.failures || 'x: ' ELSE '' END
                               || d.last_error, 24)
            WHEN d.quarantined_rows > 0 THEN d.quarantined_rows || ' quarantined'
            WHEN d.bad_options IS NOT NULL THEN owsync._brief('bad options: ' || array_to_string(d.bad_options, ', '), 24)
            WHEN d.pending_conflicts > 0 THEN d.pending_conflicts || ' conflicts pending' END AS problem
  FROM owsync.status_detail d;

COMMENT ON VIEW owsync.status IS 'one line per client for psql: schedule and its cron expression, outcome and age of the last run, next run, lag since the last success, the problem if any: failures in a row and the error cut short, rows quarantined, options to fix, or conflicts pending (in full in owsync.status_detail)';

-- One row per client, every column a number: the shape postgres_exporter's
-- custom queries turn into Prometheus metrics (docs/postgres_exporter.yaml).
CREATE VIEW owsync.metrics WITH (security_invoker = true) AS
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
       (SELECT count(*) FROM owsync.mirror_change mc WHERE mc.client = c.client) AS mirror_changes,
       (SELECT count(*) FROM owsync.conflict x WHERE x.client = c.client AND x.decided IS NULL) AS pending_conflicts,
       n.succeeded AS runs_succeeded, n.failed AS runs_failed, n.skipped AS runs_skipped,
       owsync._versions_bytes(c.client) AS versions_bytes,
       (SELECT extract(epoch FROM r.finished_at) FROM owsync.run r WHERE r.run_id = c.versions_from)
         AS restorable_from_timestamp_seconds
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

-- One row per conflict, for people (both versions are in owsync.conflict).
CREATE VIEW owsync.conflicts WITH (security_invoker = true) AS
SELECT x.conflict_id, x.client, x.table_name, x.key, x.policy, x.mirror_op, x.source_op,
       coalesce(x.decided, 'pending') AS winner, x.detected_at, x.decided_at, x.resolved_by, x.run_id, x.note
  FROM owsync.conflict x;

COMMENT ON VIEW owsync.conflicts IS 'one row per conflict (a row changed in the mirror and at the source): the key, the policy, what each side did, the winner (source, target, or pending until owsync.resolve_conflict), when; both versions in owsync.conflict';
