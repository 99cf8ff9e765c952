--
-- WHERE pushdown: what runs inside SQLite (visible in EXPLAIN VERBOSE), and
-- proof that pushed clauses select exactly the rows PostgreSQL would.
--
CREATE EXTENSION owsync_fdw;
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" pushdown
SET owsync.allowed_directories = '/tmp/owsync_regress/pushdown';
CREATE SERVER regress_pd FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/pushdown/p.db');
CREATE SCHEMA regress_pd;
IMPORT FOREIGN SCHEMA main FROM SERVER regress_pd INTO regress_pd;
\d regress_pd.item

-- constants
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM regress_pd.item WHERE n > 50 AND flag AND name = 'apple';
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM regress_pd.item WHERE NOT flag OR n IS NULL OR stamp <= 1700000600;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM regress_pd.item WHERE id IN (1, 2, 3) AND code NOT IN ('c1', 'c2') AND "user" <> 'u1';
EXPLAIN (VERBOSE, COSTS OFF)
SELECT "Mixed Case" FROM regress_pd.item WHERE "Mixed Case" = 'Ünïcode 3';
-- text ranges: SQLite compares bytes, which is PostgreSQL's order only in
-- the "C" collation; equality is pushed for any deterministic collation
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM regress_pd.item WHERE name < 'b';
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM regress_pd.item WHERE name < 'b' COLLATE "C";
-- not pushed: floats (NaN), JSON, functions and LIKE, text constants against
-- a column whose SQLite affinity is not TEXT
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM regress_pd.item WHERE score > 10 AND lower(name) = 'apple' AND code LIKE 'c%';
CREATE FOREIGN TABLE regress_pd.item_label_text (id bigint, label text)
  SERVER regress_pd OPTIONS (table 'item');
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM regress_pd.item_label_text WHERE label = '5';

-- external parameters ($1) in a generic plan
PREPARE q(bigint, text) AS SELECT id FROM regress_pd.item WHERE stamp > $1 AND name = $2;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE q(1700011000, 'apple');
EXECUTE q(1700011000, 'apple');
RESET plan_cache_mode;
-- a PL/pgSQL variable: the statement inside the function runs with a
-- generic plan, in which the variable is a parameter.  auto_explain shows
-- that plan (in a second session, durations masked).
CREATE FUNCTION regress_pd.count_newer(since bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  SELECT count(*) INTO n FROM regress_pd.item WHERE stamp > since;
  RETURN n;
END $$;
\setenv PGDATABASE :DBNAME
\! psql -X -q -c "SET owsync.allowed_directories = '/tmp/owsync_regress/pushdown'" -c "LOAD 'auto_explain'" -c "SET auto_explain.log_min_duration = 0" -c "SET auto_explain.log_verbose = on" -c "SET auto_explain.log_nested_statements = on" -c "SET auto_explain.log_level = notice" -c "SET plan_cache_mode = force_generic_plan" -c "SELECT regress_pd.count_newer(1700011000)" 2>&1 | sed -E 's/duration: [0-9.]+ ms/duration: N ms/'
-- a scalar subquery (initplan parameter): the sync's watermark predicate
CREATE TABLE regress_pd.watermark (tbl text PRIMARY KEY, value bigint);
INSERT INTO regress_pd.watermark VALUES ('item', 1700011500);
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM regress_pd.item
 WHERE stamp > (SELECT value FROM regress_pd.watermark WHERE tbl = 'item');
SELECT id FROM regress_pd.item
 WHERE stamp > (SELECT value FROM regress_pd.watermark WHERE tbl = 'item') ORDER BY id;
-- parameters from a nested loop: rebound at each rescan
SELECT w.tbl, count(i.id)
  FROM regress_pd.watermark w
  JOIN LATERAL (SELECT id FROM regress_pd.item WHERE stamp > w.value) i ON true
 GROUP BY w.tbl;

-- pushed and local evaluation agree, row for row, on every predicate shape
CREATE TABLE regress_pd.local AS SELECT * FROM regress_pd.item;
CREATE FUNCTION regress_pd.check(pred text) RETURNS TABLE (predicate text, pushed boolean, rows bigint, mismatches bigint)
LANGUAGE plpgsql AS $$
DECLARE
  plan text := '';
  line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM regress_pd.item WHERE ' || pred LOOP
    plan := plan || line || E'\n';
  END LOOP;
  predicate := pred;
  pushed := plan ~ 'SQLite query: .* WHERE ' AND plan !~ 'Filter:';
  EXECUTE 'SELECT count(*) FROM regress_pd.local WHERE ' || pred INTO rows;
  EXECUTE format('SELECT count(*) FROM ((SELECT id FROM regress_pd.item WHERE %1$s EXCEPT ALL SELECT id FROM regress_pd.local WHERE %1$s) UNION ALL (SELECT id FROM regress_pd.local WHERE %1$s EXCEPT ALL SELECT id FROM regress_pd.item WHERE %1$s)) d', pred)
    INTO mismatches;
  RETURN NEXT;
END $$;
SELECT c.* FROM unnest(ARRAY[
  'n = 14', 'n <> 14', 'n < 30', 'n <= 30', 'n > 90', 'n >= 90', 'n IS NULL', 'n IS NOT NULL',
  '14 = n', '30 > n', 'n IN (7, 14, NULL)', 'n NOT IN (7, 14)', 'n NOT IN (7, NULL)',
  'n = ANY (ARRAY[]::bigint[])', 'n <> ALL (ARRAY[]::bigint[])',
  'flag', 'NOT flag', 'flag = true', 'flag <> false', 'flag IS NULL',
  'name = ''apple''', 'name <> ''apple''', 'name IN (''apple'', ''Banana'')',
  'name < ''b'' COLLATE "C"', 'name >= ''Banana'' COLLATE "C"', 'name < ''b''',
  '"Mixed Case" = ''Ünïcode 3''', '"Mixed Case" > ''Z'' COLLATE "C"',
  'code = ''c3''', 'stamp BETWEEN 1700001000 AND 1700002000',
  'NOT (n > 50 AND flag) OR name IS NULL', 'score > 10', 'id = 7 OR id = 300'
]) AS p, LATERAL regress_pd.check(p) c;

-- row estimates without scanning the table: max(rowid), then ANALYZE's figure
EXPLAIN SELECT * FROM regress_pd.item;
ANALYZE regress_pd.item;
EXPLAIN SELECT * FROM regress_pd.item;
EXPLAIN SELECT * FROM regress_pd.item WHERE n = 14;

DROP SCHEMA regress_pd CASCADE;
DROP SERVER regress_pd;
DROP EXTENSION owsync_fdw;
\! rm -rf /tmp/owsync_regress/pushdown
