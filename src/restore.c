/*-------------------------------------------------------------------------
 *
 * restore.c
 *		Write PostgreSQL relations out as a new SQLite file, verified.
 *
 * owsync._write_sqlite() is the one writer behind owsync.restore (a
 * client's mirror, with the DDL captured from its source) and
 * owsync.restore_from_schema (a schema Open WebUI created on PostgreSQL,
 * with DDL generated for it).  It gets the statements to replay and, for
 * each SQLite table, the relation holding its rows, and goes through four
 * steps:
 *
 *	create	a file beside the target under a temporary name (O_EXCL);
 *	write	the statements replayed in their order, so that sqlite_master
 *			reads as the source's did, then every relation's rows copied in
 *			one SQLite transaction (the journal in memory and no syncs: until
 *			the rename, the file is nobody's), each value bound in its SQLite
 *			form (owsync_bind_value), columns matched by name;
 *	verify	PRAGMA integrity_check, then every table read back through the
 *			wrapper's own read conversion (owsync_convert_value) must give
 *			the same number of rows and the same sum of row hashes as the
 *			rows written;
 *	publish	the journal mode set (WAL for Open WebUI), the file fsynced and
 *			renamed to the target (without overwrite, with
 *			renameat2(RENAME_NOREPLACE): a file that appeared meanwhile is
 *			not replaced either), and the directory fsynced.
 *
 * Any error removes the temporary file, so the target is either the
 * complete, checked file or untouched.  A backend killed on the way leaves
 * only the temporary file (named after the target and the backend's pid),
 * never a file at the target.
 *
 *-------------------------------------------------------------------------
 */
#include "owsync_fdw.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "access/detoast.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "utils/datum.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

/* rows fetched from a relation at a time */
#define RESTORE_BATCH 1000

/* One SQLite table to fill and the relation its rows come from. */
typedef struct RestoreTable
{
	char	   *name;			/* SQLite table */
	Oid			relid;			/* PostgreSQL relation */
	int			ncols;
	char	  **colnames;		/* SQLite columns, in their order */
	OwsyncColumn *cols;			/* the relation's column of the same name */
	bool	   *byval;			/* the columns' types: by value? */
	int16	   *typlen;			/* their lengths */
	int64		rows;			/* rows written */
	uint64		hash;			/* sum of the written rows' hashes */
	uint64	   *colhash;		/* by column, the sum of its values' hashes */
	List	   *left_out;		/* the relation's columns the table has not */
	bool	   *renumber;		/* json columns of NUMERIC affinity: SQLite
								 * stores a JSON number there as a number */
	int64		renumbered;		/* JSON numbers SQLite stores in a form of its
								 * own, equal in value (1.0 as 1) */
} RestoreTable;

/*
 * The hash of a row's values as PostgreSQL holds them: by-value types by
 * their Datum, others by their bytes, NULL by a tag; each value's hash is
 * also added to its column's sum, so that a difference can be named.  Both
 * sides of the check (the relation's rows, the file's rows read back) are
 * hashed here.
 */
