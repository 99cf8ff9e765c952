--
-- Row versions: each run keeps what it replaces, and a client is restored as
-- it stood after any run of its window.  After each run the source file is
-- copied with sqlite3's .backup (an independent record, not the mirror);
-- each as-of restore is compared with the copy of its moment by
-- test/compare_sqlite.py, which reads both files with Python's sqlite3.
--
\set SHOW_CONTEXT never
CREATE EXTENSION owsync_fdw;
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" versions
SET owsync.allowed_directories = '/tmp/owsync_regress/versions';
SET client_min_messages = warning;
\getenv abs_srcdir PG_ABS_SRCDIR
\set compare 'python3 ' :abs_srcdir '/test/compare_sqlite.py'
\setenv COMPARE :compare
\set dir /tmp/owsync_regress/versions
\setenv DIR :dir

SELECT count(*) AS tables FROM owsync.register_client('acme', '/tmp/owsync_regress/versions/webui.db');
SELECT max(run_id) AS r0 FROM owsync.run \gset
SELECT min(id) AS chat_a, (SELECT id FROM acme.chat ORDER BY id LIMIT 1 OFFSET 1) AS chat_b FROM acme.chat \gset
\! cd $DIR && sqlite3 webui.db ".backup saved/r0.db"
-- registration's load keeps nothing: nothing came before it
SELECT versions_from = :r0 AS from_registration FROM owsync.client;
SELECT count(*) AS versions_schemas FROM pg_namespace WHERE nspname = 'owsync_acme_versions';

-- run 1: chat A's title edited (updated_at moves), chat B deleted, a chat
-- inserted; kv (no key) changed
\! cd $DIR && sqlite3 webui.db "UPDATE chat SET title = 'A one', updated_at = (SELECT max(updated_at) + 1 FROM chat) WHERE id = (SELECT min(id) FROM chat); DELETE FROM chat WHERE id = (SELECT id FROM chat ORDER BY id LIMIT 1 OFFSET 1); INSERT INTO chat (id, user_id, title, chat, created_at, updated_at, archived, meta) SELECT 'new-chat', user_id, 'new', '{}', 1, 2, 0, '{}' FROM chat LIMIT 1; UPDATE kv SET v = '1b' WHERE k = 'a';" && sqlite3 webui.db ".backup saved/r1.db"
CALL owsync.sync('acme');
SELECT max(run_id) AS r1 FROM owsync.run \gset
SELECT table_name, inserted, updated, deleted FROM owsync.run_table
 WHERE run_id = :r1 AND inserted + updated + deleted > 0 ORDER BY 1;
SELECT owsync_op, count(*) FROM owsync_acme_versions.chat WHERE owsync_run = :r1 GROUP BY 1 ORDER BY 1;
SELECT owsync_op, count(*) FROM owsync_acme_versions.kv WHERE owsync_run = :r1 GROUP BY 1 ORDER BY 1;

-- run 2 (a reconcile): chat A edited again; chat C's title edited silently
-- (updated_at kept, found by its digest); kv unchanged
\! cd $DIR && sqlite3 webui.db "UPDATE chat SET title = 'A two', updated_at = (SELECT max(updated_at) + 1 FROM chat) WHERE id = (SELECT min(id) FROM chat); UPDATE chat SET title = 'C silently' WHERE id = (SELECT id FROM chat ORDER BY id LIMIT 1 OFFSET 2);" && sqlite3 webui.db ".backup saved/r2.db"
CALL owsync.sync('acme', 'reconcile');
SELECT max(run_id) AS r2 FROM owsync.run \gset
SELECT owsync_op, count(*) FROM owsync_acme_versions.chat WHERE owsync_run = :r2 GROUP BY 1 ORDER BY 1;
SELECT count(*) AS kv_kept FROM owsync_acme_versions.kv WHERE owsync_run = :r2;

-- run 3: a column added to chat by the source (schema drift), set on chat A;
-- kv emptied
\! cd $DIR && sqlite3 webui.db "ALTER TABLE chat ADD COLUMN mood TEXT; UPDATE chat SET mood = 'calm', title = 'A three', updated_at = (SELECT max(updated_at) + 1 FROM chat) WHERE id = (SELECT min(id) FROM chat); DELETE FROM kv;" && sqlite3 webui.db ".backup saved/r3.db"
CALL owsync.sync('acme');
SELECT max(run_id) AS r3 FROM owsync.run \gset

-- run 4: a full sync after chat A's fourth edit and a deleted message: the
-- reload keeps what it replaces, and only that
\! cd $DIR && sqlite3 webui.db "UPDATE chat SET title = 'A four', updated_at = (SELECT max(updated_at) + 1 FROM chat) WHERE id = (SELECT min(id) FROM chat); DELETE FROM chat_message WHERE id = (SELECT min(id) FROM chat_message); INSERT INTO kv VALUES ('c', '3');" && sqlite3 webui.db ".backup saved/r4.db"
CALL owsync.sync('acme', 'full');
SELECT max(run_id) AS r4 FROM owsync.run \gset
SELECT 'chat' AS t, owsync_op, count(*) FROM owsync_acme_versions.chat WHERE owsync_run = :r4 GROUP BY 1, 2
UNION ALL
SELECT 'chat_message', owsync_op, count(*) FROM owsync_acme_versions.chat_message WHERE owsync_run = :r4 GROUP BY 1, 2
ORDER BY 1, 2;
SELECT count(*) AS other_tables_kept FROM owsync_acme_versions.user WHERE owsync_run = :r4;

