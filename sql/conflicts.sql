--
-- Conflicts: rows of a mirror changed in PostgreSQL (by anyone but the
-- sync) are recorded in owsync.mirror_change; when the source changes the
-- same row, the client's conflict_policy decides (source_wins, target_wins,
-- newest_wins, manual + owsync.resolve_conflict), in incremental,
-- reconcile and full runs; conflicts never stop the rest of a run.
--
\set SHOW_CONTEXT never
CREATE EXTENSION owsync_fdw;
-- item: a key and updated_at (seconds); note: a text key, no updated_at
-- (digests only); other: a table nobody edits in PostgreSQL
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" conflicts
SET owsync.allowed_directories = '/tmp/owsync_regress/conflicts';
SET client_min_messages = warning;

-- the policy is checked at registration
SELECT * FROM owsync.register_client('cf', '/tmp/owsync_regress/conflicts/webui.db',
                                     options => '{"conflict_policy": "mirror_wins"}');
SELECT * FROM owsync.register_client('cf', '/tmp/owsync_regress/conflicts/webui.db');
-- every mirror table with a key is watched; the sync's own writes are not recorded
SELECT tgrelid::regclass AS mirror_table, tgname FROM pg_trigger WHERE tgname = 'owsync_mirror_change' ORDER BY 1;
SELECT count(*) AS mirror_changes FROM owsync.mirror_change;
\! sqlite3 /tmp/owsync_regress/conflicts/webui.db "UPDATE item SET name = 'synced', updated_at = 1500 WHERE id = 12; DELETE FROM note WHERE id = 'c';"
CALL owsync.sync('cf', 'reconcile');
SELECT (SELECT name FROM cf.item WHERE id = 12) AS item12, (SELECT count(*) FROM cf.note) AS notes,
       (SELECT count(*) FROM owsync.mirror_change) AS mirror_changes;

-- what is recorded: the key, the net operation, the row as the sync left it
-- and as it is now, when and by whom; an edit undone, an insert deleted again
-- leave nothing; an update of the key is a delete and an insert
UPDATE cf.item SET name = 'x' WHERE id = 11;
UPDATE cf.item SET name = 'item11' WHERE id = 11;
INSERT INTO cf.item VALUES (50, 'gone soon', NULL, 1);
DELETE FROM cf.item WHERE id = 50;
UPDATE cf.item SET id = 51 WHERE id = 12;
SELECT table_name, key, op, old_row ->> 'name' AS old_name, new_row ->> 'name' AS new_name,
       changed_by = session_user AS by_me
  FROM owsync.mirror_change ORDER BY table_name, key;
-- an edit of the new key's row keeps the first old image (none: inserted)
UPDATE cf.item SET name = 'renamed' WHERE id = 51;
UPDATE cf.item SET id = 12 WHERE id = 51;
SELECT table_name, key, op, old_row ->> 'name' AS old_name, new_row ->> 'name' AS new_name
  FROM owsync.mirror_change ORDER BY table_name, key;
UPDATE cf.item SET name = 'synced' WHERE id = 12;
SELECT count(*) AS mirror_changes FROM owsync.mirror_change;

--
-- source_wins (the default): the source's version is applied, the mirror's
-- kept in the conflict; mirror-side updates, deletes and inserts
--
UPDATE cf.item SET name = 'pg1' WHERE id = 1;
DELETE FROM cf.item WHERE id = 2;
INSERT INTO cf.item VALUES (100, 'pg100', NULL, 1);
UPDATE cf.item SET name = 'pg3' WHERE id = 3;	-- the source leaves item 3 alone
UPDATE cf.note SET body = 'pg a' WHERE id = 'a';
SELECT table_name, key, op FROM owsync.mirror_change ORDER BY table_name, key;
\! sqlite3 /tmp/owsync_regress/conflicts/webui.db "UPDATE item SET name = 'src1', updated_at = 2001 WHERE id = 1; UPDATE item SET name = 'src2', updated_at = 2002 WHERE id = 2; INSERT INTO item VALUES (100, 'src100', NULL, 2003); UPDATE item SET name = 'src4', updated_at = 2004 WHERE id = 4; DELETE FROM note WHERE id = 'a'; UPDATE other SET v = 'uno', updated_at = 2000 WHERE id = 1;"
CALL owsync.sync('cf');
SELECT status FROM owsync.run ORDER BY run_id DESC LIMIT 1;
SELECT table_name, key, policy, mirror_op, source_op, winner, resolved_by FROM owsync.conflicts ORDER BY conflict_id;
SELECT key, mirror_row ->> 'name' AS mirror_name, source_row ->> 'name' AS source_name
  FROM owsync.conflict WHERE table_name = 'item' ORDER BY conflict_id;