static uint64
value_hash(RestoreTable *t, int i, Datum value, bool isnull)
{
	if (isnull)
		return 0x9e3779b97f4a7c15ULL;
	if (t->byval[i])
		return XXH3_64bits(&value, sizeof(Datum));
	if (t->typlen[i] == -1)
	{
		struct varlena *v = PG_DETOAST_DATUM_PACKED(value);

		return XXH3_64bits(VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
	}
	return XXH3_64bits(DatumGetPointer(value), datumGetSize(value, false, t->typlen[i]));
}

/* A row's hash from its values' hashes, each also added to its column's sum. */
static inline uint64
add_value_hash(uint64 h, uint64 vh, uint64 *colsum)
{
	*colsum += vh;
	return h * 0x100000001b3ULL + vh;
}

static uint64
row_hash(RestoreTable *t, Datum *values, bool *nulls, uint64 *colhash)
{
	uint64		h = 0;

	for (int i = 0; i < t->ncols; i++)
		h = add_value_hash(h, value_hash(t, i, values[i], nulls[i]), &colhash[i]);
	return h;
}

/*
 * The SQLite storage class whose bytes are, unconverted, the payload of a
 * column's PostgreSQL values (text and json as TEXT in a UTF-8 database,
 * bytea as BLOB), or SQLITE_NULL for columns read back through conversion.
 */
static int
raw_class(OwsyncColumn *col)
{
	if ((col->kind == OWK_TEXT || col->kind == OWK_JSON) && GetDatabaseEncoding() == PG_UTF8)
		return SQLITE_TEXT;
	if (col->kind == OWK_BYTEA)
		return SQLITE_BLOB;
	return SQLITE_NULL;
}

/* Run one statement that returns no row. */
static void
exec_sqlite(OwsyncConn *conn, const char *sql, const char *what)
{
	sqlite3_stmt *stmt = owsync_prepare(conn, sql);

	PG_TRY();
	{
		owsync_step(conn, stmt, what);
	}
	PG_FINALLY();
	{
		sqlite3_finalize(stmt);
	}
	PG_END_TRY();
}

/*
 * The restore connection may build its own file, nothing else: no ATTACH,
 * no loading of extensions (also disabled), no other file reached.
 */
static int
restore_authorizer(void *arg, int action, const char *a1, const char *a2,
				   const char *a3, const char *a4)
{
	if (action == SQLITE_ATTACH || action == SQLITE_DETACH)
		return SQLITE_DENY;
	return SQLITE_OK;
}

/*
 * Replay one captured statement.  Its text comes from the tenant's file, so
 * it must be exactly one CREATE statement of the kind sqlite_master says.
 */
static void
replay_ddl(OwsyncConn *conn, const char *sql, const char *label)
{
	sqlite3_stmt *stmt = NULL;
	const char *tail = NULL;
	int			rc;

	if (pg_strncasecmp(sql, "CREATE ", 7) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("schema entry %s is not a CREATE statement", label),
				 errdetail("Statement: %.200s", sql)));
	rc = sqlite3_prepare_v2(conn->db, sql, -1, &stmt, &tail);
	if (rc == SQLITE_OK && tail && strspn(tail, " \t\r\n;") != strlen(tail))
	{
		sqlite3_finalize(stmt);
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("schema entry %s holds more than one statement", label),
				 errdetail("Statement: %.200s", sql)));
	}
	if (rc != SQLITE_OK)
		ereport(ERROR,
				(errcode(owsync_sqlstate(rc, sqlite3_errmsg(conn->db))),
				 errmsg("could not create %s in the restored file: %s", label, sqlite3_errmsg(conn->db)),
				 errdetail("Statement: %.200s", sql)));
	PG_TRY();
	{
		owsync_step(conn, stmt, "create the schema");
	}
	PG_FINALLY();
	{
		sqlite3_finalize(stmt);
	}
	PG_END_TRY();
}

/*
 * Match the SQLite table's columns (PRAGMA table_info) with the relation's,
 * by name; with leave_out, the relation's columns the table has not are
 * listed in t->left_out, else refused.
 */
