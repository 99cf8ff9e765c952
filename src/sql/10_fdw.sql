-- The wrapper's C functions: its handler and validator (the wrapper itself is
-- created with the catalog, 20_catalog.sql), and the SQLite-side functions
-- the sync calls.  Every object is schema-qualified: the install script must
-- not depend on search_path.

-- CREATE OR REPLACE: the wrapper depends on it (an upgrade replaces it in place).
CREATE OR REPLACE FUNCTION owsync.owsync_fdw_handler()
RETURNS fdw_handler
AS 'MODULE_PATHNAME', 'owsync_fdw_handler'
LANGUAGE C STRICT;

-- CREATE OR REPLACE: the wrapper depends on it (an upgrade replaces it in place).
CREATE OR REPLACE FUNCTION owsync.owsync_fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME', 'owsync_fdw_validator'
LANGUAGE C STRICT;

-- The SQLite library this module runs against (for bug reports and status views).
CREATE FUNCTION owsync.sqlite_version()
RETURNS text
AS 'MODULE_PATHNAME', 'owsync_sqlite_version'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

-- Can the server store large values compressed with lz4 (was it built with
-- it)?  Writing into PostgreSQL is the sync's bottleneck, and lz4 about
-- halves it.
CREATE FUNCTION owsync._has_lz4()
RETURNS boolean
AS 'MODULE_PATHNAME', 'owsync_has_lz4'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;

-- The pg_cron launchers of this server reload their jobs once the current
-- transaction commits (src/owsync_fdw.c says why).
CREATE FUNCTION owsync._reload_cron_at_commit()
RETURNS void
AS 'MODULE_PATHNAME', 'owsync_reload_cron_at_commit'
LANGUAGE C STRICT VOLATILE;

-- Every read of this transaction not checked since it ran, checked now: a
-- serialization failure when a writer overtook a read of a file that had no
-- running writer (read immutable, connection.c).
CREATE FUNCTION owsync._check_reads()
RETURNS void
AS 'MODULE_PATHNAME', 'owsync_check_reads'
LANGUAGE C VOLATILE;

-- The snapshots of files read immutable that a writer has written since,
-- ended, so that the next read of each takes a new one; true when there
-- was one.  Only once every read of those files was rolled back.
CREATE FUNCTION owsync._renew_overtaken_reads()
RETURNS boolean
AS 'MODULE_PATHNAME', 'owsync_renew_overtaken_reads'
LANGUAGE C VOLATILE;

-- This session's SQLite read connections that no transaction is reading,
-- closed (a dispatcher's, after each client's run: 50_schedule.sql);
-- returns how many.
CREATE FUNCTION owsync._close_sources()
RETURNS integer
AS 'MODULE_PATHNAME', 'owsync_close_sources'
LANGUAGE C STRICT VOLATILE;

-- Facts about a server's SQLite file, read in the transaction's snapshot.
-- change_marker: equal markers mean nothing was committed to the file
-- between the two snapshots.
CREATE FUNCTION owsync.source_info(server text,
    OUT journal_mode text, OUT schema_version bigint, OUT user_version bigint, OUT page_count bigint,
    OUT change_marker text)
AS 'MODULE_PATHNAME', 'owsync_source_info'
LANGUAGE C STRICT VOLATILE;

-- The file's change marker: the one the transaction's snapshot was taken at,
-- or, before the transaction reads the server, the file's now, read without
-- taking a snapshot (a run that finds it unchanged reads nothing more).
CREATE FUNCTION owsync.source_marker(server text)
RETURNS text
AS 'MODULE_PATHNAME', 'owsync_source_marker'
LANGUAGE C STRICT VOLATILE;

-- The keys of a SQLite table in 2^nbits buckets (by the top bits of each
-- key's hash), read in the transaction's snapshot: element 0 is the hash of
-- the whole key set (order-independent: equal hashes, equal key sets),
-- element 1 + b the hash of bucket b's keys.
CREATE FUNCTION owsync.key_buckets(server text, "table" text, key_columns text[], nbits integer)
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'owsync_key_buckets'
LANGUAGE C STRICT VOLATILE;

-- The signature of the rows of an owsync_fdw foreign table with wm_column >=
-- since (compared in SQLite), or of all its rows when wm_column is NULL:
-- "count:sum" of their digests, as owsync._window_sig() gives it for any
-- relation, read in the transaction's snapshot without planning a scan.
CREATE FUNCTION owsync._source_window(src regclass, wm_column name, since bigint)
RETURNS text
AS 'MODULE_PATHNAME', 'owsync_source_window'
LANGUAGE C VOLATILE;

-- Set (digests NULL: clear) the digests of rows the caller already has:
-- until cleared, a scan of src begun in this transaction returns such a row
-- with its digest alone (owsync_digest; every other column NULL), without
-- converting its values.  The fast path uses it for the rows of its window
-- that the last run staged unchanged.
CREATE FUNCTION owsync._skip_known(src regclass, digests bigint[])
RETURNS void
AS 'MODULE_PATHNAME', 'owsync_skip_known'
LANGUAGE C VOLATILE;

-- The number of rows of an owsync_fdw foreign table's SQLite table, in the
-- transaction's snapshot (counted by SQLite from its b-tree).
CREATE FUNCTION owsync._source_rows(src regclass)
RETURNS bigint
AS 'MODULE_PATHNAME', 'owsync_source_rows'
LANGUAGE C STRICT VOLATILE;

-- The hash of a SQLite table's whole key set: element 0 of key_buckets().
CREATE FUNCTION owsync.key_set_hash(server text, "table" text, key_columns text[])
RETURNS bigint
LANGUAGE sql STRICT VOLATILE
BEGIN ATOMIC
    SELECT (owsync.key_buckets(server, "table", key_columns, 0))[0];
END;

-- The buckets (numbered from 0) whose sum in key_buckets() now is not the sum
-- stored at the last sync plus the hashes of the keys known to be new.
CREATE FUNCTION owsync.moved_buckets(buckets bigint[], stored bigint[], added bigint[])
RETURNS integer[]
AS 'MODULE_PATHNAME', 'owsync_moved_buckets'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- The hash of every key of a SQLite table that falls in one of the buckets.
CREATE FUNCTION owsync.key_hashes(server text, "table" text, key_columns text[], nbits integer,
                                  buckets integer[])
RETURNS SETOF bigint
AS 'MODULE_PATHNAME', 'owsync_key_hashes'
LANGUAGE C STRICT VOLATILE ROWS 1000;

-- The hash of a key with these values, as SQLite computes it for key_buckets().
-- CREATE OR REPLACE: the generated column owsync_key_hash of digest tables
-- depends on it (an upgrade replaces it in place).
CREATE OR REPLACE FUNCTION owsync.key_hash(VARIADIC "any")
RETURNS bigint
AS 'MODULE_PATHNAME', 'owsync_key_hash'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

-- The regular files matching a glob pattern that the path rules let a server
-- open (for superusers and members of pg_read_server_files).
CREATE FUNCTION owsync.find_files(pattern text)
RETURNS SETOF text
AS 'MODULE_PATHNAME', 'owsync_find_files'
LANGUAGE C STRICT VOLATILE;
