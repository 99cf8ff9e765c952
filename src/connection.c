/*-------------------------------------------------------------------------
 *
 * connection.c
 *		SQLite connection cache, read snapshots and SQLite error reporting.
 *
 * One connection per foreign server per backend, kept in a hash table like
 * postgres_fdw's.  The first use of a server inside a PostgreSQL transaction
 * opens a SQLite read transaction and reads the schema, which pins one WAL
 * snapshot: every foreign table of that server read in the same PostgreSQL
 * transaction sees the same SQLite state.  The read transaction ends when
 * the PostgreSQL transaction ends.  In WAL mode a reader never blocks the
 * writer, but it holds back checkpoints: the -wal file cannot start over
 * while the transaction is open, and grows by what the writer commits
 * meanwhile (docs/OPERATIONS.md says how to bound an idle one).
 *
 * In rollback-journal mode a reader's shared lock blocks the writer's
 * commit, so no snapshot there holds the lock for longer than a copy of the
 * file: the transaction's first read takes the shared lock, copies the file
 * into a temporary file of this backend (placed like PostgreSQL's own,
 * temp_tablespaces, counted against temp_file_limit), releases the lock and
 * reads the copy until the transaction ends, when the copy is deleted.  The
 * copy is read through SQLite's own file handle (see read_db_header).
 *
 * Connections are opened read-only and hardened: the user's path is never
 * parsed as a URI, no final symlink, defensive mode, no extension loading,
 * untrusted schema, and an authorizer that refuses ATTACH and every write.
 * The path rules are applied again at the start of every transaction (the
 * GUC or a symlink may have changed); a connection is dropped when its
 * server's options change and reopened when the file at the path was
 * replaced (different device/inode).
 *
 * A writable server (option writable) also gets a write connection, opened
 * read-write (never created) with the same hardening and an authorizer that
 * lets it write ordinary tables of the main database and nothing else.  The
 * first write in a PostgreSQL transaction runs BEGIN IMMEDIATE on it; each
 * subtransaction level that writes gets a SQLite savepoint, released or
 * rolled back with it; the SQLite transaction commits at PRE_COMMIT (a
 * failure there aborts the PostgreSQL transaction) and rolls back on abort.
 * From its first write on, the transaction reads that server through the
 * write connection, so it sees its own writes.  There is one write
 * connection per server, not per user: two handles writing one file from
 * one backend would wait on each other until the busy timeout.  It is
 * closed at the end of every transaction, which leaves no -wal, -shm or
 * journal file behind and applies the path rules afresh each time.
 *
 * Reading must never create files that could stop Open WebUI from writing.
 * A read-only handle on a WAL database creates the -wal and -shm files when
 * they are missing (Open WebUI stopped), owned by the PostgreSQL user, and
 * leaves them behind; a writer running as another user then fails with
 * "attempt to write a readonly database".  So when a WAL database has no
 * -shm file:
 *	- with no (or an empty) -wal the main file holds every committed page:
 *	  it is opened immutable (no locks, no files created), for one
 *	  transaction only, and every read must end with the file still the one
 *	  opened (device, inode, size, mtime): a writer that started and
 *	  checkpointed meanwhile makes the read fail with a serialization error.
 *	  Scans check when they start and end; a read not checked since it ran
 *	  is checked by owsync._check_reads() or, at the latest, before commit.
 *	  A writer that comes after every read was checked changes nothing, as
 *	  a later commit changes nothing for a WAL snapshot;
 *	- with a non-empty -wal (a writer crashed) reading needs recovery, which
 *	  creates files: refused with a hint.
 *
 *-------------------------------------------------------------------------
 */
#include "owsync_fdw.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/tablespace.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/* How often (in SQLite VM instructions) a running statement checks for cancel. */
#define OWSYNC_PROGRESS_OPS 10000

static HTAB *ConnectionHash = NULL;

static void owsync_xact_callback(XactEvent event, void *arg);
static void owsync_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
									SubTransactionId parentSubid, void *arg);
static void owsync_inval_callback(Datum arg, int cacheid, uint32 hashvalue);
static void owsync_open(OwsyncConn *conn, ForeignServer *server, OwsyncServerOpts *opts,
						const char *real);
static void owsync_close(OwsyncConn *conn);
static void drop_copy(OwsyncConn *conn);
static void check_copy_current(OwsyncConn *reader, OwsyncConn *writer);
static char *change_marker(sqlite3 *filedb, const char *path);
static void owsync_begin_snapshot(OwsyncConn *conn);
static OwsyncConn *open_read_connection(ForeignServer *server);
static void configure_handle(OwsyncConn *conn);
static bool owsync_file_replaced(OwsyncConn *conn);

/*
 * May a write connection write this table?  Ordinary tables of the main
 * database only, from the statement itself (a4 names a trigger or view):
 * never SQLite's own tables.
 */
static bool
writable_table(const char *table, const char *db, const char *via)
{
	return table != NULL && db != NULL && strcmp(db, "main") == 0 && via == NULL &&
		pg_strncasecmp(table, "sqlite_", 7) != 0;
}

/*
 * Authorizer: a source connection may read, run functions and manage its own
 * read transaction, nothing else.  ATTACH would let a query reach other files;
 * writes are refused twice (the handle is also opened read-only).  A write
 * connection (arg is the connection) may also insert, update and delete rows
 * of ordinary tables and use savepoints; schema changes stay refused.
 */
static int
owsync_authorizer(void *arg, int action, const char *a1, const char *a2,
				  const char *a3, const char *a4)
{
	bool		write = ((OwsyncConn *) arg)->key.write != 0;

	switch (action)
	{
		case SQLITE_SELECT:
		case SQLITE_READ:
		case SQLITE_FUNCTION:
		case SQLITE_RECURSIVE:
		case SQLITE_TRANSACTION:
			return SQLITE_OK;
		case SQLITE_SAVEPOINT:
			return write ? SQLITE_OK : SQLITE_DENY;
		case SQLITE_INSERT:
		case SQLITE_DELETE:
			return write && writable_table(a1, a3, a4) ? SQLITE_OK : SQLITE_DENY;
		case SQLITE_UPDATE:

			/*
			 * Preparing a pragma table-valued function (pragma_table_info)
			 * asks for UPDATE of sqlite_master while SQLite sets up the
			 * eponymous virtual table; nothing is written (the handle is
			 * read-only and defensive mode forbids schema writes).  Any
			 * other UPDATE is refused.
			 */
			if (a1 && strcmp(a1, "sqlite_master") == 0 && a4 == NULL)
				return SQLITE_OK;
			return write && writable_table(a1, a3, a4) ? SQLITE_OK : SQLITE_DENY;
		case SQLITE_PRAGMA:
			/*
			 * Only read-only introspection: the table/index pragmas (a2 is
			 * their argument, a name) and reading journal_mode (with an
			 * argument it would set it).
			 */
			if (a1 && (strcmp(a1, "table_info") == 0 ||
					   strcmp(a1, "table_xinfo") == 0 ||
					   strcmp(a1, "index_list") == 0 ||
					   strcmp(a1, "index_info") == 0))
				return SQLITE_OK;
			/* these only read when given no argument (source_info) */
			if (a1 && a2 == NULL &&
				(strcmp(a1, "journal_mode") == 0 || strcmp(a1, "schema_version") == 0 ||
				 strcmp(a1, "user_version") == 0 || strcmp(a1, "page_count") == 0))
				return SQLITE_OK;
			return SQLITE_DENY;
		default:
			return SQLITE_DENY;
	}
}