static void
plan_table(OwsyncConn *conn, RestoreTable *t, bool leave_out)
{
	sqlite3_stmt *stmt;
	Relation	rel = relation_open(t->relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *names = NIL;
	ListCell   *lc;
	int			i;

	stmt = owsync_prepare(conn, "SELECT name FROM pragma_table_info(?1) ORDER BY cid");
	PG_TRY();
	{
		sqlite3_bind_text(stmt, 1, t->name, -1, SQLITE_STATIC);
		while (owsync_step(conn, stmt, "read a table's columns") == SQLITE_ROW)
			names = lappend(names, pstrdup((const char *) sqlite3_column_text(stmt, 0)));
	}
	PG_FINALLY();
	{
		sqlite3_finalize(stmt);
	}
	PG_END_TRY();

	t->ncols = list_length(names);
	t->colnames = palloc(sizeof(char *) * t->ncols);
	t->cols = palloc0(sizeof(OwsyncColumn) * t->ncols);
	t->byval = palloc(sizeof(bool) * t->ncols);
	t->colhash = palloc0(sizeof(uint64) * t->ncols);
	t->typlen = palloc(sizeof(int16) * t->ncols);
	i = 0;
	foreach(lc, names)
	{
		char	   *name = lfirst(lc);
		int			a;

		t->colnames[i] = name;
		for (a = 0; a < desc->natts; a++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, a);

			if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
				break;
		}
		if (a == desc->natts)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of SQLite table \"%s\" has no column in \"%s\"",
							name, t->name, RelationGetRelationName(rel)),
					 errdetail("The file's schema and the relation holding its rows disagree."),
					 errhint("Sync the client again, so that its captured schema matches its mirror.")));
		owsync_init_column(&t->cols[i], a + 1, name, TupleDescAttr(desc, a)->atttypid,
						   TupleDescAttr(desc, a)->atttypmod);
		get_typlenbyval(t->cols[i].typid, &t->typlen[i], &t->byval[i]);
		i++;
	}
	/*
	 * every column of the relation must reach the file (owsync_* are
	 * owsync's own), unless the caller may leave columns out: they are listed
	 */
	for (int a = 0; a < desc->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);
		bool		found = false;

		if (att->attisdropped || strncmp(NameStr(att->attname), "owsync_", 7) == 0)
			continue;
		for (i = 0; i < t->ncols && !found; i++)
			found = strcmp(t->colnames[i], NameStr(att->attname)) == 0;
		if (!found && leave_out)
			t->left_out = lappend(t->left_out, pstrdup(NameStr(att->attname)));
		else if (!found)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" of \"%s\" has no column in SQLite table \"%s\"",
							NameStr(att->attname), RelationGetRelationName(rel), t->name),
					 errdetail("Its values would be lost."),
					 errhint("Sync the client again, so that its captured schema matches its mirror.")));
	}
	relation_close(rel, AccessShareLock);
	if (t->ncols == 0)
		elog(ERROR, "SQLite table \"%s\" has no columns", t->name);
	t->renumber = palloc0(sizeof(bool) * t->ncols);
	for (i = 0; i < t->ncols; i++)
	{
		const char *decl = NULL;

		if ((t->cols[i].typid == JSONOID || t->cols[i].typid == JSONBOID) &&
			sqlite3_table_column_metadata(conn->db, "main", t->name, t->colnames[i], &decl,
										  NULL, NULL, NULL, NULL) == SQLITE_OK)
			t->renumber[i] = owsync_affinity(decl) == OWA_NUMERIC;
	}
}

/*
 * A JSON number as the file holds it, when SQLite's NUMERIC affinity stores
 * it in a form of its own that is equal in value (the text 1.0 becomes the
 * integer 1, as it does when Open WebUI itself writes it): that form, read
 * back as the check will read it; else the value as given.  probe is
 * "REPLACE INTO temp.owsync_number ... RETURNING x", a NUMERIC column.
 */
static Datum
as_sqlite_stores(OwsyncConn *conn, RestoreTable *t, int col, Datum value, sqlite3_stmt *probe,
				 OwsyncRowRef *ref)
{
	char	   *given;
	Datum		stored;
	bool		isnull;
	char	   *back;

	/*
	 * A bare JSON number is short: a longer value (a chat's JSON) is told
	 * from its header alone, not detoasted or printed for this (a number of
	 * more than 64 characters would not survive a double anyway)
	 */
	if (toast_raw_datum_size(value) > VARHDRSZ + 64)
		return value;
	given = t->cols[col].typid == JSONBOID
		? JsonbToCString(NULL, &DatumGetJsonbP(value)->root, VARSIZE(DatumGetPointer(value)))
		: text_to_cstring(DatumGetTextPP(value));
	if (!(given[0] == '-' || isdigit((unsigned char) given[0])))
		return value;			/* not a bare number: stored as given */
	owsync_bind_value(conn, probe, 1, value, t->cols[col].typid, false, false);
	if (owsync_step(conn, probe, "probe how SQLite stores a number") != SQLITE_ROW)
		elog(ERROR, "the number probe returned no row");
	ref->stmt = probe;
	stored = owsync_convert_value(&t->cols[col], probe, 0, &isnull, ref);
	sqlite3_reset(probe);
	back = t->cols[col].typid == JSONBOID
		? JsonbToCString(NULL, &DatumGetJsonbP(stored)->root, VARSIZE(DatumGetPointer(stored)))
		: text_to_cstring(DatumGetTextPP(stored));
	if (isnull || strcmp(back, given) == 0 ||
		!DatumGetBool(DirectFunctionCall2(numeric_eq,
										  DirectFunctionCall3(numeric_in, CStringGetDatum(given),
															  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)),
										  DirectFunctionCall3(numeric_in, CStringGetDatum(back),
															  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)))))
		return value;			/* lossy: the check refuses it */
	t->renumbered++;
	return stored;
}

