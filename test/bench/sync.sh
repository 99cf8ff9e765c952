#!/usr/bin/env bash
# Sync benchmark:  bash test/bench/sync.sh [--no-deps] [--runs N] [--fulls N] [--writer-secs S] [--db FILE]
#
# On a copy of the ~700 MB generated Open WebUI database (legacy flavour, seed 1; --db another
# file), in the configuration an operator runs: the file in WAL mode, row versions kept (the
# default versions_retention), the client published to a hub.  Two clusters, fsync on, default
# autovacuum: the edge (owsync_fdw, pg_cron, wal_level logical) and the hub (a copy of PostgreSQL
# without owsync_fdw), attached as test/bench/fleet.sh does; the hub reaches the edge through
# test/bench/byte_proxy.py, which counts the bytes shipped.  Nothing runs VACUUM, ANALYZE or
# CHECKPOINT; after each timed step the script waits (untimed) until the hub has caught up.
# Each figure is printed beside its floor, measured in the same run, the ratio and the target:
#   - first registration (register_client), then --fulls (default 3) CALL owsync.sync(c, 'full')
#     in a row; floor: the sqlite3 CLI reading every column of every table, plus PostgreSQL
#     writing the same rows from a local copy (values uncompressed) with INSERT ... SELECT into
#     tables LIKE the mirror's and the digests' INCLUDING ALL (test/bench/sync_floor.sql), one
#     transaction; for the registration, plus PostgreSQL creating those tables (one
#     transaction); measured before each full.  While each full runs, a reader counts chat and
#     chat_message every 0.25 s (each count a statement of its own): the least and most it saw,
#     against the file's count, and its failed statements.  Bytes shipped to the hub per full,
#     against what pgoutput sends for the mirror's rows once.  Then the mirror's size, once
#     autovacuum has processed its tables, against its size after registration;
#   - incremental (--runs rounds, default 3, 62 s apart: the fast path's 60 s overlap re-reads one
#     earlier round): a nothing-changed run, then 1% of the chats given a new exchange (chat JSON,
#     updated_at, 2 chat_message rows) and 0.2% deleted (sync_helper.py mutate), then CALL
#     owsync.sync(c) (reconcile_interval 100 years); floor: the nothing-changed run, plus the
#     sqlite3 CLI's reads no read-only sync can skip (each table's fast-path window, every value
#     of a table without updated_at, every key's bytes), plus PostgreSQL writing the rows the run
#     changed (mirror, digests, versions) from a local stage into tables LIKE the client's;
#   - nothing changed: the runs above, median and max;
#   - reconcile: 5 silent title edits, then CALL owsync.sync(c, 'reconcile');
#   - restore: CALL owsync.restore(c, <new file>) --fulls times, the first compared with the source
#     by test/compare_sqlite.py; floor: sqlite3 copying the same rows into a new file, then
#     PRAGMA integrity_check, then the file fsynced (sync FILE), as a restore leaves it;
#   - a writer (sync_helper.py writer) streaming tokens into a chat every 20 ms, holding the file
#     open until here: commit latency p50/p99 for --writer-secs (default 30) idle, then while full
#     syncs run back to back for as long;
#   - the incremental rounds again with the file in rollback-journal (DELETE) mode; floor: cp of
#     the file (a run there reads a copy of it) plus that mode's own incremental floor;
#   - every sync's backend private memory (VmHWM minus shared buffers and mapped files).
# Medians of the runs.  Not part of CI; takes about 12 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh

deps=1 runs=3 fulls=3 wsecs=30 dbfile=""
while [ $# -gt 0 ]; do
  case $1 in
    --no-deps) deps=0 ;;
    --runs) runs=${2:?}; shift ;;
    --fulls) fulls=${2:?}; shift ;;
    --writer-secs) wsecs=${2:?}; shift ;;
    --db) dbfile=${2:?}; shift ;;
    -h|--help) sed -n '2,39p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
started=$(date +%s)

owsync_workdir
[ "$deps" -eq 1 ] && owsync_install_deps
owsync_build_install
R=$OWSYNC_WORK/results
mkdir -p "$R"

# ------------------------------------------------------------------ clusters
EDGE=bench_edge SUB=owsync_bench_edge        # the edge's name; the hub's subscription and its slot
WRITER="" READER="" PROXY=""
owsync_on_exit() {
  local p
  [ -z "$READER" ] || touch "$R/reader.stop"
  for p in "$WRITER" "$READER" "$PROXY"; do [ -z "$p" ] || kill "$p" 2>/dev/null || true; done
  [ "$1" -eq 0 ] || [ ! -f "$OWSYNC_WORK/hub/server.log" ] || { echo "== hub: server log (last 20 lines)"; tail -n 20 "$OWSYNC_WORK/hub/server.log"; }
}
# the edge keeps WAL for the hub while it applies a full resync (or several, back to back)
owsync_cluster_start_named edge postgres "fsync = on
max_slot_wal_keep_size = '16GB'"
HUB_BIN=$(owsync_pg_copy_without_owsync "$OWSYNC_WORK/pg-hub")
OWSYNC_PGBIN=$HUB_BIN owsync_cluster_start_named hub "" "fsync = on"
export PGHOST=$OWSYNC_WORK/edge PGPORT=${OWSYNC_PORT[edge]} PGUSER=postgres

