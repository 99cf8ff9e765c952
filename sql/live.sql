--
-- live: reading SQLite files that other processes change while PostgreSQL
-- reads them.
--
--   1. one SQLite read transaction (one snapshot) per server per PostgreSQL
--      transaction, shared by all its foreign tables, ended by COMMIT,
--      ROLLBACK and errors; a WAL-mode writer is never blocked by it
--   2. busy_timeout on a rollback-journal file locked by a writer (55P03)
--   3. cancel of long SQLite scans: statement_timeout, pg_cancel_backend
--   4. a file replaced at the same path (new inode) is reopened
--   5. changed server options (database, busy_timeout) reopen the file
--
-- Other processes are the sqlite3 CLI and psql, run through \! as the
-- calling OS user; the server runs as another user, so the fixture directory
-- is world-writable (WAL readers create the -shm file) and files are 0666.
-- The shell commands find this server through the variables set by \setenv
-- below (pg_regress unsets PGDATABASE).
--
CREATE EXTENSION owsync_fdw;
SET owsync.allowed_directories = '/tmp/owsync_regress/live';
\setenv PGHOST :HOST
\setenv PGPORT :PORT
\setenv PGUSER :USER
\setenv PGDATABASE :DBNAME
\setenv LIVE /tmp/owsync_regress/live
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" live

-- ---------------------------------------------------------------------
-- 1. Snapshots (WAL mode)
-- ---------------------------------------------------------------------
-- Open WebUI keeps the file open while it runs; so does this stand-in (its
-- -shm file exists), which makes PostgreSQL take ordinary WAL snapshots.  A
-- file nobody has open is read differently (see stopped_writer).
\! { sh -c 'echo $$ > "$LIVE/holder.pid"; echo "SELECT count(*) FROM a;"; exec sleep 120' | sqlite3 "$LIVE/wal.db"; } >/dev/null 2>&1 &
\! for i in $(seq 1 200); do [ -e "$LIVE/wal.db-shm" ] && break; sleep 0.05; done; cd "$LIVE" && ls wal.db*
CREATE SERVER regress_live_wal FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/live/wal.db');
CREATE FOREIGN TABLE regress_live_a (id bigint, v text)
  SERVER regress_live_wal OPTIONS (table 'a');
CREATE FOREIGN TABLE regress_live_b (id bigint, v text)
  SERVER regress_live_wal OPTIONS (table 'b');

-- The external writer has no busy timeout (.timeout 0): were it blocked by
-- PostgreSQL's open read transaction, it would fail with "database is
-- locked" instead of printing the counts it committed.
BEGIN;
SELECT id, v FROM regress_live_a ORDER BY id;
\! sqlite3 -cmd '.timeout 0' "$LIVE/wal.db" "BEGIN IMMEDIATE; INSERT INTO a VALUES (2, 'a2'); INSERT INTO b VALUES (2, 'b2'); COMMIT; SELECT 'writer committed: a has ' || (SELECT count(*) FROM a) || ' rows, b has ' || (SELECT count(*) FROM b);" 2>&1
-- same transaction: a still shows one row
SELECT id, v FROM regress_live_a ORDER BY id;
-- b is first read after the external commit, yet shows the same snapshot
SELECT id, v FROM regress_live_b ORDER BY id;
-- The read transaction is really open in SQLite: a TRUNCATE checkpoint
-- cannot complete while PostgreSQL holds it (first field: busy = 1).
\! sqlite3 -cmd '.timeout 0' "$LIVE/wal.db" "PRAGMA wal_checkpoint(TRUNCATE);" 2>&1 | cut -d'|' -f1
COMMIT;
-- COMMIT ended it: the checkpoint completes, and both tables show the new rows
\! sqlite3 -cmd '.timeout 0' "$LIVE/wal.db" "PRAGMA wal_checkpoint(TRUNCATE);" 2>&1
SELECT id, v FROM regress_live_a ORDER BY id;
SELECT id, v FROM regress_live_b ORDER BY id;

