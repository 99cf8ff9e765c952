--
-- on_bad_row = 'quarantine': a row that cannot be read goes to
-- owsync.quarantine with its key, the reason and every value as storage
-- class and bytes; the rest of the run applies; the mirror keeps the row's
-- previous version; every run retries it and clears it once it reads.
--
\set SHOW_CONTEXT never
CREATE EXTENSION owsync_fdw;
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" quarantine
SET owsync.allowed_directories = '/tmp/owsync_regress/quarantine';
SET client_min_messages = error;
-- a title with a NUL byte is there before registration
\! sqlite3 /tmp/owsync_regress/quarantine/webui.db "UPDATE chat SET title = 'bad' || char(0) || 'title' WHERE id = (SELECT id FROM chat ORDER BY id LIMIT 1);"
SELECT count(*) AS tables, sum(rows) AS rows
  FROM owsync.register_client('q_example_com', '/tmp/owsync_regress/quarantine/webui.db',
                              options => '{"on_bad_row": "quarantine"}');
SELECT table_name, key ? 'id' AS keyed, sqlstate, reason,
       raw -> 'title' AS raw_title, raw ->> 'archived' AS raw_archived,
       (SELECT count(*) FROM jsonb_object_keys(raw)) AS raw_columns
  FROM owsync.quarantine;
SELECT table_name, path, inserted, quarantined FROM owsync.run_table WHERE quarantined > 0;
-- every other chat arrived
SELECT (SELECT count(*) FROM q_example_com.chat) AS mirrored,
       (SELECT count(*) FROM owsync_q_example_com_src.chat WHERE id <> (SELECT key ->> 'id' FROM owsync.quarantine)) AS readable;
SELECT client, last_status, quarantined_rows FROM owsync.status_detail;

-- a bad value arrives through the fast path (updated_at bumped): the mirror
-- keeps that chat's previous version, the run applies the rest
\! sqlite3 /tmp/owsync_regress/quarantine/webui.db "UPDATE chat SET chat = '{\"broken\": ', updated_at = (SELECT max(updated_at) FROM chat) + 100 WHERE id = (SELECT id FROM chat ORDER BY id LIMIT 1 OFFSET 1); UPDATE chat SET title = 'fine edit', updated_at = (SELECT max(updated_at) FROM chat) + 200 WHERE id = (SELECT id FROM chat ORDER BY id LIMIT 1 OFFSET 2); DELETE FROM tag WHERE rowid = (SELECT min(rowid) FROM tag);"
CALL owsync.sync('q_example_com');
SELECT status FROM owsync.run ORDER BY run_id DESC LIMIT 1;
SELECT table_name, path, inserted, updated, deleted, quarantined FROM owsync.run_table
 WHERE run_id = (SELECT max(run_id) FROM owsync.run) AND inserted + updated + deleted + quarantined > 0 ORDER BY 1;
SELECT table_name, sqlstate, left(reason, 60) AS reason, first_run < last_run AS retried
  FROM owsync.quarantine ORDER BY first_run;
SELECT m.chat::text = '{"broken": ' AS mirror_has_broken_json, m.chat IS NOT NULL AS previous_version_kept
  FROM q_example_com.chat m
 WHERE m.id = (SELECT id FROM owsync_q_example_com_src.chat ORDER BY id LIMIT 1 OFFSET 1);
SELECT title FROM q_example_com.chat WHERE id = (SELECT id FROM owsync_q_example_com_src.chat ORDER BY id LIMIT 1 OFFSET 2);

-- fixed at the source: the next run applies both rows and clears the quarantine
\! sqlite3 /tmp/owsync_regress/quarantine/webui.db "UPDATE chat SET title = 'fixed title' WHERE title LIKE 'bad%'; UPDATE chat SET chat = '{\"fixed\": true}' WHERE chat = '{\"broken\": ';"
CALL owsync.sync('q_example_com');
SELECT count(*) AS still_quarantined FROM owsync.quarantine;
SELECT count(*) AS tables, sum(missing + extra + coalesce(differing, 0)) AS differences
  FROM owsync.verify('q_example_com');
SELECT run_id, mode, status, quarantined FROM owsync.history_detail ORDER BY run_id;

-- the default, abort, fails the run instead (and changes nothing)
SELECT owsync.set_options('q_example_com', '{"on_bad_row": null}');
\! sqlite3 /tmp/owsync_regress/quarantine/webui.db "UPDATE chat SET title = 'again' || char(0) WHERE rowid = 1;"
CALL owsync.sync('q_example_com', 'reconcile');
SELECT status, sqlstate, error_table FROM owsync.run ORDER BY run_id DESC LIMIT 1;
SELECT count(*) AS quarantined FROM owsync.quarantine;

SELECT owsync.unregister_client('q_example_com', drop_data => true);
DROP EXTENSION owsync_fdw;
\! rm -rf /tmp/owsync_regress/quarantine
