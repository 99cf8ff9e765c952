/*-------------------------------------------------------------------------
 *
 * owsync_fdw.h
 *		Declarations shared by the files of owsync_fdw, grouped by file.
 *
 * A foreign server is one SQLite file; a foreign table is one SQLite table.
 * Reads are read-only, hardened, and see one SQLite snapshot per server per
 * PostgreSQL transaction.  Servers declared writable also take INSERT,
 * UPDATE and DELETE, in one SQLite write transaction per PostgreSQL
 * transaction (modify.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef OWSYNC_FDW_H
#define OWSYNC_FDW_H

#include "postgres.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include "access/tupdesc.h"
#include "fmgr.h"
#include "foreign/fdwapi.h"
#include "foreign/foreign.h"
#include "lib/stringinfo.h"
#include "storage/fd.h"
#include "nodes/pathnodes.h"
#include "utils/relcache.h"

/* ------------------------------------------------------------------------
 * option.c: option validation, path rules, GUCs
 * ------------------------------------------------------------------------
 */

/* Default for the server option busy_timeout, in milliseconds. */
#define OWSYNC_DEFAULT_BUSY_TIMEOUT_MS 5000
/* Default for the server and table option batch_size (rows per INSERT). */
#define OWSYNC_DEFAULT_BATCH_SIZE 100

typedef struct OwsyncServerOpts
{
	char	   *database;		/* path as given in the server option */
	int			busy_timeout_ms;	/* how long to wait on a locked file */
	bool		writable;		/* option writable: takes INSERT/UPDATE/DELETE */
} OwsyncServerOpts;

/* The options of one column of a foreign table, read together. */
typedef struct OwsyncColumnOpts
{
	char	   *name;			/* SQLite column (option column_name, else the
								 * attribute's name); NULL for a dropped column */
	bool		key;			/* option key: the column identifies the row */
	bool		digest;			/* option digest: owsync_digest() of the other
								 * columns, computed by SQLite (digest.c) */
	bool		raw;			/* option raw: the SQLite value as "CLASS:HEX" */
} OwsyncColumnOpts;

/* GUC owsync.allowed_directories (superuser only; comma-separated) */
extern char *owsync_allowed_directories;

extern void owsync_define_gucs(void);
extern void owsync_get_server_opts(ForeignServer *server, OwsyncServerOpts *opts);
extern char *owsync_get_table_name(ForeignTable *table);
extern void owsync_get_column_opts(Oid relid, AttrNumber attnum, OwsyncColumnOpts *opts);
extern OwsyncColumnOpts *owsync_get_all_column_opts(Relation rel);
extern char *owsync_resolve_path(const char *path, const char *servername);
extern char *owsync_resolve_target_path(const char *path, bool superuser_asks);
extern void owsync_check_write_privilege(Oid userid, const char *servername);
extern int	owsync_get_batch_size(ForeignServer *server, ForeignTable *table);

/* ------------------------------------------------------------------------
 * connection.c: hardened SQLite handles, connection cache, snapshots, errors
 * ------------------------------------------------------------------------
 */

/* Hash key of a connection: a server's read connection or its write connection. */
typedef struct OwsyncConnKey
{
	Oid			serverid;
	Oid			write;			/* 1 for the write connection, else 0 */
} OwsyncConnKey;

typedef struct OwsyncConn
{
	OwsyncConnKey key;			/* hash key */
	char	   *servername;		/* in TopMemoryContext */
	char	   *realpath;		/* resolved file the handle was opened on */
	sqlite3    *db;				/* NULL when closed */
	struct stat st;				/* the file when opened: to notice a file
								 * replaced at the same path */
	bool		immutable;		/* opened immutable (WAL file, no writer) */
	int			busy_timeout_ms;
	bool		xact_open;		/* a SQLite read transaction is open */
	bool		unchecked;		/* read since the file was last found as it was
								 * opened (immutable reads, see connection.c) */
	bool		superseded;		/* a read connection whose server has a write
								 * transaction open: reads go there */
	int			write_depth;	/* write connection: 0 = no write transaction,
								 * 1 = BEGIN IMMEDIATE done, n = SAVEPOINT s2..sn
								 * for PostgreSQL's subtransaction levels */
	bool		write_lost;		/* the write transaction could not be rolled
								 * back to a savepoint: it can only abort */
	bool		invalidated;	/* server options changed: reopen */
	uint32		generation;		/* bumped at each transaction end: statements of
								 * older generations were finalized then */
	uint32		server_hashvalue;	/* syscache hash, for invalidation */
	int64		busy_started_us;	/* busy handler bookkeeping */
	char	   *marker;			/* the file's change marker, read just before
								 * the current snapshot was taken */
	sqlite3    *filedb;			/* the handle on the file itself while db reads
								 * a copy of it (rollback-journal mode) */
	File		copy;			/* that copy: a temporary file, 0 when none */
	MemoryContext cachecxt;		/* facts read in the current snapshot, freed
								 * when it ends: */
	List	   *tableinfo;		/* planning facts about tables (owsync_fdw.c) */
	struct OwsyncKeyScan *keyscan;	/* the last scan of a table's keys (keyset.c) */
} OwsyncConn;

