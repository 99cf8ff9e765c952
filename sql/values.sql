--
-- Values: what each PostgreSQL type accepts from SQLite (lossless), and the
-- error, naming server, table, column and key, for everything else.
--
CREATE EXTENSION owsync_fdw;
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" values
SET owsync.allowed_directories = '/tmp/owsync_regress/values';
CREATE SERVER regress_values FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/values/v.db');
CREATE SCHEMA regress_values;
-- a column whose values do not settle its type stops the import, loudly
IMPORT FOREIGN SCHEMA main FROM SERVER regress_values INTO regress_values;
\echo :LAST_ERROR_SQLSTATE
IMPORT FOREIGN SCHEMA main EXCEPT (bad) FROM SERVER regress_values INTO regress_values;
CREATE FOREIGN TABLE regress_values.bad (
  id text OPTIONS (key 'true') NOT NULL, i bigint, b boolean, j json, s text, v text,
  d date, ts timestamp, r double precision, n numeric, x bytea
) SERVER regress_values;

-- declared types: BIGINT, BOOLEAN, JSON, TEXT, VARCHAR(5) (length never
-- enforced by SQLite: text), DATE, DATETIME holding date texts (text: their form varies, a timestamp would lose it), REAL,
-- NUMERIC, BLOB
SELECT attname, format_type(atttypid, atttypmod) AS type, attnotnull,
       array_to_string(attfdwoptions, ',') AS options
  FROM pg_attribute
 WHERE attrelid = 'regress_values.vals'::regclass AND attnum > 0
 ORDER BY attnum;

-- good values arrive unchanged
SELECT id, i, b, s, v, d, ts, r, n, x FROM regress_values.vals ORDER BY id;
-- JSON text is kept byte for byte (escapes, spacing); JSON numbers that
-- SQLite stored as INTEGER/REAL (NUMERIC affinity) come back as JSON numbers;
-- the text 'null' is not SQL NULL
SELECT id, j::text AS json_text, json_typeof(j) FROM regress_values.vals ORDER BY id;
-- text keeps every character: multibyte, empty string vs NULL
SELECT id, octet_length(s) AS bytes, length(s) AS chars, s IS NULL AS is_null
  FROM regress_values.vals ORDER BY id;
-- integers and floats without a text round trip: exact bits
SELECT id, i = 9223372036854775807 AS max_bigint, i = -9223372036854775808 AS min_bigint,
       float8send(r) AS real_bits
  FROM regress_values.vals ORDER BY id;

-- every bad value class fails loudly, nothing is truncated or guessed
SELECT s FROM regress_values.bad WHERE id = 'nul-in-text';
\echo :LAST_ERROR_SQLSTATE
SELECT s FROM regress_values.bad WHERE id = 'invalid-utf8';
\echo :LAST_ERROR_SQLSTATE
SELECT s FROM regress_values.bad WHERE id = 'blob-in-text';
\echo :LAST_ERROR_SQLSTATE
SELECT i FROM regress_values.bad WHERE id = 'text-in-bigint';
\echo :LAST_ERROR_SQLSTATE
SELECT i FROM regress_values.bad WHERE id = 'real-in-bigint';
\echo :LAST_ERROR_SQLSTATE
SELECT b FROM regress_values.bad WHERE id = 'bool-2';
\echo :LAST_ERROR_SQLSTATE
SELECT b FROM regress_values.bad WHERE id = 'bool-text';
\echo :LAST_ERROR_SQLSTATE
SELECT j FROM regress_values.bad WHERE id = 'json-invalid';
\echo :LAST_ERROR_SQLSTATE
SELECT j FROM regress_values.bad WHERE id = 'json-blob';
\echo :LAST_ERROR_SQLSTATE
SELECT d FROM regress_values.bad WHERE id = 'date-format';
\echo :LAST_ERROR_SQLSTATE
SELECT d FROM regress_values.bad WHERE id = 'date-integer';
\echo :LAST_ERROR_SQLSTATE
SELECT ts FROM regress_values.bad WHERE id = 'ts-format';
\echo :LAST_ERROR_SQLSTATE
SELECT ts FROM regress_values.bad WHERE id = 'ts-7-digits';
\echo :LAST_ERROR_SQLSTATE
SELECT r FROM regress_values.bad WHERE id = 'real-text';
\echo :LAST_ERROR_SQLSTATE
SELECT n FROM regress_values.bad WHERE id = 'numeric-text';
\echo :LAST_ERROR_SQLSTATE
SELECT x FROM regress_values.bad WHERE id = 'text-in-blob';
\echo :LAST_ERROR_SQLSTATE
-- a scan that reads the values stops at the first bad one, it never skips it
SELECT count(*) FROM regress_values.bad AS row WHERE row IS NOT NULL;
\echo :LAST_ERROR_SQLSTATE
-- (counting rows reads no values, so there is nothing to convert)
SELECT count(*) FROM regress_values.bad;

