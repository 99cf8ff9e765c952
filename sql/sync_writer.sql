--
-- sync_writer: syncs while Open WebUI writes.  A writer (test/fixtures/
-- writer.py: one connection kept open, WAL, busy_timeout 5000) commits a
-- transaction every 10 ms to the SQLite file: messages added to chats, chats
-- renamed, messages edited, messages and chats deleted, new chats, channel
-- messages edited; some of its first edits leave updated_at as it was.
-- While it writes, the client is synced, incrementally and by reconcile,
-- and two syncs of the client overlap: one runs, the other is skipped.
-- After the writer stops, a last incremental sync and a reconcile leave the
-- mirror equal to the source: nothing lost, nothing duplicated.
--
-- The writer runs in phases (see writer.py), so that what is printed does
-- not depend on timing:
--   a  120 transactions, while incremental syncs run; silent edits only in
--      its first 80, which a reconcile started after them finds;
--   b   80 transactions while a full sync is held on a table lock with its
--      SQLite snapshot open (it then commits that older snapshot), and a
--      second sync of the client is called and skipped;
--   c   80 transactions while incremental and reconcile syncs run.
-- The writer's choices come from a fixed seed: its tally is the same in
-- every run; syncs report counts that depend on timing, so only statuses
-- and the final comparison are printed.
--
\set SHOW_CONTEXT never
CREATE EXTENSION owsync_fdw;
\setenv PGHOST :HOST
\setenv PGPORT :PORT
\setenv PGUSER :USER
\setenv PGDATABASE :DBNAME
\setenv W /tmp/owsync_regress/sync_writer
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" sync_writer
SET owsync.allowed_directories = '/tmp/owsync_regress/sync_writer';
SET client_min_messages = warning;

-- mirror and source compared, every column of every row as text (as in sync)
\getenv abs_srcdir PG_ABS_SRCDIR
\i :abs_srcdir/test/fixtures/compare.sql
\i :abs_srcdir/test/fixtures/wait_for.sql

SELECT count(*) AS tables, sum(rows) AS rows
  FROM owsync.register_client('writer_example_com', '/tmp/owsync_regress/sync_writer/webui.db');
SELECT * FROM pg_temp.check('writer_example_com');

-- the writer starts, and phase a runs with two incremental syncs
\! { umask 000; python3 "$PG_ABS_SRCDIR/test/fixtures/writer.py" "$W/webui.db" "$W" 7 > "$W/writer.log" 2>&1; } < /dev/null &
\! sh "$PG_ABS_SRCDIR/test/fixtures/wait_file.sh" "$W/started" && echo "writer started" || cat "$W/writer.log"
CALL owsync.sync('writer_example_com');
CALL owsync.sync('writer_example_com');
-- its silent edits are done: a reconcile started now finds them all
\! sh "$PG_ABS_SRCDIR/test/fixtures/wait_file.sh" "$W/a.silent_done" && echo "silent edits done" || cat "$W/writer.log"
CALL owsync.sync('writer_example_com', 'reconcile');
CALL owsync.sync('writer_example_com');
\! sh "$PG_ABS_SRCDIR/test/fixtures/wait_file.sh" "$W/a.done" && echo "phase a done" || cat "$W/writer.log"
SELECT mode, status, error FROM owsync.run ORDER BY run_id;

-- Two syncs of the client at once.  A third session holds a lock on the
-- client's last table (user) until this session lets it go; a full sync
-- started in the background reads every other table (its SQLite snapshot
-- is open) and waits for that lock.
SELECT max(run_id) AS before_overlap FROM owsync.run \gset
SELECT pg_advisory_lock(20261122, 1);
\! { psql -X -q -c "BEGIN" -c "LOCK TABLE writer_example_com.\"user\" IN ACCESS EXCLUSIVE MODE" -c "SELECT pg_advisory_xact_lock(20261122, 1)" -c "COMMIT" > /dev/null 2> "$W/holder.out"; } < /dev/null &
SELECT pg_temp.wait_for($$SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'writer_example_com.user'::regclass
                                          AND mode = 'AccessExclusiveLock' AND granted)$$) AS user_table_locked;
