--
-- The sync engine: register a client, keep its mirror equal to its SQLite
-- file (incremental, reconcile, deletes, silent edits), atomic runs with
-- history.  The comparison of mirror and source is independent of the
-- engine: every column of every row, as text.  (Runs at the same time:
-- specs/run_lock.spec.)
--
\set SHOW_CONTEXT never
CREATE EXTENSION owsync_fdw;
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" sync
SET owsync.allowed_directories = '/tmp/owsync_regress/sync';
SET client_min_messages = warning;

\getenv abs_srcdir PG_ABS_SRCDIR
\i :abs_srcdir/test/fixtures/compare.sql

-- large values are compressed with lz4 where the server has it: owsync's
-- answer is the one the server's settings give
SELECT owsync._has_lz4() = ('lz4' = ANY (enumvals)) AS lz4_as_the_server_says
  FROM pg_settings WHERE name = 'default_toast_compression';
-- registration: a mirror schema, keys, watermarks with their unit, first full sync
SELECT * FROM owsync.register_client('acme_quantabase_io', '/tmp/owsync_regress/sync/legacy.db');
SELECT * FROM owsync.register_client('fresh_example_com', '/tmp/owsync_regress/sync/fresh.db');
SELECT table_name, key_columns, watermark FROM owsync.register_client('nopk_example_com', '/tmp/owsync_regress/sync/legacy--no-pk.db')
 WHERE table_name IN ('chat', 'user', 'folder', 'tag');
SELECT * FROM pg_temp.check('acme_quantabase_io');
SELECT * FROM pg_temp.check('fresh_example_com');
SELECT * FROM pg_temp.check('nopk_example_com');
-- the mirror: source types, the key as primary key, lz4 for large values,
-- an index on updated_at
SELECT attname, format_type(atttypid, atttypmod), attnotnull, attcompression
  FROM pg_attribute WHERE attrelid = 'acme_quantabase_io.chat'::regclass AND attnum > 0
   AND attname IN ('id', 'title', 'archived', 'updated_at', 'chat', 'meta', 'pinned') ORDER BY attnum;
SELECT indexdef FROM pg_indexes WHERE schemaname = 'acme_quantabase_io' AND tablename = 'chat' ORDER BY 1;
SELECT client, enabled, schedule, last_status, last_error FROM owsync.status_detail ORDER BY client;

-- changes Open WebUI makes, then an incremental sync: everything arrives but
-- a silent edit of a table with updated_at (found by the next reconcile)
\! for f in legacy fresh legacy--no-pk; do sqlite3 /tmp/owsync_regress/sync/$f.db < "$PG_ABS_SRCDIR/test/fixtures/mutations.sql"; done
CALL owsync.sync('acme_quantabase_io');
SELECT table_name, path, inserted, updated, deleted FROM owsync.run_table
 WHERE run_id = (SELECT max(run_id) FROM owsync.run) AND inserted + updated + deleted > 0 ORDER BY 1;
SELECT * FROM pg_temp.compare('acme_quantabase_io') WHERE differences > 0 OR source_rows <> mirror_rows;
CALL owsync.sync('acme_quantabase_io', 'reconcile');
SELECT table_name, path, inserted, updated, deleted FROM owsync.run_table
 WHERE run_id = (SELECT max(run_id) FROM owsync.run) AND inserted + updated + deleted > 0 ORDER BY 1;
SELECT * FROM pg_temp.check('acme_quantabase_io');
-- with reconcile due every run, an incremental sync finds silent edits too
SELECT owsync.set_options('fresh_example_com', '{"reconcile_interval": "0"}');
CALL owsync.sync('fresh_example_com');
SELECT * FROM pg_temp.check('fresh_example_com');
CALL owsync.sync('nopk_example_com', 'reconcile');
SELECT * FROM pg_temp.check('nopk_example_com');
-- nothing committed to the file since: no table is even read
CALL owsync.sync('acme_quantabase_io');
SELECT status, source_unchanged, tables FROM owsync.history_detail ORDER BY run_id DESC LIMIT 1;
-- commits that leave what the mirror holds as it was (a title changed and
-- changed back): every table settled by its unchanged check, none synced
\! sqlite3 /tmp/owsync_regress/sync/legacy.db "UPDATE chat SET title = title || 'x' WHERE rowid = (SELECT min(rowid) FROM chat); UPDATE chat SET title = substr(title, 1, length(title) - 1) WHERE rowid = (SELECT min(rowid) FROM chat);"
CALL owsync.sync('acme_quantabase_io');
SELECT status, source_unchanged, tables, inserted + updated + deleted AS rows_written
  FROM owsync.history_detail ORDER BY run_id DESC LIMIT 1;