q() { psql -X -q -At -v ON_ERROR_STOP=1 -d postgres "$@"; }
hq() { psql -X -q -At -v ON_ERROR_STOP=1 -h "$OWSYNC_WORK/hub" -p "${OWSYNC_PORT[hub]}" -U postgres -d "${HDB:-hub}" "$@"; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
pct() { sort -n | awk -v p="$1" '{a[NR]=$1} END {i=int(NR*p/100+0.999); print a[i<1?1:i]}'; }
# timed SQL [PRELUDE]: run SQL in a fresh session; prints "ms VmHWM_kB private_kB" (psql \timing; /proc read
# by the backend at the end).  VmHWM counts the shared buffers the backend touched (RssShmem) and
# mapped files (RssFile: libraries, e.g. LLVM when a statement is JIT-compiled); both only grow
# within a session, so VmHWM - RssShmem - RssFile at the end is the private (anonymous) memory at
# the peak.  With PRELUDE (SQL and psql lines run first, untimed, in the same session), the
# session is warm, as a dispatcher's is (its PL/pgSQL compiled, its caches filled): runs are timed
# so, since the pool runs every scheduled sync in a long-lived backend.
timed() {
  q 2>>"$R/notices.log" <<SQL | awk -F'|' '/^Time: / {t=$0; sub(/^Time: /,"",t); sub(/ ms.*/,"",t)}
                                           /^MEM\|/ {m=$2; p=$2-$3-$4} END {printf "%d %d %d\n", t, m, p}'
${2:-}
\\timing on
$1;
\\timing off
SELECT 'MEM', proc_kb('VmHWM'), proc_kb('RssShmem'), proc_kb('RssFile');
SQL
}
# wait_for NODE SECS SQL: poll until SQL (at the edge or the hub) returns t; prints the seconds it took
wait_for() {
  local node=$1 secs=$2 sql=$3 t0 out; t0=$(ms)
  while :; do
    if [ "$node" = hub ]; then out=$(hq -c "$sql"); else out=$(q -c "$sql"); fi
    [ "$out" = t ] && break
    [ $(( $(ms) - t0 )) -lt $(( secs * 1000 )) ] || owsync_die "waited $secs s at $node for: $sql"
    sleep 0.2
  done
  awk -v t="$(( $(ms) - t0 ))" 'BEGIN {printf "%.1f\n", t / 1000}'
}
# caught_up: the hub has applied everything the edge has written so far (its slot confirmed the
# edge's current WAL position) and holds every table the edge publishes, copied; prints the
# seconds it took
caught_up() {
  local lsn t0; t0=$(ms); lsn=$(q -c "SELECT pg_current_wal_lsn()")
  wait_for edge 1800 "SELECT coalesce(bool_and(confirmed_flush_lsn >= '$lsn'), false) FROM pg_replication_slots
                       WHERE slot_name = '$SUB'" >/dev/null
  local pub; pub=$(q -c "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'owsync_edge'")
  wait_for hub 1800 "SELECT count(*) = $pub AND bool_and(r.srsubstate = 'r')
                       FROM pg_subscription s JOIN pg_subscription_rel r ON r.srsubid = s.oid
                      WHERE s.subname = '$SUB'" >/dev/null
  awk -v t="$(( $(ms) - t0 ))" 'BEGIN {printf "%.1f\n", t / 1000}'
}
# shipped: the bytes the edge has sent to the hub so far (byte_proxy.py answers a SIGUSR1)
shipped() {
  local n0 n; n0=$(cut -d' ' -f3 "$R/proxy")
  kill -USR1 "$PROXY"
  for _ in $(seq 200); do
    n=$(cut -d' ' -f3 "$R/proxy"); [ "$n" != "$n0" ] && break; sleep 0.05
  done
  [ "$n" != "$n0" ] || owsync_die "byte_proxy.py did not answer"
  cut -d' ' -f1 "$R/proxy"
}
last_run() {  # per-table work of the client's last run, slowest first
  q -F ' ' -c "SELECT '    ' || rpad(table_name, 14), path, 'read', rows_read, 'ins', inserted, 'upd', updated,
                      'del', deleted, seconds || ' s'
                 FROM owsync.run_table WHERE run_id = (SELECT max(run_id) FROM owsync.run WHERE client = 'bench')
                ORDER BY seconds DESC LIMIT ${1:-4}"
}
mirror_bytes() {  # the mirror's tables with their TOAST and indexes
  q -c "SELECT sum(pg_total_relation_size(oid)) FROM pg_class WHERE relnamespace = 'bench'::regnamespace AND relkind = 'r'"
}
mb() { awk -v b="$1" 'BEGIN {printf "%.0f MB", b / 1048576}'; }

# --------------------------------------------------------------- the file
if [ -n "$dbfile" ]; then
  BENCH_DIR=${OWSYNC_BENCH_DIR:-/var/tmp/owsync-bench}; mkdir -p "$BENCH_DIR"; chmod 0777 "$BENCH_DIR"; SRC=$dbfile
else
  owsync_bench_db; SRC=$BENCH_DB
fi
WDIR=$BENCH_DIR/sync.$$ DB=$BENCH_DIR/sync.$$/webui.db PHASE=$R/phase WLOG=$R/writer.log
mkdir -m 0777 "$WDIR"; OWSYNC_CLEANUP_DIRS+=("$WDIR")
cp "$SRC" "$DB"; chmod 0666 "$DB"
size=$(du -h "$DB" | cut -f1)
jm=$(sqlite3 "$DB" "PRAGMA journal_mode")
[ "$jm" = wal ] || sqlite3 "$DB" "PRAGMA journal_mode = wal" >/dev/null
echo "source: $DB ($size), journal mode $jm$([ "$jm" = wal ] || echo ", set to wal"): $(sqlite3 "$DB" "PRAGMA journal_mode")"
nchats=$(sqlite3 "$DB" "SELECT count(*) FROM chat")
nchange=$(( (nchats + 50) / 100 )) ndelete=$(( (nchats + 250) / 500 ))

# the writer: started first, it holds the database open (and its -shm) until its phase ends
echo pause >"$PHASE"
python3 test/bench/sync_helper.py writer "$DB" "$PHASE" >"$WLOG" &
WRITER=$!
sleep 1; kill -0 "$WRITER" || owsync_die "the writer did not start"

# ------------------------------------------------------------ edge and hub
owsync_step "the edge $EDGE attached to the hub (through byte_proxy.py)"
q -v dir="$WDIR" >/dev/null <<'SQL'
CREATE EXTENSION owsync_fdw;
CREATE EXTENSION pg_cron;
ALTER SYSTEM SET owsync.allowed_directories = :'dir';
SELECT pg_reload_conf();
CREATE FUNCTION proc_kb(field text) RETURNS bigint LANGUAGE sql AS $$
  SELECT substring(pg_read_file('/proc/self/status') FROM field || ':\s+(\d+) kB')::bigint $$;
SQL
q -f test/bench/sync_floor.sql >/dev/null
HDB=postgres hq -c "CREATE DATABASE hub"
mkdir -m 0777 "$OWSYNC_WORK/proxy"
python3 test/bench/byte_proxy.py "$OWSYNC_WORK/proxy/.s.PGSQL.$PGPORT" "$OWSYNC_WORK/edge/.s.PGSQL.$PGPORT" "$R/proxy" &
PROXY=$!
for _ in $(seq 100); do [ -f "$R/proxy" ] && break; sleep 0.1; done
[ -f "$R/proxy" ] || owsync_die "byte_proxy.py did not start"
q -c "SET client_min_messages = error" -c "SELECT owsync.prepare_edge('$EDGE')" >/dev/null
t0=$(ms)
q -c "SET client_min_messages = warning" \
  -c "CALL owsync.attach_hub('host=$OWSYNC_WORK/hub port=${OWSYNC_PORT[hub]} dbname=hub user=postgres',
                             'host=$OWSYNC_WORK/proxy port=$PGPORT dbname=postgres')" >/dev/null
