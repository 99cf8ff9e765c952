--
-- Reading a WAL database whose writer (Open WebUI) is stopped must not create
-- -wal/-shm files in the client's directory: owned by PostgreSQL's user they
-- would stop a writer running as another user.  Such a file is read without
-- locks, and the transaction fails (retry) if a writer changed it meanwhile.
--
CREATE EXTENSION owsync_fdw;
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" stopped_writer
SET owsync.allowed_directories = '/tmp/owsync_regress/stopped';
CREATE SERVER regress_stopped FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/stopped/w.db');
CREATE FOREIGN TABLE regress_stopped_t (id bigint OPTIONS (key 'true'), v text)
  SERVER regress_stopped OPTIONS (table 't');

-- no writer: the rows are read and no file appears
SELECT * FROM regress_stopped_t;
\! ls /tmp/owsync_regress/stopped

-- a writer starts, commits and checkpoints into the main file while a
-- transaction is reading it: the transaction's next read fails ...
BEGIN;
SELECT count(*) FROM regress_stopped_t;
\! sqlite3 /tmp/owsync_regress/stopped/w.db "INSERT INTO t VALUES (2, 'two'); PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
SELECT count(*) FROM regress_stopped_t;
\echo :LAST_ERROR_SQLSTATE
COMMIT;
-- ... and so does its commit when it read nothing after the change
BEGIN;
SELECT count(*) FROM regress_stopped_t;
\! sqlite3 /tmp/owsync_regress/stopped/w.db "UPDATE t SET v = 'uno' WHERE id = 1; PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
COMMIT;
\echo :LAST_ERROR_SQLSTATE
-- the retry sees the writer's changes
SELECT * FROM regress_stopped_t ORDER BY id;

-- while a writer has the file open (its -shm exists) reads take a normal
-- WAL snapshot: the writer's later commit neither shows nor fails the reader
-- (the writer commits row 3, keeps the file open, and commits row 4 when
-- told: test/fixtures/sqlite_writer.sh)
\setenv W /tmp/owsync_regress/stopped
\! sh "$PG_ABS_SRCDIR/test/fixtures/sqlite_writer.sh" "$W/w.db" "$W/writer" "INSERT INTO t VALUES (3, 'three');" "INSERT INTO t VALUES (4, 'four');" &
\! sh "$PG_ABS_SRCDIR/test/fixtures/wait_file.sh" "$W/writer/1.done"
BEGIN;
SELECT count(*) FROM regress_stopped_t;
\! touch "$W/writer/2.go" && sh "$PG_ABS_SRCDIR/test/fixtures/wait_file.sh" "$W/writer/2.done"
SELECT count(*) FROM regress_stopped_t;
COMMIT;
-- the writer has closed the file; the next transaction sees its last row
\! sh "$PG_ABS_SRCDIR/test/fixtures/wait_file.sh" "$W/writer/exited"
SELECT count(*) FROM regress_stopped_t;
\! cd /tmp/owsync_regress/stopped && ls w.db*

-- a writer that died with commits only in its -wal, and the -shm gone (a
-- copied deployment): reading needs recovery, which would create files
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" stopped_writer-crashed
\! ls /tmp/owsync_regress/stopped/crash.db*
CREATE SERVER regress_crash FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/stopped/crash.db');
CREATE FOREIGN TABLE regress_crash_t (id bigint OPTIONS (key 'true'), v text)
  SERVER regress_crash OPTIONS (table 't');
SELECT count(*) FROM regress_crash_t;
\echo :LAST_ERROR_SQLSTATE
\! ls /tmp/owsync_regress/stopped/crash.db*
-- once its owner opened it (recovery), the committed row is there
\! cd /tmp/owsync_regress/stopped && sqlite3 crash.db "SELECT count(*) FROM t;"
SELECT * FROM regress_crash_t ORDER BY id;

DROP SERVER regress_crash CASCADE;
DROP SERVER regress_stopped CASCADE;
DROP EXTENSION owsync_fdw;
\! rm -rf /tmp/owsync_regress/stopped
