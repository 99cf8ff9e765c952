/*-------------------------------------------------------------------------
 *
 * owsync_fdw.c
 *		Foreign data wrapper entry points: planning, scanning, EXPLAIN and
 *		ANALYZE of foreign tables backed by SQLite tables (writes: modify.c).
 *
 *-------------------------------------------------------------------------
 */
#include "owsync_fdw.h"

#include <signal.h>

#include "access/htup_details.h"
#include "access/sysattr.h"
#include "access/xact.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "commands/explain.h"
#include "commands/vacuum.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "foreign/fdwapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/sampling.h"

PG_MODULE_MAGIC;

/* Planner cost model: opening a statement, and reading one SQLite row. */
#define OWSYNC_STARTUP_COST 25.0
#define OWSYNC_ROW_COST 0.005
/* Row estimate when a table has no rowid (a view) and was never analyzed. */
#define OWSYNC_DEFAULT_ROWS 1000

/* Indexes into ForeignScan.fdw_private */
enum
{
	PRIV_SQL,					/* SQLite query text */
	PRIV_RETRIEVED,				/* attnums of the fetched columns */
	PRIV_KEYS					/* (result index, name) of each key column */
};

/*
 * Reading rows of one SQLite statement into PostgreSQL datums; shared by
 * scans and ANALYZE.
 */
typedef struct OwsyncReader
{
	OwsyncConn *conn;
	sqlite3_stmt *stmt;
	uint32		generation;		/* conn->generation when prepared */
	int			ncols;
	OwsyncColumn *cols;
	OwsyncRowRef ref;
	MemoryContext rowcxt;		/* reset per row: flat memory for any size */
	const char *what;			/* for SQLite errors: "read table \"x\"" */
	int			digest_col;		/* result index of the digest column, or -1 */
	const int64 *known;			/* sorted digests of rows returned as their */
	int			nknown;			/* digest alone (owsync._skip_known()) */
} OwsyncReader;

typedef struct OwsyncScanState
{
	OwsyncReader reader;
	List	   *param_exprs;	/* ExprStates of the ?N parameters */
	List	   *param_types;
	bool		params_bound;
	char	   *sql;
} OwsyncScanState;

PG_FUNCTION_INFO_V1(owsync_fdw_handler);
PG_FUNCTION_INFO_V1(owsync_sqlite_version);

void		_PG_init(void);

void
_PG_init(void)
{
	owsync_define_gucs();
}

Datum
owsync_sqlite_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(sqlite3_libversion()));
}

/*
 * owsync._has_lz4(): whether the server was built with lz4 (the headers this
 * module is built against are the server's), as pg_settings would say by
 * listing it among default_toast_compression's values, at no cost: that
 * view builds every setting for each call.
 */
PG_FUNCTION_INFO_V1(owsync_has_lz4);

Datum
owsync_has_lz4(PG_FUNCTION_ARGS)
{
#ifdef USE_LZ4
	PG_RETURN_BOOL(true);
#else
	PG_RETURN_BOOL(false);
#endif
}

/*
 * pg_cron's launcher learns of a changed cron.job from a relcache
 * invalidation, and ignores the reset that replaces every invalidation
 * when a transaction made more than the shared invalidation queue holds (a
 * client's registration creates hundreds of relations): a job scheduled in
 * such a transaction would never run until the server restarts.  A SIGHUP
 * makes the launcher reload its jobs, so the transaction that changed a job
 * sends one to it once it has committed.
 */
static List *cron_launchers_to_signal = NIL;	/* pids, in TopMemoryContext */

static void
signal_cron_at_end(XactEvent event, void *arg)
{
	ListCell   *lc;

	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
		foreach(lc, cron_launchers_to_signal)
			(void) kill((pid_t) lfirst_int(lc), SIGHUP);
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT ||
		event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		list_free(cron_launchers_to_signal);
		cron_launchers_to_signal = NIL;
	}
}

/*
 * owsync._reload_cron_at_commit(): the pg_cron launchers of this server
 * (pg_stat_activity) get a SIGHUP when the current transaction commits.
 */