echo "attach_hub: $(( $(ms) - t0 )) ms; the hub holds the edge's catalog $(caught_up) s later"

read -r _ idle pidle <<<"$(timed 'SELECT 1')"
: >"$R/mem"

# ------------------------------------------------------- first registration
owsync_step "first registration: owsync.register_client('bench', '$DB') on the attached edge"
b0=$(shipped)
r=$(timed "SELECT * FROM owsync.register_client('bench', '$DB')"); read -r first m pm <<<"$r"
echo "$m $pm" >>"$R/mem"
echo "register_client: $first ms, VmHWM $m kB (private $pm kB) (idle backend $idle kB)"; last_run
rows=$(q -c "SELECT count(*) || ' tables, ' || sum(inserted) || ' rows (chat ' ||
                    max(inserted) FILTER (WHERE table_name = 'chat') || ', chat_message ' ||
                    max(inserted) FILTER (WHERE table_name = 'chat_message') || ')'
               FROM owsync.run_table WHERE run_id = (SELECT max(run_id) FROM owsync.run WHERE client = 'bench')")
echo "$rows"
echo "versions_retention: $(q -c "SELECT owsync._options(options) ->> 'versions_retention' FROM owsync.client WHERE client = 'bench'")" \
     "(versions from run $(q -c "SELECT versions_from FROM owsync.client WHERE client = 'bench'"))"
size1=$(mirror_bytes)
# published now rather than at the fleet job's next minute; the hub copies every table
q -c "SET client_min_messages = warning" -c "CALL owsync.fleet_tick()"
echo "published; the hub's first copy complete $(caught_up) s later"
copied=$(( $(shipped) - b0 ))
once=$(q -c "SELECT floor.pgoutput_bytes('bench')")
data=$(q -c "SELECT sum(pg_table_size(oid)) FROM pg_class WHERE relnamespace = 'bench'::regnamespace AND relkind = 'r'")
echo "mirror after registration: $(mb "$size1") (tables and TOAST $(mb "$data")); its rows as pgoutput sends them: $(mb "$once");" \
     "shipped for the first copy: $(mb "$copied")"

# ------------------------------------------------------------ full resyncs
owsync_step "full: the floor and CALL owsync.sync('bench', 'full'), $fulls times in a row, a reader counting meanwhile"
q -c "SET client_min_messages = warning" -c "SELECT floor.full_source('bench')" >/dev/null
echo "the floor's local copy made; the hub past it $(caught_up) s later"
# every column of every table, read in one transaction by the sqlite3 CLI
{ echo "BEGIN;"
  sqlite3 "$DB" "SELECT format('SELECT * FROM \"%w\";', name) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
  echo "COMMIT;"; } >"$R/readall.sql"
true_chat=$(sqlite3 "$DB" "SELECT count(*) FROM chat") true_msg=$(sqlite3 "$DB" "SELECT count(*) FROM chat_message")
# the reader: one session counting chat and chat_message, each count a statement (a transaction)
# of its own, every 0.25 s while a full runs; an error it meets is kept, not fatal
: >"$R/reader"; : >"$R/reader.err"
start_reader() {
  rm -f "$R/reader.stop"
  { while [ ! -e "$R/reader.stop" ]; do
      echo "SELECT 'chat', count(*) FROM bench.chat;"; echo "SELECT 'chat_message', count(*) FROM bench.chat_message;"
      sleep 0.25
    done | psql -X -q -At -F ' ' -d postgres >>"$R/reader" 2>>"$R/reader.err"; } &
  READER=$!
}
stop_reader() { touch "$R/reader.stop"; wait "$READER" || true; READER=""; }
: >"$R/full"; : >"$R/fread"; : >"$R/fddl"; : >"$R/fwrite"; : >"$R/shipped"; : >"$R/sizes"
for i in $(seq "$fulls"); do
  q -c "SET client_min_messages = warning" -c "SELECT floor.drop_targets()" >/dev/null
  read -r t _ <<<"$(timed "SELECT floor.full_targets('bench')")"; echo "$t" >>"$R/fddl"; caught_up >/dev/null
  t0=$(ms); sqlite3 -readonly "$DB" <"$R/readall.sql" >/dev/null; echo $(( $(ms) - t0 )) >>"$R/fread"
  read -r t _ <<<"$(timed "SELECT floor.full_write('bench')")"; echo "$t" >>"$R/fwrite"
  caught_up >/dev/null
  d=$(q -c "SELECT floor.check_full('bench')")
  echo "floor $i: PostgreSQL creates the tables $(tail -1 "$R/fddl") ms, SQLite reads every table" \
       "$(tail -1 "$R/fread") ms, PostgreSQL writes the rows $t ms" \
       "($([ -z "$d" ] && echo "as many as the mirror and the digests hold" || echo "NOT what the sync wrote: $d"))"
  b0=$(shipped)
  start_reader
  r=$(timed "CALL owsync.sync('bench', 'full')"); read -r t m pm <<<"$r"
  stop_reader
  echo "$t" >>"$R/full"; echo "$m $pm" >>"$R/mem"
  c=$(caught_up); b=$(( $(shipped) - b0 )); echo "$b" >>"$R/shipped"; s=$(mirror_bytes); echo "$s" >>"$R/sizes"
  echo "full run $i: $t ms, VmHWM $m kB (private $pm kB); at the hub $c s later, $(mb "$b") shipped; mirror $(mb "$s")"
  last_run 3
done
q -c "SET client_min_messages = warning" -c "SELECT floor.drop_full()" >/dev/null
for t in chat chat_message; do
  awk -v t=$t '$1 == t {n++; if (min == "" || $2 < min) min = $2; if ($2 > max) max = $2}
               END {printf "%s %d %d %d\n", t, n, min, max}' "$R/reader"
done >"$R/reader.sum"
rerr=$(grep -c ERROR "$R/reader.err" || true)
echo "reader: $(awk '{printf "%s counted %d times, %d to %d rows; ", $1, $2, $3, $4}' "$R/reader.sum")the file has $true_chat and $true_msg;" \
     "$rerr errors$( [ "$rerr" = 0 ] || echo ": $(grep ERROR "$R/reader.err" | sort | uniq -c | head -3 | tr '\n' ' ')")"

owsync_step "the mirror once autovacuum has processed its tables (and their TOAST)"
# a table (or TOAST table) is processed when its dead rows are under autovacuum's threshold
pending_sql="SELECT count(*) = 0 FROM pg_class c JOIN pg_stat_all_tables s ON s.relid = c.oid
              WHERE (c.relnamespace = 'bench'::regnamespace AND c.relkind = 'r'
                     OR c.oid IN (SELECT reltoastrelid FROM pg_class WHERE relnamespace = 'bench'::regnamespace AND relkind = 'r'))
                AND s.n_dead_tup > current_setting('autovacuum_vacuum_threshold')::int
                                   + current_setting('autovacuum_vacuum_scale_factor')::float8 * greatest(c.reltuples, 0)"
echo "before: $(mb "$(mirror_bytes)"); dead rows: $(q -F ' ' -c "SELECT string_agg(relname || ' ' || n_dead_tup, ', ' ORDER BY n_dead_tup DESC)
  FROM (SELECT * FROM pg_stat_user_tables WHERE schemaname = 'bench' ORDER BY n_dead_tup DESC LIMIT 3) x")"
t0=$(ms) settled=no
while [ $(( $(ms) - t0 )) -lt 1200000 ]; do
  [ "$(q -c "$pending_sql")" = t ] && { settled=yes; break; }
  sleep 2
done
size3=$(mirror_bytes)
echo "autovacuum $( [ $settled = yes ] && echo "done after $(( ($(ms) - t0) / 1000 )) s" || echo "NOT done within 1200 s"):" \
     "mirror $(mb "$size3"), after registration $(mb "$size1"); last autovacuum of chat, chat_message:" \
     "$(q -c "SELECT string_agg(relname || ' ' || coalesce(last_autovacuum::text, 'never'), ', ') FROM pg_stat_user_tables
              WHERE schemaname = 'bench' AND relname IN ('chat', 'chat_message')")"

# --------------------------------------------------------------- incremental
q -c "UPDATE owsync.client SET options = options || '{\"reconcile_interval\": \"100 years\"}' WHERE client = 'bench'"
# The SQLite reads an incremental run cannot skip, as sqlite3 CLI statements on the same file,
# from the client's watermarks before the run: per table, every value of the rows of the fast
# path's window (a walk of the table where SQLite has no index on updated_at; the sum of their
# lengths: a count alone would not read a value stored after updated_at, such as a chat's JSON),
# every value of a table without updated_at, and the bytes of every key (the sum of their lengths:
# SQLite answers a count of a key-only scan from its b-tree's cells without reading a key).
reads_sql() {
  q -F '|' -c "SELECT table_name, watermark_column,
                      watermark - coalesce((options ->> 'overlap_seconds')::bigint, 60)
                                  * CASE watermark_unit WHEN 'ns' THEN 1000000000 ELSE 1 END,
                      (SELECT string_agg(format('length(CAST(%I AS BLOB))', k), ' + ') FROM unnest(key_columns) k)
                 FROM owsync.client_table JOIN owsync.client USING (client)
                WHERE client = 'bench' AND removed_at IS NULL ORDER BY 1" |
  while IFS='|' read -r tbl wmcol since keys; do
    values="sum($(sqlite3 "$DB" "SELECT group_concat('length(\"' || replace(name, '\"', '\"\"') || '\")', '+') FROM pragma_table_info('$tbl')"))"
    if [ -n "$wmcol" ] && [ -n "$since" ]; then
      echo "SELECT count(*), $values FROM \"$tbl\" WHERE \"$wmcol\" >= $since;"
    elif [ -n "$wmcol" ]; then       # no watermark yet (an empty table): every row's updated_at
      echo "SELECT count(*) FROM (SELECT \"$wmcol\" FROM \"$tbl\");"
    else
      echo "SELECT count(*), $values FROM \"$tbl\";"
    fi
    [ -z "$keys" ] || echo "SELECT sum($keys) FROM \"$tbl\";"
  done
}
# incremental MODE SEED: --runs rounds 62 s apart, each: a nothing-changed run, the change, the run,
# its floor's PostgreSQL writes and SQLite reads
last=0
incremental() {
  local mode=$1 seed=$2 i t m pm run tabs d
  : >"$R/none.$mode"; : >"$R/incr.$mode"; : >"$R/write.$mode"; : >"$R/reads.$mode"
  for i in $(seq "$runs"); do
    while [ $(( $(date +%s) - last )) -lt 62 ]; do sleep 1; done
    # (warm: a nothing-changed run first, as a dispatcher's session has run one)
    r=$(timed "CALL owsync.sync('bench')" "CALL owsync.sync('bench');"); read -r t m pm <<<"$r"
    echo "$t" >>"$R/none.$mode"; echo "$m $pm" >>"$R/mem"; caught_up >/dev/null
    echo "nothing-changed run: $t ms ($(q -c "SELECT CASE WHEN source_unchanged THEN 'the source unchanged' ELSE 'CHANGES FOUND' END
                                               FROM owsync.run WHERE run_id = (SELECT max(run_id) FROM owsync.run WHERE client = 'bench')"))"
    reads_sql >"$R/reads.sql"
    # (warm: the session runs a nothing-changed run, then makes the change, then the timed run)
    last=$(date +%s)
    r=$(timed "CALL owsync.sync('bench')" "CALL owsync.sync('bench');
\\! python3 test/bench/sync_helper.py mutate '$DB' $((seed + i)) $nchange $ndelete >/dev/null"); read -r t m pm <<<"$r"
    echo "$t" >>"$R/incr.$mode"; echo "$m $pm" >>"$R/mem"
    echo "incremental run $i: $t ms, VmHWM $m kB (private $pm kB); at the hub $(caught_up) s later"; last_run 4
    run=$(q -c "SELECT max(run_id) FROM owsync.run WHERE client = 'bench'")
    tabs=$(q -c "SET client_min_messages = warning" -c "SELECT floor.inc_stage('bench', $run)")
    caught_up >/dev/null
    r=$(timed "SELECT floor.inc_write('bench', $run, '$tabs')"); read -r t _ <<<"$r"
    echo "$t" >>"$R/write.$mode"; caught_up >/dev/null
    d=$(q -c "SELECT floor.check_inc('bench', $run, '$tabs')")
    t=$( { echo .timer on; cat "$R/reads.sql"; } | sqlite3 -readonly "$DB" |
         awk '/^Run Time/ {s += $4} END {printf "%d\n", s * 1000}' )
    echo "$t" >>"$R/reads.$mode"
    echo "  floor: PostgreSQL writes the changed rows of $tabs $(tail -1 "$R/write.$mode") ms" \
         "($([ -z "$d" ] && echo "the rows and versions the run wrote" || echo "NOT what the run wrote: $d")), SQLite reads $t ms"
  done
}
owsync_step "incremental, WAL: $nchange of $nchats chats (1%) changed, $ndelete (0.2%) deleted ($runs rounds, 62 s apart)"
incremental wal 0

owsync_step "reconcile after 5 silent title edits ($runs runs)"
: >"$R/rec"
for i in $(seq "$runs"); do
  python3 test/bench/sync_helper.py silent "$DB" "$((100 + i))"
  r=$(timed "CALL owsync.sync('bench', 'reconcile')"); read -r t m pm <<<"$r"
  echo "$t" >>"$R/rec"; echo "$m $pm" >>"$R/mem"
  echo "reconcile run $i: $t ms, VmHWM $m kB (private $pm kB); at the hub $(caught_up) s later"; last_run 3
done
q -c "SELECT 'mirror check: ' || CASE WHEN count(*) FILTER (WHERE title LIKE '% (edited)') = $runs * 5
              THEN 'the silent edits arrived' ELSE 'MISSING silent edits' END FROM bench.chat"

# ------------------------------------------------------------------ restore
owsync_step "restore: CALL owsync.restore('bench', <new file>) ($fulls runs), the first compared with the source"
: >"$R/restore"; : >"$R/rmem"
for i in $(seq "$fulls"); do
  r=$(timed "CALL owsync.restore('bench', '$WDIR/restored.db')"); read -r t m pm <<<"$r"
  echo "$t" >>"$R/restore"; echo "$m $pm" >>"$R/rmem"
  echo "restore run $i: $t ms, VmHWM $m kB (private $pm kB), $(du -h "$WDIR/restored.db" | cut -f1)"
  if [ "$i" -eq 1 ]; then
    { python3 test/compare_sqlite.py "$DB" "$WDIR/restored.db" || true; } | tail -3 | sed 's/^/compare_sqlite.py: /'
  fi
  rm -f "$WDIR/restored.db"
done
# the same work done by SQLite alone, in the same settings: the file's DDL, every row copied with
# INSERT ... SELECT (WHERE 1: not SQLite's page-copying transfer shortcut), one transaction, then
# PRAGMA integrity_check, then the file fsynced (a restore leaves a durable file); no restore that
# writes rows through SQLite, checks them and leaves them on disk can beat it
python3 - "$DB" "$WDIR/restore_floor.sql" <<'PY'
import sqlite3, sys
src, out = sys.argv[1], sys.argv[2]
d = sqlite3.connect("file:%s?mode=ro" % src, uri=True)
ents = d.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid").fetchall()
with open(out, "w") as f:
    f.write("PRAGMA main.journal_mode = MEMORY; PRAGMA main.synchronous = OFF;\n"
            "PRAGMA main.locking_mode = EXCLUSIVE; PRAGMA main.cache_size = -32768;\n"
            "ATTACH 'file:%s?mode=ro' AS s; BEGIN;\n" % src)
    f.writelines(s + ";\n" for _, _, s in ents)
    f.writelines('INSERT INTO main."%s" SELECT * FROM s."%s" WHERE 1;\n' % (n, n) for t, n, _ in ents if t == "table")
    f.write("COMMIT; PRAGMA integrity_check;\n")
PY
: >"$R/rfloor"
for i in $(seq "$fulls"); do
  t0=$(ms); sqlite3 "$WDIR/floor.db" <"$WDIR/restore_floor.sql" >/dev/null; sync "$WDIR/floor.db"; t=$(( $(ms) - t0 ))
  echo "$t" >>"$R/rfloor"; echo "sqlite3 alone, copy + integrity_check + fsync $i: $t ms"; rm -f "$WDIR/floor.db"
done

# ------------------------------------------------------------------- writer
owsync_step "writer: ${wsecs}s idle, then ${wsecs}s of full syncs back to back"
echo idle >"$PHASE"; sleep "$wsecs"; wal=$(du -m "$DB-wal" | cut -f1)
echo sync >"$PHASE"; : >"$R/wfull"; end=$(( $(date +%s) + wsecs ))
while [ "$(date +%s)" -lt "$end" ]; do
  r=$(timed "CALL owsync.sync('bench', 'full')"); read -r t m pm <<<"$r"
  echo "$t" >>"$R/wfull"; echo "$m $pm" >>"$R/mem"; echo "full sync under the writer: $t ms, VmHWM $m kB (private $pm kB)"
done
echo "the -wal file: $wal MB after the idle phase, $(du -m "$DB-wal" | cut -f1) MB after the syncs"
echo stop >"$PHASE"; wait "$WRITER" || owsync_die "the writer failed"; WRITER=""
for p in idle sync; do
  awk -v p=$p '$1 == p {print $2}' "$WLOG" >"$R/w_$p"
  echo "$p: $(wc -l <"$R/w_$p") commits, p50 $(pct 50 <"$R/w_$p") ms, p99 $(pct 99 <"$R/w_$p") ms, max $(pct 100 <"$R/w_$p") ms"
done
echo "the hub caught up $(caught_up) s later"

# -------------------------------------------------------- rollback journal
owsync_step "incremental, rollback journal (DELETE): the file switched, $runs rounds 62 s apart"
sqlite3 "$DB" "PRAGMA journal_mode = delete" >/dev/null
echo "journal mode: $(sqlite3 "$DB" "PRAGMA journal_mode")"
: >"$R/cp"
for i in $(seq "$runs"); do
  t0=$(ms); cp "$DB" "$WDIR/copy.db"; echo $(( $(ms) - t0 )) >>"$R/cp"; rm -f "$WDIR/copy.db"
done
echo "cp of the file: $(tr '\n' ' ' <"$R/cp")ms"
q -c "SET client_min_messages = warning" -c "CALL owsync.sync('bench')"   # the writer's last commits
caught_up >/dev/null
incremental delete 50

# ------------------------------------------------------------------ results
owsync_step "results ($size file; $rows; medians of $runs runs, $fulls fulls)"
med() { median <"$R/$1"; }
full_floor=$(awk -v a="$(med fread)" -v b="$(med fwrite)" 'BEGIN {print a + b}')
first_floor=$(awk -v a="$full_floor" -v b="$(med fddl)" 'BEGIN {print a + b}')
mem=$(cut -d' ' -f1 "$R/mem" | sort -n | tail -1); pmem=$(cut -d' ' -f2 "$R/mem" | sort -n | tail -1)
rpmem=$(cut -d' ' -f2 "$R/rmem" | sort -n | tail -1)
read -r _ _ cmin cmax <<<"$(grep '^chat ' "$R/reader.sum")"; read -r _ _ mmin mmax <<<"$(grep '^chat_message ' "$R/reader.sum")"
awk -v first="$first" -v full="$(med full)" -v fread="$(med fread)" -v fwrite="$(med fwrite)" -v fddl="$(med fddl)" \
    -v ffloor="$first_floor" -v fullfloor="$full_floor" \
    -v incr="$(med incr.wal)" -v reads="$(med reads.wal)" -v write="$(med write.wal)" -v none="$(med none.wal)" \
    -v nonemax="$(sort -n "$R/none.wal" | tail -1)" \
    -v dincr="$(med incr.delete)" -v dreads="$(med reads.delete)" -v dwrite="$(med write.delete)" -v dnone="$(med none.delete)" \
    -v cp="$(med cp)" -v rest="$(med restore)" -v rfloor="$(med rfloor)" -v rec="$(med rec)" \
    -v mem="$mem" -v idle="$idle" -v pmem="$pmem" -v pidle="$pidle" -v rpmem="$rpmem" \
    -v size1="$size1" -v size3="$size3" -v settled="$settled" -v nf="$fulls" -v ship="$(med shipped)" -v once="$once" \
    -v tc="$true_chat" -v tm="$true_msg" -v rerr="$rerr" -v cmin="$cmin" -v cmax="$cmax" -v mmin="$mmin" -v mmax="$mmax" \
    -v i99="$(pct 99 <"$R/w_idle")" -v s99="$(pct 99 <"$R/w_sync")" -v nw="$(wc -l <"$R/wfull")" 'BEGIN {
  f = "| %-64s | %17s | %18s | %6s | %-10s | %-3s |\n"
  printf f, "figure", "measured", "floor", "ratio", "target", "met"
  printf "|%s|%s|%s|%s|%s|%s|\n", "------------------------------------------------------------------", "-------------------",
         "--------------------", "--------", "------------", "-----"
  r = first / ffloor; printf f, "first registration (register_client)", first " ms", ffloor " ms", sprintf("%.2fx", r), "<= 1.15x", r <= 1.15 ? "yes" : "no"
  printf f, "  floor: PostgreSQL creates the tables (mirror, digests)", "", fddl " ms", "", "", ""
  printf f, "  floor: SQLite reads every column of every table", "", fread " ms", "", "", ""
  printf f, "  floor: PostgreSQL writes the rows (mirror, digests)", "", fwrite " ms", "", "", ""
  r = full / fullfloor;  printf f, "full sync, CALL sync(c, '"'"'full'"'"')", full " ms", fullfloor " ms", sprintf("%.2fx", r), "<= 1.15x", r <= 1.15 ? "yes" : "no"
  printf f, "  floor: SQLite reads + PostgreSQL writes, as above", "", "", "", "", ""
  fl = reads + write + none
  r = incr / fl; printf f, "incremental, 1% changed + 0.2% deleted (WAL)", incr " ms", fl " ms", sprintf("%.2fx", r), "<= 1.3x", r <= 1.3 ? "yes" : "no"
  printf f, "  floor: SQLite reads no read-only sync can skip", "", reads " ms", "", "", ""
  printf f, "  floor: PostgreSQL writes the changed rows (+ versions)", "", write " ms", "", "", ""
  printf f, "  floor: the nothing-changed run", "", none " ms", "", "", ""
  printf f, "nothing changed (WAL): median / max", none " / " nonemax " ms", "", "", "<= 10 ms", none <= 10 ? "yes" : "no"
  fl = cp + dreads + dwrite + dnone
  r = dincr / fl; printf f, "incremental, rollback journal (DELETE)", dincr " ms", fl " ms", sprintf("%.2fx", r), "<= 1.3x", r <= 1.3 ? "yes" : "no"
  printf f, "  floor: cp of the file", "", cp " ms", "", "", ""
  printf f, "  floor: SQLite reads / PostgreSQL writes / nothing changed", "", dreads " / " dwrite " / " dnone " ms", "", "", ""
  r = rest / rfloor; printf f, "restore into a new file, checked", rest " ms", rfloor " ms", sprintf("%.2fx", r), "<= 1.1x", r <= 1.1 ? "yes" : "no"
  printf f, "backend private memory, max over every sync", sprintf("%.1f MB", (pmem - pidle) / 1024), "", "", "<= 64 MB", pmem - pidle <= 65536 ? "yes" : "no"
  printf f, "  raw VmHWM above an idle backend (with shared buffers)", sprintf("%.1f MB", (mem - idle) / 1024), "", "", "", ""
  printf f, "  restoring backend, private (32 MB SQLite cache)", sprintf("%.1f MB", (rpmem - pidle) / 1024), "", "", "", ""
  r = size3 / size1
  printf f, "mirror after " nf " fulls + autovacuum (" (settled == "yes" ? "done" : "NOT done") ") / after the first", sprintf("%.0f MB", size3 / 1048576),
         sprintf("%.0f MB", size1 / 1048576), sprintf("%.2fx", r), "<= 1.3x", r <= 1.3 ? "yes" : "no"
  printf f, "reader during the fulls: chat rows, least / most", cmin " / " cmax, tc " (file)", "", "= the file", (cmin == tc && cmax == tc) ? "yes" : "no"
  printf f, "reader during the fulls: chat_message rows", mmin " / " mmax, tm " (file)", "", "= the file", (mmin == tm && mmax == tm) ? "yes" : "no"
  printf f, "reader during the fulls: statements failed", rerr, "", "", "0", rerr == 0 ? "yes" : "no"
  r = ship / once
  printf f, "shipped to the hub per full / the mirror'"'"'s rows once (pgoutput)", sprintf("%.0f MB", ship / 1048576), sprintf("%.0f MB", once / 1048576),
         sprintf("%.2fx", r), "<= 1x", r <= 1 ? "yes" : "no"
  printf f, "reconcile (5 silent edits)", rec " ms", "", "", "", ""
  printf f, "writer commit p99 during full syncs (" nw ") / idle", s99 " / " i99 " ms", "", sprintf("%.2fx", s99 / i99), "<= 1.5x", s99 <= i99 * 1.5 ? "yes" : "no"
}'
echo "every run, ms: register $first; full $(paste -sd' ' "$R/full"); full floor reads $(paste -sd' ' "$R/fread"), writes $(paste -sd' ' "$R/fwrite");" \
     "registration floor's tables created $(paste -sd' ' "$R/fddl")"
for m in wal delete; do
  echo "  $m: incremental $(paste -sd' ' "$R/incr.$m"); nothing changed $(paste -sd' ' "$R/none.$m");" \
       "floor reads $(paste -sd' ' "$R/reads.$m"), writes $(paste -sd' ' "$R/write.$m")"
done
echo "  restore $(paste -sd' ' "$R/restore"); its floor $(paste -sd' ' "$R/rfloor"); shipped per full, MB:" \
     "$(awk '{printf "%.0f ", $1 / 1048576}' "$R/shipped"); mirror after each full, MB: $(awk '{printf "%.0f ", $1 / 1048576}' "$R/sizes")"
echo "total run time: $(( $(date +%s) - started )) s"
