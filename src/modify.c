/*-------------------------------------------------------------------------
 *
 * modify.c
 *		INSERT, UPDATE and DELETE on foreign tables of writable servers.
 *
 * Only servers declared with OPTIONS (writable 'true') take writes; every
 * other server refuses them when the statement is planned, with a hint.
 * Writing needs what reading needs (the path rules, checked again when the
 * write connection opens) and, for the user performing the write, the
 * privileges of pg_read_server_files and pg_write_server_files (or
 * superuser).  Writes are meant for repair work and tests: a sync never
 * writes, and a writable server must never name a live client's file.
 *
 * All writes of a PostgreSQL transaction to one server go through its write
 * connection, in one SQLite write transaction that commits and rolls back
 * with the PostgreSQL transaction, subtransactions included (connection.c).
 *
 *	INSERT	INSERT INTO "t" ("a", "b") VALUES (?1, ?2), (?3, ?4) ...: batch_size
 *			rows per statement (server or table option, default 100): one
 *			statement per batch costs SQLite less than one per row.
 *			Only the columns the INSERT names (and those with a PostgreSQL
 *			default) are sent, so SQLite's own defaults apply to the others.
 *	UPDATE	UPDATE "t" SET "a" = ?1 WHERE "k" = ?2 AND ...: the assigned
 *			columns, for the row with the key values the scan read (the key
 *			columns are fetched as junk columns).
 *	DELETE	DELETE FROM "t" WHERE "k" = ?1 AND ...
 *
 * Each UPDATE and DELETE must change exactly one row: none means the row
 * changed since it was read, several mean the key columns are no key; both
 * are errors, and abort everything.  Values are bound by owsync_bind_datum,
 * the inverse of the read conversion.  Digest and raw columns are computed
 * when read, not stored: assigning them is refused.  RETURNING and ON
 * CONFLICT are not supported.  SQLite's numeric affinity (JSON and NUMERIC
 * columns have it) turns text that looks like a number into an INTEGER or
 * REAL: a numeric or json value that would not read back as written (more
 * digits than a double holds, json 1e2 or 5.0) is refused, not rounded.
 *
 *-------------------------------------------------------------------------
 */
#include "owsync_fdw.h"

#include <math.h>

#include "access/sysattr.h"
#include "access/table.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/appendinfo.h"
#include "optimizer/inherit.h"
#include "optimizer/pathnode.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"

/* Indexes into the fdw_private list of a ModifyTable */
enum
{
	MOD_ATTNUMS,				/* attnums of the columns written */
	MOD_KEYS,					/* attnums of the key columns (UPDATE, DELETE) */
	MOD_SQL						/* the statement (INSERT: of one row) */
};

typedef struct OwsyncModifyState
{
	OwsyncConn *conn;
	uint32		generation;		/* conn->generation when prepared */
	Relation	rel;
	CmdType		operation;
	char	   *sqlite_table;
	char	   *what;			/* for SQLite errors: "update SQLite table \"t\"" */
	int			ncols;			/* columns written */
	AttrNumber *attnums;
	List	   *colnames;		/* their SQLite names (String nodes) */
	bool	   *exact;			/* numeric/json bound as text into a column
								 * with numeric affinity: check it reads back */
	int			nkeys;			/* key columns (UPDATE, DELETE) */
	AttrNumber *keyattnums;
	AttrNumber *keyjunk;		/* where the scan left their values */
	List	   *keynames;
	List	   *guarded;		/* attnums of digest/raw columns: must be NULL */
	int			batch_size;		/* rows per INSERT statement */
	sqlite3_stmt *stmt;			/* the UPDATE/DELETE, or the INSERT of stmt_rows */
	int			stmt_rows;
	MemoryContext tmpcxt;		/* per row or batch */
} OwsyncModifyState;

/* The name of a key column's junk column (its type is part of it). */
static char *
key_junk_name(Form_pg_attribute att)
{
	return psprintf("owsync_key%d_%u", att->attnum, att->atttypid);
}

/* Refuse a write to a server not declared writable. */
static void
check_writable(Relation rel, ForeignServer *server)
{
	OwsyncServerOpts opts;

	owsync_get_server_opts(server, &opts);
	if (!opts.writable)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("foreign table \"%s\" is read-only", RelationGetRelationName(rel)),
				 errdetail("Server \"%s\" is not declared writable.", server->servername),
				 errhint("Declare the server with OPTIONS (writable 'true') to write its SQLite file through the wrapper; that is for repair work and tests, never for a file a live client uses.")));
}