PG_FUNCTION_INFO_V1(owsync_reload_cron_at_commit);

Datum
owsync_reload_cron_at_commit(PG_FUNCTION_ARGS)
{
	static bool registered = false;
	MemoryContext old;

	if (!registered)
	{
		RegisterXactCallback(signal_cron_at_end, NULL);
		registered = true;
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT pid FROM pg_catalog.pg_stat_activity WHERE backend_type = 'pg_cron launcher'",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_stat_activity");
	old = MemoryContextSwitchTo(TopMemoryContext);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Datum		pid = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			cron_launchers_to_signal = list_append_unique_int(cron_launchers_to_signal,
															  DatumGetInt32(pid));
	}
	MemoryContextSwitchTo(old);
	SPI_finish();
	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * Reading rows
 * ---------------------------------------------------------------------
 */

/*
 * Digests of rows the sync already has, set by owsync._skip_known() for one
 * foreign table: its scans begun in the same transaction return such a row
 * as its digest alone, without converting its values.  The end of the
 * transaction forgets them.
 */
static Oid	known_relid = InvalidOid;
static int64 *known_digests;	/* sorted, in TopTransactionContext */
static int	known_count;

static int	cmp_int64(const void *a, const void *b);

/* Forget the known digests at the end of the transaction that set them. */
static void
forget_known(XactEvent event, void *arg)
{
	known_relid = InvalidOid;
}

PG_FUNCTION_INFO_V1(owsync_skip_known);

/*
 * owsync._skip_known(src, digests): set (NULL: clear) the digests of rows
 * the scans of src in this transaction return as their digest alone.
 */
Datum
owsync_skip_known(PG_FUNCTION_ARGS)
{
	static bool registered = false;
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *elnulls;
	int			n;

	if (!registered)
	{
		RegisterXactCallback(forget_known, NULL);
		registered = true;
	}
	known_relid = InvalidOid;
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_VOID();
	arr = PG_GETARG_ARRAYTYPE_P(1);
	deconstruct_array(arr, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &elnulls, &n);
	known_digests = MemoryContextAlloc(TopTransactionContext, sizeof(int64) * Max(n, 1));
	known_count = 0;
	for (int i = 0; i < n; i++)
		if (!elnulls[i])
			known_digests[known_count++] = DatumGetInt64(elems[i]);
	qsort(known_digests, known_count, sizeof(int64), cmp_int64);
	known_relid = PG_GETARG_OID(0);
	PG_RETURN_VOID();
}

static void
reader_open(OwsyncReader *r, Relation rel, ForeignServer *server, const char *sqlite_table,
			const char *sql, List *retrieved, List *keys, MemoryContext parent)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	ListCell   *lc;
	int			i = 0;

	r->conn = owsync_get_connection(server);
	r->stmt = owsync_prepare(r->conn, sql);
	r->generation = r->conn->generation;
	r->what = psprintf("read SQLite table \"%s\"", sqlite_table);

	r->ncols = list_length(retrieved);
	r->cols = palloc0(sizeof(OwsyncColumn) * Max(r->ncols, 1));
	r->digest_col = -1;
	r->known = NULL;
	r->nknown = 0;
	foreach(lc, retrieved)
	{
		AttrNumber	attnum = lfirst_int(lc);
		Form_pg_attribute att = TupleDescAttr(tupdesc, attnum - 1);
		OwsyncColumnOpts opts;

		owsync_get_column_opts(RelationGetRelid(rel), attnum, &opts);
		if (opts.digest)
			r->digest_col = i;
		owsync_init_column(&r->cols[i++], attnum, opts.name, att->atttypid, att->atttypmod);
	}

	r->ref.servername = server->servername;
	r->ref.tablename = pstrdup(sqlite_table);
	r->ref.stmt = r->stmt;
	r->ref.nkeys = list_length(keys);
	r->ref.keyidx = palloc(sizeof(int) * Max(r->ref.nkeys, 1));
	r->ref.keynames = palloc(sizeof(char *) * Max(r->ref.nkeys, 1));
	i = 0;
	foreach(lc, keys)
	{
		r->ref.keyidx[i] = intVal(linitial(lfirst(lc)));
		r->ref.keynames[i++] = strVal(lsecond(lfirst(lc)));
	}

	r->rowcxt = AllocSetContextCreate(parent, "owsync_fdw row", ALLOCSET_DEFAULT_SIZES);
}

