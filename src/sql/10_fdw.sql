-- The foreign data wrapper: handler, validator and the wrapper itself.
-- Every object is schema-qualified: the install script must not depend on search_path.

CREATE FUNCTION owsync.owsync_fdw_handler()
RETURNS fdw_handler
AS 'MODULE_PATHNAME', 'owsync_fdw_handler'
LANGUAGE C STRICT;

CREATE FUNCTION owsync.owsync_fdw_validator(text[], oid)
RETURNS void
AS 'MODULE_PATHNAME', 'owsync_fdw_validator'
LANGUAGE C STRICT;

CREATE FOREIGN DATA WRAPPER owsync_fdw
  HANDLER owsync.owsync_fdw_handler
  VALIDATOR owsync.owsync_fdw_validator;

COMMENT ON FOREIGN DATA WRAPPER owsync_fdw IS
  'read-only access to Open WebUI SQLite files (one server per file, one foreign table per SQLite table)';

-- The SQLite library this module runs against (for bug reports and status views).
CREATE FUNCTION owsync.sqlite_version()
RETURNS text
AS 'MODULE_PATHNAME', 'owsync_sqlite_version'
LANGUAGE C STRICT STABLE PARALLEL SAFE;

-- Facts about a server's SQLite file, read in the transaction's snapshot.
-- change_marker: equal markers mean nothing was committed to the file
-- between the two snapshots.
CREATE FUNCTION owsync.source_info(server text,
    OUT journal_mode text, OUT schema_version bigint, OUT user_version bigint, OUT page_count bigint,
    OUT change_marker text)
AS 'MODULE_PATHNAME', 'owsync_source_info'
LANGUAGE C STRICT VOLATILE;

-- A hash of the set of keys of a SQLite table (order-independent), read in
-- the transaction's snapshot: equal hashes, equal key sets.
CREATE FUNCTION owsync.key_set_hash(server text, "table" text, key_columns text[])
RETURNS bigint
AS 'MODULE_PATHNAME', 'owsync_key_set_hash'
LANGUAGE C STRICT VOLATILE;

-- The hash owsync_keyset() adds up in SQLite for a row with these key values.
CREATE FUNCTION owsync.key_hash(VARIADIC "any")
RETURNS bigint
AS 'MODULE_PATHNAME', 'owsync_key_hash'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