/* Copy a relation's rows into its SQLite table. */
static void
copy_table(OwsyncConn *conn, RestoreTable *t)
{
	StringInfoData sql;
	sqlite3_stmt *ins;
	sqlite3_stmt *volatile probe = NULL;
	OwsyncRowRef ref = {conn->servername, t->name, NULL, 0, NULL, NULL};
	Portal		portal;
	SPIPlanPtr	plan;
	MemoryContext rowcxt = AllocSetContextCreate(CurrentMemoryContext, "owsync restore row",
												 ALLOCSET_DEFAULT_SIZES);
	Datum	   *values = palloc(sizeof(Datum) * t->ncols);
	bool	   *nulls = palloc(sizeof(bool) * t->ncols);

	initStringInfo(&sql);
	appendStringInfoString(&sql, "INSERT INTO ");
	owsync_quote_ident(&sql, t->name);
	appendStringInfoString(&sql, " (");
	for (int i = 0; i < t->ncols; i++)
	{
		if (i > 0)
			appendStringInfoString(&sql, ", ");
		owsync_quote_ident(&sql, t->colnames[i]);
	}
	appendStringInfoString(&sql, ") VALUES (");
	for (int i = 0; i < t->ncols; i++)
		appendStringInfo(&sql, "%s?%d", i > 0 ? ", " : "", i + 1);
	appendStringInfoChar(&sql, ')');
	ins = owsync_prepare(conn, sql.data);
	probe = owsync_prepare(conn, "REPLACE INTO temp.owsync_number (rowid, x) VALUES (1, ?1) RETURNING x");

	resetStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	for (int i = 0; i < t->ncols; i++)
		appendStringInfo(&sql, "%s%s", i > 0 ? ", " : "", quote_identifier(t->colnames[i]));
	appendStringInfo(&sql, " FROM %s",
					 quote_qualified_identifier(get_namespace_name(get_rel_namespace(t->relid)),
												get_rel_name(t->relid)));

	PG_TRY();
	{
		plan = SPI_prepare(sql.data, 0, NULL);
		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql.data, SPI_result_code_string(SPI_result));
		portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
		for (;;)
		{
			SPI_cursor_fetch(portal, true, RESTORE_BATCH);
			if (SPI_processed == 0)
				break;
			for (uint64 r = 0; r < SPI_processed; r++)
			{
				HeapTuple	tup = SPI_tuptable->vals[r];
				MemoryContext old = MemoryContextSwitchTo(rowcxt);

				CHECK_FOR_INTERRUPTS();
				for (int i = 0; i < t->ncols; i++)
				{
					values[i] = SPI_getbinval(tup, SPI_tuptable->tupdesc, i + 1, &nulls[i]);
					owsync_bind_value(conn, ins, i + 1, values[i], t->cols[i].typid, nulls[i], true);
					if (t->renumber[i] && !nulls[i])
						values[i] = as_sqlite_stores(conn, t, i, values[i], probe, &ref);
				}
				owsync_step(conn, ins, "write a row");
				sqlite3_reset(ins);
				t->hash += row_hash(t, values, nulls, t->colhash);
				t->rows++;
				MemoryContextSwitchTo(old);
				MemoryContextReset(rowcxt);
			}
			SPI_freetuptable(SPI_tuptable);
		}
		SPI_cursor_close(portal);
		SPI_freeplan(plan);
	}
	PG_FINALLY();
	{
		sqlite3_finalize(ins);
		sqlite3_finalize(probe);
	}
	PG_END_TRY();
	MemoryContextDelete(rowcxt);
}

