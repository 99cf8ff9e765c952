--
-- Row digests computed inside SQLite: a foreign table column with OPTIONS
-- (digest 'true') is owsync_digest() of the table's other columns.  The sync
-- compares them with the digests it stored to find rows changed without
-- updated_at moving.
--
CREATE EXTENSION owsync_fdw;
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" digest
SET owsync.allowed_directories = '/tmp/owsync_regress/digest';
CREATE SERVER regress_digest FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/digest/d.db');
-- x is declared (so the digest covers it) but never fetched by these queries:
-- values of any storage class can be digested
CREATE FOREIGN TABLE regress_digest_v (
  id bigint OPTIONS (key 'true'), x bytea, dg bigint OPTIONS (digest 'true')
) SERVER regress_digest OPTIONS (table 'v');
-- the digest covers the declared columns only: here a and b, not id
CREATE FOREIGN TABLE regress_digest_pair (
  a text, b text, dg bigint OPTIONS (digest 'true')
) SERVER regress_digest OPTIONS (table 'pair');

-- computed by SQLite, over every other column, in column order
EXPLAIN (VERBOSE, COSTS OFF) SELECT id, dg FROM regress_digest_v;
-- never pushed as a condition (it is no SQLite column)
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM regress_digest_v WHERE dg = 1 AND id > 0;

-- every storage class and value gives its own digest: 5, '5', x'35', 5.5,
-- NULL, '', 'null', 0 and 0.0 are all different (0.0 is a REAL)
SELECT count(*) AS rows, count(DISTINCT dg) AS distinct_digests FROM regress_digest_v;
-- values are delimited: ('ab', 'c') and ('a', 'bc') differ, two rows
-- ('ab', 'c') do not
SELECT a, b, dg = (SELECT dg FROM regress_digest_pair WHERE a = 'ab' LIMIT 1) AS same_as_ab_c
  FROM regress_digest_pair ORDER BY a, b;
-- the digest of a row is fixed by its bytes (XXH3-64, stable across
-- versions): stored digests stay comparable.  Rows 1 and 10 were checked
-- against xxhsum -H3 over their bytes: per value, its storage class tag (1
-- integer, 3 text), the integer or the text's length as 8 bytes little-endian,
-- then the text (row 10: 300 times 'a', more than the hasher's 256-byte buffer)
SELECT id, dg FROM regress_digest_v WHERE id IN (1, 2, 5, 10) ORDER BY id;
-- stable across reads, changed by a change of value or of storage class only
CREATE TEMP TABLE before AS SELECT id, dg FROM regress_digest_v;
\! sqlite3 /tmp/owsync_regress/digest/d.db "UPDATE v SET x = 6 WHERE id = 1; UPDATE v SET x = CAST(x AS BLOB) WHERE id = 7; UPDATE v SET x = x WHERE id = 2;"
SELECT v.id, b.dg <> v.dg AS changed
  FROM regress_digest_v v JOIN before b USING (id) ORDER BY 1;

-- a digest column must be a bigint
CREATE FOREIGN TABLE regress_digest_bad (id bigint, dg text OPTIONS (digest 'true'))
  SERVER regress_digest OPTIONS (table 'v');
SELECT * FROM regress_digest_bad;
\echo :LAST_ERROR_SQLSTATE
ALTER FOREIGN TABLE regress_digest_v ALTER COLUMN dg OPTIONS (SET digest 'maybe');
\echo :LAST_ERROR_SQLSTATE

DROP SERVER regress_digest CASCADE;
DROP EXTENSION owsync_fdw;
\! rm -rf /tmp/owsync_regress/digest
