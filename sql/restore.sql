--
-- Restore: a client's mirror written out as a new SQLite file.  The restored
-- file is compared with the source by test/compare_sqlite.py, which reads
-- both with Python's sqlite3 (not owsync): sqlite_master in order, every row
-- of every table with each value's storage class, integrity_check, journal
-- mode.
--
\set SHOW_CONTEXT never
CREATE EXTENSION owsync_fdw;
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" restore
SET owsync.allowed_directories = '/tmp/owsync_regress/restore';
SET client_min_messages = warning;
\getenv abs_srcdir PG_ABS_SRCDIR
\set compare 'python3 ' :abs_srcdir '/test/compare_sqlite.py'
\setenv COMPARE :compare
\setenv PGHOST :HOST
\setenv PGPORT :PORT
\setenv PGDATABASE :DBNAME
\i :abs_srcdir/test/fixtures/wait_for.sql

SELECT count(*) AS tables FROM owsync.register_client('legacy_example_com', '/tmp/owsync_regress/restore/legacy.db');
SELECT count(*) AS tables FROM owsync.register_client('fresh_example_com', '/tmp/owsync_regress/restore/fresh.db');
SELECT count(*) AS tables FROM owsync.register_client('nopk_example_com', '/tmp/owsync_regress/restore/legacy--no-pk.db');

-- the sources change (a new chat, an edited message, a deleted chat, a
-- boolean, JSON null and SQL NULL), the mirrors follow
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" restore-changes
CALL owsync.sync('legacy_example_com');
CALL owsync.sync('fresh_example_com');
CALL owsync.sync('nopk_example_com', 'reconcile');

-- restore each into a new file; the report says what was written
CALL owsync.restore('legacy_example_com', '/tmp/owsync_regress/restore/out/legacy.db') \gset
SELECT :'report'::jsonb - 'seconds' - 'schema_captured_at' - 'table_rows' AS report;
SELECT :'report'::jsonb -> 'table_rows' -> 'chat' AS chats, :'report'::jsonb ? 'seconds' AS timed;
CALL owsync.restore('fresh_example_com', '/tmp/owsync_regress/restore/out/fresh.db') \gset
SELECT :'report'::jsonb - 'seconds' - 'schema_captured_at' - 'table_rows' AS report;
CALL owsync.restore('nopk_example_com', '/tmp/owsync_regress/restore/out/nopk.db') \gset
\! cd /tmp/owsync_regress/restore && $COMPARE legacy.db out/legacy.db && $COMPARE fresh.db out/fresh.db && $COMPARE legacy--no-pk.db out/nopk.db
\! cd /tmp/owsync_regress/restore/out && ls && stat -c '%n %a' legacy.db && sqlite3 legacy.db "SELECT version_num FROM alembic_version" && sqlite3 nopk.db "SELECT count(*) FROM migratehistory"

-- the restored file registered as a client: the same mirror, and a sync
-- after it changes nothing
SELECT count(*) AS tables FROM owsync.register_client('legacy_restored', '/tmp/owsync_regress/restore/out/legacy.db');
CALL owsync.sync('legacy_restored', 'reconcile');
SELECT mode, status, inserted + updated + deleted AS rows_changed FROM owsync.history_detail ORDER BY run_id DESC LIMIT 1;
SELECT count(*) AS differing_tables
  FROM owsync.client_table a JOIN owsync.client_table b USING (table_name)
 WHERE a.client = 'legacy_example_com' AND b.client = 'legacy_restored'
   AND a.key_buckets IS DISTINCT FROM b.key_buckets;
SELECT owsync.unregister_client('legacy_restored', drop_data => true);

-- refusals: an existing file (unless overwrite), a registered client's own
-- file (even with overwrite), outside owsync.allowed_directories, an unknown
-- client, bad options
CALL owsync.restore('legacy_example_com', '/tmp/owsync_regress/restore/out/legacy.db');
CALL owsync.restore('legacy_example_com', '/tmp/owsync_regress/restore/fresh.db', overwrite => true);
CALL owsync.restore('legacy_example_com', '/tmp/owsync_regress/restore/elsewhere/../legacy.db', overwrite => true);
SET owsync.allowed_directories = '/tmp/owsync_regress/restore/out';
CALL owsync.restore('legacy_example_com', '/tmp/owsync_regress/restore/elsewhere/x.db');
SET owsync.allowed_directories = '/tmp/owsync_regress/restore';
CALL owsync.restore('nobody', '/tmp/owsync_regress/restore/out/x.db');
CALL owsync.restore('legacy_example_com', '/tmp/owsync_regress/restore/out/x.db', options => '{"reatach": true}');
\! ls /tmp/owsync_regress/restore/out /tmp/owsync_regress/restore/elsewhere
-- overwrite replaces the file in one rename: the new file, checked
CALL owsync.restore('fresh_example_com', '/tmp/owsync_regress/restore/out/legacy.db', overwrite => true) \gset
\! cd /tmp/owsync_regress/restore && $COMPARE fresh.db out/legacy.db | tail -1