/* Read a table back from the file as the wrapper reads a source: same rows? */
static void
check_table(OwsyncConn *conn, RestoreTable *t)
{
	StringInfoData sql;
	sqlite3_stmt *stmt;
	MemoryContext rowcxt = AllocSetContextCreate(CurrentMemoryContext, "owsync restore check",
												 ALLOCSET_DEFAULT_SIZES);
	Datum	   *values = palloc(sizeof(Datum) * t->ncols);
	bool	   *nulls = palloc(sizeof(bool) * t->ncols);
	OwsyncRowRef ref = {conn->servername, t->name, NULL, 0, NULL, NULL};
	int64		rows = 0;
	uint64		hash = 0;
	uint64	   *colhash = palloc0(sizeof(uint64) * t->ncols);
	int		   *raw = palloc(sizeof(int) * t->ncols);
	StringInfoData cols;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	for (int i = 0; i < t->ncols; i++)
	{
		if (i > 0)
			appendStringInfoString(&sql, ", ");
		owsync_quote_ident(&sql, t->colnames[i]);
	}
	appendStringInfoString(&sql, " FROM ");
	owsync_quote_ident(&sql, t->name);
	stmt = owsync_prepare(conn, sql.data);
	ref.stmt = stmt;
	PG_TRY();
	{
		for (int i = 0; i < t->ncols; i++)
			raw[i] = raw_class(&t->cols[i]);
		while (owsync_step(conn, stmt, "read the restored file back") == SQLITE_ROW)
		{
			MemoryContext old = MemoryContextSwitchTo(rowcxt);
			uint64		h = 0;

			CHECK_FOR_INTERRUPTS();
			for (int i = 0; i < t->ncols; i++)
			{
				uint64		vh;

				/*
				 * Text, json and bytea values of the class they were written
				 * as are their PostgreSQL payload byte for byte: hashed
				 * without conversion (a value SQLite changed hashes apart).
				 */
				if (raw[i] != SQLITE_NULL && sqlite3_column_type(stmt, i) == raw[i])
				{
					const void *p = raw[i] == SQLITE_TEXT ? (const void *) sqlite3_column_text(stmt, i) :
						sqlite3_column_blob(stmt, i);

					vh = XXH3_64bits(p, sqlite3_column_bytes(stmt, i));
				}
				else
				{
					values[i] = owsync_convert_value(&t->cols[i], stmt, i, &nulls[i], &ref);
					vh = value_hash(t, i, values[i], nulls[i]);
				}
				h = add_value_hash(h, vh, &colhash[i]);
			}
			hash += h;
			rows++;
			MemoryContextSwitchTo(old);
			MemoryContextReset(rowcxt);
		}
	}
	PG_FINALLY();
	{
		sqlite3_finalize(stmt);
	}
	PG_END_TRY();
	MemoryContextDelete(rowcxt);

	if (rows == t->rows && hash == t->hash)
		return;
	initStringInfo(&cols);
	for (int i = 0; i < t->ncols; i++)
		if (colhash[i] != t->colhash[i])
			appendStringInfo(&cols, "%s\"%s\"", cols.len ? ", " : "", t->colnames[i]);
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("restored table \"%s\" does not read back as written", t->name),
			 rows != t->rows ?
			 errdetail("Written: " INT64_FORMAT " rows; read back: " INT64_FORMAT ".", t->rows, rows) :
			 cols.len ?
			 errdetail("Values of column %s differ after the way to SQLite and back.", cols.data) :
			 errdetail("Values moved between rows."),
			 errhint("SQLite's column affinity changes some values (a JSON number with more digits than a double holds); the target was not written.")));
}

static void
check_integrity(OwsyncConn *conn)
{
	sqlite3_stmt *stmt = owsync_prepare(conn, "PRAGMA integrity_check");
	StringInfoData problems;

	initStringInfo(&problems);
	PG_TRY();
	{
		while (owsync_step(conn, stmt, "check the restored file") == SQLITE_ROW)
		{
			const char *line = (const char *) sqlite3_column_text(stmt, 0);

			if (strcmp(line, "ok") != 0 && problems.len < 1000)
				appendStringInfo(&problems, "%s%s", problems.len ? "; " : "", line);
		}
	}
	PG_FINALLY();
	{
		sqlite3_finalize(stmt);
	}
	PG_END_TRY();
	if (problems.len > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("restored file fails PRAGMA integrity_check"),
				 errdetail("%s", problems.data)));
}

static void
fsync_path(const char *path, bool isdir)
{
	int			fd = OpenTransientFile(path, isdir ? O_RDONLY : O_RDWR);

	if (fd < 0 || pg_fsync(fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not fsync \"%s\": %m", path)));
	CloseTransientFile(fd);
}

/* Is b the file sta describes (same device and inode)? */
static bool
same_file(const struct stat *sta, const char *b)
{
	struct stat stb;

	return stat(b, &stb) == 0 && sta->st_dev == stb.st_dev && sta->st_ino == stb.st_ino;
}

/*
 * Temporary files of earlier restores to the same target whose backend is
 * gone (killed on the way): removed.
 */