/* The user a write runs as: the view owner's for a view, else the current one. */
static Oid
write_user(EState *estate, Index rti)
{
	if (rti > 0)
	{
		RangeTblEntry *rte = exec_rt_fetch(rti, estate);

		if (OidIsValid(rte->checkAsUser))
			return rte->checkAsUser;
	}
	return GetUserId();
}

/* Checks, then the server's write connection inside its write transaction. */
static OwsyncConn *
open_for_write(Relation rel, EState *estate, Index rti)
{
	ForeignTable *table = GetForeignTable(RelationGetRelid(rel));
	ForeignServer *server = GetForeignServer(table->serverid);

	check_writable(rel, server);
	owsync_check_write_privilege(write_user(estate, rti), server->servername);
	return owsync_get_write_connection(server);
}

/*
 * The scan feeding an UPDATE or DELETE reads through the write connection,
 * so that the keys it reads are those of the rows being written (called by
 * BeginForeignScan, before BeginForeignModify).
 */
void
owsync_begin_target_scan(ForeignScanState *node)
{
	EState	   *estate = node->ss.ps.state;
	Index		rti = ((Scan *) node->ss.ps.plan)->scanrelid;

	if (ExecRelationIsTargetRelation(estate, rti))
		(void) open_for_write(node->ss.ss_currentRelation, estate, rti);
}

/* Columns whose values are computed when read: never written. */
static bool
is_computed(const OwsyncColumnOpts *col)
{
	return col->digest || col->raw;
}

/* Refuse a value for a computed column. */
static void
refuse_computed(Relation rel, AttrNumber attnum)
{
	OwsyncColumnOpts opts;

	owsync_get_column_opts(RelationGetRelid(rel), attnum, &opts);
	if (is_computed(&opts))
		ereport(ERROR,
				(errcode(ERRCODE_GENERATED_ALWAYS),
				 errmsg("cannot assign to column \"%s\" of foreign table \"%s\"",
						get_attname(RelationGetRelid(rel), attnum, false),
						RelationGetRelationName(rel)),
				 errdetail("It is a digest or raw column: computed when read, not stored in SQLite.")));
}

/* Attnums of the key columns of a foreign table. */
static List *
key_attnums(Relation rel)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	OwsyncColumnOpts *cols = owsync_get_all_column_opts(rel);
	List	   *keys = NIL;

	for (int i = 0; i < tupdesc->natts; i++)
		if (cols[i].name != NULL && cols[i].key)
			keys = lappend_int(keys, i + 1);
	return keys;
}

/*
 * Is the column numeric or json, bound as text, and has its SQLite column
 * numeric affinity (INTEGER, REAL, NUMERIC; unknown counts as numeric)?
 */
static bool
needs_exact_check(OwsyncConn *conn, const char *table, const char *column, Oid typid)
{
	OwsyncKind	kind = owsync_kind_for_type(typid);
	const char *decltype = NULL;
	OwsyncAffinity aff = OWA_NUMERIC;

	if (kind != OWK_NUMERIC && kind != OWK_JSON)
		return false;
	if (sqlite3_table_column_metadata(conn->db, "main", table, column, &decltype,
									  NULL, NULL, NULL, NULL) == SQLITE_OK)
		aff = owsync_affinity(decltype);
	return aff != OWA_TEXT && aff != OWA_BLOB;
}

/*
 * What numeric affinity stores for a text, as the text the read path gives
 * back: NULL when the text is no decimal literal (it stays text).  SQLite
 * skips surrounding spaces; a pure integer in range stays an INTEGER, any
 * other literal becomes a REAL, and an integral REAL in range an INTEGER.
 */
