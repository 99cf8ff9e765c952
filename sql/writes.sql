--
-- Writes through the wrapper: servers declared writable take INSERT
-- (batched), UPDATE and DELETE by key, in one SQLite write transaction that
-- commits and rolls back with PostgreSQL's; every other server refuses.
--
\set VERBOSITY default
CREATE EXTENSION owsync_fdw;

-- Fixtures: w.db (rollback journal) is written; ro.db is a copy served
-- read-only; wal.db is a WAL file nobody has open (no -shm).
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" writes
SET owsync.allowed_directories = '/tmp/owsync_regress/writes';

CREATE SERVER regress_w FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/writes/w.db', writable 'true', batch_size '7');
CREATE SERVER regress_ro FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/writes/ro.db');
CREATE SERVER regress_wal FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/writes/wal.db', writable 'true');
CREATE SCHEMA regress_writes;
CREATE FOREIGN TABLE regress_writes.vals (
  id text OPTIONS (key 'true'), i bigint, b boolean, j json, s text, d date,
  ts timestamp, r double precision, n numeric, x bytea
) SERVER regress_w;
CREATE FOREIGN TABLE regress_writes.pair (
  a bigint OPTIONS (key 'true'), b text OPTIONS (key 'true'), v text,
  dg bigint OPTIONS (digest 'true')
) SERVER regress_w;
CREATE FOREIGN TABLE regress_writes.many (id bigint OPTIONS (key 'true'), v text)
  SERVER regress_w;
CREATE FOREIGN TABLE regress_writes.nokey (v text) SERVER regress_w;
CREATE FOREIGN TABLE regress_writes.ro_pair (
  a bigint OPTIONS (key 'true'), b text OPTIONS (key 'true'), v text
) SERVER regress_ro OPTIONS (table 'pair');
CREATE FOREIGN TABLE regress_writes.wal_t (id bigint OPTIONS (key 'true'), v text)
  SERVER regress_wal OPTIONS (table 't');

--
-- option validation
--
CREATE SERVER regress_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/writes/w.db', writable 'maybe');
CREATE SERVER regress_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/writes/w.db', batch_size '0');
ALTER FOREIGN TABLE regress_writes.many OPTIONS (ADD batch_size '-1');

--
-- INSERT: every type, stored in its SQLite form (read back with sqlite3)
--
INSERT INTO regress_writes.vals VALUES
  ('all', 9223372036854775807, true, '{"a": [1, 2.50, "x\u00e9"],  "b":null}', 'héllo ''quoted''',
   '2024-02-29', '2024-05-06 07:08:09.123456', 0.1, 12345.678900, '\x00ff10');
INSERT INTO regress_writes.vals VALUES
  ('other', -9223372036854775808, false, '5', '', '0001-01-01', '2024-05-06 07:08:09',
   -1.5e300, -0.5, '\x');
-- SQL NULL everywhere, and the JSON text null (not SQL NULL)
INSERT INTO regress_writes.vals (id) VALUES ('nulls');
INSERT INTO regress_writes.vals (id, j) VALUES ('json null', 'null');
\! sqlite3 -header /tmp/owsync_regress/writes/w.db "SELECT id, typeof(i), i, typeof(b), b, typeof(j), j, typeof(s), s FROM vals ORDER BY id"
\! sqlite3 -header /tmp/owsync_regress/writes/w.db "SELECT id, typeof(d), d, typeof(ts), ts, typeof(r), iif(r IS NULL, NULL, printf('%!.17g', r)) AS r, typeof(n), n, typeof(x), hex(x) FROM vals ORDER BY id"
-- and they read back unchanged (exact float bits, exact JSON text)
SELECT id, i, b, j::text AS j, s, d, ts, float8send(r) AS r_bits, n, x
  FROM regress_writes.vals ORDER BY id;

-- numeric affinity (JSON and NUMERIC columns) turns number-like text into
-- numbers: what would not read back as written is refused, not rounded
INSERT INTO regress_writes.vals (id, n, j) VALUES
  ('exact', 9007199254740993, '-12.5'), ('exact 2', 0.30000000000000004, '[1e2]');