-- the mirror has the source's versions; item 3 (the source did not change it)
-- keeps its edit, still pending; the rest of the run applied (item 4, other)
SELECT id, name FROM cf.item WHERE id IN (1, 2, 3, 4, 100) ORDER BY id;
SELECT count(*) AS note_a FROM cf.note WHERE id = 'a';
SELECT v FROM cf.other;
SELECT table_name, key, op FROM owsync.mirror_change ORDER BY table_name, key;
SELECT table_name, inserted, updated, deleted, conflicts FROM owsync.run_table
 WHERE run_id = (SELECT max(run_id) FROM owsync.run) ORDER BY 1;
SELECT mode, status, inserted, updated, deleted, conflicts FROM owsync.history_detail ORDER BY run_id DESC LIMIT 1;
SELECT mode, status, result FROM owsync.history ORDER BY run_id DESC LIMIT 1;

--
-- target_wins: the mirror keeps its version (update, delete, insert); the
-- source's is kept in the conflict; the digests follow the source, so the
-- same source version is not applied again
--
SELECT owsync.set_options('cf', '{"conflict_policy": "target_wins"}') ->> 'conflict_policy' AS conflict_policy;
UPDATE cf.item SET name = 'pg5' WHERE id = 5;
DELETE FROM cf.item WHERE id = 6;
INSERT INTO cf.item VALUES (101, 'pg101', NULL, 1);
UPDATE cf.item SET name = 'pg7' WHERE id = 7;
DELETE FROM cf.item WHERE id = 12;		-- deleted on both sides: no conflict
\! sqlite3 /tmp/owsync_regress/conflicts/webui.db "UPDATE item SET name = 'src5', updated_at = 3005 WHERE id = 5; UPDATE item SET name = 'src6', updated_at = 3006 WHERE id = 6; INSERT INTO item VALUES (101, 'src101', NULL, 3001); DELETE FROM item WHERE id = 7; UPDATE item SET name = 'src9', updated_at = 3009 WHERE id = 9; DELETE FROM item WHERE id = 12;"
CALL owsync.sync('cf');
SELECT table_name, key, policy, mirror_op, source_op, winner FROM owsync.conflicts
 WHERE conflict_id > 4 ORDER BY conflict_id;
SELECT key, mirror_row ->> 'name' AS mirror_name, source_row ->> 'name' AS source_name
  FROM owsync.conflict WHERE conflict_id > 4 ORDER BY conflict_id;
SELECT id, name FROM cf.item WHERE id IN (5, 6, 7, 9, 12, 101) ORDER BY id;
-- the mirror changes stay, now against the source's version: item 7 is a
-- row the source no longer has, item 101 an update of the source's
SELECT table_name, key, op, old_row ->> 'name' AS old_name, new_row ->> 'name' AS new_name
  FROM owsync.mirror_change ORDER BY table_name, key;