static char *
affinity_readback(const char *s)
{
	const char *p = s;
	const char *start;
	char	   *literal;
	char	   *stop;
	int			digits = 0;
	bool		pure = true;
	int64		i;
	double		d;

	while (isspace((unsigned char) *p))
		p++;
	start = p;
	if (*p == '+' || *p == '-')
		p++;
	for (; isdigit((unsigned char) *p); p++)
		digits++;
	if (*p == '.')
		for (p++, pure = false; isdigit((unsigned char) *p); p++)
			digits++;
	if (digits == 0)
		return NULL;
	if (*p == 'e' || *p == 'E')
	{
		p++;
		pure = false;
		if (*p == '+' || *p == '-')
			p++;
		if (!isdigit((unsigned char) *p))
			return NULL;
		while (isdigit((unsigned char) *p))
			p++;
	}
	literal = pnstrdup(start, p - start);
	while (isspace((unsigned char) *p))
		p++;
	if (*p != '\0')
		return NULL;

	errno = 0;
	i = strtoi64(literal, &stop, 10);
	if (pure && errno == 0 && *stop == '\0')
		return psprintf(INT64_FORMAT, i);
	d = strtod(literal, NULL);
	if (d == floor(d) && d > -9223372036854775808.0 && d < 9223372036854775808.0)
		return psprintf(INT64_FORMAT, (int64) d);
	return DatumGetCString(DirectFunctionCall1(float8out, Float8GetDatum(d)));
}

/* Refuse a numeric or json value SQLite would not keep as written. */
static void
check_exact(OwsyncModifyState *fm, int col, Datum value, Oid typid)
{
	bool		isnumeric = owsync_kind_for_type(typid) == OWK_NUMERIC;
	char	   *written;
	char	   *back;
	bool		same;

	if (isnumeric)
	{
		Numeric		num = DatumGetNumeric(value);

		if (numeric_is_nan(num) || numeric_is_inf(num))
			return;				/* no decimal literal: stays text */
		written = DatumGetCString(DirectFunctionCall1(numeric_out, value));
	}
	else
		written = TextDatumGetCString(value);
	back = affinity_readback(written);
	if (back == NULL)
		return;
	same = isnumeric ?
		DatumGetBool(DirectFunctionCall2(numeric_eq, value,
										 DirectFunctionCall3(numeric_in, CStringGetDatum(back),
															 ObjectIdGetDatum(InvalidOid),
															 Int32GetDatum(-1)))) :
		strcmp(written, back) == 0;
	if (!same)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("value \"%s\" of column \"%s\" cannot be stored exactly in SQLite",
						written, strVal(list_nth(fm->colnames, col))),
				 errdetail("The SQLite column has numeric affinity: it would store the value as a number that reads back as %s.",
						   back),
				 errhint("SQLite keeps numbers as 64-bit integers or doubles; write a value they hold exactly.")));
}

/* SQLite names of columns (String nodes), by attnum. */
static List *
column_names(Relation rel, List *attnums)
{
	List	   *names = NIL;
	ListCell   *lc;

	foreach(lc, attnums)
	{
		OwsyncColumnOpts opts;

		owsync_get_column_opts(RelationGetRelid(rel), lfirst_int(lc), &opts);
		names = lappend(names, makeString(opts.name));
	}
	return names;
}

/* ---------------------------------------------------------------------
 * Planning
 * ---------------------------------------------------------------------
 */

/* UPDATE and DELETE: fetch the key columns' values with each row. */
static void
owsyncAddForeignUpdateTargets(PlannerInfo *root, Index rtindex, RangeTblEntry *target_rte,
							  Relation target_relation)
{
	ListCell   *lc;

	foreach(lc, key_attnums(target_relation))
	{
		Form_pg_attribute att = TupleDescAttr(RelationGetDescr(target_relation),
											  lfirst_int(lc) - 1);
		Var		   *var = makeVar(rtindex, att->attnum, att->atttypid, att->atttypmod,
								  att->attcollation, 0);

		add_row_identity_var(root, var, rtindex, key_junk_name(att));
	}
}

