#!/usr/bin/env bash
# owsync_fdw demo, end to end:  bash test/demo.sh [--no-deps]
# As root on a fresh Debian bookworm it installs what it needs (apt), builds and installs the
# extension, starts a throwaway PostgreSQL 15 cluster, generates an Open WebUI database
# (test/gen_openwebui.py) and runs the main job on it: the foreign data wrapper reading it
# (IMPORT FOREIGN SCHEMA, queries on chats and their JSON, EXPLAIN showing the query sent to
# SQLite), then the sync: register the client (first full sync), change the SQLite file as Open
# WebUI does (a new chat, a silent title edit, a deleted chat), sync, status and history; then
# pg_cron: the client on the realtime tier, a change in the file, pg_cron's sync bringing it
# within a minute, status and history; then restore: the mirror written out as a new SQLite file,
# checked, and compared with the source.  Everything it started or created is stopped and removed
# at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. test/lib.sh

deps=1
case ${1:-} in
  "") ;;
  --no-deps) deps=0 ;;
  -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
  *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
esac

owsync_workdir
[ "$deps" -eq 1 ] && owsync_install_deps
owsync_build_install
owsync_cluster_start postgres

# The SQLite file lives in a directory the server (postgres OS user) can read and write:
# SQLite creates -wal/-shm files next to a WAL database even for a read-only connection.
DEMO_DIR=$OWSYNC_WORK/demo
mkdir -p "$DEMO_DIR" "$DEMO_DIR/restored"   # restored/: where step 15 writes the restored file
owsync_step "generate an Open WebUI database: $DEMO_DIR/webui.db"
python3 test/gen_openwebui.py --out "$DEMO_DIR/webui.db" --flavour legacy --size small \
  --journal wal --seed 1
owsync_give_to_pg "$DEMO_DIR"
ls -l "$DEMO_DIR"

owsync_step "the wrapper at work (psql as postgres, a superuser)"
psql -X -v ON_ERROR_STOP=1 -P pager=off -d postgres -v dir="$DEMO_DIR" <<'SQL'
\echo
\echo '== 1. install the extension; allow the directory (a superuser-only setting); one server per file'
CREATE EXTENSION owsync_fdw;
SET owsync.allowed_directories = :'dir';
\set db :dir '/webui.db'
CREATE SERVER demo_client FOREIGN DATA WRAPPER owsync_fdw OPTIONS (database :'db');
SELECT owsync.sqlite_version() AS sqlite_version;

\echo
\echo '== 2. import every table of the SQLite file as a foreign table'
CREATE SCHEMA demo_src;
IMPORT FOREIGN SCHEMA main FROM SERVER demo_client INTO demo_src;

\echo
\echo '== 3. the imported foreign tables and their row counts'
SELECT string_agg(format('SELECT %L AS foreign_table, count(*) AS rows FROM demo_src.%I',
                         foreign_table_name, foreign_table_name),
                  E'\nUNION ALL ' ORDER BY foreign_table_name) || E'\nORDER BY 1'
  FROM information_schema.foreign_tables
 WHERE foreign_table_schema = 'demo_src'
\gexec

\echo
\echo '== 4. the five most recently updated chats'
SELECT id, title, to_timestamp(updated_at) AS updated
  FROM demo_src.chat ORDER BY updated_at DESC LIMIT 5;

\echo
\echo '== 5. the JSON of a chat: messages per chat (keys of chat->history->messages), top 5'
SELECT c.id, c.title, count(m.key) AS messages
  FROM demo_src.chat c
  LEFT JOIN LATERAL json_object_keys(c.chat::json -> 'history' -> 'messages') AS m(key) ON true
 GROUP BY c.id, c.title
 ORDER BY messages DESC, c.id LIMIT 5;

\echo
\echo '== 6. EXPLAIN: a condition with a runtime parameter (subquery) goes to SQLite too'
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id, title FROM demo_src.chat
 WHERE updated_at > (SELECT max(updated_at) - 86400 FROM demo_src.chat);

\echo
\echo '== 7. EXPLAIN: the same condition with a literal'
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id, title FROM demo_src.chat WHERE updated_at > 1700000000;
SQL

owsync_step "the sync: register the client, change its file, sync, look"
psql -X -v ON_ERROR_STOP=1 -P pager=off -d postgres -v dir="$DEMO_DIR" <<'SQL'
SET owsync.allowed_directories = :'dir';
\set db :dir '/webui.db'
SET client_min_messages = warning;
\echo
\echo '== 8. register the client: its server, foreign tables and mirror schema, then a first full sync'
SELECT count(*) AS tables, sum(rows) AS rows, count(*) FILTER (WHERE watermark LIKE '%(ns)') AS nanosecond_tables
  FROM owsync.register_client('imc_quantabase_io', :'db');
SELECT id, title FROM imc_quantabase_io.chat ORDER BY updated_at DESC LIMIT 3;