-- runs that read the table again (a reconcile compares every digest) apply
-- nothing of it and find no new conflict
\! sqlite3 /tmp/owsync_regress/conflicts/webui.db "UPDATE item SET name = 'src10', updated_at = 3010 WHERE id = 10;"
CALL owsync.sync('cf');
CALL owsync.sync('cf', 'reconcile');
SELECT count(*) AS conflicts FROM owsync.conflict;
SELECT id, name FROM cf.item WHERE id IN (5, 6, 7, 10, 101) ORDER BY id;
SELECT run_id, mode, inserted, updated, deleted, conflicts FROM owsync.history_detail ORDER BY run_id DESC LIMIT 2;
-- the row stays PostgreSQL's: a new source change of it is a conflict again
\! sqlite3 /tmp/owsync_regress/conflicts/webui.db "UPDATE item SET name = 'src5 again', updated_at = 3105 WHERE id = 5;"
CALL owsync.sync('cf');
SELECT table_name, key, source_op, decided, source_row ->> 'name' AS source_name
  FROM owsync.conflict WHERE conflict_id > 8 ORDER BY conflict_id;
SELECT name FROM cf.item WHERE id = 5;
-- resolving the latest conflict of such a row for the source gives it back
SELECT owsync.resolve_conflict((SELECT max(conflict_id) FROM owsync.conflict), 'source');
SELECT name, updated_at FROM cf.item WHERE id = 5;
SELECT count(*) AS item5_pending FROM owsync.mirror_change WHERE key = '{"id": 5}';
-- an earlier conflict of a row, or one the source won, cannot be resolved
SELECT owsync.resolve_conflict(5, 'target');
SELECT owsync.resolve_conflict(1, 'target');

--
-- newest_wins: the higher updated_at wins (ties go to the source); a table
-- without updated_at goes to the source, and so does a delete at the source
--
SELECT owsync.set_options('cf', '{"conflict_policy": "newest_wins"}') ->> 'conflict_policy' AS conflict_policy;
UPDATE cf.item SET name = 'pg8', updated_at = 9000 WHERE id = 8;	-- newer than the source's edit
UPDATE cf.item SET name = 'pg10' WHERE id = 10;					-- updated_at left as it was
UPDATE cf.item SET name = 'pg11', updated_at = 9011 WHERE id = 11;
DELETE FROM cf.note WHERE id = 'b';
\! sqlite3 /tmp/owsync_regress/conflicts/webui.db "UPDATE item SET name = 'src8', updated_at = 5000 WHERE id = 8; UPDATE item SET name = 'src10 again', updated_at = 5010 WHERE id = 10; DELETE FROM item WHERE id = 11; UPDATE note SET body = 'src b' WHERE id = 'b';"
CALL owsync.sync('cf', 'reconcile');
SELECT table_name, key, mirror_op, source_op, winner, note FROM owsync.conflicts
 WHERE policy = 'newest_wins' ORDER BY conflict_id;