INSERT INTO regress_writes.vals (id, n) VALUES ('inexact', 0.1234567890123456789);
INSERT INTO regress_writes.vals (id, n) VALUES ('inexact', 9007199254740993.5);
INSERT INTO regress_writes.vals (id, j) VALUES ('inexact', '1e2');
INSERT INTO regress_writes.vals (id, j) VALUES ('inexact', '5.0');
INSERT INTO regress_writes.vals (id, j) VALUES ('inexact', ' 5');
\! sqlite3 /tmp/owsync_regress/writes/w.db "SELECT id, typeof(n), n, typeof(j), j FROM vals WHERE id LIKE 'exact%' ORDER BY id"
SELECT id, n, j::text FROM regress_writes.vals WHERE id LIKE 'exact%' ORDER BY id;
DELETE FROM regress_writes.vals WHERE id LIKE 'exact%';

-- columns the INSERT does not name get SQLite's defaults
INSERT INTO regress_writes.pair (a, b) VALUES (3, 'c');
\! sqlite3 /tmp/owsync_regress/writes/w.db "SELECT a, b, v FROM pair ORDER BY a, b"

-- batched: 1000 rows in statements of batch_size (7) rows
INSERT INTO regress_writes.many SELECT g, 'v' || g FROM generate_series(1, 1000) g;
\! sqlite3 /tmp/owsync_regress/writes/w.db "SELECT count(*), sum(id), min(v), max(v), sum(v = 'v' || id) FROM many"
-- a table's batch_size overrides the server's; COPY writes too
ALTER FOREIGN TABLE regress_writes.many OPTIONS (ADD batch_size '300');
COPY regress_writes.many FROM PROGRAM 'seq 1001 1999 | sed "s/.*/&\tc&/"';
\! sqlite3 /tmp/owsync_regress/writes/w.db "SELECT count(*), sum(id), sum(v = 'c' || id) FROM many"

--
-- UPDATE and DELETE by key (composite keys included)
--
UPDATE regress_writes.vals SET s = 'changed', i = 42 WHERE id = 'all';
UPDATE regress_writes.pair SET v = 'updated' WHERE a = 1 AND b = 'b';
-- a key column may be assigned: the row is found by its old key
UPDATE regress_writes.pair SET b = 'z' WHERE a = 2;
DELETE FROM regress_writes.pair WHERE a = 1 AND b = 'a';
DELETE FROM regress_writes.many WHERE id % 2 = 0;
\! sqlite3 /tmp/owsync_regress/writes/w.db "SELECT id, i, s FROM vals WHERE id = 'all'; SELECT a, b, v FROM pair ORDER BY a, b; SELECT count(*), sum(id % 2) FROM many"
SELECT a, b, v FROM regress_writes.pair ORDER BY a, b;

--
-- Transactions: SQLite commits with PostgreSQL, or not at all
--
\! md5sum /tmp/owsync_regress/writes/w.db > /tmp/owsync_regress/writes/before.md5
-- ROLLBACK: the transaction saw its own writes; sqlite3 did not, and the
-- file is unchanged after
BEGIN;
SELECT count(*) FROM regress_writes.pair;
INSERT INTO regress_writes.pair (a, b, v) VALUES (10, 'x', 'in transaction');
UPDATE regress_writes.vals SET s = 'rolled back' WHERE id = 'all';
DELETE FROM regress_writes.many WHERE id < 100;
SELECT a, b, v FROM regress_writes.pair ORDER BY a, b;
SELECT s FROM regress_writes.vals WHERE id = 'all';
SELECT count(*) FROM regress_writes.many;
\! sqlite3 /tmp/owsync_regress/writes/w.db "SELECT count(*) FROM pair; SELECT count(*) FROM many"
ROLLBACK;
\! md5sum -c --quiet /tmp/owsync_regress/writes/before.md5 && echo unchanged
-- an error ends the transaction: nothing of it is written
BEGIN;
INSERT INTO regress_writes.pair (a, b, v) VALUES (11, 'x', 'lost');
INSERT INTO regress_writes.pair (a, b, v) VALUES (3, 'c', 'duplicate key');
COMMIT;
\! md5sum -c --quiet /tmp/owsync_regress/writes/before.md5 && echo unchanged
-- a failing row in the middle of a batched statement: none of its rows stay
INSERT INTO regress_writes.many SELECT g, 'x' FROM generate_series(2000, 2100) g
  UNION ALL SELECT 1, 'duplicate';