/*
 * Busy handler: wait on a locked file up to busy_timeout, sleeping in short
 * steps, and give up at once when a cancel (or statement_timeout) or
 * termination is pending (the caller then runs CHECK_FOR_INTERRUPTS).  It
 * must not ereport: it runs inside SQLite.
 */
static int
owsync_busy_handler(void *arg, int count)
{
	OwsyncConn *conn = (OwsyncConn *) arg;
	int64		now = GetCurrentTimestamp();
	int64		waited;
	long		sleep_us;

	if (count == 0)
		conn->busy_started_us = now;
	if (QueryCancelPending || ProcDiePending)
		return 0;
	waited = now - conn->busy_started_us;
	if (waited >= (int64) conn->busy_timeout_ms * 1000)
		return 0;
	sleep_us = Min(1000L * (1 + count), 20000L);	/* 1 ms, 2 ms, ... 20 ms */
	sleep_us = Min(sleep_us, (long) ((int64) conn->busy_timeout_ms * 1000 - waited));
	pg_usleep(sleep_us);
	return 1;
}

/*
 * Progress handler: interrupt a long SQLite statement when a cancel (or
 * statement_timeout) or termination is pending.  Other interrupts (signal
 * barriers, memory context logging, connection checks) must not abort it:
 * an interrupted statement cannot be resumed, so they wait for the next row.
 */
static int
owsync_progress_handler(void *arg)
{
	return (QueryCancelPending || ProcDiePending) ? 1 : 0;
}

/*
 * owsync_sqlstate: the one place that turns a SQLite result code (and, for
 * the generic SQLITE_ERROR, its message) into a PostgreSQL SQLSTATE.
 */
int
owsync_sqlstate(int rc, const char *message)
{
	switch (rc & 0xff)
	{
		case SQLITE_BUSY:
		case SQLITE_LOCKED:
			return ERRCODE_LOCK_NOT_AVAILABLE;
		case SQLITE_INTERRUPT:
			return ERRCODE_QUERY_CANCELED;
		case SQLITE_NOMEM:
			return ERRCODE_OUT_OF_MEMORY;
		case SQLITE_READONLY:
			return ERRCODE_READ_ONLY_SQL_TRANSACTION;
		case SQLITE_AUTH:
		case SQLITE_PERM:
			return ERRCODE_INSUFFICIENT_PRIVILEGE;
		case SQLITE_CANTOPEN:
			return ERRCODE_UNDEFINED_FILE;
		case SQLITE_NOTADB:
		case SQLITE_CORRUPT:
			return ERRCODE_DATA_CORRUPTED;
		case SQLITE_IOERR:
		case SQLITE_FULL:
			return ERRCODE_IO_ERROR;
		case SQLITE_TOOBIG:
			return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
		case SQLITE_CONSTRAINT:
			return ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION;
		case SQLITE_MISMATCH:
			return ERRCODE_DATATYPE_MISMATCH;
		case SQLITE_ERROR:
			if (message && strncmp(message, "no such table", 13) == 0)
				return ERRCODE_FDW_TABLE_NOT_FOUND;
			if (message && strncmp(message, "no such column", 14) == 0)
				return ERRCODE_FDW_COLUMN_NAME_NOT_FOUND;
			return ERRCODE_FDW_ERROR;
		default:
			return ERRCODE_FDW_ERROR;
	}
}

/*
 * Report a failed SQLite call as an ERROR.  A pending cancel wins, so that
 * statement_timeout and pg_cancel_backend read as what they are.
 */
void
owsync_sqlite_error(OwsyncConn *conn, int rc, const char *what)
{
	const char *msg = conn->db ? sqlite3_errmsg(conn->db) : sqlite3_errstr(rc);

	CHECK_FOR_INTERRUPTS();
	/* a file read as immutable may fail any way once a writer changed it */
	owsync_check_unchanged(conn);

	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("SQLite file of server \"%s\" is locked", conn->servername),
				 errdetail("Waited %d ms for a lock on \"%s\" while trying to %s.",
						   conn->busy_timeout_ms, conn->realpath, what),
				 errhint("Another process holds a write lock on the file; retry later or raise the server option busy_timeout.")));

	if ((rc & 0xff) == SQLITE_INTERRUPT)
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("canceling SQLite statement on server \"%s\"", conn->servername)));

	ereport(ERROR,
			(errcode(owsync_sqlstate(rc, msg)),
			 errmsg("could not %s on server \"%s\": %s", what, conn->servername, msg),
			 errdetail("SQLite result code %d (%s), file \"%s\".",
					   rc, sqlite3_errstr(rc), conn->realpath ? conn->realpath : "?")));
}

/*
 * The read (write = false) or write connection entry of a server; with
 * create, a new entry (closed) when there is none, else NULL.
 */
static OwsyncConn *
lookup_connection(Oid serverid, bool write, bool create)
{
	OwsyncConnKey key;
	OwsyncConn *conn;
	bool		found;

	if (ConnectionHash == NULL)
	{
		HASHCTL		ctl;

		if (!create)
			return NULL;
		ctl.keysize = sizeof(OwsyncConnKey);
		ctl.entrysize = sizeof(OwsyncConn);
		ConnectionHash = hash_create("owsync_fdw connections", 8, &ctl,
									 HASH_ELEM | HASH_BLOBS);
		RegisterXactCallback(owsync_xact_callback, NULL);
		RegisterSubXactCallback(owsync_subxact_callback, NULL);
		CacheRegisterSyscacheCallback(FOREIGNSERVEROID, owsync_inval_callback, (Datum) 0);
	}

	key.serverid = serverid;
	key.write = write ? 1 : 0;
	conn = hash_search(ConnectionHash, &key, create ? HASH_ENTER : HASH_FIND, &found);
	if (create && !found)
	{
		memset(((char *) conn) + sizeof(OwsyncConnKey), 0,
			   sizeof(OwsyncConn) - sizeof(OwsyncConnKey));
		conn->server_hashvalue = GetSysCacheHashValue1(FOREIGNSERVEROID,
													   ObjectIdGetDatum(serverid));
	}
	return conn;
}