static List *
owsyncPlanForeignModify(PlannerInfo *root, ModifyTable *plan, Index resultRelation,
						int subplan_index)
{
	RangeTblEntry *rte = planner_rt_fetch(resultRelation, root);
	CmdType		operation = plan->operation;
	Relation	rel = table_open(rte->relid, NoLock);
	TupleDesc	tupdesc = RelationGetDescr(rel);
	ForeignTable *table = GetForeignTable(rte->relid);
	List	   *attnums = NIL;
	List	   *keys = NIL;
	Bitmapset  *cols = NULL;
	int			col = -1;
	char	   *sqlite_table = owsync_get_table_name(table);
	StringInfoData sql;

	check_writable(rel, GetForeignServer(table->serverid));
	if (plan->returningLists != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("RETURNING is not supported for foreign table \"%s\"",
						RelationGetRelationName(rel))));
	if (plan->onConflictAction != ONCONFLICT_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("ON CONFLICT is not supported for foreign table \"%s\"",
						RelationGetRelationName(rel))));

	if (operation == CMD_UPDATE || operation == CMD_DELETE)
	{
		keys = key_attnums(rel);
		if (keys == NIL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("foreign table \"%s\" has no key columns", RelationGetRelationName(rel)),
					 errdetail("UPDATE and DELETE find the SQLite row by its key."),
					 errhint("Mark the columns that identify a row with OPTIONS (key 'true').")));
	}

	/*
	 * INSERT: the columns named (and those PostgreSQL fills with a default),
	 * so that SQLite fills the others with its defaults.  UPDATE: the
	 * assigned columns.
	 */
	if (operation == CMD_INSERT)
	{
		cols = rte->insertedCols;
		for (int i = 0; i < tupdesc->natts; i++)
			if (TupleDescAttr(tupdesc, i)->atthasdef)
				cols = bms_add_member(cols, i + 1 - FirstLowInvalidHeapAttributeNumber);
	}
	else if (operation == CMD_UPDATE)
		cols = get_rel_all_updated_cols(root, find_base_rel(root, resultRelation));
	while ((col = bms_next_member(cols, col)) >= 0)
	{
		AttrNumber	attnum = col + FirstLowInvalidHeapAttributeNumber;

		if (attnum <= InvalidAttrNumber || TupleDescAttr(tupdesc, attnum - 1)->attisdropped)
			continue;
		refuse_computed(rel, attnum);
		attnums = lappend_int(attnums, attnum);
	}

	initStringInfo(&sql);
	if (operation == CMD_INSERT)
		owsync_deparse_insert(&sql, sqlite_table, column_names(rel, attnums), 1);
	else if (operation == CMD_UPDATE)
		owsync_deparse_update(&sql, sqlite_table, column_names(rel, attnums),
							  column_names(rel, keys));
	else
		owsync_deparse_delete(&sql, sqlite_table, column_names(rel, keys));
	table_close(rel, NoLock);
	return list_make3(attnums, keys, makeString(sql.data));
}

/* ---------------------------------------------------------------------
 * Execution
 * ---------------------------------------------------------------------
 */

static OwsyncModifyState *
begin_modify(ModifyTableState *mtstate, ResultRelInfo *rinfo, CmdType operation,
			 List *attnums, List *keys, const char *sql)
{
	EState	   *estate = mtstate->ps.state;
	Relation	rel = rinfo->ri_RelationDesc;
	TupleDesc	tupdesc = RelationGetDescr(rel);
	ForeignTable *table = GetForeignTable(RelationGetRelid(rel));
	OwsyncModifyState *fm = palloc0(sizeof(OwsyncModifyState));
	ListCell   *lc;
	ListCell   *ln;
	int			i = 0;

	fm->conn = open_for_write(rel, estate, rinfo->ri_RangeTableIndex);
	fm->generation = fm->conn->generation;
	fm->rel = rel;
	fm->operation = operation;
	fm->sqlite_table = owsync_get_table_name(table);
	fm->what = psprintf("%s SQLite table \"%s\"",
						operation == CMD_INSERT ? "insert into" :
						operation == CMD_UPDATE ? "update" : "delete from",
						fm->sqlite_table);

	fm->ncols = list_length(attnums);
	fm->attnums = palloc(sizeof(AttrNumber) * Max(fm->ncols, 1));
	fm->exact = palloc(sizeof(bool) * Max(fm->ncols, 1));
	fm->colnames = column_names(rel, attnums);
	forboth(lc, attnums, ln, fm->colnames)
	{
		fm->attnums[i] = lfirst_int(lc);
		fm->exact[i++] = needs_exact_check(fm->conn, fm->sqlite_table, strVal(lfirst(ln)),
										   TupleDescAttr(tupdesc, lfirst_int(lc) - 1)->atttypid);
	}
	if (operation == CMD_INSERT)
	{
		OwsyncColumnOpts *cols = owsync_get_all_column_opts(rel);

		for (i = 0; i < tupdesc->natts; i++)
			if (cols[i].name != NULL && is_computed(&cols[i]) && !list_member_int(attnums, i + 1))
				fm->guarded = lappend_int(fm->guarded, i + 1);
	}

	fm->nkeys = list_length(keys);
	fm->keynames = column_names(rel, keys);
	fm->keyattnums = palloc(sizeof(AttrNumber) * Max(fm->nkeys, 1));
	fm->keyjunk = palloc(sizeof(AttrNumber) * Max(fm->nkeys, 1));
	i = 0;
	foreach(lc, keys)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, lfirst_int(lc) - 1);
		Plan	   *subplan = outerPlanState(mtstate)->plan;

		fm->keyattnums[i] = att->attnum;
		fm->keyjunk[i] = ExecFindJunkAttributeInTlist(subplan->targetlist, key_junk_name(att));
		if (!AttributeNumberIsValid(fm->keyjunk[i]))
			elog(ERROR, "could not find junk column for key \"%s\"", NameStr(att->attname));
		i++;
	}

	/* INSERT statements are prepared per batch size, when first needed */
	fm->batch_size = 1;
	if (operation == CMD_INSERT && fm->ncols > 0)
	{
		int			maxrows = sqlite3_limit(fm->conn->db, SQLITE_LIMIT_VARIABLE_NUMBER, -1) /
			fm->ncols;

		fm->batch_size = Max(Min(owsync_get_batch_size(GetForeignServer(table->serverid), table),
								 maxrows), 1);
	}
	if (operation != CMD_INSERT)
		fm->stmt = owsync_prepare(fm->conn, sql);

	fm->tmpcxt = AllocSetContextCreate(estate->es_query_cxt, "owsync_fdw modify",
									   ALLOCSET_DEFAULT_SIZES);
	return fm;
}

