#!/usr/bin/env bash
# Writer benchmark:  bash test/bench/journal.sh [--no-deps] [--secs S] [--modes "wal delete"]
#
# What each kind of sync costs a writer like Open WebUI's, in WAL and in rollback-journal (DELETE)
# mode, on a copy of the ~700 MB benchmark database (test/lib.sh owsync_bench_db), in one run on
# one cluster.  The writer (test/bench/sync_helper.py writer) streams tokens into a chat: every
# 20 ms BEGIN IMMEDIATE, two updates, COMMIT, busy_timeout 5000 as pysqlite's default.  For each
# journal mode, one after the other on a fresh copy of the file:
#   - floor: `cp` of the file, the least any consistent copy of it takes (medians of 3);
#   - idle: S seconds (default 10) of the writer alone;
#   - then, each once, while the writer writes: owsync.register_client, CALL sync(full),
#     incremental after 100 chats changed and 20 deleted (sync_helper.py mutate), reconcile after
#     5 silent edits, owsync.pending(), owsync.verify(), and an incremental run whose only
#     changes are the writer's own (streaming).
# Per step: its duration, the writer's commits, latency p50 / p99 / max and failures; in DELETE
# mode the target beside it: no commit waits more than max(0.5 s, 1.2 x the copy) and none fails.
# fsync on, as PostgreSQL ships; no VACUUM or ANALYZE before a step.  Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh

deps=1 secs=10 modes="wal delete"
while [ $# -gt 0 ]; do
  case $1 in
    --no-deps) deps=0 ;;
    --secs) secs=${2:?}; shift ;;
    --modes) modes=${2:?}; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

owsync_workdir
[ "$deps" -eq 1 ] && owsync_install_deps
owsync_build_install
owsync_cluster_start postgres
owsync_bench_db
WDIR=$BENCH_DIR/journal.$$ DB=$BENCH_DIR/journal.$$/webui.db PHASE=$OWSYNC_WORK/phase R=$OWSYNC_WORK
mkdir -m 0777 "$WDIR"; OWSYNC_CLEANUP_DIRS+=("$WDIR")
WRITER=""
owsync_on_exit() { [ -z "$WRITER" ] || kill "$WRITER" 2>/dev/null || true; }

q() { psql -X -q -At -v ON_ERROR_STOP=1 -d postgres "$@"; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
pct() { sort -n | awk -v p="$1" '{a[NR]=$1} END {i=int(NR*p/100+0.999); print a[i<1?1:i]}'; }
q -v dir="$WDIR" >/dev/null <<'SQL'
CREATE EXTENSION owsync_fdw;
ALTER SYSTEM SET owsync.allowed_directories = :'dir';
ALTER SYSTEM SET fsync = on;          -- as PostgreSQL ships (the test clusters turn it off)
SELECT pg_reload_conf();
SQL

# step NAME SQL: run SQL (one session) while the writer tags its commits NAME; prints the duration
step() {
  echo "$1" >"$PHASE"; sleep 0.2
  local t0; t0=$(ms); q -c "SET client_min_messages = warning" -c "$2" >/dev/null; local t=$(( $(ms) - t0 ))
  echo gap >"$PHASE"; sleep 0.2
  echo "$1 $t" >>"$R/steps.$mode"; echo "$mode $1: $t ms"
}

for mode in $modes; do
  owsync_step "journal mode $mode: a fresh copy of the benchmark file"
  rm -f "$DB" "$DB-wal" "$DB-shm"; cp "$BENCH_DB" "$DB"; chmod 0666 "$DB"
  sqlite3 "$DB" "PRAGMA journal_mode = $mode" >/dev/null
  : >"$R/steps.$mode"; : >"$R/copy.$mode"
  for i in 1 2 3; do
    sync; t0=$(ms); cp "$DB" "$WDIR/copy.db"; echo $(( $(ms) - t0 )) >>"$R/copy.$mode"; rm -f "$WDIR/copy.db"
  done
  echo "cp of the file: $(tr '\n' ' ' <"$R/copy.$mode")ms"

  echo pause >"$PHASE"
  python3 test/bench/sync_helper.py writer "$DB" "$PHASE" >"$R/writer.$mode" &
  WRITER=$!
  echo idle >"$PHASE"; sleep "$secs"; echo "idle $(( secs * 1000 ))" >>"$R/steps.$mode"
  step register "SELECT count(*) FROM owsync.register_client('bench', '$DB')"
  step full "CALL owsync.sync('bench', 'full')"
  q -c "UPDATE owsync.client SET options = options || '{\"reconcile_interval\": \"100 years\"}' WHERE client = 'bench'"
  python3 test/bench/sync_helper.py mutate "$DB" 1
  step incremental "CALL owsync.sync('bench')"
  python3 test/bench/sync_helper.py silent "$DB" 101
  step reconcile "CALL owsync.sync('bench', 'reconcile')"
  step pending "SELECT count(*) FROM owsync.pending('bench')"
  step verify "SELECT count(*) FROM owsync.verify('bench')"
  step streaming "CALL owsync.sync('bench')"
  echo stop >"$PHASE"; wait "$WRITER" || owsync_die "the writer failed"; WRITER=""
  q -c "SELECT owsync.unregister_client('bench', drop_data => true)" >/dev/null
done

owsync_step "results: writer commit latency during each step ($(du -h "$BENCH_DB" | cut -f1) file)"
printf '| %-7s | %-11s | %8s | %7s | %8s | %8s | %8s | %8s | %-22s |\n' journal step "step ms" commits "p50 ms" "p99 ms" "max ms" failures "target (DELETE)"
printf '|%s|\n' "---------|-------------|----------|---------|----------|----------|----------|----------|------------------------"
for mode in $modes; do
  copy=$(median <"$R/copy.$mode")
  bound=$(awk -v c="$copy" 'BEGIN {b = 1.2 * c; print (b > 500 ? b : 500)}')
  while read -r name t; do
    awk -v p="$name" '$1 == p && $3 != "FAIL" {print $2}' "$R/writer.$mode" >"$R/lat"
    fails=$(awk -v p="$name" '$1 == p && $3 == "FAIL"' "$R/writer.$mode" | wc -l)
    n=$(wc -l <"$R/lat"); mx=$( [ "$n" -gt 0 ] && pct 100 <"$R/lat" || echo -)
    target=""
    if [ "$mode" = delete ] && [ "$name" != idle ]; then
      met=$(awk -v m="${mx/-/0}" -v b="$bound" -v f="$fails" 'BEGIN {print (m <= b && f == 0) ? "met" : "NOT met"}')
      target="max <= $bound ms: $met"
    fi
    printf '| %-7s | %-11s | %8s | %7s | %8s | %8s | %8s | %8s | %-22s |\n' "$mode" "$name" "$t" "$n" \
      "$( [ "$n" -gt 0 ] && pct 50 <"$R/lat" || echo -)" "$( [ "$n" -gt 0 ] && pct 99 <"$R/lat" || echo -)" "$mx" "$fails" "$target"
  done <"$R/steps.$mode"
  echo "$mode: cp of the file (the floor of any consistent copy): median $copy ms"
done