-- ROLLBACK ends the SQLite read transaction too
BEGIN;
SELECT count(*) FROM regress_live_a;
\! sqlite3 -cmd '.timeout 0' "$LIVE/wal.db" "INSERT INTO a VALUES (3, 'a3'); SELECT 'writer committed: a has ' || count(*) || ' rows' FROM a;" 2>&1
SELECT count(*) FROM regress_live_a;
\! sqlite3 -cmd '.timeout 0' "$LIVE/wal.db" "PRAGMA wal_checkpoint(TRUNCATE);" 2>&1 | cut -d'|' -f1
ROLLBACK;
\! sqlite3 -cmd '.timeout 0' "$LIVE/wal.db" "PRAGMA wal_checkpoint(TRUNCATE);" 2>&1
SELECT count(*) FROM regress_live_a;

-- and so does an error, here in the middle of a scan (its SQLite statement
-- is still running when the transaction aborts)
BEGIN;
SELECT count(*) FROM regress_live_a;
\! sqlite3 -cmd '.timeout 0' "$LIVE/wal.db" "INSERT INTO a VALUES (4, 'a4'); SELECT 'writer committed: a has ' || count(*) || ' rows' FROM a;" 2>&1
SELECT id, 1 / (id - 2) FROM regress_live_a;
COMMIT;
\! sqlite3 -cmd '.timeout 0' "$LIVE/wal.db" "PRAGMA wal_checkpoint(TRUNCATE);" 2>&1
SELECT count(*) FROM regress_live_a;

-- an error in autocommit mode (outside a transaction block) as well; the
-- WAL is not empty, so a read transaction left open would make the
-- checkpoint busy
\! sqlite3 -cmd '.timeout 0' "$LIVE/wal.db" "INSERT INTO b VALUES (3, 'b3');" 2>&1
SELECT id, 1 / (id - 2) FROM regress_live_a;
\! sqlite3 -cmd '.timeout 0' "$LIVE/wal.db" "PRAGMA wal_checkpoint(TRUNCATE);" 2>&1

-- A subtransaction rollback does not end it: the PostgreSQL transaction
-- keeps its one snapshot.
BEGIN;
SELECT count(*) FROM regress_live_a;
SAVEPOINT s;
SELECT id, 1 / (id - 2) FROM regress_live_a;
ROLLBACK TO SAVEPOINT s;
\! sqlite3 -cmd '.timeout 0' "$LIVE/wal.db" "BEGIN IMMEDIATE; INSERT INTO a VALUES (5, 'a5'); INSERT INTO b VALUES (4, 'b4'); COMMIT; SELECT 'writer committed: a has ' || (SELECT count(*) FROM a) || ' rows, b has ' || (SELECT count(*) FROM b);" 2>&1
SELECT count(*) FROM regress_live_a;
SELECT count(*) FROM regress_live_b;
COMMIT;
SELECT (SELECT count(*) FROM regress_live_a) AS a, (SELECT count(*) FROM regress_live_b) AS b;

-- PREPARE TRANSACTION ends the session's transaction, and its snapshot
BEGIN;
SELECT count(*) FROM regress_live_a;
PREPARE TRANSACTION 'regress_live_prepared';
\! sqlite3 -cmd '.timeout 0' "$LIVE/wal.db" "INSERT INTO a VALUES (6, 'a6');" 2>&1
SELECT count(*) FROM regress_live_a;
COMMIT PREPARED 'regress_live_prepared';
\! kill $(cat "$LIVE/holder.pid")

-- ---------------------------------------------------------------------
-- 2. busy_timeout: a rollback-journal file locked by a writer
-- ---------------------------------------------------------------------
CREATE SERVER regress_live_del FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/live/del.db', busy_timeout '300');
CREATE FOREIGN TABLE regress_live_del_t (id bigint, v text)
  SERVER regress_live_del OPTIONS (table 't');
SELECT id, v FROM regress_live_del_t ORDER BY id;

-- A writer takes an EXCLUSIVE lock and holds it until told to commit
-- (test/fixtures/sqlite_writer.sh).  Wait until it holds it: its journal
-- file exists.
\! sh "$PG_ABS_SRCDIR/test/fixtures/sqlite_writer.sh" "$LIVE/del.db" "$LIVE/writer" "BEGIN EXCLUSIVE; INSERT INTO t VALUES (2, 'written under lock');" "COMMIT;" &
\! sh "$PG_ABS_SRCDIR/test/fixtures/wait_file.sh" "$LIVE/writer/1.done" && [ -e "$LIVE/del.db-journal" ] && echo "writer holds the lock"