static void
owsyncBeginForeignModify(ModifyTableState *mtstate, ResultRelInfo *rinfo, List *fdw_private,
						 int subplan_index, int eflags)
{
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;
	rinfo->ri_FdwState = begin_modify(mtstate, rinfo, mtstate->operation,
									  (List *) list_nth(fdw_private, MOD_ATTNUMS),
									  (List *) list_nth(fdw_private, MOD_KEYS),
									  strVal(list_nth(fdw_private, MOD_SQL)));
}

/* COPY FROM and rows routed to a foreign partition: every stored column. */
static void
owsyncBeginForeignInsert(ModifyTableState *mtstate, ResultRelInfo *rinfo)
{
	Relation	rel = rinfo->ri_RelationDesc;
	TupleDesc	tupdesc = RelationGetDescr(rel);
	OwsyncColumnOpts *cols = owsync_get_all_column_opts(rel);
	List	   *attnums = NIL;

	for (int i = 0; i < tupdesc->natts; i++)
		if (cols[i].name != NULL && !is_computed(&cols[i]))
			attnums = lappend_int(attnums, i + 1);
	rinfo->ri_FdwState = begin_modify(mtstate, rinfo, CMD_INSERT, attnums, NIL, NULL);
}

static void
owsyncEndForeignModify(EState *estate, ResultRelInfo *rinfo)
{
	OwsyncModifyState *fm = (OwsyncModifyState *) rinfo->ri_FdwState;

	if (fm == NULL)
		return;
	if (fm->stmt && fm->conn->generation == fm->generation)
		owsync_finalize(fm->stmt);
	fm->stmt = NULL;
}

/* The row's key, for messages: (k1, k2)=(v1, v2). */
static char *
describe_key(OwsyncModifyState *fm, TupleTableSlot *planSlot)
{
	StringInfoData names;
	StringInfoData values;
	ListCell   *lc;
	int			i = 0;

	initStringInfo(&names);
	initStringInfo(&values);
	foreach(lc, fm->keynames)
	{
		Form_pg_attribute att = TupleDescAttr(RelationGetDescr(fm->rel), fm->keyattnums[i] - 1);
		bool		isnull;
		Datum		value = slot_getattr(planSlot, fm->keyjunk[i], &isnull);
		Oid			outfunc;
		bool		varlena;

		getTypeOutputInfo(att->atttypid, &outfunc, &varlena);
		appendStringInfo(&names, "%s%s", i > 0 ? ", " : "", strVal(lfirst(lc)));
		appendStringInfo(&values, "%s%s", i > 0 ? ", " : "",
						 isnull ? "NULL" : OidOutputFunctionCall(outfunc, value));
		i++;
	}
	return psprintf("(%s)=(%s)", names.data, values.data);
}