/* A write transaction that lost its savepoint can only be rolled back. */
static void
check_write_not_lost(OwsyncConn *conn)
{
	if (conn->write_lost)
		ereport(ERROR,
				(errcode(ERRCODE_IN_FAILED_SQL_TRANSACTION),
				 errmsg("SQLite write transaction on server \"%s\" was lost", conn->servername),
				 errdetail("Rolling back to a savepoint failed, so the SQLite transaction no longer matches the PostgreSQL one."),
				 errhint("Roll back the whole transaction.")));
}

/*
 * Return the connection for a server, opened and inside a read transaction
 * that lasts until the end of the current PostgreSQL transaction; once the
 * transaction has written to the server, its write connection.
 */
OwsyncConn *
owsync_get_connection(ForeignServer *server)
{
	OwsyncConn *conn;

	conn = lookup_connection(server->serverid, true, false);
	if (conn != NULL && conn->write_depth > 0)
	{
		check_write_not_lost(conn);
		return conn;			/* reads see the transaction's writes */
	}

	conn = lookup_connection(server->serverid, false, true);
	if (conn->xact_open)
	{
		owsync_check_unchanged(conn);
		return conn;			/* same transaction: same snapshot */
	}
	conn = open_read_connection(server);
	owsync_begin_snapshot(conn);
	return conn;
}

/*
 * The read connection of a server outside any read transaction, open on the
 * file now at its path: the path rules applied again, a handle dropped
 * whose options, resolved path or file changed, or that was opened
 * immutable.
 */
static OwsyncConn *
open_read_connection(ForeignServer *server)
{
	OwsyncConn *conn = lookup_connection(server->serverid, false, true);
	OwsyncServerOpts opts;
	char	   *real = NULL;

	owsync_get_server_opts(server, &opts);
	PG_TRY();
	{
		real = owsync_resolve_path(opts.database, server->servername);
	}
	PG_CATCH();
	{
		owsync_close(conn);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (conn->db != NULL &&
		(conn->invalidated || conn->immutable || strcmp(real, conn->realpath) != 0 ||
		 owsync_file_replaced(conn)))
		owsync_close(conn);

	if (conn->db == NULL)
		owsync_open(conn, server, &opts, real);
	return conn;
}

/* Report a failed SQLite call on a connection, closing it. */
static void
fail_and_close(OwsyncConn *conn, int rc, const char *what)
{
	PG_TRY();
	{
		owsync_sqlite_error(conn, rc, what);
	}
	PG_FINALLY();
	{
		owsync_close(conn);
	}
	PG_END_TRY();
}

/*
 * Return the write connection of a writable server inside its write
 * transaction, with a savepoint for each subtransaction level (the caller
 * has checked that the server is writable and that the user may write).
 */
OwsyncConn *
owsync_get_write_connection(ForeignServer *server)
{
	OwsyncConn *conn = lookup_connection(server->serverid, true, true);

	if (conn->write_depth == 0)
	{
		OwsyncServerOpts opts;
		OwsyncConn *reader;
		char	   *real;
		int			rc;

		if (conn->db != NULL)
			owsync_close(conn);	/* left by a failed BEGIN */
		owsync_get_server_opts(server, &opts);
		real = owsync_resolve_path(opts.database, server->servername);
		owsync_open(conn, server, &opts, real);
		rc = sqlite3_exec(conn->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			fail_and_close(conn, rc, "begin a write transaction");
		conn->xact_open = true;
		conn->write_depth = 1;

		/*
		 * Reads of this server made earlier in the transaction must still be
		 * the file's state now that it is locked for us; from here on the
		 * transaction reads through the write connection.
		 */
		reader = lookup_connection(server->serverid, false, false);
		if (reader != NULL && reader->xact_open)
		{
			owsync_check_unchanged(reader);
			check_copy_current(reader, conn);
			reader->superseded = true;
		}
	}
	check_write_not_lost(conn);
	owsync_write_sync_level(conn);
	return conn;
}

/*
 * A reader of a copy, about to be superseded by the write connection (which
 * holds the file's reserved lock, so no other writer can commit): the file
 * must still be in the state that was copied.
 */
static void
check_copy_current(OwsyncConn *reader, OwsyncConn *writer)
{
	char	   *now;

	if (reader->filedb == NULL)
		return;
	now = change_marker(writer->db, writer->realpath);
	if (now == NULL || reader->marker == NULL || strcmp(now, reader->marker) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("SQLite file of server \"%s\" changed while it was read", reader->servername),
				 errdetail("The transaction read a copy of \"%s\" and then wrote to it; the file was written in between.",
						   reader->realpath),
				 errhint("Retry the transaction.")));
}

/* Savepoints up to the current subtransaction level, before a write in it. */
void
owsync_write_sync_level(OwsyncConn *conn)
{
	int			level = GetCurrentTransactionNestLevel();

	while (conn->write_depth < level)
	{
		char		sql[32];
		int			rc;

		snprintf(sql, sizeof(sql), "SAVEPOINT s%d", conn->write_depth + 1);
		rc = sqlite3_exec(conn->db, sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			owsync_sqlite_error(conn, rc, "set a savepoint");
		conn->write_depth++;
	}
}

/* Has the file at the path been replaced (or, for immutable reads, changed)? */
static bool
owsync_file_replaced(OwsyncConn *conn)
{
	struct stat st;

	if (stat(conn->realpath, &st) != 0)
		return true;			/* gone or unreadable: reopen reports why */
	return st.st_dev != conn->st.st_dev || st.st_ino != conn->st.st_ino ||
		(conn->immutable &&
		 (st.st_size != conn->st.st_size ||
		  st.st_mtim.tv_sec != conn->st.st_mtim.tv_sec ||
		  st.st_mtim.tv_nsec != conn->st.st_mtim.tv_nsec));
}

/* Has a writer written the file this connection reads immutable since it was opened? */
static bool
read_overtaken(OwsyncConn *conn)
{
	return conn->db != NULL && conn->xact_open && conn->immutable && !conn->superseded &&
		owsync_file_replaced(conn);
}

/*
 * An immutable read is only good while nobody writes the file: checked when
 * a scan starts and ends, and for any other read before its result is
 * final (see the file header), so that a read overtaken by a writer ends in
 * an error, never in a result.  Passed, it covers every read made so far.
 */
void
owsync_check_unchanged(OwsyncConn *conn)
{
	if (read_overtaken(conn))
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("SQLite file of server \"%s\" changed while it was read", conn->servername),
				 errdetail("\"%s\" had no running writer when the transaction first read it, and was written since.",
						   conn->realpath),
				 errhint("Retry the transaction.")));
	conn->unchecked = false;
}