/* Step to the next row; false at the end. */
static bool
reader_next(OwsyncReader *r)
{
	CHECK_FOR_INTERRUPTS();
	if (owsync_step(r->conn, r->stmt, r->what) == SQLITE_ROW)
		return true;
	owsync_check_unchanged(r->conn);
	return false;
}

/* Compare two int64 values, for qsort and bsearch. */
static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * Is the current row one the caller already has (its digest among the known
 * ones)?  Then only its digest is wanted.
 */
static bool
reader_row_known(OwsyncReader *r)
{
	int64		digest;

	if (r->nknown == 0 || sqlite3_column_type(r->stmt, r->digest_col) != SQLITE_INTEGER)
		return false;
	digest = sqlite3_column_int64(r->stmt, r->digest_col);
	return bsearch(&digest, r->known, r->nknown, sizeof(int64), cmp_int64) != NULL;
}

/*
 * Convert the current row into values/nulls (natts entries; columns not
 * fetched are NULL; a known row has its digest alone).  Memory comes from
 * the per-row context, which the caller resets before the next row.
 */
static void
reader_convert(OwsyncReader *r, int natts, Datum *values, bool *nulls)
{
	MemoryContext old = MemoryContextSwitchTo(r->rowcxt);
	int			i;

	memset(nulls, true, sizeof(bool) * natts);
	if (reader_row_known(r))
	{
		AttrNumber	attnum = r->cols[r->digest_col].attnum;

		values[attnum - 1] = Int64GetDatum(sqlite3_column_int64(r->stmt, r->digest_col));
		nulls[attnum - 1] = false;
		MemoryContextSwitchTo(old);
		return;
	}
	for (i = 0; i < r->ncols; i++)
	{
		OwsyncColumn *col = &r->cols[i];

		values[col->attnum - 1] = owsync_convert_value(col, r->stmt, i,
													   &nulls[col->attnum - 1], &r->ref);
	}
	MemoryContextSwitchTo(old);
}

/*
 * Finalize unless the end of the transaction already did (a cursor left
 * open at commit).
 */
static void
reader_close(OwsyncReader *r)
{
	if (r->stmt && r->conn->generation == r->generation)
		owsync_finalize(r->stmt);
	r->stmt = NULL;
}

/*
 * The column options of a foreign table, by attnum - 1 (NULL name for
 * dropped columns), with the types of its computed columns checked.
 */
static OwsyncColumnOpts *
load_columns(Relation rel)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	OwsyncColumnOpts *cols = owsync_get_all_column_opts(rel);
	int			i;

	for (i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);

		if (att->attisdropped)
			continue;
		if (cols[i].raw && att->atttypid != TEXTOID)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
					 errmsg("raw column \"%s\" of foreign table \"%s\" must be of type text",
							NameStr(att->attname), RelationGetRelationName(rel))));
		if (cols[i].digest && att->atttypid != INT8OID)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
					 errmsg("digest column \"%s\" of foreign table \"%s\" must be of type bigint",
							NameStr(att->attname), RelationGetRelationName(rel))));
	}
	return cols;
}

/* ---------------------------------------------------------------------
 * Planning
 * ---------------------------------------------------------------------
 */