-- who may restore: a member of owsync_admin also needs pg_write_server_files
CREATE ROLE regress_restorer LOGIN;
GRANT owsync_admin TO regress_restorer;
SET SESSION AUTHORIZATION regress_restorer;
CALL owsync.restore('legacy_example_com', '/tmp/owsync_regress/restore/out/by_admin.db');
RESET SESSION AUTHORIZATION;
GRANT pg_write_server_files TO regress_restorer;
SET SESSION AUTHORIZATION regress_restorer;
CALL owsync.restore('legacy_example_com', '/tmp/owsync_regress/restore/out/by_admin.db') \gset
SELECT owsync._write_sqlite('/tmp/owsync_regress/restore/out/direct.db', false, 'x', '{}', '{}', '{}', '{}', 'wal', '{}', false);
RESET SESSION AUTHORIZATION;
\! ls /tmp/owsync_regress/restore/out

-- a failure half way (here: two chats of the mirror share a share_id, which
-- the file's unique index chat_share_id refuses, met after several tables
-- were written) leaves no file at the target and no temporary file
BEGIN;
UPDATE legacy_example_com.chat SET share_id = 'shared twice'
 WHERE id IN (SELECT id FROM legacy_example_com.chat ORDER BY id COLLATE "C" LIMIT 2);
\set VERBOSITY terse
CALL owsync.restore('legacy_example_com', '/tmp/owsync_regress/restore/out/broken.db');
\set VERBOSITY default
ROLLBACK;
\! ls -a /tmp/owsync_regress/restore/out

-- a column the mirror keeps but the source dropped (as an Open WebUI
-- upgrade's migration drops some): the file has the source's schema as of
-- the last sync, and the report says what was left out
ALTER TABLE legacy_example_com.user ADD COLUMN extra text DEFAULT 'kept in PostgreSQL';
CALL owsync.restore('legacy_example_com', '/tmp/owsync_regress/restore/out/left_out.db') \gset
SELECT :'report'::jsonb -> 'left_out_columns' AS left_out_columns, :'report'::jsonb -> 'left_out_tables' AS left_out_tables;
\! sqlite3 /tmp/owsync_regress/restore/out/left_out.db "SELECT count(*) AS extra_columns FROM pragma_table_info('user') WHERE name = 'extra'"
ALTER TABLE legacy_example_com.user DROP COLUMN extra;
\! rm /tmp/owsync_regress/restore/out/left_out.db

-- a backend terminated mid-way (it waits for a lock on a mirror table after
-- writing the tables before it) leaves no file at the target either.  (How
-- such a waiting restore holds off other runs of the client:
-- specs/run_lock.spec.)
BEGIN;
LOCK TABLE legacy_example_com.user IN ACCESS EXCLUSIVE MODE;
\! (psql -X -q -c "SET owsync.allowed_directories = '/tmp/owsync_regress/restore'" -c "SET application_name = 'regress_restore'" -c "CALL owsync.restore('legacy_example_com', '/tmp/owsync_regress/restore/out/killed.db')" >/dev/null 2>&1 &)
SELECT pg_temp.wait_for($$SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                                          WHERE application_name = 'regress_restore' AND wait_event_type = 'Lock')$$) AS restore_waits;
SELECT pid AS restore_pid FROM pg_stat_activity WHERE application_name = 'regress_restore' \gset
SELECT pg_terminate_backend(:restore_pid);
COMMIT;
-- once its process is gone (the next restore removes what a dead one left)
\setenv RESTORE_PID :restore_pid
\! for i in $(seq 1 600); do [ -d "/proc/$RESTORE_PID" ] || break; sleep 0.05; done; [ -d "/proc/$RESTORE_PID" ] && echo "the terminated backend is still there"
\! ls /tmp/owsync_regress/restore/out | sed 's/restore-[0-9]*/restore-PID/'
-- the next restore to that path removes what was left, and is not hindered
CALL owsync.restore('legacy_example_com', '/tmp/owsync_regress/restore/out/killed.db') \gset
\! cd /tmp/owsync_regress/restore && $COMPARE legacy.db out/killed.db | tail -1 && ls out