-- an empty table (no row, so no watermark) stays settled only while it is
-- empty: its first row is synced
\! sqlite3 /tmp/owsync_regress/sync/legacy.db "INSERT INTO app (id, slug, name, is_active, data, created_at, updated_at) VALUES ('app-1', 'first', 'First app', 1, '{}', 1700000000, 1700000000);"
CALL owsync.sync('acme_quantabase_io');
SELECT table_name, inserted FROM owsync.run_table WHERE run_id = (SELECT max(run_id) FROM owsync.run);
SELECT id, slug, updated_at FROM acme_quantabase_io.app;

-- Open WebUI adding messages (with a fresh updated_at): the key set grew
-- only by rows the fast path fetched, no key diff is needed; a deleted row
-- needs one
\! sqlite3 /tmp/owsync_regress/sync/legacy.db "INSERT INTO chat_message (id, chat_id, role, content, created_at, updated_at) SELECT 'cm-new-' || rowid, chat_id, role, content, created_at, (SELECT max(updated_at) FROM chat_message) + 10 FROM chat_message LIMIT 3;"
CALL owsync.sync('acme_quantabase_io');
SELECT table_name, inserted, deleted, key_diff FROM owsync.run_table
 WHERE run_id = (SELECT max(run_id) FROM owsync.run) AND table_name = 'chat_message';
\! sqlite3 /tmp/owsync_regress/sync/legacy.db "DELETE FROM chat_message WHERE id = 'cm-new-1'; INSERT INTO chat_message (id, chat_id, role, content, created_at, updated_at) SELECT 'cm-new-x', chat_id, role, content, created_at, (SELECT max(updated_at) FROM chat_message) + 10 FROM chat_message LIMIT 1;"
CALL owsync.sync('acme_quantabase_io');
SELECT table_name, inserted, deleted, key_diff FROM owsync.run_table
 WHERE run_id = (SELECT max(run_id) FROM owsync.run) AND table_name = 'chat_message';
SELECT * FROM pg_temp.check('acme_quantabase_io');
-- the run keeps the updated_at and digest of each row of the next run's
-- window; that run's scan returns the rows whose digest it lists as their
-- digest alone, without converting their values (only in the transaction
-- that listed them, and until it clears the list)
SELECT cardinality(window_digests) AS kept, cardinality(window_updated) = cardinality(window_digests) AS paired,
       window_sig = cardinality(window_digests) || ':' || (SELECT sum(d) FROM unnest(window_digests) d) AS signed
  FROM owsync.client_table WHERE client = 'acme_quantabase_io' AND table_name = 'chat_message';
BEGIN;
SELECT owsync._skip_known('owsync_acme_quantabase_io_src.chat_message',
                          (SELECT window_digests FROM owsync.client_table
                            WHERE client = 'acme_quantabase_io' AND table_name = 'chat_message'));
SELECT count(*) AS rows, count(id) AS converted, count(owsync_digest) AS with_digest
  FROM owsync_acme_quantabase_io_src.chat_message WHERE updated_at >= (SELECT max(updated_at) - 60 FROM acme_quantabase_io.chat_message);
SELECT count(*) AS rows, count(id) AS converted FROM owsync_acme_quantabase_io_src.chat_message;
SELECT owsync._skip_known(NULL, NULL);
SELECT count(*) AS rows, count(id) AS converted FROM owsync_acme_quantabase_io_src.chat_message;
SELECT owsync._skip_known('owsync_acme_quantabase_io_src.chat_message',
                          (SELECT window_digests FROM owsync.client_table
                            WHERE client = 'acme_quantabase_io' AND table_name = 'chat_message'));
COMMIT;
SELECT count(*) AS rows, count(id) AS converted FROM owsync_acme_quantabase_io_src.chat_message;
-- a row of the window changed without a new updated_at is read in full and
-- applied; the next run's window, built from the rows read and those found
-- unchanged, has the source's signature: once another table moved, the
-- table is settled by its unchanged check
\! sqlite3 /tmp/owsync_regress/sync/legacy.db "UPDATE chat_message SET role = 'edited' WHERE id = 'cm-new-2';"
CALL owsync.sync('acme_quantabase_io');
SELECT table_name, rows_read, inserted, updated, deleted FROM owsync.run_table
 WHERE run_id = (SELECT max(run_id) FROM owsync.run) AND table_name = 'chat_message';
