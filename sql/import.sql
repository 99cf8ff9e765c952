--
-- IMPORT FOREIGN SCHEMA on real Open WebUI schemas: the legacy (peewee)
-- flavour, the fresh flavour, and a pre-v0.9.6 legacy file whose core tables
-- have no primary key.  Every table is read, every value converted.
--
CREATE EXTENSION owsync_fdw;
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" import
SET owsync.allowed_directories = '/tmp/owsync_regress/import';
CREATE SERVER regress_legacy FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/import/legacy.db');
CREATE SERVER regress_fresh FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/import/fresh.db');
CREATE SERVER regress_nopk FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/import/legacy--no-pk.db');
CREATE SCHEMA regress_legacy;
CREATE SCHEMA regress_fresh;
CREATE SCHEMA regress_nopk;
IMPORT FOREIGN SCHEMA main FROM SERVER regress_legacy INTO regress_legacy;
IMPORT FOREIGN SCHEMA main FROM SERVER regress_fresh INTO regress_fresh;
IMPORT FOREIGN SCHEMA main FROM SERVER regress_nopk INTO regress_nopk;

-- one foreign table per SQLite table, no sqlite_ internals
SELECT foreign_table_schema, count(*) AS tables
  FROM information_schema.foreign_tables
 WHERE foreign_table_schema LIKE 'regress_%'
 GROUP BY 1 ORDER BY 1;
SELECT foreign_table_name FROM information_schema.foreign_tables
 WHERE foreign_table_schema = 'regress_legacy'
EXCEPT
SELECT foreign_table_name FROM information_schema.foreign_tables
 WHERE foreign_table_schema = 'regress_fresh';

-- every table of every flavour read in full: each row as a whole-row value,
-- which converts every column of every row
CREATE FUNCTION pg_temp.read_all(s text) RETURNS TABLE (tbl text, rows bigint, text_bytes bigint)
LANGUAGE plpgsql AS $$
BEGIN
  FOR tbl IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = s AND c.relkind = 'f' ORDER BY 1 LOOP
    EXECUTE format('SELECT count(*), sum(octet_length(t::text)) FROM %I.%I t', s, tbl)
      INTO rows, text_bytes;
    RETURN NEXT;
  END LOOP;
END $$;
SELECT l.tbl, l.rows AS legacy_rows, f.rows AS fresh_rows, n.rows AS nopk_rows,
       l.text_bytes = n.text_bytes AS nopk_same_values
  FROM pg_temp.read_all('regress_legacy') l
  FULL JOIN pg_temp.read_all('regress_fresh') f USING (tbl)
  FULL JOIN pg_temp.read_all('regress_nopk') n USING (tbl)
 ORDER BY 1;

-- key columns: the declared primary key, composite kept; before v0.9.6 the
-- unique index on NOT NULL columns stands in for it
CREATE VIEW pg_temp.keys AS
SELECT n.nspname AS s, c.relname AS tbl,
       string_agg(a.attname, ', ' ORDER BY a.attnum) AS key
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname LIKE 'regress_%' AND 'key=true' = ANY (a.attfdwoptions)
 GROUP BY 1, 2;
SELECT tbl, l.key AS legacy, f.key AS fresh, n.key AS nopk
  FROM (SELECT tbl, key FROM pg_temp.keys WHERE s = 'regress_legacy') l
  FULL JOIN (SELECT tbl, key FROM pg_temp.keys WHERE s = 'regress_fresh') f USING (tbl)
  FULL JOIN (SELECT tbl, key FROM pg_temp.keys WHERE s = 'regress_nopk') n USING (tbl)
 WHERE tbl IN ('auth', 'chat', 'chat_message', 'config', 'document', 'folder', 'migratehistory',
               'tag', 'user', 'memory', 'model', 'tool', 'function', 'file', 'chatidtag')
 ORDER BY 1;
-- tables without any key column (none expected)
SELECT s, tbl FROM (SELECT n.nspname AS s, c.relname AS tbl FROM pg_class c
                      JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname LIKE 'regress_%' AND c.relkind = 'f') t
EXCEPT SELECT s, tbl FROM pg_temp.keys;
\d regress_nopk.chat