-- busy_timeout 300 ms: gives up with 55P03 after having waited that long
SELECT clock_timestamp() AS t0 \gset
SELECT id, v FROM regress_live_del_t ORDER BY id;
\echo :LAST_ERROR_SQLSTATE
SELECT clock_timestamp() - :'t0'::timestamptz >= interval '250 ms' AS waited_for_busy_timeout;

-- a pending cancel ends the wait at once, whatever busy_timeout says
ALTER SERVER regress_live_del OPTIONS (SET busy_timeout '10000');
SET statement_timeout = '300ms';
SELECT clock_timestamp() AS t0 \gset
SELECT id, v FROM regress_live_del_t ORDER BY id;
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;
SELECT clock_timestamp() - :'t0'::timestamptz < interval '3 s' AS ended_long_before_the_lock;

-- busy_timeout 10 s: the read waits, and returns what the writer committed
-- (told to, by another process, once the read has waited 300 ms)
\! sh "$PG_ABS_SRCDIR/test/fixtures/on_query.sh" touch 'SELECT id, v FROM regress_live_del_t%' 300 "$LIVE/writer/2.go" &
SELECT clock_timestamp() AS t0 \gset
SELECT id, v FROM regress_live_del_t ORDER BY id;
SELECT clock_timestamp() - :'t0'::timestamptz >= interval '300 ms' AS waited_for_writer;

-- A reader of a rollback-journal file holds its lock only while it copies
-- the file: a transaction left idle after reading does not stop a writer
-- that will not wait at all (.timeout 0), it goes on reading its copy (a
-- temporary file of this backend, the size of the file), and the copy is
-- gone when the transaction ends.
\! sh "$PG_ABS_SRCDIR/test/fixtures/wait_file.sh" "$LIVE/writer/exited"
\set del_size `stat -c %s /tmp/owsync_regress/live/del.db`
BEGIN;
SELECT id, v FROM regress_live_del_t ORDER BY id;
\! sqlite3 -cmd '.timeout 0' "$LIVE/del.db" "INSERT INTO t VALUES (3, 'written while a reader was idle');" 2>&1 && echo "the writer committed"
SELECT id, v FROM regress_live_del_t ORDER BY id;
SELECT count(*) AS copies, sum(size) = pg_size_bytes(:'del_size') AS copy_is_the_file
  FROM pg_ls_tmpdir() WHERE name LIKE 'pgsql_tmp' || pg_backend_pid() || '.%';
COMMIT;
SELECT count(*) AS copies FROM pg_ls_tmpdir() WHERE name LIKE 'pgsql_tmp' || pg_backend_pid() || '.%';
SELECT id, v FROM regress_live_del_t ORDER BY id;

-- ---------------------------------------------------------------------
-- 3. Cancel of a scan that never ends
-- ---------------------------------------------------------------------
CREATE SERVER regress_live_inf FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/live/inf.db');
CREATE FOREIGN TABLE regress_live_inf (x bigint) SERVER regress_live_inf OPTIONS (table 'inf');
-- planning never runs the view (a view gets a default row estimate)
SET statement_timeout = '5s';
EXPLAIN SELECT x FROM regress_live_inf;
RESET statement_timeout;
SELECT x FROM regress_live_inf LIMIT 3;

-- (a) statement_timeout, in the fetch loop (rows keep coming) ...
SET statement_timeout = '500ms';
SELECT count(*) FROM regress_live_inf;
\echo :LAST_ERROR_SQLSTATE
-- ... and inside one SQLite step that never returns a row (the condition
-- runs in SQLite: no Filter in the plan)
EXPLAIN (VERBOSE, COSTS OFF) SELECT count(*) FROM regress_live_inf WHERE x < 0;
SELECT count(*) FROM regress_live_inf WHERE x < 0;
\echo :LAST_ERROR_SQLSTATE
-- other interrupts (here a client connection check every 100 ms) do not
-- abort a SQLite step: only the timeout does, at its time
SET client_connection_check_interval = '100ms';
SET statement_timeout = '1500ms';
SELECT clock_timestamp() AS started \gset
SELECT count(*) FROM regress_live_inf WHERE x < 0;
\echo :LAST_ERROR_SQLSTATE
SELECT clock_timestamp() - :'started'::timestamptz >= interval '1400ms' AS ran_until_the_timeout;
RESET client_connection_check_interval;
RESET statement_timeout;
-- the session and the connection to the server are still usable
SELECT x FROM regress_live_inf LIMIT 3;