SELECT role FROM acme_quantabase_io.chat_message WHERE id = 'cm-new-2';
\! sqlite3 /tmp/owsync_regress/sync/legacy.db "UPDATE app SET name = 'Renamed app', updated_at = updated_at + 1;"
CALL owsync.sync('acme_quantabase_io');
SELECT table_name, updated FROM owsync.run_table WHERE run_id = (SELECT max(run_id) FROM owsync.run);
SELECT * FROM pg_temp.check('acme_quantabase_io');
-- a keyed table without updated_at keeps the signature of its stored
-- digests, which its unchanged check compares with the source's
SELECT count(*) AS tables,
       count(*) FILTER (WHERE window_sig = owsync._window_sig(format('owsync_acme_quantabase_io_digest.%I', table_name),
                                                              NULL, NULL)) AS kept
  FROM owsync.client_table
 WHERE client = 'acme_quantabase_io' AND watermark_column IS NULL AND cardinality(key_columns) > 0;
-- the hash PostgreSQL computes for a key is the one SQLite adds up
SELECT owsync.key_set_hash('owsync_acme_quantabase_io', 'chat_message', '{id}')
       = owsync._wrap64((SELECT sum(owsync.key_hash(id)) FROM acme_quantabase_io.chat_message)) AS same_hash,
       owsync.key_set_hash('owsync_acme_quantabase_io', 'migratehistory', '{id}')
       = owsync._wrap64((SELECT sum(owsync.key_hash(id)) FROM acme_quantabase_io.migratehistory)) AS same_for_integers;
-- ... bucket by bucket (bucket = the hash's top 3 bits, read unsigned), and
-- key_hashes() returns the hashes of exactly the keys of the buckets asked for
WITH kb AS (SELECT owsync.key_buckets('owsync_acme_quantabase_io', 'chat_message', '{id}', 3) AS a),
     pg AS (SELECT (owsync.key_hash(id) >> 61) & 7 AS b, owsync._wrap64(sum(owsync.key_hash(id))) AS s
              FROM acme_quantabase_io.chat_message GROUP BY 1)
SELECT array_lower(a, 1) AS lower_bound, cardinality(a) AS elements,
       a[0] = owsync.key_set_hash('owsync_acme_quantabase_io', 'chat_message', '{id}') AS element_0_is_the_set,
       (SELECT bool_and(a[1 + g] = coalesce((SELECT s FROM pg WHERE pg.b = g), 0))
          FROM generate_series(0, 7) g) AS buckets_agree,
       (SELECT count(*) FROM pg WHERE s <> 0) > 1 AS several_buckets_used
  FROM kb;
SELECT (SELECT array_agg(h ORDER BY h)
          FROM owsync.key_hashes('owsync_acme_quantabase_io', 'chat_message', '{id}', 3, '{1,6}') h)
       = (SELECT array_agg(owsync.key_hash(id) ORDER BY owsync.key_hash(id)) FROM acme_quantabase_io.chat_message
           WHERE (owsync.key_hash(id) >> 61) & 7 IN (1, 6)) AS same_keys;
SELECT owsync.key_buckets('owsync_acme_quantabase_io', 'chat_message', '{id}', 17);
SELECT owsync.key_hashes('owsync_acme_quantabase_io', 'chat_message', '{id}', 3, '{8}');
-- a source's window signature, read without planning a foreign scan, is
-- the one a scan of its foreign table gives: for a window (some rows, not
-- all), an empty window and the whole table; only foreign tables of
-- owsync_fdw, and only with SELECT on them
SELECT split_part(sig, ':', 1)::bigint BETWEEN 1 AND (SELECT count(*) - 1 FROM acme_quantabase_io.chat_message) AS some_rows,
       sig = owsync._window_sig('owsync_acme_quantabase_io_src.chat_message', 'updated_at', w) AS same_window,
       owsync._source_window('owsync_acme_quantabase_io_src.chat_message', 'updated_at', w * 2) AS empty_window,
       owsync._source_window('owsync_acme_quantabase_io_src.chat_message', NULL, NULL)
       = owsync._window_sig('owsync_acme_quantabase_io_src.chat_message', NULL, NULL) AS same_table
  FROM (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY updated_at) AS w FROM acme_quantabase_io.chat_message) m,
       LATERAL owsync._source_window('owsync_acme_quantabase_io_src.chat_message', 'updated_at', m.w) sig;
-- (and the source's row count, read from SQLite's b-tree)
SELECT owsync._source_rows('owsync_acme_quantabase_io_src.chat_message')
       = (SELECT count(*) FROM acme_quantabase_io.chat_message) AS same_count;