SELECT id, name, updated_at FROM cf.item WHERE id IN (8, 10, 11) ORDER BY id;
SELECT body FROM cf.note WHERE id = 'b';
-- the watermark follows the source only (the mirror's 9000 does not move it)
SELECT table_name, watermark FROM owsync.client_table WHERE client = 'cf' AND table_name = 'item';

--
-- manual: the mirror's row is left alone, the conflict pending until
-- resolved; later source changes of the row update the pending conflict
--
SELECT owsync.set_options('cf', '{"conflict_policy": "manual"}') ->> 'conflict_policy' AS conflict_policy;
UPDATE cf.item SET name = 'pg10 manual' WHERE id = 10;
DELETE FROM cf.item WHERE id = 4;
\! sqlite3 /tmp/owsync_regress/conflicts/webui.db "UPDATE item SET name = 'src10 manual', updated_at = 6010 WHERE id = 10; UPDATE item SET name = 'src4 manual', updated_at = 6004 WHERE id = 4; INSERT INTO item VALUES (200, 'src200', NULL, 6200);"
CALL owsync.sync('cf');
SELECT conflict_id AS c10 FROM owsync.conflict WHERE key = '{"id": 10}' AND decided IS NULL \gset
SELECT conflict_id AS c4 FROM owsync.conflict WHERE key = '{"id": 4}' AND decided IS NULL \gset
SELECT table_name, key, policy, mirror_op, source_op, winner FROM owsync.conflicts
 WHERE winner = 'pending' ORDER BY conflict_id;
SELECT id, name FROM cf.item WHERE id IN (4, 10, 200) ORDER BY id;
SELECT client, mirror_changes, pending_conflicts FROM owsync.status_detail;
SELECT client, mirror_changes, pending_conflicts FROM owsync.metrics;
SELECT client, problem FROM owsync.status;
-- a pending conflict is settled when the mirror's row is given the source's version
UPDATE cf.item SET name = 'pg200' WHERE id = 200;
\! sqlite3 /tmp/owsync_regress/conflicts/webui.db "UPDATE item SET name = 'src200 b', updated_at = 6210 WHERE id = 200;"
CALL owsync.sync('cf');
SELECT key, winner FROM owsync.conflicts WHERE key = '{"id": 200}';
UPDATE cf.item m SET name = s.name, updated_at = s.updated_at
  FROM owsync_cf_src.item s WHERE m.id = 200 AND s.id = 200;
SELECT key, winner, resolved_by = session_user AS by_me, note FROM owsync.conflicts WHERE key = '{"id": 200}';
SELECT count(*) AS item200_pending FROM owsync.mirror_change WHERE key = '{"id": 200}';
\! sqlite3 /tmp/owsync_regress/conflicts/webui.db "UPDATE item SET name = 'src10 manual 2', updated_at = 6250 WHERE id = 10;"
CALL owsync.sync('cf');
SELECT conflict_id = :c10 AS same_conflict, run_id = (SELECT max(run_id) FROM owsync.run) AS last_run,
       source_row ->> 'name' AS source_name, decided
  FROM owsync.conflict WHERE key = '{"id": 10}' AND policy = 'manual';
SELECT name FROM cf.item WHERE id = 10;
-- resolved both ways
SELECT owsync.resolve_conflict(:c10, 'source');
SELECT owsync.resolve_conflict(:c4, 'target');
SELECT key, winner, resolved_by = session_user AS by_me FROM owsync.conflicts WHERE policy = 'manual' ORDER BY conflict_id;
SELECT id, name FROM cf.item WHERE id IN (4, 10) ORDER BY id;
SELECT count(*) AS pending FROM owsync.mirror_change WHERE key IN ('{"id": 4}', '{"id": 10}');
-- settled: the next source change of item 4 applies without a conflict
\! sqlite3 /tmp/owsync_regress/conflicts/webui.db "UPDATE item SET name = 'src4 later', updated_at = 6304 WHERE id = 4;"
CALL owsync.sync('cf');
SELECT name FROM cf.item WHERE id = 4;
SELECT conflicts FROM owsync.history_detail ORDER BY run_id DESC LIMIT 1;
-- what resolve_conflict refuses
SELECT owsync.resolve_conflict(:c10, 'mirror');
SELECT owsync.resolve_conflict(-1, 'source');

--
-- full mode: the reload keeps rows with a pending mirror change as an
-- incremental run would: the source did not change them, they keep the
-- mirror's version (exactly: item 3's json too); the source changed them,
-- the policy decides
--
UPDATE cf.item SET meta = '{"pg" :   3}' WHERE id = 3;
INSERT INTO cf.item VALUES (300, 'pg only', '[1,  2]', 1);	-- a row only the mirror has
SELECT owsync.set_options('cf', '{"conflict_policy": "target_wins"}') ->> 'conflict_policy' AS conflict_policy;
UPDATE cf.item SET name = 'pg1 full' WHERE id = 1;
\! sqlite3 /tmp/owsync_regress/conflicts/webui.db "UPDATE item SET name = 'src1 full', updated_at = 7001 WHERE id = 1;"
CALL owsync.sync('cf', 'full');
SELECT id, name, meta::text FROM cf.item WHERE id IN (1, 3, 6, 7, 101, 300) ORDER BY id;
SELECT table_name, key, mirror_op, source_op, winner FROM owsync.conflicts
 WHERE run_id = (SELECT max(run_id) FROM owsync.run) ORDER BY conflict_id;