/* Is the name a table of the file (not a view)? */
static bool
is_sqlite_table(OwsyncConn *conn, const char *table)
{
	sqlite3_stmt *stmt;
	volatile bool is_table = false;

	stmt = owsync_prepare(conn, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE");
	PG_TRY();
	{
		if (sqlite3_bind_text(stmt, 1, table, -1, SQLITE_STATIC) != SQLITE_OK)
			owsync_sqlite_error(conn, SQLITE_MISUSE, "bind a table name");
		is_table = owsync_step(conn, stmt, "look up the table") == SQLITE_ROW;
	}
	PG_FINALLY();
	{
		sqlite3_finalize(stmt);
	}
	PG_END_TRY();
	return is_table;
}

/*
 * A row count that costs O(log n): max(rowid) of a table (deletes leave gaps,
 * so it can only overestimate; ANALYZE gives the real figure).  Views and
 * tables without rowid get a default: max(rowid) of a view would run it.
 */
static double
estimate_rows(OwsyncConn *conn, const char *table)
{
	sqlite3_stmt *stmt;
	volatile double rows = OWSYNC_DEFAULT_ROWS;
	StringInfoData sql;

	if (!is_sqlite_table(conn, table))
		return rows;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT max(rowid) FROM ");
	owsync_quote_ident(&sql, table);
	/* a WITHOUT ROWID table fails to prepare: keep the default */
	if (sqlite3_prepare_v2(conn->db, sql.data, -1, &stmt, NULL) != SQLITE_OK)
		return rows;
	PG_TRY();
	{
		if (owsync_step(conn, stmt, "estimate the table's size") == SQLITE_ROW)
			rows = (double) sqlite3_column_int64(stmt, 0);	/* NULL (empty): 0 */
	}
	PG_FINALLY();
	{
		sqlite3_finalize(stmt);
	}
	PG_END_TRY();
	return rows;
}

/*
 * What planning needs to know of a SQLite table: its columns' declared types
 * (for affinities) and a row estimate.  Kept on the connection until the
 * transaction ends (its snapshot, so its schema, is fixed until then): a
 * sync plans many statements over the same tables.
 */
typedef struct TableInfo
{
	char	   *table;
	int			ncols;
	char	  **names;
	char	  **decltypes;
	bool		rows_known;
	double		rows;
} TableInfo;

/* Read a table's column names and declared types into ti. */
static void
read_table_columns(OwsyncConn *conn, const char *table, TableInfo *ti)
{
	sqlite3_stmt *stmt;
	List	   *volatile names = NIL;
	List	   *volatile types = NIL;
	ListCell   *lc;
	int			i = 0;

	stmt = owsync_prepare(conn, "SELECT name, type FROM pragma_table_info(?1)");
	PG_TRY();
	{
		if (sqlite3_bind_text(stmt, 1, table, -1, SQLITE_STATIC) != SQLITE_OK)
			owsync_sqlite_error(conn, SQLITE_MISUSE, "bind a table name");
		while (owsync_step(conn, stmt, "read the table's columns") == SQLITE_ROW)
		{
			const char *decl = (const char *) sqlite3_column_text(stmt, 1);

			names = lappend(names, pstrdup((const char *) sqlite3_column_text(stmt, 0)));
			types = lappend(types, pstrdup(decl ? decl : ""));
		}
	}
	PG_FINALLY();
	{
		sqlite3_finalize(stmt);
	}
	PG_END_TRY();
	ti->ncols = list_length(names);
	ti->names = palloc(sizeof(char *) * Max(ti->ncols, 1));
	ti->decltypes = palloc(sizeof(char *) * Max(ti->ncols, 1));
	foreach(lc, names)
		ti->names[i++] = lfirst(lc);
	i = 0;
	foreach(lc, types)
		ti->decltypes[i++] = lfirst(lc);
}

static TableInfo *
table_info(OwsyncConn *conn, const char *table, bool need_rows)
{
	TableInfo  *ti = NULL;
	ListCell   *lc;
	MemoryContext old;

	foreach(lc, conn->tableinfo)
		if (strcmp(((TableInfo *) lfirst(lc))->table, table) == 0)
			ti = lfirst(lc);

	old = MemoryContextSwitchTo(owsync_snapshot_context(conn));
	if (ti == NULL)
	{
		ti = palloc0(sizeof(TableInfo));
		ti->table = pstrdup(table);
		read_table_columns(conn, table, ti);
		conn->tableinfo = lappend(conn->tableinfo, ti);
	}
	if (need_rows && !ti->rows_known)
	{
		ti->rows = estimate_rows(conn, table);
		ti->rows_known = true;
	}
	MemoryContextSwitchTo(old);
	return ti;
}

/* Affinities of the relation's columns, and the row estimate when asked. */
static double
inspect_sqlite_table(OwsyncRelInfo *info, bool need_rows)
{
	TableInfo  *ti = table_info(owsync_get_connection(info->server), info->sqlite_table, need_rows);
	int			i,
				j;

	for (i = 0; i < info->natts; i++)
	{
		info->affinity[i] = OWA_UNKNOWN;
		/* SQLite matches column names case-insensitively (ASCII) */
		for (j = 0; j < ti->ncols && info->cols[i].name; j++)
			if (pg_strcasecmp(info->cols[i].name, ti->names[j]) == 0)
				info->affinity[i] = owsync_affinity(ti->decltypes[j]);
	}
	return need_rows ? ti->rows : -1;
}

static void
owsyncGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	OwsyncRelInfo *info = palloc0(sizeof(OwsyncRelInfo));
	Relation	rel;
	ListCell   *lc;
	double		rows;

	baserel->fdw_private = info;
	info->table = GetForeignTable(foreigntableid);
	info->server = GetForeignServer(info->table->serverid);
	info->sqlite_table = owsync_get_table_name(info->table);

	rel = table_open(foreigntableid, NoLock);
	info->natts = RelationGetDescr(rel)->natts;
	info->cols = load_columns(rel);
	table_close(rel, NoLock);
	info->affinity = palloc(sizeof(OwsyncAffinity) * Max(info->natts, 1));

	/* ANALYZE's figure when there is one (reltuples is -1 before) */
	rows = inspect_sqlite_table(info, baserel->tuples < 0);
	if (baserel->tuples < 0)
		baserel->tuples = Max(rows, 0);

	foreach(lc, baserel->baserestrictinfo)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);

		if (owsync_is_pushable(baserel, ri->clause))
			info->remote_conds = lappend(info->remote_conds, ri);
		else
			info->local_conds = lappend(info->local_conds, ri);
	}

	/* columns to fetch: the output, and what local conditions read */
	pull_varattnos((Node *) baserel->reltarget->exprs, baserel->relid, &info->attrs_used);
	foreach(lc, info->local_conds)
		pull_varattnos((Node *) lfirst_node(RestrictInfo, lc)->clause, baserel->relid,
					   &info->attrs_used);

	set_baserel_size_estimates(root, baserel);
}