\! md5sum -c --quiet /tmp/owsync_regress/writes/before.md5 && echo unchanged
-- savepoints: rolled back to, released, and in PL/pgSQL exception blocks
BEGIN;
INSERT INTO regress_writes.pair (a, b, v) VALUES (20, 'kept', 'before savepoint');
SAVEPOINT s1;
INSERT INTO regress_writes.pair (a, b, v) VALUES (21, 'lost', 'after savepoint');
DELETE FROM regress_writes.pair WHERE a = 3;
ROLLBACK TO SAVEPOINT s1;
SAVEPOINT s2;
INSERT INTO regress_writes.pair (a, b, v) VALUES (22, 'kept', 'released savepoint');
RELEASE SAVEPOINT s2;
DO $$
BEGIN
  INSERT INTO regress_writes.pair (a, b, v) VALUES (23, 'lost', 'in exception block');
  INSERT INTO regress_writes.pair (a, b, v) VALUES (3, 'c', 'duplicate key');
EXCEPTION WHEN integrity_constraint_violation THEN
  RAISE NOTICE 'caught: %', SQLERRM;
END $$;
SELECT a, b, v FROM regress_writes.pair ORDER BY a, b;
COMMIT;
\! sqlite3 /tmp/owsync_regress/writes/w.db "SELECT a, b, v FROM pair ORDER BY a, b"

-- subtransactions that write and fail inside a loop over a scan, before
-- and after the transaction's first write (then the scan reads through the
-- write connection)
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT id FROM regress_writes.many WHERE id < 10 ORDER BY id LOOP
    BEGIN
      UPDATE regress_writes.many SET v = 'loop ' || r.id WHERE id = r.id;
      IF r.id = 5 THEN RAISE EXCEPTION 'undo %', r.id; END IF;
    EXCEPTION WHEN raise_exception THEN RAISE NOTICE '%', SQLERRM;
    END;
  END LOOP;
  FOR r IN SELECT id FROM regress_writes.many WHERE id < 10 ORDER BY id LOOP
    BEGIN
      DELETE FROM regress_writes.many WHERE id = r.id;
      IF r.id = 7 THEN RAISE EXCEPTION 'undo %', r.id; END IF;
    EXCEPTION WHEN raise_exception THEN RAISE NOTICE '%', SQLERRM;
    END;
  END LOOP;
END $$;
\! sqlite3 /tmp/owsync_regress/writes/w.db "SELECT id, v FROM many WHERE id < 10 ORDER BY id"
-- the scan of an UPDATE or DELETE fetches the key columns; the statements
EXPLAIN (VERBOSE, COSTS OFF) UPDATE regress_writes.pair SET v = 'x' WHERE a = 1;
EXPLAIN (VERBOSE, COSTS OFF) DELETE FROM regress_writes.pair WHERE v = 'x';
EXPLAIN (VERBOSE, COSTS OFF) INSERT INTO regress_writes.pair (a, b) VALUES (1, 'x');

-- a WAL file with no reader: read first (immutable), then write, in one
-- transaction; the commit leaves no -wal or -shm file behind
BEGIN;
SELECT * FROM regress_writes.wal_t;
INSERT INTO regress_writes.wal_t VALUES (2, 'written');
UPDATE regress_writes.wal_t SET v = 'wal, updated' WHERE id = 1;
COMMIT;
\! sqlite3 /tmp/owsync_regress/writes/wal.db "SELECT * FROM t ORDER BY id"; ls /tmp/owsync_regress/writes | grep wal
SELECT * FROM regress_writes.wal_t ORDER BY id;

--
-- Refusals
--
-- a server not declared writable
INSERT INTO regress_writes.ro_pair VALUES (9, 'z', 'refused');
UPDATE regress_writes.ro_pair SET v = 'refused';
DELETE FROM regress_writes.ro_pair;
-- information_schema knows: nothing on ro_pair, INSERT only on nokey
SELECT table_name, is_insertable_into FROM information_schema.tables
 WHERE table_schema = 'regress_writes' ORDER BY table_name;
-- (bits: 8 INSERT, 4 UPDATE, 16 DELETE)
SELECT c.relname, pg_relation_is_updatable(c.oid, false) AS events
  FROM pg_class c WHERE c.relnamespace = 'regress_writes'::regnamespace ORDER BY c.relname;
