--
-- Security: who may set the path of a SQLite file, where it may point (real
-- path inside owsync.allowed_directories, never the data directory, no URIs,
-- no relative paths, no symlink escapes, checked again at every open),
-- strict option validation, and read-only access that leaves the file alone.
--
\set VERBOSITY default
CREATE EXTENSION owsync_fdw;

-- Fixtures.  allowed/ is the listed directory; allowed2/ shares its prefix;
-- outside/ holds a file nobody listed.  data.db has a fixed old mtime so that
-- any write would show.
\! sh "$PG_ABS_SRCDIR/test/fixtures/make.sh" security
-- a symbolic link inside allowed/ to a file of the data directory
SELECT current_setting('data_directory') AS regress_datadir \gset
\setenv REGRESS_SEC_DATADIR :regress_datadir
\! ln -s "$REGRESS_SEC_DATADIR/PG_VERSION" /tmp/owsync_regress/security/allowed/pgdata.db
-- the bytes and mtime of the files read below, to compare at the end
\! cd /tmp/owsync_regress/security && md5sum allowed/data.db allowed/wal.db > before.md5 && stat -c '%n %Y %y %s' allowed/data.db allowed/wal.db > before.stat

CREATE ROLE regress_sec_plain;                           -- no file privileges
CREATE ROLE regress_sec_reader IN ROLE pg_read_server_files;
GRANT USAGE ON FOREIGN DATA WRAPPER owsync_fdw TO regress_sec_plain, regress_sec_reader;
CREATE SCHEMA regress_security;
GRANT CREATE, USAGE ON SCHEMA regress_security TO regress_sec_plain, regress_sec_reader;

--
-- owsync.allowed_directories: superuser only, absolute paths only
--
SHOW owsync.allowed_directories;
SET ROLE regress_sec_reader;
SET owsync.allowed_directories = '/tmp';
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET owsync.allowed_directories = 'relative/dir';
\echo :LAST_ERROR_SQLSTATE
SET owsync.allowed_directories = '/tmp/owsync_regress/security/allowed';
SHOW owsync.allowed_directories;

--
-- Who may set "database": superusers and roles with the privileges of
-- pg_read_server_files; privileges are checked before anything about the path
--
SET ROLE regress_sec_plain;
CREATE SERVER regress_sec_plain_srv FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed/data.db');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER regress_sec_plain_srv FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database 'relative.db');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- a member of pg_read_server_files, with an empty list: refused
RESET owsync.allowed_directories;
SET ROLE regress_sec_reader;
CREATE SERVER regress_sec_srv FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed/data.db');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;

-- with the list set (entries that do not exist are skipped): a path inside
-- works, and a query reads the rows
SET owsync.allowed_directories = '/tmp/owsync_regress/security/no_such_dir', '/tmp/owsync_regress/security/allowed';
SHOW owsync.allowed_directories;
SET ROLE regress_sec_reader;
CREATE SERVER regress_sec_srv FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed/data.db');
CREATE FOREIGN TABLE regress_security.t (id bigint OPTIONS (key 'true'), v text)
  SERVER regress_sec_srv;
SELECT * FROM regress_security.t ORDER BY id;
-- outside the list
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/outside/secret.db');
\echo :LAST_ERROR_SQLSTATE
-- a directory whose name merely starts with a listed one
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed2/x.db');
\echo :LAST_ERROR_SQLSTATE
-- ".." leading out of the listed directory
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed/../outside/secret.db');
\echo :LAST_ERROR_SQLSTATE
-- a symbolic link inside the listed directory pointing outside it
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed/escape.db');
\echo :LAST_ERROR_SQLSTATE
-- what counts is the real path: a link from outside the list into it is fine
CREATE SERVER regress_sec_link FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed2/back.db');
DROP SERVER regress_sec_link;
-- a symbolic link to nothing
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed/dangling.db');
\echo :LAST_ERROR_SQLSTATE
-- a directory is not a file
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed/');
\echo :LAST_ERROR_SQLSTATE
-- malformed paths: relative, empty, SQLite URI filenames, query strings, fragments
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database 'allowed/data.db');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database 'file:/tmp/owsync_regress/security/allowed/data.db');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database 'FILE:/tmp/owsync_regress/security/allowed/data.db');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed/data.db?mode=rwc');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed/data.db#x');
\echo :LAST_ERROR_SQLSTATE
-- a path longer than MAXPGPATH (the message would print all of it)
DO $$
DECLARE
  detail text;
BEGIN
  EXECUTE format('CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw OPTIONS (database %L)',
                 '/tmp/owsync_regress/security/allowed/' || repeat('x', 1100) || '.db');
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
  RAISE NOTICE 'refused: % (%)', SQLSTATE, detail;
END $$;
-- the data directory is refused even when listed, through a link too
RESET ROLE;
SELECT set_config('owsync.allowed_directories',
                  '/tmp/owsync_regress/security/allowed,' || current_setting('data_directory'),
                  false) IS NOT NULL AS listed;