/* Check every read connection read since its last check (see the file header). */
static void
check_unchecked_reads(void)
{
	HASH_SEQ_STATUS scan;
	OwsyncConn *conn;

	if (ConnectionHash == NULL)
		return;
	hash_seq_init(&scan, ConnectionHash);
	while ((conn = (OwsyncConn *) hash_seq_search(&scan)) != NULL)
	{
		if (!conn->unchecked)
			continue;
		PG_TRY();
		{
			owsync_check_unchanged(conn);
		}
		PG_CATCH();
		{
			hash_seq_term(&scan);
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
}

/*
 * Read the first n bytes of a connection's database file through SQLite's
 * own file handle.  Never through a descriptor of our own: closing any
 * descriptor of a file releases every POSIX lock this process holds on it,
 * the shared lock of a WAL-mode connection included, and a writer that then
 * finds itself the file's last user checkpoints and removes the -wal under
 * our snapshot.  False when the bytes cannot be read (a short file).
 */
static bool
read_db_header(sqlite3 *db, unsigned char *buf, int n)
{
	sqlite3_file *file = NULL;

	if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK ||
		file == NULL || file->pMethods == NULL)
		return false;
	return file->pMethods->xRead(file, buf, n, 0) == SQLITE_OK;
}

/*
 * Must this connection's file be opened immutable (see the file header)?
 * True for a WAL database without a -shm file.
 */
static bool
needs_immutable_open(OwsyncConn *conn)
{
	unsigned char header[20];
	struct stat st;
	const char *servername = conn->servername;
	char	   *shm = psprintf("%s-shm", conn->realpath);
	char	   *wal = psprintf("%s-wal", conn->realpath);
	bool		walmode;

	/* header bytes 18 and 19 are the file format versions: 2 means WAL */
	walmode = read_db_header(conn->db, header, sizeof(header)) &&
		header[18] == 2 && header[19] == 2;

	if (!walmode || stat(shm, &st) == 0)
		return false;
	if (stat(wal, &st) == 0 && st.st_size > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("SQLite file of server \"%s\" needs WAL recovery", servername),
				 errdetail("\"%s\" holds %lld bytes of write-ahead log, but no process has the database open (there is no -shm file); reading it would create files in the client's directory.",
						   wal, (long long) st.st_size),
				 errhint("Start the Open WebUI deployment once (or open the file with sqlite3 as its owner), then retry.")));
	return true;
}

/*
 * The URI of an immutable open, built here, never from user text: every
 * byte outside [A-Za-z0-9/._-] is percent-encoded.
 */
static char *
immutable_uri(const char *real)
{
	StringInfoData buf;
	const unsigned char *p;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "file:");
	for (p = (const unsigned char *) real; *p; p++)
	{
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			(*p >= '0' && *p <= '9') || *p == '/' || *p == '.' || *p == '_' || *p == '-')
			appendStringInfoChar(&buf, *p);
		else
			appendStringInfo(&buf, "%%%02X", *p);
	}
	appendStringInfoString(&buf, "?immutable=1");
	return buf.data;
}

/*
 * The hardening of every SQLite handle owsync opens: defensive mode (no SQL
 * that could corrupt the file, such as writable_schema or journal_mode OFF),
 * no extension loading, untrusted schema (the file's views, indexes and
 * defaults may only call functions marked innocuous), no triggers, views
 * allowed, no ATTACH.  Each call can only fail on a misuse; checked anyway.
 */
static bool
harden(sqlite3 *db)
{
	if (sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL) != SQLITE_OK ||
		sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL) != SQLITE_OK ||
		sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL) != SQLITE_OK ||
		sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL) != SQLITE_OK ||
		sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_VIEW, 1, NULL) != SQLITE_OK)
		return false;
	sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
	return true;
}

/*
 * Open filename (a path, or the URI of an immutable open) into conn->db and
 * harden the handle.  On failure conn is closed and the error reported,
 * saying it failed to do what.  The caller sets its authorizer last, once
 * it has configured the handle.
 */
static void
open_hardened(OwsyncConn *conn, const char *filename, int flags, const char *what)
{
	sqlite3    *db = NULL;
	int			rc;

	rc = sqlite3_open_v2(filename, &db, flags, NULL);
	conn->db = db;
	if (rc != SQLITE_OK)
		fail_and_close(conn, rc, what);
	if (!harden(db))
	{
		owsync_close(conn);
		elog(ERROR, "could not harden SQLite connection");
	}
}

static void
owsync_open(OwsyncConn *conn, ForeignServer *server, OwsyncServerOpts *opts,
			const char *real)
{
	struct stat st;
	bool		write = conn->key.write != 0;
	int			flags = (write ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY) |
		SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX;
	int			rc;

	if (conn->servername == NULL)
		conn->servername = MemoryContextStrdup(TopMemoryContext, server->servername);
	if (conn->realpath)
		pfree(conn->realpath);
	conn->realpath = MemoryContextStrdup(TopMemoryContext, real);
	conn->busy_timeout_ms = opts->busy_timeout_ms;
	conn->invalidated = false;

	if (stat(real, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open SQLite file of server \"%s\": %m", server->servername),
				 errdetail("File \"%s\".", real)));
	if (!S_ISREG(st.st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("SQLite file of server \"%s\" is not a regular file", server->servername),
				 errdetail("Path \"%s\".", real)));

	/*
	 * read-only (or read-write, never created), and refuse a symlink swapped
	 * in after the path was resolved; opening reads nothing yet
	 */
	open_hardened(conn, real, flags, "open the SQLite file");

	/*
	 * A WAL file nobody has open is opened again, immutable (a write
	 * connection locks the file properly: never).  SQLite's own close keeps
	 * the descriptor while another connection of this process holds a lock
	 * on the file.
	 */
	PG_TRY();
	{
		conn->immutable = !write && needs_immutable_open(conn);
	}
	PG_CATCH();
	{
		owsync_close(conn);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (conn->immutable)
	{
		sqlite3_close_v2(conn->db);
		conn->db = NULL;
		open_hardened(conn, immutable_uri(real), flags | SQLITE_OPEN_URI, "open the SQLite file");
	}
	/*
	 * A write transaction keeps its changes in memory until COMMIT: spilling
	 * them to the file earlier needs an exclusive lock, which another reader
	 * (a shared lock in rollback-journal mode) would block until the busy
	 * timeout.
	 */
	if (write && (rc = sqlite3_exec(conn->db, "PRAGMA cache_spill = OFF", NULL, NULL, NULL)) != SQLITE_OK)
		fail_and_close(conn, rc, "configure the write connection");
	configure_handle(conn);
	conn->st = st;
}

