#!/usr/bin/env bash
# Scan benchmark:  bash test/bench/scan.sh [--no-deps] [--runs N]
#
# On the ~700 MB generated Open WebUI database (legacy flavour, seed 1), in one run:
#   - the chat table's id and chat columns read through the SQLite C API, copying every
#     value out (test/bench/sqlite_scan.c), and through the sqlite3 CLI;
#   - the same columns through the wrapper: chat as json (every value validated), measured
#     with sum(pg_column_size(chat)) and with sum(octet_length(chat::text))
#     (which adds PostgreSQL's json-to-text I/O cast, a copy of every value); chat as text;
#   - the backend's peak memory (VmHWM) after scanning chat (1 MB rows) and chat_message
#     (145k rows), against an idle backend.
# Runs alternate side by side; medians are reported.  The database is generated once into
# $OWSYNC_BENCH_DIR (default /var/tmp/owsync-bench) and reused.  Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
. test/lib.sh

deps=1 runs=7
while [ $# -gt 0 ]; do
  case $1 in
    --no-deps) deps=0 ;;
    --runs) runs=${2:?}; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

owsync_workdir
[ "$deps" -eq 1 ] && owsync_install_deps
owsync_build_install
owsync_cluster_start postgres

owsync_bench_db; DB=$BENCH_DB
ls -l "$DB"
gcc -O2 -Wall -o "$OWSYNC_WORK/sqlite_scan" test/bench/sqlite_scan.c -lsqlite3

psql -X -q -v ON_ERROR_STOP=1 -d postgres -v dir="$BENCH_DIR" -v db="$DB" <<'SQL'
CREATE EXTENSION owsync_fdw;
ALTER SYSTEM SET owsync.allowed_directories = :'dir';
SELECT pg_reload_conf();
CREATE SERVER bench FOREIGN DATA WRAPPER owsync_fdw OPTIONS (database :'db');
CREATE SCHEMA src;
IMPORT FOREIGN SCHEMA main LIMIT TO (chat, chat_message) FROM SERVER bench INTO src;
CREATE FOREIGN TABLE src.chat_as_text (id text OPTIONS (key 'true'), chat text)
  SERVER bench OPTIONS (table 'chat');
-- the backend's own /proc status line (kB), read by the backend itself
CREATE FUNCTION proc_kb(field text) RETURNS bigint LANGUAGE sql AS $$
  SELECT substring(pg_read_file('/proc/self/status') FROM field || ':\s+(\d+) kB')::bigint $$;
SQL

ms() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
wrapper_ms() {  # one query in a fresh backend, timed inside the server
  psql -X -q -At -d postgres -c "DO \$\$ DECLARE t timestamptz := clock_timestamp(); n bigint;
    BEGIN $1 INTO n; RAISE NOTICE '%', round(extract(epoch FROM clock_timestamp() - t) * 1000); END \$\$" 2>&1 |
    sed -n 's/^NOTICE: *//p'
}

owsync_step "scan of chat (id, chat): $runs alternating runs"
: >"$OWSYNC_WORK/c"; : >"$OWSYNC_WORK/cli"; : >"$OWSYNC_WORK/json"; : >"$OWSYNC_WORK/cast"; : >"$OWSYNC_WORK/text"
for i in $(seq "$runs"); do
  t0=$(ms); "$OWSYNC_WORK/sqlite_scan" "$DB" chat id chat >/dev/null; t1=$(ms)
  echo $(( (t1 - t0) / 1000000 )) >>"$OWSYNC_WORK/c"
  t0=$(ms); sqlite3 -readonly "$DB" 'SELECT id, chat FROM chat' >/dev/null; t1=$(ms)
  echo $(( (t1 - t0) / 1000000 )) >>"$OWSYNC_WORK/cli"
  wrapper_ms "SELECT sum(pg_column_size(id)) + sum(pg_column_size(chat)) FROM src.chat" >>"$OWSYNC_WORK/json"
  wrapper_ms "SELECT sum(octet_length(id)) + sum(octet_length(chat::text)) FROM src.chat" >>"$OWSYNC_WORK/cast"
  wrapper_ms "SELECT sum(pg_column_size(id)) + sum(pg_column_size(chat)) FROM src.chat_as_text" >>"$OWSYNC_WORK/text"
  echo "run $i: C API $(tail -1 "$OWSYNC_WORK/c") ms, CLI $(tail -1 "$OWSYNC_WORK/cli") ms," \
       "wrapper json $(tail -1 "$OWSYNC_WORK/json") ms (with ::text cast $(tail -1 "$OWSYNC_WORK/cast") ms)," \
       "wrapper text $(tail -1 "$OWSYNC_WORK/text") ms"
done
c=$(median <"$OWSYNC_WORK/c"); cli=$(median <"$OWSYNC_WORK/cli")
json=$(median <"$OWSYNC_WORK/json"); cast=$(median <"$OWSYNC_WORK/cast")
text=$(median <"$OWSYNC_WORK/text")

owsync_step "backend peak memory (VmHWM, kB)"
mem() {  # VmHWM after running the query in a fresh backend
  psql -X -q -At -d postgres -c "$1" -c "SELECT proc_kb('VmHWM')" | tail -1
}
idle=$(mem "SELECT 1")
m_chat=$(mem "SELECT sum(pg_column_size(chat)) FROM src.chat")
m_all=$(mem "SELECT count(*) FROM src.chat AS r WHERE r IS NOT NULL")
m_msg=$(mem "SELECT count(*) FROM src.chat_message AS r WHERE r IS NOT NULL")
bytes=$(psql -X -At -d postgres -c "SELECT pg_size_pretty(sum(octet_length(chat::text))) FROM src.chat")
rows=$(psql -X -At -d postgres -c "SELECT (SELECT count(*) FROM src.chat) || ' chats, ' || (SELECT count(*) FROM src.chat_message) || ' chat_message rows'")

owsync_step "results (medians of $runs runs; $(du -h "$DB" | cut -f1) file; chat JSON $bytes; $rows)"
awk -v c="$c" -v cli="$cli" -v json="$json" -v cast="$cast" -v text="$text" 'BEGIN {
  printf "| read of chat (id, chat)                             | median ms | vs C API |\n"
  printf "|-----------------------------------------------------|-----------|----------|\n"
  printf "| SQLite C API, values copied out                     | %9d | %8.2f |\n", c, 1
  printf "| sqlite3 CLI                                         | %9d | %8.2f |\n", cli, cli / c
  printf "| wrapper, chat as text (UTF-8 and NUL checked)       | %9d | %8.2f |\n", text, text / c
  printf "| wrapper, chat as json (also JSON-validated)         | %9d | %8.2f |\n", json, json / c
  printf "| same, as octet_length(chat::text) (+ PG I/O cast)   | %9d | %8.2f |\n", cast, cast / c
}'
echo
echo "| backend peak memory (VmHWM)              |       kB | above idle |"
echo "|------------------------------------------|----------|------------|"
for row in "idle backend (SELECT 1):$idle" "sum over chat json:$m_chat" \
           "every column of chat:$m_all" "every column of chat_message:$m_msg"; do
  printf "| %-40s | %8d | %10d |\n" "${row%%:*}" "${row##*:}" "$(( ${row##*:} - idle ))"
done
