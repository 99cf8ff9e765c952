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
-- ... and so does its commit when a read was not checked since it ran (a
-- scan is checked at its end; the scan of a table's keys is not) ...
BEGIN;
SELECT owsync.key_set_hash('regress_stopped', 't', '{id}') IS NOT NULL AS keys_read;
\! sqlite3 /tmp/owsync_regress/stopped/w.db "UPDATE t SET v = 'uno' WHERE id = 1; PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
COMMIT;
\echo :LAST_ERROR_SQLSTATE
-- the retry sees the writer's changes
SELECT * FROM regress_stopped_t ORDER BY id;
-- ... or when owsync._check_reads() checks them
BEGIN;
SELECT owsync.key_set_hash('regress_stopped', 't', '{id}') IS NOT NULL AS keys_read;
\! sqlite3 /tmp/owsync_regress/stopped/w.db "UPDATE t SET v = 'one' WHERE id = 1;" >/dev/null
SELECT owsync._check_reads();
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- a writer that comes once every read was checked changes nothing, as a
-- later commit changes nothing for a WAL snapshot: the transaction's
-- results were the file as it was, and it commits
BEGIN;
SELECT owsync.key_set_hash('regress_stopped', 't', '{id}') IS NOT NULL AS keys_read;
SELECT * FROM regress_stopped_t ORDER BY id;
SELECT owsync._check_reads();
\! sqlite3 /tmp/owsync_regress/stopped/w.db "UPDATE t SET v = 'uno' WHERE id = 1;" >/dev/null
COMMIT;
SELECT * FROM regress_stopped_t ORDER BY id;

-- a client's run that a writer overtakes (here: a trigger on its mirror of
-- table a writes table b of the file before the run reads b) is rolled back
-- and run once more on a new snapshot: it succeeds, with the writer's row
SET client_min_messages = warning;
SELECT table_name, rows FROM owsync.register_client('stopped_example_com', '/tmp/owsync_regress/stopped/c.db');
CREATE SEQUENCE public.regress_overtaken;
CREATE FUNCTION public.regress_overtake() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    -- the first (n) times the trigger fires, a write to table b
    IF nextval('public.regress_overtaken') <= current_setting('regress.overtakes')::int THEN
        COPY (SELECT 1) TO PROGRAM 'sqlite3 /tmp/owsync_regress/stopped/c.db "INSERT INTO b (v) VALUES (''written during a run'')" >/dev/null';
    END IF;
    RETURN NULL;
END
$f$;
CREATE TRIGGER regress_overtake AFTER INSERT ON stopped_example_com.a
  FOR EACH ROW EXECUTE FUNCTION public.regress_overtake();
SET regress.overtakes = 1;
\! sqlite3 /tmp/owsync_regress/stopped/c.db "INSERT INTO a VALUES (2, 'two');" >/dev/null
CALL owsync.sync('stopped_example_com');
-- the trigger fired in both attempts (the first was rolled back), the writer
-- wrote once, and the run that succeeded read its row
SELECT currval('public.regress_overtaken') AS trigger_fired;
SELECT status, error FROM owsync.run WHERE client = 'stopped_example_com' ORDER BY run_id DESC LIMIT 1;
SELECT table_name, inserted FROM owsync.run_table
 WHERE run_id = (SELECT max(run_id) FROM owsync.run WHERE client = 'stopped_example_com') ORDER BY 1;
SELECT * FROM stopped_example_com.b ORDER BY id;
-- overtaken twice: the run fails naming the file and table, recorded as a
-- failed run (not an abandoned one), the mirror as it was
SELECT setval('public.regress_overtaken', 1, false);
SET regress.overtakes = 2;
\! sqlite3 /tmp/owsync_regress/stopped/c.db "INSERT INTO a VALUES (3, 'three');" >/dev/null
CALL owsync.sync('stopped_example_com');
\echo :LAST_ERROR_SQLSTATE
SELECT currval('public.regress_overtaken') AS trigger_fired;
SELECT status, sqlstate, error FROM owsync.run WHERE client = 'stopped_example_com' ORDER BY run_id DESC LIMIT 1;
SELECT (SELECT count(*) FROM stopped_example_com.a) AS a_rows, (SELECT count(*) FROM stopped_example_com.b) AS b_rows;
-- the next run brings both writes
SET regress.overtakes = 0;
CALL owsync.sync('stopped_example_com');
SELECT (SELECT count(*) FROM stopped_example_com.a) AS a_rows, (SELECT count(*) FROM stopped_example_com.b) AS b_rows;
SELECT owsync.unregister_client('stopped_example_com', drop_data => true);
DROP FUNCTION public.regress_overtake() CASCADE;
DROP SEQUENCE public.regress_overtaken;
RESET client_min_messages;

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