/*
 * What every cached handle gets, on the file or on a copy of it:
 * owsync_digest(), the busy and progress handlers, and the authorizer
 * (set last).
 */
static void
configure_handle(OwsyncConn *conn)
{
	if (owsync_register_digest(conn->db) != SQLITE_OK)
	{
		owsync_close(conn);
		elog(ERROR, "could not register owsync_digest() on a SQLite connection");
	}
	sqlite3_busy_handler(conn->db, owsync_busy_handler, conn);
	sqlite3_progress_handler(conn->db, OWSYNC_PROGRESS_OPS, owsync_progress_handler, NULL);
	sqlite3_set_authorizer(conn->db, owsync_authorizer, conn);
}

/*
 * A connection of its own, outside the cache and any transaction, on a new
 * file the caller created and alone uses (restore writes through one):
 * opened read-write and never created, hardened like every connection, with
 * the caller's authorizer; no busy wait (nobody else has the file), no
 * progress handler, no owsync_digest().  label names it in messages.  The
 * caller closes it with owsync_close_private.
 */
OwsyncConn *
owsync_open_private(const char *label, const char *path, OwsyncAuthorizer authorizer)
{
	OwsyncConn *conn = palloc0(sizeof(OwsyncConn));

	conn->servername = pstrdup(label);
	conn->realpath = pstrdup(path);
	conn->busy_timeout_ms = 0;
	open_hardened(conn, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX,
				  "open the restored file");
	sqlite3_set_authorizer(conn->db, authorizer, NULL);
	return conn;
}

/*
 * Close a private connection.  With check, a failure to close (statements
 * left, the file not written) is reported; without, the handle is closed
 * whatever it holds (error paths).
 */
void
owsync_close_private(OwsyncConn *conn, bool check)
{
	int			rc;

	if (conn->db == NULL)
		return;
	if (!check)
	{
		sqlite3_close_v2(conn->db);
		conn->db = NULL;
		return;
	}
	rc = sqlite3_close(conn->db);
	conn->db = NULL;
	if (rc != SQLITE_OK)
		owsync_sqlite_error(conn, rc, "close the restored file");
}

/*
 * Memory for facts read in the current snapshot (planning facts, a table's
 * key hashes): they are only good within it, and freed when it ends.
 */
MemoryContext
owsync_snapshot_context(OwsyncConn *conn)
{
	if (conn->cachecxt == NULL)
		conn->cachecxt = AllocSetContextCreate(TopMemoryContext, "owsync_fdw snapshot facts",
											   ALLOCSET_SMALL_SIZES);
	return conn->cachecxt;
}

/*
 * Stop reading a copy: its handle closed (its statements finalized), the
 * handle on the file read again, the temporary file deleted.  Never throws.
 */
static void
drop_copy(OwsyncConn *conn)
{
	if (conn->filedb != NULL)
	{
		if (conn->db != NULL)
		{
			sqlite3_stmt *stmt;

			while ((stmt = sqlite3_next_stmt(conn->db, NULL)) != NULL)
				sqlite3_finalize(stmt);
			sqlite3_close_v2(conn->db);
		}
		conn->db = conn->filedb;
		conn->filedb = NULL;
		conn->generation++;
	}
	if (conn->copy > 0)
		FileClose(conn->copy);
	conn->copy = 0;
}

static void
forget_snapshot_facts(OwsyncConn *conn)
{
	if (conn->cachecxt)
		MemoryContextReset(conn->cachecxt);
	conn->tableinfo = NIL;
	conn->keyscan = NULL;
}

static void
owsync_close(OwsyncConn *conn)
{
	drop_copy(conn);
	if (conn->db)
	{
		sqlite3_stmt *stmt;

		while ((stmt = sqlite3_next_stmt(conn->db, NULL)) != NULL)
			sqlite3_finalize(stmt);
		sqlite3_close_v2(conn->db);
	}
	conn->db = NULL;
	conn->xact_open = false;
	conn->unchecked = false;
	conn->superseded = false;
	conn->write_depth = 0;
	conn->write_lost = false;
	conn->generation++;
	forget_snapshot_facts(conn);
}

/*
 * A marker that changes whenever a transaction commits to the file: for the
 * database and its WAL, the inode, size and modification time (every write
 * updates it, to the nanosecond on ext4, xfs, btrfs, tmpfs), and from their
 * content, the database header's change counter (bytes 24-27, bumped by every
 * commit in rollback-journal mode) and the WAL's salts (a restart of the WAL
 * changes them).  SQLite does not bump the change counter in WAL mode, so a
 * writer that commits, checkpoints and deletes its WAL leaves counter and
 * size as they were: the modification time tells.  Read just before a
 * snapshot is taken, a commit in between only makes the next marker differ:
 * equal markers mean nothing was committed since the earlier snapshot.
 */