-- a nothing-changed run keeps nothing
CALL owsync.sync('acme');
SELECT source_unchanged FROM owsync.run ORDER BY run_id DESC LIMIT 1;

-- every run of the window restores to its saved copy, by run id
CALL owsync.restore('acme', '/tmp/owsync_regress/versions/out/r0.db', options => jsonb_build_object('run_id', :r0)) \gset
SELECT :'report'::jsonb ->> 'state_after_run' = :'r0' AS r0_state, :'report'::jsonb -> 'left_out_columns' AS left_out;
CALL owsync.restore('acme', '/tmp/owsync_regress/versions/out/r1.db', options => jsonb_build_object('run_id', :r1)) \gset
CALL owsync.restore('acme', '/tmp/owsync_regress/versions/out/r2.db', options => jsonb_build_object('run_id', :r2)) \gset
CALL owsync.restore('acme', '/tmp/owsync_regress/versions/out/r3.db', options => jsonb_build_object('run_id', :r3)) \gset
SELECT :'report'::jsonb -> 'left_out_columns' AS left_out;
CALL owsync.restore('acme', '/tmp/owsync_regress/versions/out/r4.db', options => jsonb_build_object('run_id', :r4)) \gset
\! cd $DIR && for r in r0 r1 r2 r3 r4; do printf '%s: ' $r; $COMPARE saved/$r.db out/$r.db | tail -1; done
-- the column added at run 3 is absent before it, present after
\! cd $DIR && sqlite3 out/r2.db "SELECT count(*) FROM pragma_table_info('chat') WHERE name = 'mood'" && sqlite3 out/r3.db "SELECT mood FROM chat WHERE mood IS NOT NULL"

-- by time: the state after the last run that finished at or before it
SELECT finished_at AS t2 FROM owsync.run WHERE run_id = :r2 \gset
CALL owsync.restore('acme', '/tmp/owsync_regress/versions/out/t2.db', options => jsonb_build_object('as_of', :'t2')) \gset
SELECT :'report'::jsonb ->> 'state_after_run' = :'r2' AS r2_state;
SELECT finished_at - interval '1 microsecond' AS before_t3 FROM owsync.run WHERE run_id = :r3 \gset
CALL owsync.restore('acme', '/tmp/owsync_regress/versions/out/t3.db', options => jsonb_build_object('as_of', :'before_t3')) \gset
\! cd $DIR && $COMPARE saved/r2.db out/t2.db | tail -1 && $COMPARE saved/r2.db out/t3.db | tail -1

-- a row's versions: chat A's title at each run, chat B's deletion
SELECT run_id - :r0 AS run, operation, "row" ->> 'title' AS title, "row" ->> 'mood' AS mood
  FROM owsync.row_versions('acme', 'chat', jsonb_build_object('id', :'chat_a'));
SELECT run_id - :r0 AS run, operation, "row" ->> 'title' AS title
  FROM owsync.row_versions('acme', 'chat', jsonb_build_object('id', :'chat_b'));
SELECT run_id - :r0 AS run, operation, "row" ->> 'title' AS title
  FROM owsync.row_versions('acme', 'chat', '{"id": "new-chat"}');
SELECT * FROM owsync.row_versions('acme', 'chat', '{"chat_id": "x"}');
SELECT * FROM owsync.row_versions('acme', 'kv', '{"k": "a"}');

