#!/usr/bin/env bash
# Fleet benchmark:  bash test/bench/fleet.sh [--no-deps] [--clients N] [--size tiny|small]
#
# N generated Open WebUI databases (default 50, size small), registered with
# owsync.discover(pattern, 'realtime'): 50 pg_cron jobs firing every minute, on this machine's
# throwaway cluster (pg_cron in background-worker mode, max_worker_processes 16).  Then every
# client's file changes at once (a chat renamed, updated_at bumped) and the script polls each
# client's mirror until the change is there: per client, the seconds from the change to the end
# of the pg_cron run that brought it.  Reports the median and the maximum, how many clients were
# synced within 2 minutes, and pg_cron's failed job starts.  Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh

deps=1 n=50 size=small
while [ $# -gt 0 ]; do
  case $1 in
    --no-deps) deps=0 ;;
    --clients) n=${2:?}; shift ;;
    --size) size=${2:?}; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

owsync_workdir
[ "$deps" -eq 1 ] && owsync_install_deps
owsync_build_install
owsync_cluster_start postgres
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d postgres "$@"; }

FLEET=$OWSYNC_WORK/fleet
owsync_step "generate $n Open WebUI databases ($size) under $FLEET/<client>.example.com/data/webui.db"
python3 test/gen_openwebui.py --out "$OWSYNC_WORK/seed.db" --flavour fresh --size "$size" --journal wal --seed 7 >/dev/null
for i in $(seq -w 1 "$n"); do
  mkdir -p "$FLEET/client$i.example.com/data"
  cp "$OWSYNC_WORK/seed.db" "$FLEET/client$i.example.com/data/webui.db"
done
owsync_give_to_pg "$FLEET"
du -sh "$FLEET" | sed 's/^/fleet on disk: /'

owsync_step "register the fleet on the realtime tier"
q -v dir="$FLEET" <<'SQL'
CREATE EXTENSION owsync_fdw;
CREATE EXTENSION pg_cron;
ALTER SYSTEM SET owsync.allowed_directories = :'dir';
SELECT pg_reload_conf();
SQL
t0=$(date +%s)
q -F ' ' -c "SET client_min_messages = warning" \
  -c "CALL owsync.discover('$FLEET/*/data/webui.db', 'realtime', NULL, NULL, NULL, '[]')" |
  awk '{print "registered " $1 ", already registered " $2 ", not registered " $3}'
echo "discover: $(( $(date +%s) - t0 )) s; jobs: $(q -c "SELECT count(*) FROM cron.job")"

# Change every file just after a minute boundary has passed (the worst case: a change just
# missed by the runs starting at :00 waits for the next minute).
owsync_step "wait for the next minute boundary, then change every client's file"
while [ "$(date +%S)" != "02" ]; do sleep 0.2; done
for d in "$FLEET"/*/data/webui.db; do
  sqlite3 "$d" "UPDATE chat SET title = 'fleet change', updated_at = strftime('%s','now') WHERE rowid = (SELECT min(rowid) FROM chat);"
done
changed=$(q -c "SELECT now()")
echo "all $n files changed by $changed"

owsync_step "wait until every mirror has its change (at most 4 minutes)"
q -v changed="$changed" <<'SQL'
CREATE TEMP TABLE arrived (client text PRIMARY KEY, at timestamptz);
DO $$
DECLARE
    c record;
    n bigint;
    deadline timestamptz := clock_timestamp() + interval '4 minutes';
BEGIN
    WHILE clock_timestamp() < deadline
          AND (SELECT count(*) FROM arrived) < (SELECT count(*) FROM owsync.client) LOOP
        FOR c IN SELECT client FROM owsync.client WHERE client NOT IN (SELECT client FROM arrived) LOOP
            IF EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relname = 'chat'
                          AND relnamespace = c.client::regnamespace) THEN
                EXECUTE format('SELECT count(*) FROM %I.chat WHERE title = %L', c.client, 'fleet change') INTO n;
                IF n > 0 THEN
                    INSERT INTO arrived VALUES (c.client, clock_timestamp());
                END IF;
            END IF;
        END LOOP;
        COMMIT;
        PERFORM pg_sleep(0.5);
    END LOOP;
END
$$;
\echo
\echo 'per client: seconds from the change to the end of the scheduled run that brought it'
WITH latency AS (
    SELECT c.client,
           (SELECT extract(epoch FROM min(r.finished_at) - :'changed'::timestamptz) FROM owsync.run r
             WHERE r.client = c.client AND r.scheduled AND r.status = 'succeeded'
               AND r.finished_at >= :'changed'::timestamptz
               AND r.finished_at <= coalesce(a.at, now())) AS seconds
      FROM owsync.client c LEFT JOIN arrived a USING (client))
SELECT count(*) AS clients,
       count(*) FILTER (WHERE seconds IS NOT NULL) AS synced,
       count(*) FILTER (WHERE seconds <= 120) AS within_2_minutes,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds)::numeric, 1) AS median_s,
       round(max(seconds)::numeric, 1) AS max_s
  FROM latency;
SELECT status, count(*) AS job_runs, left(min(return_message), 60) AS a_message
  FROM cron.job_run_details WHERE start_time >= :'changed'::timestamptz - interval '5 seconds'
 GROUP BY status ORDER BY 1;
SELECT count(*) AS runs, round(avg(extract(epoch FROM finished_at - started_at))::numeric, 3) AS avg_run_s,
       round(max(extract(epoch FROM finished_at - started_at))::numeric, 3) AS max_run_s
  FROM owsync.run WHERE scheduled AND status = 'succeeded' AND started_at >= :'changed'::timestamptz;
SQL