static char *
change_marker(sqlite3 *filedb, const char *path)
{
	unsigned char db[28];
	unsigned char wal[24];
	char	   *walpath = psprintf("%s-wal", path);
	struct stat dbst,
				walst;
	int			fd;
	bool		have_db,
				have_wal = false;

	/*
	 * The database file through SQLite's handle (see read_db_header); the
	 * -wal by a descriptor of our own, which is safe: SQLite takes no lock
	 * on it.
	 */
	have_db = stat(path, &dbst) == 0 && read_db_header(filedb, db, sizeof(db));
	if ((fd = open(walpath, O_RDONLY | O_NOFOLLOW | PG_BINARY)) >= 0)
	{
		have_wal = fstat(fd, &walst) == 0 && read(fd, wal, sizeof(wal)) == sizeof(wal);
		close(fd);
	}
	pfree(walpath);
	if (!have_db)
		return NULL;			/* unknown: never equal */
	return psprintf("db %llu %lld %lld.%09ld %02x%02x%02x%02x wal %llu %lld %lld.%09ld %02x%02x%02x%02x%02x%02x%02x%02x",
					(unsigned long long) dbst.st_ino, (long long) dbst.st_size,
					(long long) dbst.st_mtim.tv_sec, (long) dbst.st_mtim.tv_nsec,
					db[24], db[25], db[26], db[27],
					have_wal ? (unsigned long long) walst.st_ino : 0ULL,
					have_wal ? (long long) walst.st_size : -1LL,
					have_wal ? (long long) walst.st_mtim.tv_sec : 0LL,
					have_wal ? (long) walst.st_mtim.tv_nsec : 0L,
					have_wal ? wal[16] : 0, have_wal ? wal[17] : 0,
					have_wal ? wal[18] : 0, have_wal ? wal[19] : 0,
					have_wal ? wal[20] : 0, have_wal ? wal[21] : 0,
					have_wal ? wal[22] : 0, have_wal ? wal[23] : 0);
}

/*
 * Begin a read transaction on conn->db and take its snapshot now (a
 * deferred BEGIN takes it at the first read).
 */
static void
begin_read(OwsyncConn *conn)
{
	int			rc;
	sqlite3_stmt *stmt;

	rc = sqlite3_exec(conn->db, "BEGIN", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		owsync_sqlite_error(conn, rc, "begin a read transaction");
	conn->xact_open = true;

	stmt = owsync_prepare(conn, "SELECT count(*) FROM sqlite_master");
	PG_TRY();
	{
		owsync_step(conn, stmt, "read the schema");
	}
	PG_FINALLY();
	{
		sqlite3_finalize(stmt);
	}
	PG_END_TRY();
}

/* Is the file of this handle in rollback-journal mode (header bytes 18-19)? */
static bool
rollback_journal_mode(sqlite3 *db)
{
	unsigned char header[20];

	return read_db_header(db, header, sizeof(header)) && header[18] == 1 && header[19] == 1;
}

/*
 * Copy the file of conn->db, whose read transaction holds its shared lock,
 * into a new temporary file (conn->copy), through SQLite's own handle.
 */
static void
copy_locked_file(OwsyncConn *conn)
{
	sqlite3_file *file = NULL;
	sqlite3_int64 size;
	sqlite3_int64 off;
	const int	chunk = 1024 * 1024;
	char	   *buf;
	ResourceOwner owner = CurrentResourceOwner;

	if (sqlite3_file_control(conn->db, "main", SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK ||
		file == NULL || file->pMethods == NULL ||
		file->pMethods->xFileSize(file, &size) != SQLITE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_IO_ERROR),
				 errmsg("could not read the size of the SQLite file of server \"%s\"",
						conn->servername),
				 errdetail("File \"%s\".", conn->realpath)));

	/*
	 * Where temp_tablespaces says; owned by the transaction, not by a
	 * subtransaction, since the copy serves them all
	 */
	PrepareTempTablespaces();
	CurrentResourceOwner = TopTransactionResourceOwner;
	PG_TRY();
	{
		conn->copy = OpenTemporaryFile(false);
	}
	PG_FINALLY();
	{
		CurrentResourceOwner = owner;
	}
	PG_END_TRY();

	buf = palloc(chunk);
	for (off = 0; off < size; off += chunk)
	{
		int			n = (int) Min((sqlite3_int64) chunk, size - off);
		int			rc = file->pMethods->xRead(file, buf, n, off);

		CHECK_FOR_INTERRUPTS();
		if (rc != SQLITE_OK)
			owsync_sqlite_error(conn, rc, "copy the file");
		if (FileWrite(conn->copy, buf, n, off, PG_WAIT_EXTENSION) != n)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not write the copy of the SQLite file of server \"%s\": %m",
							conn->servername),
					 errdetail("Temporary file \"%s\", %lld of %lld bytes written.",
							   FilePathName(conn->copy), (long long) off, (long long) size)));
	}
	pfree(buf);
}

/*
 * Read a copy of the file instead of the file: copy it under the read
 * transaction just begun on it, end that transaction (the writer waited for
 * the copy only), and begin one on the copy, opened immutable.
 */