SELECT table_name, path, conflicts FROM owsync.run_table WHERE run_id = (SELECT max(run_id) FROM owsync.run) ORDER BY 1;
-- under source_wins a full run applies the source over the mirror changes it
-- changed (recorded), and still keeps the ones it did not
SELECT owsync.set_options('cf', '{"conflict_policy": null}') ->> 'conflict_policy' AS conflict_policy;
\! sqlite3 /tmp/owsync_regress/conflicts/webui.db "UPDATE item SET name = 'src1 full 2', updated_at = 7101 WHERE id = 1;"
CALL owsync.sync('cf', 'full');
SELECT table_name, key, policy, mirror_op, source_op, winner FROM owsync.conflicts
 WHERE run_id = (SELECT max(run_id) FROM owsync.run) ORDER BY conflict_id;
SELECT id, name, meta::text FROM cf.item WHERE id IN (1, 3) ORDER BY id;
SELECT table_name, key, op FROM owsync.mirror_change ORDER BY table_name, key;
SELECT mode, status, conflicts FROM owsync.history_detail ORDER BY run_id DESC LIMIT 1;

--
-- who edits: a role that may only update a mirror table still has its edit
-- recorded; owsync.applying is bookkeeping, not a security boundary: a
-- session that sets it edits unrecorded
--
CREATE ROLE regress_cf_editor;
GRANT USAGE ON SCHEMA cf TO regress_cf_editor;
GRANT SELECT, UPDATE ON cf.other TO regress_cf_editor;
SET ROLE regress_cf_editor;
UPDATE cf.other SET v = 'edited' WHERE id = 1;
SELECT count(*) AS sees_mirror_changes FROM owsync.mirror_change;
RESET ROLE;
SELECT table_name, key, op, changed_by = session_user AS by_session_user FROM owsync.mirror_change WHERE table_name = 'other';
BEGIN;
SET LOCAL owsync.applying = on;
UPDATE cf.other SET v = 'unrecorded' WHERE id = 1;
COMMIT;
SELECT new_row ->> 'v' AS recorded_v FROM owsync.mirror_change WHERE table_name = 'other';

-- a table that appears at the source is watched too
\! sqlite3 /tmp/owsync_regress/conflicts/webui.db "CREATE TABLE extra (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO extra VALUES (1, 'x');"
CALL owsync.sync('cf');
UPDATE cf.extra SET v = 'pg' WHERE id = 1;
SELECT table_name, key, op FROM owsync.mirror_change WHERE table_name = 'extra';

-- a client's reader sees the conflicts and mirror changes of the tables it
-- may read only (row images of withheld tables hold secrets)
CREATE ROLE regress_cf_reader;
SELECT owsync.set_options('cf', '{"reader_role": "regress_cf_reader", "withheld_tables": ["note", "other", "extra"]}')
       ->> 'reader_role' AS reader_role;
SET ROLE regress_cf_reader;
SELECT table_name, count(*) AS conflicts FROM owsync.conflicts GROUP BY 1 ORDER BY 1;
SELECT table_name, count(*) AS mirror_changes FROM owsync.mirror_change GROUP BY 1 ORDER BY 1;
RESET ROLE;
SELECT table_name, count(*) AS conflicts FROM owsync.conflicts GROUP BY 1 ORDER BY 1;

-- unregistered with its data kept: the mirror tables are plain tables again
SELECT owsync.unregister_client('cf');
SELECT count(*) AS triggers FROM pg_trigger WHERE tgname = 'owsync_mirror_change';
SELECT count(*) AS mirror_changes FROM owsync.mirror_change;
UPDATE cf.item SET name = 'after' WHERE id = 1;
DROP SCHEMA cf CASCADE;
DROP ROLE regress_cf_editor, regress_cf_reader;
DROP EXTENSION owsync_fdw;
\! rm -rf /tmp/owsync_regress/conflicts