static void
remove_stale_temps(const char *real)
{
	char	   *dir = pstrdup(real);
	const char *base = last_dir_separator(real) + 1;
	char	   *prefix = psprintf("%s.owsync-restore-", base);
	DIR		   *d;
	struct dirent *de;

	get_parent_directory(dir);
	d = AllocateDir(dir);
	while ((de = ReadDir(d, dir)) != NULL)
	{
		int			pid;
		char		rest[16];

		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 ||
			sscanf(de->d_name + strlen(prefix), "%d%15s", &pid, rest) < 1 ||
			pid == MyProcPid || (kill(pid, 0) != 0 && errno != ESRCH))
			continue;
		if (kill(pid, 0) != 0)
			unlink(psprintf("%s/%s", dir, de->d_name));
	}
	FreeDir(d);
}

/* Remove the temporary file and what SQLite may have put beside it. */
static void
remove_temp(const char *tmp)
{
	unlink(tmp);
	unlink(psprintf("%s-journal", tmp));
	unlink(psprintf("%s-wal", tmp));
	unlink(psprintf("%s-shm", tmp));
}

/*
 * Check who asks and where the file goes; returns the target's real path.
 * The session's user decides (the SQL callers run as the extension's
 * owner): a superuser, or a member of pg_write_server_files.
 */
static char *
check_target(const char *target, bool overwrite, ArrayType *forbidden)
{
	Oid			who = GetSessionUserId();
	char	   *real;
	struct stat st;
	Datum	   *paths;
	bool	   *pnulls;
	int			npaths;
	char	   *wal;

	if (!superuser_arg(who) && !has_privs_of_role(who, ROLE_PG_WRITE_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to write SQLite file \"%s\"", target),
				 errdetail("Restoring writes a file on the database server."),
				 errhint("Only superusers and members of pg_write_server_files may restore.")));
	real = owsync_resolve_target_path(target, superuser_arg(who));

	deconstruct_array(forbidden, TEXTOID, -1, false, TYPALIGN_INT, &paths, &pnulls, &npaths);
	for (int i = 0; i < npaths; i++)
	{
		char	   *src;
		bool		same;

		if (pnulls[i])
			continue;
		src = realpath(TextDatumGetCString(paths[i]), NULL);
		same = (src && strcmp(src, real) == 0) ||
			(stat(real, &st) == 0 && same_file(&st, TextDatumGetCString(paths[i])));
		free(src);
		if (same)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("file \"%s\" is the source of a registered client", target),
					 errdetail("A restore never writes over a file owsync syncs from."),
					 errhint("Restore to a new path, then point the client at it with the option reattach.")));
	}
	if (stat(real, &st) == 0)
	{
		if (!overwrite)
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_FILE),
					 errmsg("file \"%s\" already exists", target),
					 errhint("Choose a new path, or pass overwrite => true to replace the file.")));
		wal = psprintf("%s-wal", real);
		if (stat(wal, &st) == 0 && st.st_size > 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("file \"%s\" has a write-ahead log that is not empty", target),
					 errdetail("\"%s\" holds %lld bytes: the file is in use or was not checkpointed.",
							   wal, (long long) st.st_size),
					 errhint("Stop whatever uses the file, or restore to a new path.")));
	}
	return real;
}

/* The arguments of owsync._write_sqlite, read and checked. */
typedef struct RestoreRequest
{
	char	   *target;			/* the file to write, as given */
	bool		overwrite;		/* may replace an existing file */
	char	   *label;			/* names the file in messages */
	int			nstmts;
	Datum	   *stmts;			/* the CREATE statements to replay, in order */
	Datum	   *stmt_labels;	/* what each creates, for messages */
	int			ntables;
	RestoreTable *tables;		/* each SQLite table and its relation */
	char	   *journal_mode;	/* the file's journal mode once written */
	ArrayType  *forbidden;		/* the files registered clients sync from */
	bool		leave_out;		/* relation columns without a SQLite column
								 * may be left out (listed), else refused */
} RestoreRequest;