/* A SQLite authorizer callback (sqlite3_set_authorizer). */
typedef int (*OwsyncAuthorizer) (void *arg, int action, const char *a1, const char *a2,
								 const char *a3, const char *a4);

extern OwsyncConn *owsync_get_connection(ForeignServer *server);
extern OwsyncConn *owsync_get_write_connection(ForeignServer *server);
extern void owsync_write_sync_level(OwsyncConn *conn);
extern sqlite3_stmt *owsync_prepare(OwsyncConn *conn, const char *sql);
extern int	owsync_step(OwsyncConn *conn, sqlite3_stmt *stmt, const char *what);
extern void owsync_finalize(sqlite3_stmt *stmt);
extern MemoryContext owsync_snapshot_context(OwsyncConn *conn);
extern int	owsync_sqlstate(int rc, const char *message);
extern void owsync_check_unchanged(OwsyncConn *conn);
extern ForeignServer *owsync_usable_server(const char *name);
extern void owsync_sqlite_error(OwsyncConn *conn, int rc, const char *what) pg_attribute_noreturn();
extern OwsyncConn *owsync_open_private(const char *label, const char *path,
									   OwsyncAuthorizer authorizer);
extern void owsync_close_private(OwsyncConn *conn, bool check);

/* ------------------------------------------------------------------------
 * convert.c: SQLite values to PostgreSQL datums, loudly
 * ------------------------------------------------------------------------
 */

/* How a PostgreSQL column type is read; chosen once per column per scan. */
typedef enum OwsyncKind
{
	OWK_INT8,
	OWK_INT4,
	OWK_INT2,
	OWK_BOOL,
	OWK_FLOAT8,
	OWK_FLOAT4,
	OWK_NUMERIC,
	OWK_TEXT,					/* text, varchar */
	OWK_JSON,
	OWK_JSONB,
	OWK_BYTEA,
	OWK_DATE,
	OWK_TIMESTAMP,
	OWK_OTHER					/* any other type: text through its input function */
} OwsyncKind;

typedef struct OwsyncColumn
{
	AttrNumber	attnum;			/* PostgreSQL attribute number */
	char	   *name;			/* SQLite column name */
	Oid			typid;
	int32		typmod;
	OwsyncKind	kind;
	FmgrInfo	input;			/* input function, for kinds that parse text */
	Oid			ioparam;
	char	   *buf;			/* the current row's text/json/bytea value: */
	Size		bufsize;		/* grow-only, reused row after row */
	MemoryContext bufcxt;		/* where buf lives: the scan's context */
} OwsyncColumn;

/* What an error message needs to name the row being read. */
typedef struct OwsyncRowRef
{
	const char *servername;
	const char *tablename;		/* SQLite table */
	sqlite3_stmt *stmt;			/* positioned on the row */
	int			nkeys;			/* number of key columns */
	int		   *keyidx;			/* their result column indexes */
	char	  **keynames;
} OwsyncRowRef;

extern OwsyncKind owsync_kind_for_type(Oid typid);
extern void owsync_init_column(OwsyncColumn *col, AttrNumber attnum, const char *name,
							   Oid typid, int32 typmod);
extern Datum owsync_convert_value(OwsyncColumn *col, sqlite3_stmt *stmt, int idx,
								  bool *isnull, const OwsyncRowRef *ref);
extern void owsync_bind_datum(OwsyncConn *conn, sqlite3_stmt *stmt, int idx,
							  Datum value, Oid typid, bool isnull);
