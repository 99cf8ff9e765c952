#!/usr/bin/env bash
# Sync benchmark:  bash test/bench/sync.sh [--no-deps] [--runs N] [--fulls N] [--writer-secs S]
#
# On a copy of the ~700 MB generated Open WebUI database (legacy flavour, seed 1; ~200k rows),
# in one run on one cluster:
#   - baseline: every table through `sqlite3 -csv | psql \copy` into tables like the mirror's
#     (same types, lz4 on text/json/bytea) but without keys or indexes; wall clock, all tables;
#   - full sync: the first one (owsync.register_client) and CALL owsync.sync(.., 'full')
#     (--fulls times, default 3), with the syncing backend's peak memory (VmHWM) above an idle
#     backend's, as is and without shared buffers and mapped libraries (see timed below);
#   - incremental: 100 chats (1%) given a new exchange (chat JSON, updated_at, 2 chat_message
#     rows each) and 20 chats deleted, then CALL owsync.sync(..) (reconcile_interval 100 years);
#     runs are 61 s apart (see below);
#   - of the incremental run, the part no read-only sync can skip: the same file's reads by the
#     sqlite3 CLI of each table's fast-path window (a walk of the table where SQLite has no index
#     on updated_at), of every value of each table without updated_at, and of the key columns;
#   - nothing changed: CALL owsync.sync(..) right after a sync;
#   - reconcile: 5 silent title edits, then CALL owsync.sync(.., 'reconcile');
#   - restore: CALL owsync.restore('bench', <new file>) --fulls times; the first file is compared
#     with the source by test/compare_sqlite.py (every row, storage classes, sqlite_master);
#   - a writer (test/bench/sync_helper.py) holding the file open in WAL mode for the whole run,
#     streaming tokens into a chat every 20 ms: commit latency p50/p99 for --writer-secs
#     (default 30) idle, then while full syncs run back to back for as long.
# Fast scenarios run --runs times (default 3); medians are reported.  Before each timed step:
# VACUUM (ANALYZE), CHECKPOINT and sync, once no autovacuum worker runs.  Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh

deps=1 runs=3 fulls=3 wsecs=30
while [ $# -gt 0 ]; do
  case $1 in
    --no-deps) deps=0 ;;
    --runs) runs=${2:?}; shift ;;
    --fulls) fulls=${2:?}; shift ;;
    --writer-secs) wsecs=${2:?}; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
started=$(date +%s)

owsync_workdir
[ "$deps" -eq 1 ] && owsync_install_deps
owsync_build_install
owsync_cluster_start postgres

owsync_bench_db; SRC=$BENCH_DB
WDIR=$BENCH_DIR/sync.$$ DB=$BENCH_DIR/sync.$$/webui.db PHASE=$OWSYNC_WORK/phase WLOG=$OWSYNC_WORK/writer.log
NOTICES=$OWSYNC_WORK/notices.log
mkdir -m 0777 "$WDIR"; OWSYNC_CLEANUP_DIRS+=("$WDIR")
cp "$SRC" "$DB"; chmod 0666 "$DB"
size=$(du -h "$DB" | cut -f1)

# the writer: started first, it holds the database open (and its -shm) until the end
WRITER=""
owsync_on_exit() { [ -z "$WRITER" ] || kill "$WRITER" 2>/dev/null || true; }
echo pause >"$PHASE"
python3 test/bench/sync_helper.py writer "$DB" "$PHASE" >"$WLOG" &
WRITER=$!
sleep 1; kill -0 "$WRITER" || owsync_die "the writer did not start"