SELECT set_config('regress_sec.datadir', current_setting('data_directory'), false) IS NOT NULL AS saved;
SET ROLE regress_sec_reader;
DO $$
DECLARE
  detail text;
BEGIN
  EXECUTE format('CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw OPTIONS (database %L)',
                 current_setting('regress_sec.datadir') || '/PG_VERSION');
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
  RAISE NOTICE 'refused: % (%)', SQLSTATE, detail;
END $$;
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed/pgdata.db');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET owsync.allowed_directories = '/tmp/owsync_regress/security/allowed';

--
-- Superusers: bound by the list when one is set, free outside the data
-- directory when it is empty, never inside it
--
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/outside/secret.db');
\echo :LAST_ERROR_SQLSTATE
RESET owsync.allowed_directories;
CREATE SERVER regress_sec_super FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/outside/secret.db');
CREATE FOREIGN TABLE regress_security.secret (id bigint OPTIONS (key 'true'), v text)
  SERVER regress_sec_super OPTIONS (table 't');
SELECT * FROM regress_security.secret;
DROP FOREIGN TABLE regress_security.secret;
DROP SERVER regress_sec_super;
DO $$
DECLARE
  detail text;
BEGIN
  EXECUTE format('CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw OPTIONS (database %L)',
                 current_setting('data_directory') || '/PG_VERSION');
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
  RAISE NOTICE 'refused: % (%)', SQLSTATE, detail;
END $$;
DO $$
DECLARE
  detail text;
BEGIN
  EXECUTE format('CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw OPTIONS (database %L)',
                 current_setting('data_directory') || '/base/not_yet_there.db');
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
  RAISE NOTICE 'refused: % (%)', SQLSTATE, detail;
END $$;
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed/pgdata.db');
\echo :LAST_ERROR_SQLSTATE
SET owsync.allowed_directories = '/tmp/owsync_regress/security/allowed';

--
-- ALTER SERVER: a server owner without the privilege cannot repoint it
--
CREATE SERVER regress_sec_owned FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed/data.db');
ALTER SERVER regress_sec_owned OWNER TO regress_sec_plain;
SET ROLE regress_sec_plain;
ALTER SERVER regress_sec_owned OPTIONS (SET database '/tmp/owsync_regress/security/outside/secret.db');
\echo :LAST_ERROR_SQLSTATE
ALTER SERVER regress_sec_owned OPTIONS (SET database '/tmp/owsync_regress/security/allowed/swap.db');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
-- the rules apply to ALTER as to CREATE
SET ROLE regress_sec_reader;
ALTER SERVER regress_sec_srv OPTIONS (SET database '/tmp/owsync_regress/security/allowed/escape.db');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SELECT srvname, srvoptions FROM pg_foreign_server
 WHERE srvname IN ('regress_sec_owned', 'regress_sec_srv') ORDER BY srvname;
DROP SERVER regress_sec_owned;

--
-- A symbolic link swapped in after CREATE SERVER: the rules are applied
-- again when the file is opened, and nothing is read
--
SET ROLE regress_sec_reader;
CREATE SERVER regress_sec_swap FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed/swap.db');
CREATE FOREIGN TABLE regress_security.swap (id bigint OPTIONS (key 'true'), v text)
  SERVER regress_sec_swap OPTIONS (table 't');
SELECT * FROM regress_security.swap ORDER BY id;
\! ln -sfn /tmp/owsync_regress/security/outside/secret.db /tmp/owsync_regress/security/allowed/swap.db
SELECT * FROM regress_security.swap ORDER BY id;
\echo :LAST_ERROR_SQLSTATE
BEGIN;
SELECT count(*) FROM regress_security.swap;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
RESET ROLE;
-- a superuser gets the same answer (the list binds everyone)
SELECT * FROM regress_security.swap ORDER BY id;
\echo :LAST_ERROR_SQLSTATE
-- the file the server was created on no longer exists at that path
\! rm -f /tmp/owsync_regress/security/allowed/swap.db
SELECT * FROM regress_security.swap ORDER BY id;
\echo :LAST_ERROR_SQLSTATE

--
-- Option names and values
--
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (databse '/tmp/owsync_regress/security/allowed/data.db');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed/data.db', busy_timout '10');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed/data.db', mode 'rw');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (busy_timeout '10');
\echo :LAST_ERROR_SQLSTATE
CREATE FOREIGN TABLE regress_security.bad (id bigint) SERVER regress_sec_srv
  OPTIONS (tabel 't');
\echo :LAST_ERROR_SQLSTATE
CREATE FOREIGN TABLE regress_security.bad (id bigint) SERVER regress_sec_srv
  OPTIONS (filename '/tmp/owsync_regress/security/outside/secret.db');
\echo :LAST_ERROR_SQLSTATE
CREATE FOREIGN TABLE regress_security.bad (id bigint) SERVER regress_sec_srv
  OPTIONS (table '');