-- a table without key columns takes INSERT, not UPDATE or DELETE
INSERT INTO regress_writes.nokey VALUES ('y');
UPDATE regress_writes.nokey SET v = 'refused';
DELETE FROM regress_writes.nokey;
\! sqlite3 /tmp/owsync_regress/writes/w.db "SELECT v FROM nokey ORDER BY v"
-- digest columns are computed when read: never written
INSERT INTO regress_writes.pair (a, b, v, dg) VALUES (30, 'd', 'refused', 1);
UPDATE regress_writes.pair SET dg = 0;
-- RETURNING and ON CONFLICT are not supported
INSERT INTO regress_writes.pair (a, b) VALUES (31, 'r') RETURNING *;
INSERT INTO regress_writes.pair (a, b) VALUES (31, 'r') ON CONFLICT DO NOTHING;
-- a key matching several SQLite rows: an error, and nothing is written
CREATE FOREIGN TABLE regress_writes.pair_by_b (b text OPTIONS (key 'true'), v text)
  SERVER regress_w OPTIONS (table 'pair');
UPDATE regress_writes.pair_by_b SET v = 'refused' WHERE b = 'kept';
-- a row written twice by one statement: gone the second time
DELETE FROM regress_writes.many m USING (VALUES (11), (11)) AS v(x) WHERE m.id = v.x;
\! sqlite3 /tmp/owsync_regress/writes/w.db "SELECT a, b, v FROM pair WHERE b = 'kept' ORDER BY a; SELECT count(*) FROM many WHERE id = 11"
-- a file locked by another writer is waited on for busy_timeout, then refused
ALTER SERVER regress_w OPTIONS (ADD busy_timeout '200');
-- (test/fixtures/sqlite_writer.sh: the writer holds the lock until told to commit)
\setenv WR /tmp/owsync_regress/writes/writer
\! sh "$PG_ABS_SRCDIR/test/fixtures/sqlite_writer.sh" /tmp/owsync_regress/writes/w.db "$WR" "BEGIN IMMEDIATE;" "COMMIT;" &
\! sh "$PG_ABS_SRCDIR/test/fixtures/wait_file.sh" "$WR/1.done"
INSERT INTO regress_writes.nokey VALUES ('refused');
\! touch "$WR/2.go" && sh "$PG_ABS_SRCDIR/test/fixtures/wait_file.sh" "$WR/exited"
ALTER SERVER regress_w OPTIONS (DROP busy_timeout);
-- the file must be writable by the server: SQLite's own error, mapped
\! chmod 444 /tmp/owsync_regress/writes/w.db
INSERT INTO regress_writes.nokey VALUES ('refused');
\echo :LAST_ERROR_SQLSTATE
\! chmod 666 /tmp/owsync_regress/writes/w.db

--
-- Who may write: superusers, or roles with the privileges of both
-- pg_read_server_files and pg_write_server_files
--
CREATE ROLE regress_w_reader IN ROLE pg_read_server_files;
CREATE ROLE regress_w_writer IN ROLE pg_read_server_files, pg_write_server_files;
GRANT USAGE ON FOREIGN DATA WRAPPER owsync_fdw TO regress_w_reader, regress_w_writer;
GRANT USAGE ON SCHEMA regress_writes TO regress_w_reader, regress_w_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON regress_writes.nokey, regress_writes.many
  TO regress_w_reader, regress_w_writer;
SET ROLE regress_w_reader;
SELECT count(*) FROM regress_writes.nokey;
INSERT INTO regress_writes.nokey VALUES ('refused');
DELETE FROM regress_writes.many WHERE id = 1;
-- nor may it declare a server writable
CREATE SERVER regress_w_reader_srv FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/writes/w.db', writable 'true');
CREATE SERVER regress_w_reader_srv FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/writes/w.db', writable 'false');
DROP SERVER regress_w_reader_srv;
SET ROLE regress_w_writer;
INSERT INTO regress_writes.nokey VALUES ('by writer');
DELETE FROM regress_writes.many WHERE id = 1;
CREATE SERVER regress_w_writer_srv FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/writes/w.db', writable 'true');
DROP SERVER regress_w_writer_srv;
RESET ROLE;
\! sqlite3 /tmp/owsync_regress/writes/w.db "SELECT v FROM nokey ORDER BY v; SELECT count(*), min(id) FROM many"

-- clean up
DROP SCHEMA regress_writes CASCADE;
DROP SERVER regress_w, regress_ro, regress_wal;
REVOKE ALL ON FOREIGN DATA WRAPPER owsync_fdw FROM regress_w_reader, regress_w_writer;
DROP ROLE regress_w_reader, regress_w_writer;
DROP EXTENSION owsync_fdw;
\! rm -rf /tmp/owsync_regress/writes