extern void owsync_bind_value(OwsyncConn *conn, sqlite3_stmt *stmt, int idx,
							  Datum value, Oid typid, bool isnull, bool static_value);

/* ------------------------------------------------------------------------
 * digest.c: per-row digests computed inside SQLite
 * ------------------------------------------------------------------------
 */

/* A value held outside SQLite, hashed as owsync_digest() hashes a SQLite value. */
typedef struct OwsyncHashValue
{
	int			type;			/* SQLITE_INTEGER, _FLOAT, _TEXT, _BLOB or _NULL */
	int64		integer;		/* SQLITE_INTEGER */
	double		real;			/* SQLITE_FLOAT */
	const void *bytes;			/* SQLITE_TEXT (UTF-8) and SQLITE_BLOB */
	int			len;
} OwsyncHashValue;

extern int	owsync_register_digest(sqlite3 *db);
extern uint64 owsync_hash_values(const OwsyncHashValue *values, int n);

/* ------------------------------------------------------------------------
 * keyset.c: key sets of SQLite tables in buckets (SQL functions only:
 * owsync_key_buckets, owsync_key_hashes, owsync_moved_buckets, owsync_key_hash)
 * ------------------------------------------------------------------------
 */

/* ------------------------------------------------------------------------
 * json_valid.c: a fast check for valid json input
 * ------------------------------------------------------------------------
 */

extern bool owsync_json_valid_fast(const char *s, size_t len);

/* ------------------------------------------------------------------------
 * deparse.c: SQL generation and WHERE pushdown
 * ------------------------------------------------------------------------
 */

/* SQLite column affinity, from the declared type (SQLite's own rules). */
typedef enum OwsyncAffinity
{
	OWA_INTEGER,
	OWA_TEXT,
	OWA_BLOB,
	OWA_REAL,
	OWA_NUMERIC,
	OWA_UNKNOWN					/* column not found in SQLite: never pushed */
} OwsyncAffinity;

/* Per base relation planning state (baserel->fdw_private). */
typedef struct OwsyncRelInfo
{
	ForeignTable *table;
	ForeignServer *server;
	char	   *sqlite_table;
	int			natts;
	OwsyncColumnOpts *cols;		/* by attnum - 1; name NULL for dropped columns */
	OwsyncAffinity *affinity;	/* by attnum - 1 */
	List	   *remote_conds;	/* RestrictInfos evaluated by SQLite */
	List	   *local_conds;	/* RestrictInfos evaluated by PostgreSQL */
	Bitmapset  *attrs_used;		/* offset by FirstLowInvalidHeapAttributeNumber */
} OwsyncRelInfo;

extern OwsyncAffinity owsync_affinity(const char *decltype);
extern void owsync_quote_ident(StringInfo buf, const char *ident);
extern bool owsync_is_pushable(RelOptInfo *baserel, Expr *expr);
extern void owsync_deparse_select(StringInfo buf, const char *sqlite_table, int natts,
								  const OwsyncColumnOpts *cols, Bitmapset *attrs_used,
								  List **retrieved_attrs, List **keys);
extern void owsync_deparse_where(StringInfo buf, RelOptInfo *baserel, List *remote_conds,
								 List **params);
extern void owsync_deparse_insert(StringInfo buf, const char *sqlite_table, List *colnames,
								  int nrows);
extern void owsync_deparse_update(StringInfo buf, const char *sqlite_table, List *colnames,
								  List *keynames);
extern void owsync_deparse_delete(StringInfo buf, const char *sqlite_table, List *keynames);

/* ------------------------------------------------------------------------
 * modify.c: INSERT, UPDATE and DELETE on writable servers
 * ------------------------------------------------------------------------
 */

extern void owsync_modify_routines(FdwRoutine *routine);
extern void owsync_begin_target_scan(ForeignScanState *node);

/* ------------------------------------------------------------------------
 * import.c: IMPORT FOREIGN SCHEMA
 * ------------------------------------------------------------------------
 */

extern List *owsync_import_foreign_schema(ImportForeignSchemaStmt *stmt, Oid serverOid);

/* ------------------------------------------------------------------------
 * restore.c: relations written out as a new SQLite file (SQL function only:
 * owsync_write_sqlite)
 * ------------------------------------------------------------------------
 */

#endif							/* OWSYNC_FDW_H */