static void
owsyncGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	Cost		startup = OWSYNC_STARTUP_COST;
	Cost		total = startup + baserel->tuples * OWSYNC_ROW_COST +
		baserel->rows * cpu_tuple_cost;

	add_path(baserel, (Path *)
			 create_foreignscan_path(root, baserel, NULL, baserel->rows, startup, total,
									 NIL, NULL, NULL, NIL));
}

static ForeignScan *
owsyncGetForeignPlan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
					 ForeignPath *best_path, List *tlist, List *scan_clauses,
					 Plan *outer_plan)
{
	OwsyncRelInfo *info = (OwsyncRelInfo *) baserel->fdw_private;
	List	   *remote = NIL;
	List	   *local = NIL;
	List	   *retrieved;
	List	   *keys;
	List	   *params = NIL;
	ListCell   *lc;
	StringInfoData sql;

	foreach(lc, scan_clauses)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);

		if (ri->pseudoconstant)
			continue;			/* handled by a gating Result node */
		if (list_member_ptr(info->remote_conds, ri))
			remote = lappend(remote, ri);
		else
			local = lappend(local, ri->clause);
	}

	initStringInfo(&sql);
	owsync_deparse_select(&sql, info->sqlite_table, info->natts, info->cols, info->attrs_used,
						  &retrieved, &keys);
	owsync_deparse_where(&sql, baserel, remote, &params);

	return make_foreignscan(tlist, local, baserel->relid, params,
							list_make3(makeString(sql.data), retrieved, keys),
							NIL, NIL, outer_plan);
}