SELECT owsync._source_window('acme_quantabase_io.chat_message', NULL, NULL);
SELECT owsync._source_window('owsync_acme_quantabase_io_src.chat_message', 'no_such_column', 0);
CREATE ROLE owsync_window_probe;
GRANT USAGE ON SCHEMA owsync_acme_quantabase_io_src TO owsync_window_probe;
GRANT EXECUTE ON FUNCTION owsync._source_window(regclass, name, bigint) TO owsync_window_probe;
SET ROLE owsync_window_probe;
SELECT owsync._source_window('owsync_acme_quantabase_io_src.chat_message', NULL, NULL);
RESET ROLE;
REVOKE ALL ON SCHEMA owsync_acme_quantabase_io_src FROM owsync_window_probe;
REVOKE ALL ON FUNCTION owsync._source_window(regclass, name, bigint) FROM owsync_window_probe;
DROP ROLE owsync_window_probe;

-- a table of a few thousand rows gets its key set in buckets at the next
-- reconcile (about 8 keys a bucket); then a few deletes are found by
-- comparing only the keys of the buckets whose hash moved
\! sqlite3 /tmp/owsync_regress/sync/legacy.db "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) INSERT INTO chat_message (id, chat_id, role, content, created_at, updated_at) SELECT 'cm-bulk-' || i, 'chat-bulk', 'user', '\"hi\"', 1700000000, (SELECT max(updated_at) FROM chat_message) + 20 FROM n;"
CALL owsync.sync('acme_quantabase_io');
CALL owsync.sync('acme_quantabase_io', 'reconcile');
SELECT key_bits, cardinality(key_buckets) AS buckets FROM owsync.client_table
 WHERE client = 'acme_quantabase_io' AND table_name = 'chat_message';
\! sqlite3 /tmp/owsync_regress/sync/legacy.db "DELETE FROM chat_message WHERE id IN ('cm-bulk-7', 'cm-bulk-700', 'cm-bulk-1999'); INSERT INTO chat_message (id, chat_id, role, content, created_at, updated_at) VALUES ('cm-bulk-new', 'chat-bulk', 'user', '\"hi\"', 1700000000, (SELECT max(updated_at) FROM chat_message) + 10);"
CALL owsync.sync('acme_quantabase_io');
SELECT table_name, inserted, deleted, key_diff FROM owsync.run_table
 WHERE run_id = (SELECT max(run_id) FROM owsync.run) AND table_name = 'chat_message';
SELECT * FROM pg_temp.check('acme_quantabase_io');
-- a row inserted with an old updated_at (the fast path misses it) in a
-- moved bucket: the buckets cannot account for it, all keys are compared
\! sqlite3 /tmp/owsync_regress/sync/legacy.db "DELETE FROM chat_message WHERE id = 'cm-bulk-8'; INSERT INTO chat_message (id, chat_id, role, content, created_at, updated_at) VALUES ('cm-bulk-old', 'chat-bulk', 'user', '\"imported\"', 1600000000, 1600000000);"
CALL owsync.sync('acme_quantabase_io');
SELECT table_name, inserted, deleted, key_diff FROM owsync.run_table
 WHERE run_id = (SELECT max(run_id) FROM owsync.run) AND table_name = 'chat_message';
SELECT * FROM pg_temp.check('acme_quantabase_io');
-- many buckets moved (a bulk delete): all keys are compared
\! sqlite3 /tmp/owsync_regress/sync/legacy.db "DELETE FROM chat_message WHERE id LIKE 'cm-bulk-1%';"
CALL owsync.sync('acme_quantabase_io');
SELECT table_name, inserted, deleted, key_diff FROM owsync.run_table
 WHERE run_id = (SELECT max(run_id) FROM owsync.run) AND table_name = 'chat_message';
SELECT * FROM pg_temp.check('acme_quantabase_io');

-- a run that fails in its fourth table (auth) leaves every table as it was,
-- and its history row says where and why
\! sqlite3 /tmp/owsync_regress/sync/legacy.db "INSERT INTO access_grant VALUES ('grant-new', 'chat', 'x', 'user', 'u', 'read', 1); UPDATE auth SET password = 'bad' || char(0) || 'value' WHERE rowid = 1;"
CALL owsync.sync('acme_quantabase_io', 'reconcile');
SELECT status, sqlstate, error_table, error FROM owsync.run ORDER BY run_id DESC LIMIT 1;
SELECT count(*) AS grant_new_in_mirror FROM acme_quantabase_io.access_grant WHERE id = 'grant-new';
SELECT client, last_status, last_error IS NOT NULL AS has_error FROM owsync.status_detail WHERE client = 'acme_quantabase_io';
-- owsync.status, for psql: the outcome and age of the last run, failures in a
-- row, the error's first line cut short
SELECT client, schedule, regexp_replace(last_run, ' [0-9dhms]+ ago$', ' Ns ago') AS last_run, next_run, problem
  FROM owsync.status ORDER BY client;