q() { psql -X -q -At -v ON_ERROR_STOP=1 -d postgres "$@"; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
pct() { sort -n | awk -v p="$1" '{a[NR]=$1} END {i=int(NR*p/100+0.999); print a[i<1?1:i]}'; }
# timed SQL: run SQL in a fresh session; prints "ms VmHWM_kB private_kB" (psql \timing; /proc read
# by the backend at the end).  VmHWM counts the shared buffers the backend touched (RssShmem) and
# mapped files (RssFile: libraries, e.g. LLVM when a statement is JIT-compiled); both only grow
# within a session, so VmHWM - RssShmem - RssFile at the end is the private (anonymous) memory at
# the peak.
timed() {
  q 2>>"$NOTICES" <<SQL | awk -F'|' '/^Time: / {t=$0; sub(/^Time: /,"",t); sub(/ ms.*/,"",t)}
                                     /^MEM\|/ {m=$2; p=$2-$3-$4} END {printf "%d %d %d\n", t, m, p}'
\\timing on
$1;
\\timing off
SELECT 'MEM', proc_kb('VmHWM'), proc_kb('RssShmem'), proc_kb('RssFile');
SQL
}
settle() {  # before a timed step: no autovacuum worker running (waits up to 2 min), VACUUM, CHECKPOINT,
            # and dirty pages written out (sync), so that no step pays for an earlier one's writes
  for _ in $(seq 240); do
    [ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")" = 0 ] && break
    sleep 0.5
  done
  q -c "VACUUM (ANALYZE)" -c "CHECKPOINT"
  sync
}
last_run() {  # per-table work of the client's last run, slowest first
  q -F ' ' -c "SELECT '    ' || rpad(table_name, 14), path, 'read', rows_read, 'ins', inserted, 'upd', updated,
                      'del', deleted, seconds || ' s'
                 FROM owsync.run_table WHERE run_id = (SELECT max(run_id) FROM owsync.run WHERE client = 'bench')
                ORDER BY seconds DESC LIMIT ${1:-4}"
}

q -v dir="$WDIR" <<'SQL'
CREATE EXTENSION owsync_fdw;
ALTER SYSTEM SET owsync.allowed_directories = :'dir';
SELECT pg_reload_conf();
CREATE FUNCTION proc_kb(field text) RETURNS bigint LANGUAGE sql AS $$
  SELECT substring(pg_read_file('/proc/self/status') FROM field || ':\s+(\d+) kB')::bigint $$;
SQL
read -r _ idle pidle <<<"$(timed 'SELECT 1')"
R=$OWSYNC_WORK; : >"$R/full"; : >"$R/base"; : >"$R/incr"; : >"$R/none"; : >"$R/rec"; : >"$R/mem"

owsync_step "full sync 1: owsync.register_client('bench', '$DB')"
settle; r=$(timed "SELECT * FROM owsync.register_client('bench', '$DB')"); read -r t m pm <<<"$r"
first=$t; echo "$m $pm" >>"$R/mem"
echo "register_client: $t ms, VmHWM $m kB (private $pm kB) (idle backend $idle kB)"; last_run
rows=$(q -c "SELECT count(*) || ' tables, ' || sum(inserted) || ' rows (chat ' ||
                    max(inserted) FILTER (WHERE table_name = 'chat') || ', chat_message ' ||
                    max(inserted) FILTER (WHERE table_name = 'chat_message') || ')'
               FROM owsync.run_table WHERE run_id = (SELECT max(run_id) FROM owsync.run)")
echo "$rows"

owsync_step "baseline (sqlite3 -csv | psql \\copy into tables like the mirror's, lz4, no keys) and CALL owsync.sync('bench', 'full'), alternating"
q <<'SQL' >"$R/tables"
CREATE SCHEMA base;
SELECT format('CREATE TABLE base.%I (LIKE bench.%I INCLUDING COMPRESSION)', c.relname, c.relname)
  FROM pg_class c WHERE c.relnamespace = 'bench'::regnamespace AND c.relkind = 'r' \gexec
SELECT c.relname, string_agg('"' || replace(a.attname, '"', '""') || '"', ',' ORDER BY a.attnum)
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relnamespace = 'base'::regnamespace AND c.relkind = 'r' GROUP BY c.relname ORDER BY 1;
SQL
for i in $(seq $(( runs > fulls ? runs : fulls ))); do
  if [ "$i" -le "$runs" ]; then
    echo "SELECT format('TRUNCATE %s', string_agg(oid::regclass::text, ', ')) FROM pg_class
           WHERE relnamespace = 'base'::regnamespace AND relkind = 'r' \gexec" | q
    settle; t0=$(ms)
    while IFS='|' read -r tbl cols; do
      sqlite3 -readonly -bail -csv "$DB" "SELECT $cols FROM \"$tbl\"" |
        q -c "\\copy base.\"$tbl\" ($cols) FROM STDIN WITH (FORMAT csv)"
    done <"$R/tables"
    echo $(( $(ms) - t0 )) | tee -a "$R/base" | sed "s/^/baseline run $i: /; s/$/ ms/"
  fi
  if [ "$i" -le "$fulls" ]; then
    settle; r=$(timed "CALL owsync.sync('bench', 'full')"); read -r t m pm <<<"$r"
    echo "$t" >>"$R/full"; echo "$m $pm" >>"$R/mem"
    echo "full run $i: $t ms, VmHWM $m kB (private $pm kB)"; last_run 3
  fi
done
q -c "SELECT 'baseline rows: ' || sum(n_live_tup) FROM pg_stat_user_tables WHERE schemaname = 'base'"

q -c "UPDATE owsync.client SET options = options || '{\"reconcile_interval\": \"100 years\"}' WHERE client = 'bench'"
# The fast path re-reads rows with updated_at >= watermark - 60 s (overlap_seconds): each run also
# re-reads the previous batch, as every sync does in production.  Batches > 61 s apart keep it at one.
owsync_step "incremental: 100 chats changed, 20 deleted ($runs runs, 62 s apart)"
last=0
for i in $(seq "$runs"); do
  while [ $(( $(date +%s) - last )) -lt 62 ]; do sleep 1; done
  python3 test/bench/sync_helper.py mutate "$DB" "$i"; last=$(date +%s)
  settle; r=$(timed "CALL owsync.sync('bench')"); read -r t m pm <<<"$r"
  echo "$t" >>"$R/incr"; echo "$m $pm" >>"$R/mem"
  echo "incremental run $i: $t ms, VmHWM $m kB (private $pm kB)"; last_run 5
done

# The part of an incremental run no read-only sync can skip, read by the sqlite3 CLI on the same
# file: per table, the rows of the fast path's window (a walk of the table where SQLite has no
# index on updated_at), every value of a table without updated_at, and the key column(s).
owsync_step "SQLite reads an incremental run cannot skip (sqlite3 CLI, medians of $runs)"
q -F '|' -c "SELECT table_name, watermark_column,
                    watermark - coalesce((options ->> 'overlap_seconds')::bigint, 60)
                                * CASE watermark_unit WHEN 'ns' THEN 1000000000 ELSE 1 END,
                    (SELECT string_agg(format('%I', k), ', ') FROM unnest(key_columns) k)
               FROM owsync.client_table JOIN owsync.client USING (client)
              WHERE client = 'bench' AND removed_at IS NULL ORDER BY 1" |
while IFS='|' read -r tbl wmcol since keys; do
  if [ -n "$wmcol" ]; then
    echo "SELECT count(*) FROM \"$tbl\" WHERE \"$wmcol\" >= $since;"
  else
    echo "SELECT count(*), sum($(sqlite3 "$DB" "SELECT group_concat('length(\"' || replace(name, '\"', '\"\"') || '\")', '+') FROM pragma_table_info('$tbl')")) FROM \"$tbl\";"
  fi
  [ -z "$keys" ] || echo "SELECT count(*) FROM (SELECT $keys FROM \"$tbl\");"
done >"$R/floor.sql"
: >"$R/floor"
for i in $(seq "$runs"); do
  { echo .timer on; cat "$R/floor.sql"; } | sqlite3 -readonly "$DB" |
    awk '/^Run Time/ {s += $4} END {printf "%d\n", s * 1000}' | tee -a "$R/floor" | sed "s/^/run $i: /; s/$/ ms/"
done

owsync_step "nothing changed ($runs runs)"
for i in $(seq "$runs"); do
  settle; r=$(timed "CALL owsync.sync('bench')"); read -r t m pm <<<"$r"
  echo "$t" >>"$R/none"; echo "$m $pm" >>"$R/mem"; echo "nothing-changed run $i: $t ms, VmHWM $m kB (private $pm kB)"; last_run 3
done

owsync_step "reconcile after 5 silent title edits ($runs runs)"
for i in $(seq "$runs"); do
  python3 test/bench/sync_helper.py silent "$DB" "$((100 + i))"
  settle; r=$(timed "CALL owsync.sync('bench', 'reconcile')"); read -r t m pm <<<"$r"
  echo "$t" >>"$R/rec"; echo "$m $pm" >>"$R/mem"
  echo "reconcile run $i: $t ms, VmHWM $m kB (private $pm kB)"; last_run 3
done
q -c "SELECT 'mirror check: ' || CASE WHEN count(*) FILTER (WHERE title LIKE '% (edited)') = $runs * 5
              THEN 'the silent edits arrived' ELSE 'MISSING silent edits' END FROM bench.chat"

owsync_step "restore: CALL owsync.restore('bench', <new file>) ($fulls runs), the first compared with the source"
: >"$R/restore"; : >"$R/rmem"
for i in $(seq "$fulls"); do
  settle; r=$(timed "CALL owsync.restore('bench', '$WDIR/restored.db')"); read -r t m pm <<<"$r"
  echo "$t" >>"$R/restore"; echo "$m $pm" >>"$R/rmem"
  echo "restore run $i: $t ms, VmHWM $m kB (private $pm kB), $(du -h "$WDIR/restored.db" | cut -f1)"
  if [ "$i" -eq 1 ]; then
    { python3 test/compare_sqlite.py "$DB" "$WDIR/restored.db" || true; } | tail -3 | sed 's/^/compare_sqlite.py: /'
  fi
  rm -f "$WDIR/restored.db"
done
# the same work done by SQLite alone, in the same settings: the file's DDL, every row copied with
# INSERT ... SELECT (WHERE 1: not SQLite's page-copying transfer shortcut), one transaction, then
# PRAGMA integrity_check; no restore that writes rows through SQLite and checks them can beat it
python3 - "$DB" "$WDIR/floor.sql" <<'PY'
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
  settle; t0=$(ms); sqlite3 "$WDIR/floor.db" <"$WDIR/floor.sql" >/dev/null; t=$(( $(ms) - t0 ))
  echo "$t" >>"$R/rfloor"; echo "sqlite3 alone, copy + integrity_check $i: $t ms"; rm -f "$WDIR/floor.db"
done

owsync_step "writer: ${wsecs}s idle, then ${wsecs}s of full syncs back to back"
settle; echo idle >"$PHASE"; sleep "$wsecs"; wal=$(du -m "$DB-wal" | cut -f1)
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

base=$(median <"$R/base"); full=$(median <"$R/full"); incr=$(median <"$R/incr")
none=$(median <"$R/none"); rec=$(median <"$R/rec"); rest=$(median <"$R/restore"); rfloor=$(median <"$R/rfloor"); floor=$(median <"$R/floor"); mem=$(sort -n "$R/mem" | tail -1 | cut -d' ' -f1)
pmem=$(cut -d' ' -f2 "$R/mem" | sort -n | tail -1); rpmem=$(cut -d' ' -f2 "$R/rmem" | sort -n | tail -1)
owsync_step "results ($size file; $rows; medians of $runs runs, full sync of $fulls)"
awk -v base="$base" -v floor="$floor" -v first="$first" -v full="$full" -v incr="$incr" -v none="$none" -v rec="$rec" -v rest="$rest" -v rpmem="$rpmem" -v rfloor="$rfloor" \
    -v mem="$mem" -v idle="$idle" -v pmem="$pmem" -v pidle="$pidle" -v i50="$(pct 50 <"$R/w_idle")" -v i99="$(pct 99 <"$R/w_idle")" \
    -v s50="$(pct 50 <"$R/w_sync")" -v s99="$(pct 99 <"$R/w_sync")" -v nw="$(wc -l <"$R/wfull")" 'BEGIN {
  f = "| %-50s | %16s | %-28s | %-3s |\n"
  printf f, "scenario", "measured", "target", "met"
  printf "|%s|%s|%s|%s|\n", "----------------------------------------------------", "------------------",
         "------------------------------", "-----"
  printf f, "baseline: sqlite3 -csv piped to COPY, lz4, no keys", base " ms", "", ""
  printf f, "full sync: register_client (first sync)", first " ms", "<= baseline = " base " ms", first <= base ? "yes" : "no"
  printf f, "full sync: CALL sync(full)", full " ms", "<= baseline = " base " ms", full <= base ? "yes" : "no"
  printf f, "incremental, 1% changed + 0.2% deleted", incr " ms", sprintf("<= 3%% of full = %d ms", full * .03), incr <= full * .03 ? "yes" : "no"
  printf f, "  of which SQLite reads no read-only sync can skip", floor " ms", "", ""
  printf f, "nothing changed", none " ms", sprintf("<= 1%% of full = %d ms", full * .01), none <= full * .01 ? "yes" : "no"
  printf f, "reconcile (5 silent edits)", rec " ms", sprintf("<= 20%% of full = %d ms", full * .2), rec <= full * .2 ? "yes" : "no"
  printf f, "restore into a new file (verified)", rest " ms", "<= full sync = " full " ms", rest <= full ? "yes" : "no"
  printf f, "  of which SQLite alone (copy + integrity_check)", rfloor " ms", "", ""
  printf f, "  restore private memory above idle", sprintf("%.1f MB", (rpmem - pidle) / 1024), "flat (SQLite cache: 32 MB)", ""
  printf f, "backend peak memory: max VmHWM above idle", sprintf("%.1f MB", (mem - idle) / 1024), "< 64 MB", mem - idle < 65536 ? "yes" : "no"
  printf f, "  same, private only (minus shared buffers, libs)", sprintf("%.1f MB", (pmem - pidle) / 1024), "< 64 MB", pmem - pidle < 65536 ? "yes" : "no"
  printf f, "writer commit p50: idle / during full sync", i50 " / " s50 " ms", "", ""
  printf f, "writer commit p99 idle", i99 " ms", "", ""
  printf f, "writer commit p99 during full sync (" nw " syncs)", s99 " ms", sprintf("<= 1.5 x idle = %.2f ms", i99 * 1.5), s99 <= i99 * 1.5 ? "yes" : "no"
}'
echo "total run time: $(( $(date +%s) - started )) s"