/* Bind the written columns of a slot, from parameter first on. */
static void
bind_columns(OwsyncModifyState *fm, sqlite3_stmt *stmt, TupleTableSlot *slot, int first)
{
	TupleDesc	tupdesc = RelationGetDescr(fm->rel);
	ListCell   *lc;

	slot_getallattrs(slot);
	foreach(lc, fm->guarded)	/* only INSERTs have guarded columns */
		if (!slot->tts_isnull[lfirst_int(lc) - 1])
			refuse_computed(fm->rel, lfirst_int(lc));
	for (int i = 0; i < fm->ncols; i++)
	{
		AttrNumber	attnum = fm->attnums[i];
		Oid			typid = TupleDescAttr(tupdesc, attnum - 1)->atttypid;

		if (fm->exact[i] && !slot->tts_isnull[attnum - 1])
			check_exact(fm, i, slot->tts_values[attnum - 1], typid);
		owsync_bind_datum(fm->conn, stmt, first + i, slot->tts_values[attnum - 1], typid,
						  slot->tts_isnull[attnum - 1]);
	}
}

/*
 * Run a bound write statement and return how many rows it changed.  The
 * statement is reset either way, so that it holds nothing after an error.
 */
static int
run_write(OwsyncModifyState *fm, sqlite3_stmt *stmt)
{
	int			rc;
	int			changes;

	CHECK_FOR_INTERRUPTS();
	rc = sqlite3_step(stmt);
	changes = sqlite3_changes(fm->conn->db);
	if (rc != SQLITE_DONE)
	{
		sqlite3_reset(stmt);
		sqlite3_clear_bindings(stmt);
		owsync_sqlite_error(fm->conn, rc, fm->what);
	}
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	fm->conn->keyscan = NULL;	/* key hashes read before this write are stale */
	return changes;
}

/* Insert n rows, batch_size at a time. */
static void
insert_rows(OwsyncModifyState *fm, TupleTableSlot **slots, int n)
{
	MemoryContext old = MemoryContextSwitchTo(fm->tmpcxt);

	owsync_write_sync_level(fm->conn);
	for (int done = 0; done < n;)
	{
		int			rows = Min(n - done, fm->batch_size);

		if (fm->stmt == NULL || fm->stmt_rows != rows)
		{
			StringInfoData sql;

			owsync_finalize(fm->stmt);
			fm->stmt = NULL;
			initStringInfo(&sql);
			owsync_deparse_insert(&sql, fm->sqlite_table, fm->colnames, rows);
			fm->stmt = owsync_prepare(fm->conn, sql.data);
			fm->stmt_rows = rows;
		}
		for (int r = 0; r < rows; r++)
			bind_columns(fm, fm->stmt, slots[done + r], 1 + r * fm->ncols);
		(void) run_write(fm, fm->stmt);
		done += rows;
		MemoryContextReset(fm->tmpcxt);
	}
	MemoryContextSwitchTo(old);
}

static TupleTableSlot *
owsyncExecForeignInsert(EState *estate, ResultRelInfo *rinfo, TupleTableSlot *slot,
						TupleTableSlot *planSlot)
{
	insert_rows((OwsyncModifyState *) rinfo->ri_FdwState, &slot, 1);
	return slot;
}

static TupleTableSlot **
owsyncExecForeignBatchInsert(EState *estate, ResultRelInfo *rinfo, TupleTableSlot **slots,
							 TupleTableSlot **planSlots, int *numSlots)
{
	insert_rows((OwsyncModifyState *) rinfo->ri_FdwState, slots, *numSlots);
	return slots;
}

/*
 * Rows per ExecForeignBatchInsert call; one when rows must be seen one at a
 * time (row triggers, WITH CHECK OPTION of a view).
 */
static int
owsyncGetForeignModifyBatchSize(ResultRelInfo *rinfo)
{
	OwsyncModifyState *fm = (OwsyncModifyState *) rinfo->ri_FdwState;
	TriggerDesc *trig = rinfo->ri_TrigDesc;

	if (fm == NULL || rinfo->ri_projectReturning != NULL || rinfo->ri_WithCheckOptions != NIL ||
		(trig && (trig->trig_insert_before_row || trig->trig_insert_after_row)))
		return 1;
	return fm->batch_size;
}