-- (b) pg_cancel_backend from another process, once the query has run for
-- 200 ms.  statement_timeout is only a safety net: should the cancel not
-- come, the test fails with a different message instead of hanging.
SET statement_timeout = '60s';
\! sh "$PG_ABS_SRCDIR/test/fixtures/on_query.sh" cancel 'SELECT count(*) FROM regress_live_inf%' 200 &
SELECT count(*) FROM regress_live_inf;
\echo :LAST_ERROR_SQLSTATE
SELECT x FROM regress_live_inf LIMIT 3;
\! sh "$PG_ABS_SRCDIR/test/fixtures/on_query.sh" cancel 'SELECT count(*) FROM regress_live_inf%' 200 &
SELECT count(*) FROM regress_live_inf WHERE x < 0;
\echo :LAST_ERROR_SQLSTATE
SELECT x FROM regress_live_inf LIMIT 3;
RESET statement_timeout;

-- ---------------------------------------------------------------------
-- 4. A file replaced at the same path (another inode)
-- ---------------------------------------------------------------------
CREATE SERVER regress_live_rep FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/live/rep.db');
CREATE FOREIGN TABLE regress_live_rep_t (id bigint, v text)
  SERVER regress_live_rep OPTIONS (table 't');
SELECT id, v FROM regress_live_rep_t ORDER BY id;
BEGIN;
SELECT id, v FROM regress_live_rep_t ORDER BY id;
\! sqlite3 "$LIVE/new.db" "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'replacement'), (2, 'replacement');" && chmod 666 "$LIVE/new.db" && mv "$LIVE/new.db" "$LIVE/rep.db"
-- the transaction keeps reading the file it started with
SELECT id, v FROM regress_live_rep_t ORDER BY id;
COMMIT;
-- the next one opens the file now at the path
SELECT id, v FROM regress_live_rep_t ORDER BY id;

-- a file removed: the next transaction reports it; once it is back, reads work
\! mv "$LIVE/rep.db" "$LIVE/rep.db.away"
SELECT id, v FROM regress_live_rep_t ORDER BY id;
\echo :LAST_ERROR_SQLSTATE
\! mv "$LIVE/rep.db.away" "$LIVE/rep.db"
SELECT id, v FROM regress_live_rep_t ORDER BY id;

-- ---------------------------------------------------------------------
-- 5. Changed server options reopen the file
-- ---------------------------------------------------------------------
ALTER SERVER regress_live_rep OPTIONS (SET database '/tmp/owsync_regress/live/other.db');
SELECT id, v FROM regress_live_rep_t ORDER BY id;
-- the option dropped and added again, naming the first file
ALTER SERVER regress_live_rep
  OPTIONS (DROP database, ADD database '/tmp/owsync_regress/live/rep.db');
SELECT id, v FROM regress_live_rep_t ORDER BY id;

-- changed inside a transaction that already read the server: the
-- transaction keeps its snapshot of the old file, the next one reads the new
BEGIN;
SELECT id, v FROM regress_live_rep_t ORDER BY id;
ALTER SERVER regress_live_rep OPTIONS (SET database '/tmp/owsync_regress/live/other.db');
SELECT id, v FROM regress_live_rep_t ORDER BY id;
COMMIT;
SELECT id, v FROM regress_live_rep_t ORDER BY id;

-- changed by another session: seen by this one's next transaction
\! psql -X -q -c "ALTER SERVER regress_live_rep OPTIONS (SET database '/tmp/owsync_regress/live/rep.db')" 2>&1
SELECT id, v FROM regress_live_rep_t ORDER BY id;

-- a server dropped and created again under the same name
DROP SERVER regress_live_rep CASCADE;
CREATE SERVER regress_live_rep FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/live/other.db');
CREATE FOREIGN TABLE regress_live_rep_t (id bigint, v text)
  SERVER regress_live_rep OPTIONS (table 't');
SELECT id, v FROM regress_live_rep_t ORDER BY id;

-- ---------------------------------------------------------------------
-- Clean up
-- ---------------------------------------------------------------------
SET client_min_messages = warning;
DROP EXTENSION owsync_fdw CASCADE;
\! rm -rf "$LIVE"
