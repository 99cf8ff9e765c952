--
-- A WAL-mode file's lock while the wrapper reads it: the backend's
-- connection holds SQLite's shared lock on the database file for as long as
-- it is open, across transactions.  Had the backend opened and closed the
-- file by a descriptor of its own (to look at its header), the kernel would
-- have dropped that lock: a writer that then closes finds itself the file's
-- last user, checkpoints and removes the -wal under the backend's snapshot.
--
\set SHOW_CONTEXT never
CREATE EXTENSION owsync_fdw;
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" locks
SET owsync.allowed_directories = '/tmp/owsync_regress/locks';
CREATE SERVER regress_locks FOREIGN DATA WRAPPER owsync_fdw OPTIONS (database '/tmp/owsync_regress/locks/wal.db');
CREATE FOREIGN TABLE regress_locks_t (id bigint OPTIONS (key 'true'), v text) SERVER regress_locks OPTIONS (table 't');
SELECT pg_backend_pid() AS backend \gset
\setenv BACKEND :backend

-- Open WebUI has the file open (its -shm exists, so the wrapper does not
-- open it immutable); the wrapper reads it in three transactions
\! cd /tmp/owsync_regress/locks && { sh -c 'echo $$ > holder.pid; echo "SELECT count(*) FROM t;"; exec sleep 120' | sqlite3 wal.db; } >/dev/null 2>&1 &
\! sh "$PG_ABS_SRCDIR/test/fixtures/wait_file.sh" /tmp/owsync_regress/locks/wal.db-shm && echo "Open WebUI has the file open"
SELECT count(*) FROM regress_locks_t;
SELECT count(*) FROM regress_locks_t;
BEGIN;
SELECT count(*) FROM regress_locks_t;
COMMIT;
\! python3 "$PG_ABS_SRCDIR/test/fixtures/sqlite_locks.py" /tmp/owsync_regress/locks/wal.db "$BACKEND"

-- Open WebUI stops, a writer commits and closes: neither is the file's last
-- user, so the -wal stays, and the wrapper reads the new row
\! kill $(cat /tmp/owsync_regress/locks/holder.pid); for i in $(seq 1 200); do kill -0 $(cat /tmp/owsync_regress/locks/holder.pid) 2>/dev/null || break; sleep 0.05; done; kill -0 $(cat /tmp/owsync_regress/locks/holder.pid) 2>/dev/null || echo "Open WebUI stopped"
\! sqlite3 /tmp/owsync_regress/locks/wal.db "INSERT INTO t VALUES (2, 'two');" && ls /tmp/owsync_regress/locks | grep -v pid
SELECT id, v FROM regress_locks_t ORDER BY id;
\! python3 "$PG_ABS_SRCDIR/test/fixtures/sqlite_locks.py" /tmp/owsync_regress/locks/wal.db "$BACKEND"

DROP EXTENSION owsync_fdw CASCADE;
\! rm -rf /tmp/owsync_regress/locks