-- out of the window, and bad options: refused, saying why (times masked)
CREATE FUNCTION pg_temp.refusal(options jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE msg text; det text;
BEGIN
  PERFORM owsync._restore('acme', '/tmp/owsync_regress/versions/out/x.db', false, options);
  RETURN 'restored';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
  RETURN regexp_replace(concat_ws(' / ', msg, nullif(det, '')), '\w{3} \w{3} \d\d [0-9:.]+ \d{4} \w+', '<time>', 'g');
END $$;
SELECT pg_temp.refusal('{"as_of": "2001-01-01"}');
SELECT pg_temp.refusal(jsonb_build_object('as_of', now() + interval '1 hour'));
CALL owsync.restore('acme', '/tmp/owsync_regress/versions/out/x.db', options => '{"as_of": "soon"}');
CALL owsync.restore('acme', '/tmp/owsync_regress/versions/out/x.db', options => '{"run_id": 1, "as_of": "now"}');
CALL owsync.restore('acme', '/tmp/owsync_regress/versions/out/x.db', options => jsonb_build_object('run_id', :r0 - 1));

-- status and metrics: the bytes kept and the oldest restorable moment
SELECT versions_bytes > 0 AS has_versions, restorable_from = (SELECT finished_at FROM owsync.run WHERE run_id = :r0)
       AS from_r0 FROM owsync.status_detail;
SELECT versions_bytes > 0 AS has_versions, restorable_from_timestamp_seconds > 0 AS dated FROM owsync.metrics;

-- retention: runs 0 and 1 are made 8 days old (the default keeps 1): the
-- next run purges what only they needed, run 1 is the oldest restorable
-- state, and an as-of before it is refused
UPDATE owsync.run SET started_at = started_at - interval '8 days', finished_at = finished_at - interval '8 days'
 WHERE run_id IN (:r0, :r1);
\! cd $DIR && sqlite3 webui.db "UPDATE chat SET title = 'A five', updated_at = (SELECT max(updated_at) + 1 FROM chat) WHERE id = (SELECT min(id) FROM chat);"
CALL owsync.sync('acme');
SELECT versions_from = :r1 AS from_r1 FROM owsync.client;
SELECT count(*) AS kept_by_r1 FROM owsync_acme_versions.chat WHERE owsync_run <= :r1;
SELECT count(*) > 0 AS kept_after FROM owsync_acme_versions.chat WHERE owsync_run > :r1;
SELECT pg_temp.refusal(jsonb_build_object('run_id', :r0));
CALL owsync.restore('acme', '/tmp/owsync_regress/versions/out/r1b.db', options => jsonb_build_object('run_id', :r1)) \gset
\! cd $DIR && $COMPARE saved/r1.db out/r1b.db | tail -1

-- versions_interval: updates of a row keep one version per interval;
-- inserts and deletes always.  (Intervals count from the epoch: the one of
-- 10000 days began in 2024, so this check cannot straddle two.)  An as-of
-- restore gives the state where the interval began, here the window's start.
SELECT owsync.set_options('acme', '{"versions_interval": "10000 days"}') IS NOT NULL AS set;
\! cd $DIR && sqlite3 webui.db "UPDATE chat SET title = 'A six', updated_at = (SELECT max(updated_at) + 1 FROM chat) WHERE id = (SELECT min(id) FROM chat);"
CALL owsync.sync('acme');
\! cd $DIR && sqlite3 webui.db "UPDATE chat SET title = 'A seven', updated_at = (SELECT max(updated_at) + 1 FROM chat) WHERE id = (SELECT min(id) FROM chat); DELETE FROM chat WHERE id = 'new-chat';"
CALL owsync.sync('acme');
SELECT max(run_id) AS r7 FROM owsync.run \gset
SELECT owsync_run = :r7 AS last_run, owsync_op, title FROM owsync_acme_versions.chat
 WHERE owsync_run > :r4 ORDER BY owsync_run, owsync_op;
CALL owsync.restore('acme', '/tmp/owsync_regress/versions/out/t7.db', options => jsonb_build_object('as_of', now())) \gset
SELECT :'report'::jsonb ->> 'versions_interval' AS granularity,
       (:'report'::jsonb ->> 'exact_at')::timestamptz = (SELECT restorable_from FROM owsync.status_detail) AS at_window_start,
       (:'report'::jsonb ->> 'state_after_run')::bigint = :r1 AS state_after_r1;
SELECT owsync.set_options('acme', '{"versions_interval": "1 month"}');
SELECT owsync.set_options('acme', '{"versions_retention": "a week"}');

-- versions_retention "0": nothing is kept, and the window is the last run
-- alone (its state is the mirror's)
SELECT owsync.set_options('acme', '{"versions_retention": "0", "versions_interval": null}') IS NOT NULL AS set;
\! cd $DIR && sqlite3 webui.db "UPDATE chat SET title = 'A eight', updated_at = (SELECT max(updated_at) + 1 FROM chat) WHERE id = (SELECT min(id) FROM chat);" && sqlite3 webui.db ".backup saved/r8.db"
CALL owsync.sync('acme');
SELECT max(run_id) AS r8 FROM owsync.run \gset
SELECT versions_from = :r8 AS from_r8, (SELECT count(*) FROM owsync_acme_versions.chat) AS chat_versions_kept
  FROM owsync.client;
SELECT pg_temp.refusal(jsonb_build_object('run_id', :r7));
CALL owsync.restore('acme', '/tmp/owsync_regress/versions/out/r8.db', options => jsonb_build_object('run_id', :r8)) \gset
\! cd $DIR && $COMPARE saved/r8.db out/r8.db | tail -1

-- the versions are owsync's: a reader role of the client has no access
SELECT owsync.set_options('acme', '{"reader_role": true}') IS NOT NULL AS set;
SET ROLE acme_reader;
SELECT count(*) FROM owsync_acme_versions.chat;
SELECT count(*) > 0 AS reads_mirror FROM acme.chat;
RESET ROLE;

SELECT owsync.unregister_client('acme', drop_data => true);
SELECT count(*) AS schemas_left FROM pg_namespace
 WHERE nspname IN ('acme', 'owsync_acme_src', 'owsync_acme_digest', 'owsync_acme_versions');
DROP ROLE acme_reader;
DROP EXTENSION owsync_fdw;