-- a JSON number that the NUMERIC affinity of a JSON column stores in a form
-- of its own: json 1.0 becomes the integer 1, as when Open WebUI writes it,
-- and the report counts it; one with more digits than a double holds would
-- change in value: refused, no file written
UPDATE legacy_example_com.chat SET meta = '1.0' WHERE id = 'restored-chat';
CALL owsync.restore('legacy_example_com', '/tmp/owsync_regress/restore/out/affinity.db') \gset
SELECT :'report'::jsonb -> 'json_numbers_as_sqlite_stores_them' AS json_numbers;
\! sqlite3 /tmp/owsync_regress/restore/out/affinity.db "SELECT typeof(meta), meta FROM chat WHERE id = 'restored-chat'" && rm /tmp/owsync_regress/restore/out/affinity.db
UPDATE legacy_example_com.chat SET meta = '0.1234567890123456789' WHERE id = 'restored-chat';
CALL owsync.restore('legacy_example_com', '/tmp/owsync_regress/restore/out/affinity.db');
\! ls /tmp/owsync_regress/restore/out

-- rollback of a deployment that ran on PostgreSQL: a schema as Open WebUI
-- creates it there (varchar, text, bigint, boolean, json, timestamp; built
-- from the fresh file by test/pg_native_schema.py, rows from its mirror)
\! python3 "$PG_ABS_SRCDIR/test/pg_native_schema.py" /tmp/owsync_regress/restore/fresh.db native_webui fresh_example_com > /tmp/owsync_regress/restore/native.sql && psql -X -q -v ON_ERROR_STOP=1 -f /tmp/owsync_regress/restore/native.sql && echo "native schema built"
SELECT format_type(atttypid, atttypmod) AS type, count(*) FROM pg_attribute
 WHERE attrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'native_webui'::regnamespace AND relkind = 'r') AND attnum > 0
 GROUP BY 1 ORDER BY 1;
-- with the DDL of a registered client of the same Open WebUI version: the
-- file Open WebUI made, to the byte of sqlite_master
CALL owsync.restore_from_schema('native_webui', '/tmp/owsync_regress/restore/out/native_tmpl.db', options => '{"ddl_from_client": "fresh_example_com"}') \gset
SELECT :'report'::jsonb - 'seconds' - 'table_rows' AS report;
\! cd /tmp/owsync_regress/restore && $COMPARE fresh.db out/native_tmpl.db
-- without: DDL generated as SQLAlchemy writes it; the same columns (names,
-- declared types, NOT NULL, keys), indexes and rows, but for tag.user_id: a
-- nullable part of tag's primary key in SQLite, NOT NULL in PostgreSQL
-- (an index Open WebUI makes on PostgreSQL only, on JSON operators, is left
-- out and said)
CREATE INDEX file_pending_knowledge_idx ON native_webui.file (((meta -> 'data') ->> 'knowledge_id'))
 WHERE (data ->> 'status') IN ('pending', 'processing');
CALL owsync.restore_from_schema('native_webui', '/tmp/owsync_regress/restore/out/native_gen.db') \gset
SELECT :'report'::jsonb ->> 'ddl' AS ddl, :'report'::jsonb -> 'rows' AS rows,
       :'report'::jsonb -> 'left_out_indexes' AS left_out_indexes;
\! cd /tmp/owsync_regress/restore && $COMPARE fresh.db out/native_gen.db --columns; sqlite3 out/native_gen.db "SELECT sql FROM sqlite_master WHERE name IN ('chat', 'folder_id_idx')"
CALL owsync.restore_from_schema('native_webui', '/tmp/owsync_regress/restore/out/x.db', options => '{"ddl_from_client": "legacy_example_com"}');
CALL owsync.restore_from_schema('no_such_schema', '/tmp/owsync_regress/restore/out/x.db');
DROP SCHEMA native_webui CASCADE;

-- reattach: the client now syncs from the restored file, with no full copy
-- and no change found; changes made there arrive
CALL owsync.restore('fresh_example_com', '/tmp/owsync_regress/restore/out/fresh2.db', options => '{"reattach": true}') \gset
SELECT :'report'::jsonb -> 'reattached' AS reattached;
SELECT option_value FROM pg_options_to_table((SELECT srvoptions FROM pg_foreign_server WHERE srvname = (owsync.client_names('fresh_example_com')).server))
 WHERE option_name = 'database';
SELECT database FROM owsync.client WHERE client = 'fresh_example_com';
CALL owsync.sync('fresh_example_com');
CALL owsync.sync('fresh_example_com', 'reconcile');
SELECT mode, status, tables, inserted + updated + deleted AS rows_changed FROM owsync.history_detail ORDER BY run_id DESC LIMIT 2;
\! sqlite3 /tmp/owsync_regress/restore/out/fresh2.db "UPDATE chat SET title = 'after reattach', updated_at = updated_at + 5 WHERE id = 'restored-chat'"
CALL owsync.sync('fresh_example_com');
SELECT title FROM fresh_example_com.chat WHERE id = 'restored-chat';

SELECT owsync.unregister_client(c, drop_data => true) FROM unnest('{legacy_example_com, fresh_example_com, nopk_example_com}'::text[]) c;
DROP ROLE regress_restorer;
DROP EXTENSION owsync_fdw;
\! rm -rf /tmp/owsync_regress/restore
