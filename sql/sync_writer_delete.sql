--
-- sync_writer_delete: sql/sync_writer.sql on a rollback-journal (DELETE mode)
-- file, where a reader's shared lock blocks the writer's commit.  The writer
-- (busy_timeout 5000, as Open WebUI's) commits its phase b while a full sync
-- is part-way through reading, held on a table lock: it would fail with
-- "database is locked" had the sync kept the file locked for its snapshot.
-- The rest as in sync_writer:
--
-- sync_writer: syncs while Open WebUI writes.  A writer (test/fixtures/
-- writer.py: one connection kept open, busy_timeout 5000) commits a
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
\set test sync_writer_delete
\setenv TEST :test
\getenv abs_srcdir PG_ABS_SRCDIR
\i :abs_srcdir/test/fixtures/sync_writer.sql