\echo
\echo '== 9. Open WebUI changes the file: a new chat, a title edit that does not touch updated_at, a deleted chat'
SELECT id AS deleted_chat FROM imc_quantabase_io.chat ORDER BY id LIMIT 1 \gset
\setenv DEMO_DB :db
\setenv DELETED :deleted_chat
\! sqlite3 "$DEMO_DB" "INSERT INTO chat (id, user_id, title, archived, created_at, updated_at, chat, meta) SELECT 'demo-new-chat', user_id, 'a new chat ☃', 0, strftime('%s','now'), strftime('%s','now'), '{}', '{}' FROM chat LIMIT 1; UPDATE chat SET title = 'renamed, updated_at untouched' WHERE id = (SELECT id FROM chat ORDER BY id LIMIT 1 OFFSET 1); DELETE FROM chat WHERE id = '$DELETED';"
SELECT * FROM owsync.pending('imc_quantabase_io') WHERE new_rows + changed_rows + deleted_rows > 0;

\echo
\echo '== 10. CALL owsync.sync: incremental (new and deleted rows), then reconcile (the silent edit)'
CALL owsync.sync('imc_quantabase_io');
CALL owsync.sync('imc_quantabase_io', 'reconcile');
SELECT title FROM imc_quantabase_io.chat WHERE id IN ('demo-new-chat',
       (SELECT id FROM owsync_imc_quantabase_io_src.chat ORDER BY id LIMIT 1 OFFSET 0)) ORDER BY 1;
SELECT count(*) AS deleted_chat_still_in_mirror FROM imc_quantabase_io.chat WHERE id = :'deleted_chat';

\echo
\echo '== 11. status and history (and verify: the mirror equals the file, every column compared)'
SELECT * FROM owsync.status;
SELECT * FROM owsync.history ORDER BY run_id;
SELECT count(*) AS tables, sum(missing + extra + coalesce(differing, 0)) AS differences
  FROM owsync.verify('imc_quantabase_io');
SQL

owsync_step "the schedule: pg_cron syncs the client every minute"
psql -X -v ON_ERROR_STOP=1 -P pager=off -d postgres -v dir="$DEMO_DIR" <<'SQL'
\set db :dir '/webui.db'
SET client_min_messages = warning;
\echo
\echo '== 12. pg_cron: put the client on the realtime tier (the dispatcher pool, owsync:dispatch:1 and 2, runs it every minute)'
LOAD 'owsync_fdw';		-- defines owsync.* settings in this new session
ALTER SYSTEM SET owsync.allowed_directories = :'dir';	-- for every session, pg_cron's too
SELECT pg_reload_conf();
CREATE EXTENSION pg_cron;
SELECT owsync.set_schedule('imc_quantabase_io', 'realtime') AS cron_expression;
SELECT jobname, schedule, command FROM cron.job;

\echo
\echo '== 13. Open WebUI renames a chat; pg_cron runs the next sync within a minute (waiting...)'
\setenv DEMO_DB :db
\! sqlite3 "$DEMO_DB" "UPDATE chat SET title = 'renamed while pg_cron watches', updated_at = strftime('%s','now') WHERE id = 'demo-new-chat';"
SELECT now() AS changed_at \gset
DO $$
BEGIN
    FOR i IN 1 .. 150 LOOP
        EXIT WHEN EXISTS (SELECT 1 FROM imc_quantabase_io.chat WHERE title = 'renamed while pg_cron watches');
        PERFORM pg_sleep(0.5);
    END LOOP;
END
$$;
SELECT title, (SELECT round(extract(epoch FROM max(finished_at) - :'changed_at'::timestamptz)) FROM owsync.run
                WHERE scheduled AND status = 'succeeded') AS seconds_after_the_change
  FROM imc_quantabase_io.chat WHERE id = 'demo-new-chat';

\echo
\echo '== 14. status and history: the scheduled run, the next one'
SELECT * FROM owsync.status;
SELECT h.*, d.scheduled FROM owsync.history h JOIN owsync.history_detail d USING (run_id) ORDER BY run_id;
SELECT owsync.set_schedule('imc_quantabase_io', 'manual') AS schedule;
SQL

owsync_step "restore: the client's mirror written out as a new SQLite file, checked, compared with the source"
psql -X -v ON_ERROR_STOP=1 -P pager=off -d postgres -v dir="$DEMO_DIR" <<'SQL'
\set db :dir '/webui.db'
\set restored :dir '/restored/webui.db'
SET client_min_messages = warning;
\echo
\echo '== 15. CALL owsync.restore: schema replayed, rows written, integrity_check, every table read back, renamed into place'
CALL owsync.restore('imc_quantabase_io', :'restored') \gset
SELECT key, value FROM jsonb_each(:'report'::jsonb) WHERE key <> 'table_rows' ORDER BY key;
\echo
\echo '== 16. the restored file against the source, read by Python sqlite3: sqlite_master, every row with its storage class'
\setenv DEMO_DB :db
\setenv RESTORED :restored
\! python3 test/compare_sqlite.py "$DEMO_DB" "$RESTORED" && sqlite3 "$RESTORED" "PRAGMA journal_mode; SELECT version_num FROM alembic_version; SELECT title FROM chat WHERE id = 'demo-new-chat'"
SQL

owsync_step "demo finished: the cluster and $OWSYNC_WORK are removed now"