static void
read_from_copy(OwsyncConn *conn)
{
	char	   *marker;

	copy_locked_file(conn);
	/* under the lock, the marker is exactly the copy's state */
	marker = change_marker(conn->db, conn->realpath);
	if (conn->marker)
		pfree(conn->marker);
	conn->marker = marker ? MemoryContextStrdup(TopMemoryContext, marker) : NULL;
	if (sqlite3_exec(conn->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
		owsync_sqlite_error(conn, sqlite3_extended_errcode(conn->db), "end the read transaction");
	conn->xact_open = false;

	conn->filedb = conn->db;
	conn->db = NULL;
	open_hardened(conn, immutable_uri(FilePathName(conn->copy)),
				  SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI,
				  "open the copy of the file");
	configure_handle(conn);
	begin_read(conn);
}

/*
 * Take the transaction's snapshot: a read transaction on the file, or, in
 * rollback-journal mode, on a copy of it (see the file header).
 */
static void
owsync_begin_snapshot(OwsyncConn *conn)
{
	char	   *marker = change_marker(conn->db, conn->realpath);

	if (conn->marker)
		pfree(conn->marker);
	conn->marker = marker ? MemoryContextStrdup(TopMemoryContext, marker) : NULL;

	begin_read(conn);
	if (!conn->immutable && rollback_journal_mode(conn->db))
		read_from_copy(conn);
}

sqlite3_stmt *
owsync_prepare(OwsyncConn *conn, const char *sql)
{
	sqlite3_stmt *stmt = NULL;
	int			rc;

	rc = sqlite3_prepare_v2(conn->db, sql, -1, &stmt, NULL);
	if (rc != SQLITE_OK)
	{
		const char *msg = sqlite3_errmsg(conn->db);

		CHECK_FOR_INTERRUPTS();
		if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_INTERRUPT)
			owsync_sqlite_error(conn, rc, "prepare a statement");
		ereport(ERROR,
				(errcode(owsync_sqlstate(rc, msg)),
				 errmsg("could not prepare SQLite statement on server \"%s\": %s",
						conn->servername, msg),
				 errdetail("Statement: %s", sql)));
	}
	return stmt;
}

/*
 * Step a statement; returns SQLITE_ROW or SQLITE_DONE, reports anything else
 * (the statement stays owned by the caller, who finalizes it).
 */
int
owsync_step(OwsyncConn *conn, sqlite3_stmt *stmt, const char *what)
{
	int			rc = sqlite3_step(stmt);

	conn->unchecked = true;
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return rc;
	owsync_sqlite_error(conn, rc, what);
}

void
owsync_finalize(sqlite3_stmt *stmt)
{
	if (stmt)
		sqlite3_finalize(stmt);
}

/* Finalize the statements left on a connection (scans not run to their end). */
static void
finalize_all(OwsyncConn *conn)
{
	sqlite3_stmt *stmt;

	while ((stmt = sqlite3_next_stmt(conn->db, NULL)) != NULL)
		sqlite3_finalize(stmt);
	conn->generation++;
}

/*
 * End a read connection's read transaction (deleting the copy it read, if
 * any); never throws.
 */
static void
end_read_transaction(OwsyncConn *conn)
{
	if (conn == NULL)
		return;
	if (conn->filedb != NULL)
		conn->xact_open = false;	/* it was the copy's; the file's handle has none */
	drop_copy(conn);
	if (conn->db != NULL && conn->xact_open)
	{
		finalize_all(conn);
		if (sqlite3_exec(conn->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
		{
			ereport(WARNING,
					(errmsg("could not end SQLite read transaction on server \"%s\": %s",
							conn->servername, sqlite3_errmsg(conn->db)),
					 errdetail("The connection was closed.")));
			owsync_close(conn);
		}
	}
	conn->xact_open = false;
	conn->unchecked = false;
	conn->superseded = false;
	forget_snapshot_facts(conn);
	if (conn->invalidated)
		owsync_close(conn);
}

/* The write connections with a write transaction open at level >= level. */
static List *
open_writers(int level)
{
	HASH_SEQ_STATUS scan;
	OwsyncConn *conn;
	List	   *writers = NIL;

	if (ConnectionHash == NULL)
		return NIL;
	hash_seq_init(&scan, ConnectionHash);
	while ((conn = (OwsyncConn *) hash_seq_search(&scan)) != NULL)
		if (conn->key.write && conn->db != NULL && conn->write_depth >= level)
			writers = lappend(writers, conn);
	return writers;
}

/*
 * PRE_COMMIT: commit every SQLite write transaction.  The server's read
 * transaction in this backend ends first (in rollback-journal mode its
 * shared lock would block the commit).  An error aborts the PostgreSQL
 * transaction, whose abort then rolls back the writes not yet committed.
 */
static void
commit_writes(void)
{
	List	   *writers = open_writers(1);
	ListCell   *lc;

	foreach(lc, writers)
	{
		OwsyncConn *conn = lfirst(lc);
		int			rc;

		end_read_transaction(lookup_connection(conn->key.serverid, false, false));
		finalize_all(conn);
		check_write_not_lost(conn);
		if (sqlite3_get_autocommit(conn->db))
			ereport(ERROR,
					(errcode(ERRCODE_TRANSACTION_ROLLBACK),
					 errmsg("SQLite write transaction on server \"%s\" was rolled back by SQLite",
							conn->servername),
					 errdetail("SQLite ends a transaction after some errors (disk full, I/O error, out of memory); none of its writes were kept.")));
		rc = sqlite3_exec(conn->db, "COMMIT", NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			owsync_sqlite_error(conn, rc, "commit the write transaction");
		owsync_close(conn);
	}
	list_free(writers);
}

/*
 * End of a PostgreSQL transaction: end the SQLite read transaction of every
 * connection used in it, and roll back and close write connections (a
 * commit committed them at PRE_COMMIT).  Statements of scans that did not
 * reach their end (errors, LIMIT in a cursor left open) are finalized first.
 * This runs in commit and abort paths alike, so it never throws.
 */
static void
owsync_xact_callback(XactEvent event, void *arg)
{
	HASH_SEQ_STATUS scan;
	OwsyncConn *conn;

	if (event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PRE_PREPARE)
	{
		check_unchecked_reads();
		if (event == XACT_EVENT_PRE_PREPARE && open_writers(1) != NIL)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot prepare a transaction that wrote to a SQLite file")));
		commit_writes();
		return;
	}
	/* a prepared transaction ends the session's snapshot like a commit */
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PREPARE &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT)
		return;

	hash_seq_init(&scan, ConnectionHash);
	while ((conn = (OwsyncConn *) hash_seq_search(&scan)) != NULL)
	{
		if (conn->key.write && conn->db != NULL)
		{
			finalize_all(conn);
			if (conn->write_depth > 0)
				(void) sqlite3_exec(conn->db, "ROLLBACK", NULL, NULL, NULL);
			owsync_close(conn);
		}
		else
			end_read_transaction(conn);
	}
}

/*
 * End of a subtransaction: release its SQLite savepoint, or roll the write
 * connection back to it.  A rollback that fails leaves the SQLite
 * transaction out of step with PostgreSQL's: it is marked lost and can only
 * abort.
 */
static void
owsync_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	int			level = GetCurrentTransactionNestLevel();
	List	   *writers;
	ListCell   *lc;

	if (event != SUBXACT_EVENT_PRE_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB)
		return;
	writers = open_writers(level);
	foreach(lc, writers)
	{
		OwsyncConn *conn = lfirst(lc);
		char		sql[80];
		int			rc;

		if (event == SUBXACT_EVENT_PRE_COMMIT_SUB && !conn->write_lost)
		{
			/* on failure the subtransaction aborts, and rolls back to it */
			snprintf(sql, sizeof(sql), "RELEASE SAVEPOINT s%d", level);
			rc = sqlite3_exec(conn->db, sql, NULL, NULL, NULL);
			if (rc != SQLITE_OK)
				owsync_sqlite_error(conn, rc, "release a savepoint");
		}
		conn->write_depth = level - 1;
		if (event == SUBXACT_EVENT_PRE_COMMIT_SUB || conn->write_lost)
			continue;
		snprintf(sql, sizeof(sql), "ROLLBACK TO SAVEPOINT s%d; RELEASE SAVEPOINT s%d",
				 level, level);
		if (sqlite3_exec(conn->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		{
			conn->write_lost = true;
			ereport(WARNING,
					(errmsg("could not roll back SQLite savepoint on server \"%s\": %s",
							conn->servername, sqlite3_errmsg(conn->db)),
					 errdetail("The transaction can only be rolled back now.")));
		}
	}
	list_free(writers);
}

/* Server options changed (or the server was dropped): reopen next time. */
static void
owsync_inval_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	HASH_SEQ_STATUS scan;
	OwsyncConn *conn;

	hash_seq_init(&scan, ConnectionHash);
	while ((conn = (OwsyncConn *) hash_seq_search(&scan)) != NULL)
	{
		if (hashvalue == 0 || conn->server_hashvalue == hashvalue)
			conn->invalidated = true;
	}
}

/*
 * A server named by a SQL function's argument: it must use owsync_fdw, and
 * the current role needs USAGE on it (as for reading its foreign tables).
 */
ForeignServer *
owsync_usable_server(const char *name)
{
	ForeignServer *server = GetForeignServerByName(name, false);
	AclResult	aclresult;

	if (strcmp(GetForeignDataWrapper(server->fdwid)->fdwname, "owsync_fdw") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" does not use owsync_fdw", server->servername)));
	aclresult = pg_foreign_server_aclcheck(server->serverid, GetUserId(), ACL_USAGE);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FOREIGN_SERVER, server->servername);
	return server;
}