\echo :LAST_ERROR_SQLSTATE
CREATE FOREIGN TABLE regress_security.bad (id bigint OPTIONS (colum_name 'id')) SERVER regress_sec_srv;
\echo :LAST_ERROR_SQLSTATE
CREATE FOREIGN TABLE regress_security.bad (id bigint OPTIONS (primary_key 'true')) SERVER regress_sec_srv;
\echo :LAST_ERROR_SQLSTATE
CREATE FOREIGN TABLE regress_security.bad (id bigint OPTIONS (key 'maybe')) SERVER regress_sec_srv;
\echo :LAST_ERROR_SQLSTATE
CREATE FOREIGN TABLE regress_security.bad (id bigint OPTIONS (column_name '')) SERVER regress_sec_srv;
\echo :LAST_ERROR_SQLSTATE
CREATE USER MAPPING FOR CURRENT_USER SERVER regress_sec_srv OPTIONS (databse '/tmp/x.db');
\echo :LAST_ERROR_SQLSTATE
CREATE USER MAPPING FOR CURRENT_USER SERVER regress_sec_srv OPTIONS (password 'secret');
\echo :LAST_ERROR_SQLSTATE
ALTER FOREIGN DATA WRAPPER owsync_fdw OPTIONS (ADD database '/tmp/owsync_regress/security/outside/secret.db');
\echo :LAST_ERROR_SQLSTATE
-- busy_timeout: a whole number of milliseconds, 0 .. 2147483647
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed/data.db', busy_timeout '-1');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed/data.db', busy_timeout '12abc');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed/data.db', busy_timeout '');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed/data.db', busy_timeout ' 5');
\echo :LAST_ERROR_SQLSTATE
CREATE SERVER regress_sec_bad FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed/data.db', busy_timeout '2147483648');
\echo :LAST_ERROR_SQLSTATE
ALTER SERVER regress_sec_srv OPTIONS (ADD busy_timeout '0');
ALTER SERVER regress_sec_srv OPTIONS (SET busy_timeout '2147483647');
ALTER SERVER regress_sec_srv OPTIONS (DROP busy_timeout);
-- "database" cannot be dropped from a server
ALTER SERVER regress_sec_srv OPTIONS (DROP database);
\echo :LAST_ERROR_SQLSTATE

--
-- Read-only: writes are refused, and reading (scans, ANALYZE, IMPORT
-- FOREIGN SCHEMA) changes neither the bytes nor the mtime of the file
--
INSERT INTO regress_security.t VALUES (4, 'four');
\echo :LAST_ERROR_SQLSTATE
UPDATE regress_security.t SET v = 'uno' WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM regress_security.t WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM regress_security.t WHERE id = 2;
SELECT count(*) FROM regress_security.t;
ANALYZE regress_security.t;
CREATE SCHEMA regress_security_import;
IMPORT FOREIGN SCHEMA main FROM SERVER regress_sec_srv INTO regress_security_import;
SELECT * FROM regress_security_import.t ORDER BY id;
CREATE SERVER regress_sec_wal FOREIGN DATA WRAPPER owsync_fdw
  OPTIONS (database '/tmp/owsync_regress/security/allowed/wal.db');
CREATE FOREIGN TABLE regress_security.wal (id bigint OPTIONS (key 'true'), v text)
  SERVER regress_sec_wal OPTIONS (table 't');
SELECT * FROM regress_security.wal;
ANALYZE regress_security.wal;
-- a new backend opens the files afresh and reads them again
\! psql -X -q -d contrib_regression -c "SET owsync.allowed_directories = '/tmp/owsync_regress/security/allowed'" -c 'SELECT count(*) FROM regress_security.t' -c 'SELECT count(*) FROM regress_security.wal' -c 'ANALYZE regress_security.t'
\! cd /tmp/owsync_regress/security && md5sum --check --status before.md5 && stat -c '%n %Y %y %s' allowed/data.db allowed/wal.db | cmp -s - before.stat && echo unchanged || echo CHANGED

--
-- Narrowing owsync.allowed_directories binds a backend that already has the
-- file open, from its next transaction on
--
SELECT count(*) FROM regress_security.t;
SET owsync.allowed_directories = '/tmp/owsync_regress/security/allowed2';
SELECT count(*) FROM regress_security.t;
\echo :LAST_ERROR_SQLSTATE
SET owsync.allowed_directories = '/tmp/owsync_regress/security/allowed';
SELECT count(*) FROM regress_security.t;

-- Clean up
DROP SCHEMA regress_security_import CASCADE;
DROP SCHEMA regress_security CASCADE;
DROP EXTENSION owsync_fdw CASCADE;
DROP ROLE regress_sec_plain;
DROP ROLE regress_sec_reader;
RESET owsync.allowed_directories;
RESET regress_sec.datadir;
\! rm -rf /tmp/owsync_regress/security