-- types: where the flavours differ, and the DATETIME rule
SELECT l.attrelid::regclass::text AS legacy_column, l.attname,
       format_type(l.atttypid, l.atttypmod) AS legacy_type,
       format_type(f.atttypid, f.atttypmod) AS fresh_type
  FROM pg_attribute l
  JOIN pg_class lc ON lc.oid = l.attrelid AND lc.relnamespace = 'regress_legacy'::regnamespace
  JOIN pg_class fc ON fc.relname = lc.relname AND fc.relnamespace = 'regress_fresh'::regnamespace
  JOIN pg_attribute f ON f.attrelid = fc.oid AND f.attname = l.attname
 WHERE l.attnum > 0 AND f.attnum > 0 AND l.atttypid <> f.atttypid
 ORDER BY 1, 2;
-- every DATETIME/DATE column: bigint when SQLite holds integers (legacy
-- chat.created_at), timestamp/date when it holds date texts
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.relnamespace = 'regress_legacy'::regnamespace
   AND (c.relname, a.attname) IN (('chat', 'created_at'), ('chat', 'updated_at'),
        ('config_old', 'created_at'), ('migratehistory', 'migrated_at'), ('user', 'date_of_birth'))
 ORDER BY 1, 2;
SELECT id, to_timestamp(created_at) > '2020-01-01' AS plausible_seconds
  FROM regress_legacy.chat ORDER BY id LIMIT 3;
SELECT id, name, migrated_at FROM regress_legacy.migratehistory ORDER BY id LIMIT 2;
-- nanosecond tables stay exact bigints
SELECT count(*) AS rows, bool_and(created_at > 1000000000000000000) AS nanoseconds
  FROM regress_fresh.message;

-- LIMIT TO, EXCEPT, and JSON as jsonb
CREATE SCHEMA regress_some;
IMPORT FOREIGN SCHEMA main LIMIT TO (chat, "user", "group", nonexistent)
  FROM SERVER regress_fresh INTO regress_some OPTIONS (json_type 'jsonb');
SELECT relname FROM pg_class WHERE relnamespace = 'regress_some'::regnamespace ORDER BY 1;
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = 'regress_some.chat'::regclass AND attname IN ('chat', 'meta', 'title');
SELECT count(*), count(DISTINCT jsonb_typeof(chat)) FROM regress_some.chat;
CREATE SCHEMA regress_rest;
IMPORT FOREIGN SCHEMA main EXCEPT (chat, chat_message) FROM SERVER regress_fresh INTO regress_rest;
SELECT count(*) FROM pg_class WHERE relnamespace = 'regress_rest'::regnamespace;

-- identifiers that are keywords, mixed case, quotes and spaces
CREATE SERVER regress_names FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/import/names.db');
CREATE SCHEMA regress_names;
IMPORT FOREIGN SCHEMA main FROM SERVER regress_names INTO regress_names;
\d regress_names.*
SELECT * FROM regress_names."Mixed ""Quoted"" Table" WHERE "Key" = 'k1' AND "group" = 1;
SELECT "user".id IS NOT NULL AS has_id, "group".id IS NOT NULL AS group_has_id
  FROM regress_fresh."user" JOIN regress_fresh.group_member gm ON gm.user_id = "user".id
  JOIN regress_fresh."group" ON "group".id = gm.group_id LIMIT 1;
SELECT count(*) FROM regress_fresh.config WHERE key IS NOT NULL;

-- import options and the remote schema are checked
IMPORT FOREIGN SCHEMA main FROM SERVER regress_names INTO regress_names OPTIONS (json_type 'xml');
IMPORT FOREIGN SCHEMA main FROM SERVER regress_names INTO regress_names OPTIONS (jsn_type 'jsonb');
IMPORT FOREIGN SCHEMA other FROM SERVER regress_names INTO regress_names;

SET client_min_messages = warning;
DROP SCHEMA regress_legacy, regress_fresh, regress_nopk, regress_some, regress_rest,
  regress_names CASCADE;
DROP SERVER regress_legacy, regress_fresh, regress_nopk, regress_names;
DROP EXTENSION owsync_fdw;
\! rm -rf /tmp/owsync_regress/import