\! { psql -X -q -c "SET client_min_messages = warning" -c "CALL owsync.sync('writer_example_com', 'full')" > "$W/full.out" 2>&1; touch "$W/full.done"; } < /dev/null &
SELECT pg_temp.wait_for($$SELECT EXISTS (SELECT 1 FROM owsync.run WHERE client = 'writer_example_com'
                                            AND mode = 'full' AND status = 'running')
                            AND EXISTS (SELECT 1 FROM pg_locks WHERE relation = 'writer_example_com.user'::regclass
                                          AND NOT granted)$$) AS full_sync_waiting;
-- phase b: the writer commits while the full sync's snapshot is open (WAL:
-- the writer is not blocked) ...
\! touch "$W/go.b"
-- ... and a second sync of the client, from this session, is skipped at once
SET client_min_messages = notice;
CALL owsync.sync('writer_example_com');
SET client_min_messages = warning;
\! sh "$PG_ABS_SRCDIR/test/fixtures/wait_file.sh" "$W/b.done" && echo "phase b done" || cat "$W/writer.log"
-- the lock goes: the full sync goes on and commits the snapshot it started with
SELECT pg_advisory_unlock(20261122, 1);
\! sh "$PG_ABS_SRCDIR/test/fixtures/wait_file.sh" "$W/full.done" && echo "full sync returned"; cat "$W/full.out" "$W/holder.out"
SELECT mode, status, error FROM owsync.run WHERE run_id > :before_overlap ORDER BY run_id;
-- the mirror is the source as it was before phase b: behind it by phase b
-- (the writer waits for phase c: both sides are fixed)
SELECT * FROM pg_temp.compare('writer_example_com') WHERE differences > 0 OR source_rows <> mirror_rows;

-- phase c, with syncs of every kind
\! touch "$W/go.c"
CALL owsync.sync('writer_example_com');
CALL owsync.sync('writer_example_com', 'reconcile');
CALL owsync.sync('writer_example_com');
\! sh "$PG_ABS_SRCDIR/test/fixtures/wait_file.sh" "$W/done" && cat "$W/writer.out" || cat "$W/writer.log"

-- The writer has stopped.  An incremental sync brings everything: new and
-- deleted rows (key diff), edits with a new updated_at (fast path, seconds
-- and nanoseconds).  The silent edits, which it cannot see, all came with
-- the reconcile of phase a (and the full sync after it).
CALL owsync.sync('writer_example_com');
SELECT * FROM pg_temp.check('writer_example_com');
SELECT * FROM pg_temp.compare('writer_example_com') WHERE differences > 0 OR source_rows <> mirror_rows;
-- the rows the writer changed, in the mirror (its tally above), each once
SELECT (SELECT count(*) FROM writer_example_com.chat) AS chats,
       (SELECT count(*) FROM writer_example_com.chat_message) AS chat_messages,
       (SELECT count(DISTINCT id) FROM writer_example_com.chat_message) AS distinct_message_ids;
-- a final reconcile finds nothing left to do
CALL owsync.sync('writer_example_com', 'reconcile');
SELECT sum(inserted + updated + deleted) AS rows_written FROM owsync.run_table
 WHERE run_id = (SELECT max(run_id) FROM owsync.run);
SELECT * FROM pg_temp.check('writer_example_com');

-- every run: all succeeded but the one skipped
SELECT run_id - :before_overlap AS run, mode, status, sqlstate, error_table
  FROM owsync.run WHERE run_id > :before_overlap ORDER BY run_id;
SELECT status, count(*) FROM owsync.run GROUP BY status ORDER BY status;

SELECT owsync.unregister_client('writer_example_com', drop_data => true);
DROP EXTENSION owsync_fdw;
\! rm -rf "$W"