/* Read the arguments; refuse nulls, arrays that do not pair up, unknown modes. */
static void
read_request(FunctionCallInfo fcinfo, RestoreRequest *req)
{
	Datum	   *names,
			   *rels;
	int			nlabels,
				nrels;

	/* a null overwrite means false */
	for (int i = 0; i < 10; i++)
		if (i != 1 && PG_ARGISNULL(i))
			elog(ERROR, "owsync._write_sqlite: arguments must not be null");
	req->leave_out = PG_GETARG_BOOL(9);
	req->target = text_to_cstring(PG_GETARG_TEXT_PP(0));
	req->overwrite = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	req->label = text_to_cstring(PG_GETARG_TEXT_PP(2));
	req->journal_mode = text_to_cstring(PG_GETARG_TEXT_PP(7));
	req->forbidden = PG_GETARG_ARRAYTYPE_P(8);
	if (strcmp(req->journal_mode, "wal") != 0 && strcmp(req->journal_mode, "delete") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("journal mode \"%s\" cannot be restored", req->journal_mode),
				 errhint("Use wal (Open WebUI's) or delete.")));
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(3), TEXTOID, -1, false, TYPALIGN_INT,
					  &req->stmts, NULL, &req->nstmts);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(4), TEXTOID, -1, false, TYPALIGN_INT,
					  &req->stmt_labels, NULL, &nlabels);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(5), TEXTOID, -1, false, TYPALIGN_INT,
					  &names, NULL, &req->ntables);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(6), REGCLASSOID, 4, true, TYPALIGN_INT,
					  &rels, NULL, &nrels);
	if (req->nstmts != nlabels || req->ntables != nrels)
		elog(ERROR, "owsync._write_sqlite: array lengths differ");
	req->tables = palloc0(sizeof(RestoreTable) * Max(req->ntables, 1));
	for (int i = 0; i < req->ntables; i++)
	{
		req->tables[i].name = TextDatumGetCString(names[i]);
		req->tables[i].relid = DatumGetObjectId(rels[i]);
	}
}

/* Create: a new, empty temporary file beside the target, ours alone (O_EXCL). */
static char *
create_file(const char *real)
{
	char	   *tmp = psprintf("%s.owsync-restore-%d", real, MyProcPid);
	int			fd;

	remove_stale_temps(real);
	remove_temp(tmp);			/* a leftover of a killed backend with our pid */
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL, S_IRUSR | S_IWUSR);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create \"%s\": %m", tmp)));
	close(fd);
	return tmp;
}

/* Write: replay the schema and copy every relation's rows, in one transaction. */
static void
write_file(OwsyncConn *conn, RestoreRequest *req)
{
	/*
	 * Nobody else sees the file until the rename: no syncs, and the journal
	 * in memory (defensive mode refuses journal_mode OFF; a new file has
	 * next to nothing to journal anyway).
	 */
	exec_sqlite(conn, "PRAGMA journal_mode = MEMORY", "set up the restored file");
	exec_sqlite(conn, "PRAGMA synchronous = OFF", "set up the restored file");
	exec_sqlite(conn, "PRAGMA locking_mode = EXCLUSIVE", "set up the restored file");
	exec_sqlite(conn, "PRAGMA cache_size = -32768", "set up the restored file");	/* 32 MB */
	exec_sqlite(conn, "CREATE TEMP TABLE owsync_number (x NUMERIC)", "set up the restored file");
	exec_sqlite(conn, "BEGIN", "start writing the restored file");
	for (int i = 0; i < req->nstmts; i++)
		replay_ddl(conn, TextDatumGetCString(req->stmts[i]),
				   TextDatumGetCString(req->stmt_labels[i]));
	for (int i = 0; i < req->ntables; i++)
	{
		plan_table(conn, &req->tables[i], req->leave_out);
		copy_table(conn, &req->tables[i]);
	}
	exec_sqlite(conn, "COMMIT", "commit the restored file");
}

/* Verify: the file passes integrity_check and every table reads back as written. */
static void
verify_file(OwsyncConn *conn, RestoreRequest *req, TimestampTz t0)
{
	check_integrity(conn);
	elog(DEBUG1, "restore: integrity_check done at %.3f s", (GetCurrentTimestamp() - t0) / 1e6);
	for (int i = 0; i < req->ntables; i++)
		check_table(conn, &req->tables[i]);
	elog(DEBUG1, "restore: read back at %.3f s", (GetCurrentTimestamp() - t0) / 1e6);
}

/*
 * Publish: give the file its journal mode, close it, fsync it and rename it
 * to the target (the target's directory is fsynced by the caller, once the
 * temporary file can no longer be left behind).
 */