/* One integer or text pragma, in the connection's snapshot. */
static char *
read_pragma(OwsyncConn *conn, const char *sql)
{
	sqlite3_stmt *stmt = owsync_prepare(conn, sql);
	char	   *value = NULL;

	PG_TRY();
	{
		if (owsync_step(conn, stmt, "read the file's header") == SQLITE_ROW)
			value = pstrdup((const char *) sqlite3_column_text(stmt, 0));
	}
	PG_FINALLY();
	{
		sqlite3_finalize(stmt);
	}
	PG_END_TRY();
	return value;
}

/*
 * owsync.source_info(server): facts about a server's SQLite file, read in
 * the transaction's snapshot: journal mode (as Open WebUI set it: a file
 * opened immutable is a WAL file, see above), schema version (changes with
 * every schema change: the sync compares it to notice drift), user version,
 * size in pages, and the change marker read when the snapshot was taken
 * (see change_marker).  Needs USAGE on the server.
 */
PG_FUNCTION_INFO_V1(owsync_source_info);

Datum
owsync_source_info(PG_FUNCTION_ARGS)
{
	ForeignServer *server = owsync_usable_server(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	OwsyncConn *conn;
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};
	char	   *mode;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	conn = owsync_get_connection(server);
	mode = conn->immutable ? pstrdup("wal") : read_pragma(conn, "PRAGMA journal_mode");
	values[0] = CStringGetTextDatum(mode ? mode : "unknown");
	values[1] = Int64GetDatum(pg_strtoint64(read_pragma(conn, "PRAGMA schema_version")));
	values[2] = Int64GetDatum(pg_strtoint64(read_pragma(conn, "PRAGMA user_version")));
	values[3] = Int64GetDatum(pg_strtoint64(read_pragma(conn, "PRAGMA page_count")));
	if (conn->marker)
		values[4] = CStringGetTextDatum(conn->marker);
	else
		nulls[4] = true;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * owsync.source_marker(server): the change marker of a server's SQLite file
 * (see change_marker): the one the transaction's snapshot was taken at, or,
 * before the transaction reads the server, the file's now, read without a
 * snapshot (no lock, no copy: a run that finds nothing committed since the
 * last one reads nothing more).  NULL when the header cannot be read.
 * Needs USAGE on the server.
 */
PG_FUNCTION_INFO_V1(owsync_source_marker);

Datum
owsync_source_marker(PG_FUNCTION_ARGS)
{
	ForeignServer *server = owsync_usable_server(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	OwsyncConn *conn = lookup_connection(server->serverid, false, true);
	char	   *marker;

	if (conn->xact_open)
		marker = conn->marker;
	else
	{
		conn = open_read_connection(server);
		marker = change_marker(conn->db, conn->realpath);
	}
	if (marker == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(marker));
}

/*
 * owsync._close_sources(): this session's read connections that no
 * transaction is reading, closed; returns how many.  A dispatcher of the
 * scheduled syncs runs many clients in one backend and calls it after each
 * client's run, so that it holds no client's file open past its run, as a
 * backend that ran a single client did by exiting: otherwise each client
 * keeps a descriptor or three (the file, its -wal and -shm) and a few
 * hundred clients exhaust the process's limit.
 */
PG_FUNCTION_INFO_V1(owsync_close_sources);

Datum
owsync_close_sources(PG_FUNCTION_ARGS)
{
	HASH_SEQ_STATUS scan;
	OwsyncConn *conn;
	int32		closed = 0;

	if (ConnectionHash == NULL)
		PG_RETURN_INT32(0);
	hash_seq_init(&scan, ConnectionHash);
	while ((conn = (OwsyncConn *) hash_seq_search(&scan)) != NULL)
	{
		if (!conn->key.write && conn->db != NULL && !conn->xact_open)
		{
			owsync_close(conn);
			closed++;
		}
	}
	PG_RETURN_INT32(closed);
}

/*
 * owsync._check_reads(): every read of this transaction not checked since
 * it ran, checked now: a serialization failure when a writer overtook a
 * read of a file opened immutable (see the file header).  A run calls it at
 * its end, inside its subtransaction, so that such a read fails the run,
 * recorded, and not the commit after it.
 */
PG_FUNCTION_INFO_V1(owsync_check_reads);

Datum
owsync_check_reads(PG_FUNCTION_ARGS)
{
	check_unchecked_reads();
	PG_RETURN_VOID();
}

/*
 * owsync._renew_overtaken_reads(): the read transactions of files opened
 * immutable that a writer has written since, ended, so that the next read
 * of each takes a new snapshot; true when there was one.  Only for a caller
 * whose reads of those files were all rolled back (a run retried after its
 * subtransaction failed): the transaction keeps nothing read in the old one.
 */
PG_FUNCTION_INFO_V1(owsync_renew_overtaken_reads);

Datum
owsync_renew_overtaken_reads(PG_FUNCTION_ARGS)
{
	HASH_SEQ_STATUS scan;
	OwsyncConn *conn;
	bool		renewed = false;

	if (ConnectionHash == NULL)
		PG_RETURN_BOOL(false);
	hash_seq_init(&scan, ConnectionHash);
	while ((conn = (OwsyncConn *) hash_seq_search(&scan)) != NULL)
	{
		if (!conn->key.write && read_overtaken(conn))
		{
			end_read_transaction(conn);
			renewed = true;
		}
	}
	PG_RETURN_BOOL(renewed);
}