/* ---------------------------------------------------------------------
 * Execution
 * ---------------------------------------------------------------------
 */

static void
owsyncBeginForeignScan(ForeignScanState *node, int eflags)
{
	ForeignScan *plan = (ForeignScan *) node->ss.ps.plan;
	Relation	rel = node->ss.ss_currentRelation;
	ForeignTable *table;
	OwsyncScanState *st;
	ListCell   *lc;

	/* EXPLAIN without ANALYZE: no need to open the file */
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;

	/* the scan of an UPDATE or DELETE reads through the write connection */
	owsync_begin_target_scan(node);
	st = palloc0(sizeof(OwsyncScanState));
	node->fdw_state = st;
	table = GetForeignTable(RelationGetRelid(rel));
	st->sql = strVal(list_nth(plan->fdw_private, PRIV_SQL));
	reader_open(&st->reader, rel, GetForeignServer(table->serverid),
				owsync_get_table_name(table), st->sql,
				(List *) list_nth(plan->fdw_private, PRIV_RETRIEVED),
				(List *) list_nth(plan->fdw_private, PRIV_KEYS),
				node->ss.ps.state->es_query_cxt);
	if (known_relid == RelationGetRelid(rel) && st->reader.digest_col >= 0)
	{
		st->reader.known = known_digests;
		st->reader.nknown = known_count;
	}

	st->param_exprs = ExecInitExprList(plan->fdw_exprs, (PlanState *) node);
	foreach(lc, plan->fdw_exprs)
		st->param_types = lappend_oid(st->param_types, exprType(lfirst(lc)));
}

/* Evaluate the ?N parameters (at the first fetch and after each rescan). */
static void
bind_params(ForeignScanState *node, OwsyncScanState *st)
{
	ExprContext *econtext = node->ss.ps.ps_ExprContext;
	MemoryContext old = MemoryContextSwitchTo(econtext->ecxt_per_tuple_memory);
	ListCell   *le,
			   *lt;
	int			i = 1;

	forboth(le, st->param_exprs, lt, st->param_types)
	{
		bool		isnull;
		Datum		value = ExecEvalExpr((ExprState *) lfirst(le), econtext, &isnull);

		owsync_bind_datum(st->reader.conn, st->reader.stmt, i++, value, lfirst_oid(lt), isnull);
	}
	MemoryContextSwitchTo(old);
	st->params_bound = true;
}

static TupleTableSlot *
owsyncIterateForeignScan(ForeignScanState *node)
{
	OwsyncScanState *st = (OwsyncScanState *) node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;

	ExecClearTuple(slot);
	if (!st->params_bound)
		bind_params(node, st);

	MemoryContextReset(st->reader.rowcxt);
	if (!reader_next(&st->reader))
		return slot;
	reader_convert(&st->reader, slot->tts_tupleDescriptor->natts,
				   slot->tts_values, slot->tts_isnull);
	return ExecStoreVirtualTuple(slot);
}

static void
owsyncReScanForeignScan(ForeignScanState *node)
{
	OwsyncScanState *st = (OwsyncScanState *) node->fdw_state;

	sqlite3_reset(st->reader.stmt);
	sqlite3_clear_bindings(st->reader.stmt);
	st->params_bound = false;	/* parameters may have changed */
}

static void
owsyncEndForeignScan(ForeignScanState *node)
{
	OwsyncScanState *st = (OwsyncScanState *) node->fdw_state;

	if (st)
	{
		reader_close(&st->reader);
		/* a scan that stopped early (LIMIT) is checked like one that ended */
		owsync_check_unchanged(st->reader.conn);
	}
}

static void
owsyncExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	ForeignScan *plan = (ForeignScan *) node->ss.ps.plan;

	if (es->verbose)
		ExplainPropertyText("SQLite query", strVal(list_nth(plan->fdw_private, PRIV_SQL)), es);
}