-- declared types are the user's choice on a hand-made foreign table:
-- range checks, exactness, varchar(n), jsonb's stricter rules
CREATE FOREIGN TABLE regress_values.typed (
  id text OPTIONS (key 'true'),
  i4 integer OPTIONS (column_name 'i'),
  f8 double precision OPTIONS (column_name 'i'),
  v5 varchar(5) OPTIONS (column_name 'v'),
  jb jsonb OPTIONS (column_name 'j')
) SERVER regress_values OPTIONS (table 'bad');
SELECT i4 FROM regress_values.typed WHERE id = 'int-for-int4';
\echo :LAST_ERROR_SQLSTATE
SELECT f8 FROM regress_values.typed WHERE id = 'int-inexact-double';
\echo :LAST_ERROR_SQLSTATE
SELECT v5 FROM regress_values.typed WHERE id = 'varchar-long';
\echo :LAST_ERROR_SQLSTATE
SELECT jb FROM regress_values.typed WHERE id = 'jsonb-nul-escape';
\echo :LAST_ERROR_SQLSTATE
SELECT jb FROM regress_values.typed WHERE id = 'jsonb-lone-surrogate';
\echo :LAST_ERROR_SQLSTATE
-- the same texts are valid json (the json type keeps escapes as text)
SELECT id, j FROM regress_values.bad
 WHERE id IN ('jsonb-nul-escape', 'jsonb-lone-surrogate') ORDER BY id;
-- good values through the hand-made types (ok4's 31-digit decimal text was
-- turned into a REAL by SQLite's NUMERIC affinity when it was stored)
CREATE FOREIGN TABLE regress_values.typed_ok (
  id text OPTIONS (key 'true'), i4 integer OPTIONS (column_name 'i'),
  jb jsonb OPTIONS (column_name 'j'), n numeric(40,2) OPTIONS (column_name 'n'),
  n52 numeric(5,2) OPTIONS (column_name 'n')
) SERVER regress_values OPTIONS (table 'vals');
SELECT id, i4, jb, n FROM regress_values.typed_ok WHERE id IN ('ok3', 'ok4') ORDER BY id;
-- an error inside a type's input function names the row in its context
SELECT n52 FROM regress_values.typed_ok WHERE id = 'ok4';
\echo :LAST_ERROR_SQLSTATE

-- a table without key columns: the error says so
SELECT b FROM regress_values.nokey;
\echo :LAST_ERROR_SQLSTATE

-- ANALYZE reads the table and gives the planner real figures
ANALYZE regress_values.vals;
SELECT reltuples FROM pg_class WHERE oid = 'regress_values.vals'::regclass;
SELECT attname, null_frac FROM pg_stats
 WHERE schemaname = 'regress_values' AND tablename = 'vals' AND attname IN ('i', 'x')
 ORDER BY attname;

DROP SCHEMA regress_values CASCADE;
DROP SERVER regress_values;
DROP EXTENSION owsync_fdw;
\! rm -rf /tmp/owsync_regress/values