SET datestyle = iso;
\o /tmp/owsync_regress/sync/status.txt
SELECT * FROM owsync.status ORDER BY client;
\o
RESET datestyle;
-- fixed at the source: the next run applies everything
\! sqlite3 /tmp/owsync_regress/sync/legacy.db "UPDATE auth SET password = 'fixed' WHERE rowid = 1;"
CALL owsync.sync('acme_quantabase_io', 'reconcile');
SELECT * FROM pg_temp.check('acme_quantabase_io');

-- a full sync makes the mirror equal to the file by writing only what
-- differs: a row the file changed, a row edited in the mirror past its
-- triggers (a byte changed in a json value) repaired, a row inserted and one
-- deleted in the file; every other row keeps its place (ctid), so a full
-- sync of an unchanged table leaves nothing dead behind
CREATE TEMP TABLE places AS SELECT id, ctid AS place FROM acme_quantabase_io.chat;
SET session_replication_role = replica;
UPDATE acme_quantabase_io.chat SET meta = (meta::text || ' ')::json WHERE id = (SELECT min(id) FROM places);
RESET session_replication_role;
\! sqlite3 /tmp/owsync_regress/sync/legacy.db "UPDATE chat SET title = 'full ' || title WHERE id = (SELECT max(id) FROM chat); INSERT INTO chat (id, user_id, title, archived, created_at, updated_at, meta) SELECT 'chat-full-new', user_id, 'new', 0, created_at, updated_at, '{}' FROM chat LIMIT 1; DELETE FROM chat WHERE id = (SELECT id FROM chat ORDER BY id LIMIT 1 OFFSET 1);"
CALL owsync.sync('acme_quantabase_io', 'full');
SELECT table_name, rows_read, inserted, updated, deleted FROM owsync.run_table
 WHERE run_id = (SELECT max(run_id) FROM owsync.run) AND inserted + updated + deleted > 0;
SELECT count(*) FILTER (WHERE c.ctid = p.place) AS in_place, count(*) FILTER (WHERE c.ctid <> p.place) AS rewritten,
       count(*) FILTER (WHERE c.id IS NULL) AS deleted, (SELECT count(*) FROM acme_quantabase_io.chat) AS now
  FROM places p LEFT JOIN acme_quantabase_io.chat c USING (id);
SELECT * FROM pg_temp.check('acme_quantabase_io');

-- interface errors
SELECT owsync.register_client('Bad.Name', '/tmp/owsync_regress/sync/legacy.db');
SELECT owsync.register_client('acme_quantabase_io', '/tmp/owsync_regress/sync/legacy.db');
SELECT owsync.register_client('pg_catalog2', '/tmp/owsync_regress/sync/legacy.db');
CALL owsync.sync('nobody');
CALL owsync.sync('acme_quantabase_io', 'sometimes');

SELECT run_id, client, mode, status, tables, inserted, updated, deleted, sqlstate, error_table
  FROM owsync.history_detail ORDER BY run_id;
SELECT run_id, client, mode, status, result FROM owsync.history ORDER BY run_id;
-- both views, every row of them, fit a terminal 120 columns wide (the status
-- as it was with a failed client, above)
SET datestyle = iso;
\o /tmp/owsync_regress/sync/history.txt
SELECT * FROM owsync.history ORDER BY run_id;
\o
\! cd /tmp/owsync_regress/sync && awk 'length > 120 { n++ } END { print NR " lines, " n + 0 " wider than 120 columns" }' status.txt history.txt
RESET datestyle;

-- unregister: the internals go, the mirror and its row versions stay unless asked
SELECT owsync.unregister_client('acme_quantabase_io');
SELECT count(*) AS mirror_tables_kept FROM pg_class WHERE relnamespace = 'acme_quantabase_io'::regnamespace AND relkind = 'r';
SELECT nspname FROM pg_namespace WHERE nspname LIKE 'owsync_acme%';
SELECT owsync.unregister_client('fresh_example_com', drop_data => true);
SELECT owsync.unregister_client('nopk_example_com', drop_data => true);
SELECT nspname FROM pg_namespace WHERE nspname LIKE '%example_com%';
DROP SCHEMA acme_quantabase_io CASCADE;
DROP EXTENSION owsync_fdw;
\! rm -rf /tmp/owsync_regress/sync