static void
publish_file(OwsyncConn *conn, RestoreRequest *req, const char *tmp, const char *real,
			 TimestampTz t0)
{
	exec_sqlite(conn, "PRAGMA locking_mode = NORMAL", "finish the restored file");
	exec_sqlite(conn, psprintf("PRAGMA journal_mode = %s", req->journal_mode),
				"set the journal mode");
	owsync_close_private(conn, true);
	elog(DEBUG1, "restore: closed at %.3f s", (GetCurrentTimestamp() - t0) / 1e6);

	fsync_path(tmp, false);
	elog(DEBUG1, "restore: fsync done at %.3f s", (GetCurrentTimestamp() - t0) / 1e6);
	if (req->overwrite)
	{
		/* an empty write-ahead log of the old file must not meet the new one */
		unlink(psprintf("%s-wal", real));
		unlink(psprintf("%s-shm", real));
		if (rename(tmp, real) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not rename \"%s\" to \"%s\": %m", tmp, real)));
	}
	else
	{
		/*
		 * Refuse a target created meanwhile too: rename without replacing
		 * (or, where the file system cannot, link and unlink).
		 */
		if (renameat2(AT_FDCWD, tmp, AT_FDCWD, real, RENAME_NOREPLACE) != 0)
		{
			if (errno != EINVAL || link(tmp, real) != 0)
				ereport(ERROR,
						(errcode_for_file_access(),
						 errmsg("could not create \"%s\": %m", real)));
			unlink(tmp);
		}
	}
}

/*
 * owsync._write_sqlite(target text, overwrite boolean, label text,
 *                      ddl text[], ddl_labels text[],
 *                      tables text[], relations regclass[],
 *                      journal_mode text, forbidden text[], leave_out boolean)
 *   RETURNS TABLE (table_name text, rows bigint, left_out text[], json_numbers bigint)
 *
 * ddl: the CREATE statements in sqlite_master's order; tables/relations:
 * each SQLite table and the relation whose rows it gets; forbidden: the
 * files registered clients sync from; leave_out: a relation's columns that
 * its SQLite table has not are left out (and returned) instead of refused;
 * json_numbers: the JSON numbers SQLite stores in a form of its own, equal
 * in value (as_sqlite_stores).
 * Create, write, verify, publish; any error removes the temporary file.
 */
PG_FUNCTION_INFO_V1(owsync_write_sqlite);

Datum
owsync_write_sqlite(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RestoreRequest req;
	char	   *real;
	char	   *tmp;
	char	   *dir;
	OwsyncConn *volatile conn = NULL;
	TimestampTz t0 = GetCurrentTimestamp();

	read_request(fcinfo, &req);
	InitMaterializedSRF(fcinfo, 0);
	real = check_target(req.target, req.overwrite, req.forbidden);
	dir = pstrdup(real);
	get_parent_directory(dir);

	tmp = create_file(real);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		conn = owsync_open_private(req.label, tmp, restore_authorizer);
		write_file(conn, &req);
		elog(DEBUG1, "restore: written in %.3f s", (GetCurrentTimestamp() - t0) / 1e6);
		verify_file(conn, &req, t0);
		publish_file(conn, &req, tmp, real, t0);
	}
	PG_CATCH();
	{
		if (conn)
			owsync_close_private(conn, false);
		remove_temp(tmp);
		PG_RE_THROW();
	}
	PG_END_TRY();
	fsync_path(dir, true);

	for (int i = 0; i < req.ntables; i++)
	{
		Datum		v[4];
		bool		n[4] = {false, false, false, false};
		List	   *cols = req.tables[i].left_out;
		Datum	   *names = palloc(sizeof(Datum) * Max(list_length(cols), 1));
		ListCell   *lc;
		int			k = 0;

		foreach(lc, cols)
			names[k++] = CStringGetTextDatum(lfirst(lc));
		v[0] = CStringGetTextDatum(req.tables[i].name);
		v[1] = Int64GetDatum(req.tables[i].rows);
		v[2] = PointerGetDatum(construct_array(names, k, TEXTOID, -1, false, TYPALIGN_INT));
		v[3] = Int64GetDatum(req.tables[i].renumbered);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
	}
	SPI_finish();				/* the tables' plans and columns live in SPI's memory */
	return (Datum) 0;
}