/* ---------------------------------------------------------------------
 * ANALYZE: one pass over the table, converting only the sampled rows
 * ---------------------------------------------------------------------
 */

static int
owsync_acquire_sample_rows(Relation rel, int elevel, HeapTuple *rows, int targrows,
						   double *totalrows, double *totaldeadrows)
{
	ForeignTable *table = GetForeignTable(RelationGetRelid(rel));
	ForeignServer *server = GetForeignServer(table->serverid);
	TupleDesc	tupdesc = RelationGetDescr(rel);
	char	   *sqlite_table = owsync_get_table_name(table);
	OwsyncColumnOpts *cols;
	List	   *retrieved;
	List	   *keys;
	StringInfoData sql;
	OwsyncReader r;
	Datum	   *values = palloc(sizeof(Datum) * Max(tupdesc->natts, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(tupdesc->natts, 1));
	ReservoirStateData rstate;
	double		seen = 0;
	double		skip = -1;		/* rows to pass over before the next replacement */
	int			nsampled = 0;

	cols = load_columns(rel);
	initStringInfo(&sql);
	owsync_deparse_select(&sql, sqlite_table, tupdesc->natts, cols,
						  bms_make_singleton(0 - FirstLowInvalidHeapAttributeNumber),
						  &retrieved, &keys);
	memset(&r, 0, sizeof(r));
	reader_open(&r, rel, server, sqlite_table, sql.data, retrieved, keys,
				CurrentMemoryContext);
	reservoir_init_selection_state(&rstate, targrows);

	PG_TRY();
	{
		while (reader_next(&r))
		{
			int			slot = -1;

			vacuum_delay_point();
			seen++;
			if (nsampled < targrows)
				slot = nsampled++;
			else
			{
				if (skip < 0)
					skip = reservoir_get_next_S(&rstate, seen - 1, targrows);
				if (skip-- <= 0)
				{
					slot = (int) (targrows * sampler_random_fract(&rstate.randstate));
					heap_freetuple(rows[slot]);
					skip = -1;
				}
			}
			if (slot < 0)
				continue;
			MemoryContextReset(r.rowcxt);
			reader_convert(&r, tupdesc->natts, values, nulls);
			rows[slot] = heap_form_tuple(tupdesc, values, nulls);
		}
	}
	PG_FINALLY();
	{
		reader_close(&r);
	}
	PG_END_TRY();

	*totalrows = seen;
	*totaldeadrows = 0;
	ereport(elevel,
			(errmsg("\"%s\": SQLite table \"%s\" has %.0f rows, %d rows in sample",
					RelationGetRelationName(rel), sqlite_table, seen, nsampled)));
	return nsampled;
}

static bool
owsyncAnalyzeForeignTable(Relation relation, AcquireSampleRowsFunc *func,
						  BlockNumber *totalpages)
{
	*func = owsync_acquire_sample_rows;
	*totalpages = 1;			/* SQLite pages are not ours to count */
	return true;
}

static List *
owsyncImportForeignSchema(ImportForeignSchemaStmt *stmt, Oid serverOid)
{
	return owsync_import_foreign_schema(stmt, serverOid);
}

Datum
owsync_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *routine = makeNode(FdwRoutine);

	routine->GetForeignRelSize = owsyncGetForeignRelSize;
	routine->GetForeignPaths = owsyncGetForeignPaths;
	routine->GetForeignPlan = owsyncGetForeignPlan;
	routine->BeginForeignScan = owsyncBeginForeignScan;
	routine->IterateForeignScan = owsyncIterateForeignScan;
	routine->ReScanForeignScan = owsyncReScanForeignScan;
	routine->EndForeignScan = owsyncEndForeignScan;
	routine->ExplainForeignScan = owsyncExplainForeignScan;
	routine->AnalyzeForeignTable = owsyncAnalyzeForeignTable;
	routine->ImportForeignSchema = owsyncImportForeignSchema;
	owsync_modify_routines(routine);

	PG_RETURN_POINTER(routine);
}