/* UPDATE or DELETE one row by its key: exactly one row must change. */
static void
write_by_key(OwsyncModifyState *fm, TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	MemoryContext old = MemoryContextSwitchTo(fm->tmpcxt);
	int			first = 1;
	int			changes;

	owsync_write_sync_level(fm->conn);
	if (slot != NULL)
	{
		bind_columns(fm, fm->stmt, slot, 1);
		first += fm->ncols;
	}
	for (int i = 0; i < fm->nkeys; i++)
	{
		bool		isnull;
		Datum		value = slot_getattr(planSlot, fm->keyjunk[i], &isnull);

		if (isnull)
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("cannot %s: a key column is NULL", fm->what),
					 errdetail("Key %s.", describe_key(fm, planSlot))));
		owsync_bind_datum(fm->conn, fm->stmt, first + i, value,
						  TupleDescAttr(RelationGetDescr(fm->rel), fm->keyattnums[i] - 1)->atttypid,
						  false);
	}
	changes = run_write(fm, fm->stmt);
	if (changes == 0)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not %s: the row with key %s is gone", fm->what,
						describe_key(fm, planSlot)),
				 errdetail("No SQLite row has the key of the row read; it was changed or deleted since (or written twice by this statement).")));
	if (changes > 1)
		ereport(ERROR,
				(errcode(ERRCODE_CARDINALITY_VIOLATION),
				 errmsg("could not %s: %d rows have the key %s", fm->what, changes,
						describe_key(fm, planSlot)),
				 errdetail("The columns marked key 'true' do not identify one row; nothing was written."),
				 errhint("Mark the columns of the table's primary key (or of a unique index) as its key.")));
	MemoryContextReset(fm->tmpcxt);
	MemoryContextSwitchTo(old);
}

static TupleTableSlot *
owsyncExecForeignUpdate(EState *estate, ResultRelInfo *rinfo, TupleTableSlot *slot,
						TupleTableSlot *planSlot)
{
	write_by_key((OwsyncModifyState *) rinfo->ri_FdwState, slot, planSlot);
	return slot;
}

static TupleTableSlot *
owsyncExecForeignDelete(EState *estate, ResultRelInfo *rinfo, TupleTableSlot *slot,
						TupleTableSlot *planSlot)
{
	write_by_key((OwsyncModifyState *) rinfo->ri_FdwState, NULL, planSlot);
	return slot;
}

/*
 * What the table takes (views over it, information_schema): nothing on a
 * server not declared writable, INSERT only without key columns.
 */
static int
owsyncIsForeignRelUpdatable(Relation rel)
{
	ForeignTable *table = GetForeignTable(RelationGetRelid(rel));
	OwsyncServerOpts opts;

	owsync_get_server_opts(GetForeignServer(table->serverid), &opts);
	if (!opts.writable)
		return 0;
	return (1 << CMD_INSERT) |
		(key_attnums(rel) != NIL ? (1 << CMD_UPDATE) | (1 << CMD_DELETE) : 0);
}

static void
owsyncExplainForeignModify(ModifyTableState *mtstate, ResultRelInfo *rinfo, List *fdw_private,
						   int subplan_index, ExplainState *es)
{
	if (es->verbose)
		ExplainPropertyText("SQLite statement", strVal(list_nth(fdw_private, MOD_SQL)), es);
}

/* Wire the write path into the handler's FdwRoutine. */
void
owsync_modify_routines(FdwRoutine *routine)
{
	routine->AddForeignUpdateTargets = owsyncAddForeignUpdateTargets;
	routine->PlanForeignModify = owsyncPlanForeignModify;
	routine->BeginForeignModify = owsyncBeginForeignModify;
	routine->ExecForeignInsert = owsyncExecForeignInsert;
	routine->ExecForeignBatchInsert = owsyncExecForeignBatchInsert;
	routine->GetForeignModifyBatchSize = owsyncGetForeignModifyBatchSize;
	routine->ExecForeignUpdate = owsyncExecForeignUpdate;
	routine->ExecForeignDelete = owsyncExecForeignDelete;
	routine->EndForeignModify = owsyncEndForeignModify;
	routine->BeginForeignInsert = owsyncBeginForeignInsert;
	routine->EndForeignInsert = owsyncEndForeignModify;
	routine->ExplainForeignModify = owsyncExplainForeignModify;
	routine->IsForeignRelUpdatable = owsyncIsForeignRelUpdatable;
}
