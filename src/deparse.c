/*-------------------------------------------------------------------------
 *
 * deparse.c
 *		SQLite query generation and WHERE-clause pushdown.
 *
 * The rule for pushdown: a clause runs inside SQLite only when SQLite and
 * PostgreSQL select exactly the same rows among the rows PostgreSQL can read
 * (values that convert.c accepts).  That decides what is pushed:
 *
 *	- integer and boolean columns compared with integer/boolean constants and
 *	  parameters, when the SQLite column does not have TEXT affinity (TEXT
 *	  affinity would turn the constant into text and compare as text);
 *	- text columns compared with text, when the SQLite column has TEXT or
 *	  BLOB affinity (so the constant stays text).  SQLite compares text
 *	  bytewise, which is PostgreSQL's order only under the "C" collation: =
 *	  and <> are pushed for any deterministic collation, < <= > >= only for C;
 *	- IS [NOT] NULL on any column; AND, OR, NOT of pushable clauses; IN and
 *	  NOT IN lists of constants.  NULL semantics (three-valued logic) are the
 *	  same in both.
 *
 * Floating-point comparisons are not pushed (PostgreSQL's NaN sorts above
 * every number, SQLite stores NaN as NULL), nor are dates and timestamps
 * (stored as text in several formats).  A row PostgreSQL could not read (a
 * value of the wrong storage class) may be filtered out by SQLite instead of
 * raising an error; an unfiltered scan reports every such value.
 *
 * Integer, boolean and text constants are written into the SQL text; Params
 * (external parameters, PL/pgSQL variables, initplan results such as a scalar
 * subquery) become ?N placeholders bound at execution time.
 *
 *-------------------------------------------------------------------------
 */
#include "owsync_fdw.h"

#include "access/htup_details.h"
#include "access/sysattr.h"
#include "access/transam.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "mb/pg_wchar.h"
#include "nodes/nodeFuncs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/lsyscache.h"
#include "utils/pg_locale.h"
#include "utils/syscache.h"

typedef enum TypeFamily
{
	FAM_NONE,
	FAM_INT,
	FAM_BOOL,
	FAM_TEXT
} TypeFamily;

typedef struct DeparseCtx
{
	RelOptInfo *rel;
	OwsyncRelInfo *info;
	StringInfo	buf;
	List	  **params;
} DeparseCtx;

static void deparse_cond(Expr *expr, DeparseCtx *ctx);

/* SQLite's affinity rules (https://sqlite.org/datatype3.html, 3.1). */
OwsyncAffinity
owsync_affinity(const char *decltype)
{
	char	   *t;

	if (decltype == NULL || decltype[0] == '\0')
		return OWA_BLOB;
	t = asc_toupper(decltype, strlen(decltype));
	if (strstr(t, "INT"))
		return OWA_INTEGER;
	if (strstr(t, "CHAR") || strstr(t, "CLOB") || strstr(t, "TEXT"))
		return OWA_TEXT;
	if (strstr(t, "BLOB"))
		return OWA_BLOB;
	if (strstr(t, "REAL") || strstr(t, "FLOA") || strstr(t, "DOUB"))
		return OWA_REAL;
	return OWA_NUMERIC;
}

void
owsync_quote_ident(StringInfo buf, const char *ident)
{
	const char *p;

	appendStringInfoChar(buf, '"');
	for (p = ident; *p; p++)
	{
		if (*p == '"')
			appendStringInfoChar(buf, '"');
		appendStringInfoChar(buf, *p);
	}
	appendStringInfoChar(buf, '"');
}

/* A text literal; str is in the server encoding and is sent as UTF-8. */
static void
quote_sqlite_literal(StringInfo buf, const char *str)
{
	const char *p = pg_server_to_any(str, strlen(str), PG_UTF8);

	appendStringInfoChar(buf, '\'');
	for (; *p; p++)
	{
		if (*p == '\'')
			appendStringInfoChar(buf, '\'');
		appendStringInfoChar(buf, *p);
	}
	appendStringInfoChar(buf, '\'');
}

static TypeFamily
type_family(Oid typid)
{
	switch (typid)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
			return FAM_INT;
		case BOOLOID:
			return FAM_BOOL;
		case TEXTOID:
		case VARCHAROID:
			return FAM_TEXT;
		default:
			return FAM_NONE;
	}
}

static Expr *
strip_relabel(Expr *expr)
{
	while (expr && IsA(expr, RelabelType))
		expr = ((RelabelType *) expr)->arg;
	return expr;
}

/* A plain user column of the scanned relation, or NULL. */
static Var *
own_var(Expr *expr, RelOptInfo *rel)
{
	expr = strip_relabel(expr);
	if (expr && IsA(expr, Var))
	{
		Var		   *var = (Var *) expr;

		if (bms_is_member(var->varno, rel->relids) && var->varlevelsup == 0 &&
			var->varattno > 0)
			return var;
	}
	return NULL;
}

/* May a comparison in this family on this column be evaluated by SQLite? */
static bool
column_accepts(RelOptInfo *rel, Var *var, TypeFamily fam)
{
	OwsyncRelInfo *info = (OwsyncRelInfo *) rel->fdw_private;
	OwsyncAffinity aff;

	OwsyncColumnOpts *col;

	if (var->varattno > info->natts)
		return false;
	col = &info->cols[var->varattno - 1];
	if (col->name == NULL || col->digest || col->raw)
		return false;
	if (type_family(var->vartype) != fam)
		return false;
	aff = info->affinity[var->varattno - 1];
	if (aff == OWA_UNKNOWN)
		return false;
	if (fam == FAM_TEXT)
		return aff == OWA_TEXT || aff == OWA_BLOB;
	return aff != OWA_TEXT;
}

/* IS [NOT] NULL needs only a column that exists in SQLite. */
static bool
column_exists(RelOptInfo *rel, Var *var)
{
	OwsyncRelInfo *info = (OwsyncRelInfo *) rel->fdw_private;
	OwsyncColumnOpts *col;

	if (var->varattno > info->natts)
		return false;
	col = &info->cols[var->varattno - 1];
	return col->name != NULL && !col->digest && !col->raw &&
		info->affinity[var->varattno - 1] != OWA_UNKNOWN;
}

/* A constant or parameter of the family, usable as the other operand. */
static bool
value_operand(Expr *expr, TypeFamily fam)
{
	expr = strip_relabel(expr);
	if (expr == NULL || type_family(exprType((Node *) expr)) != fam)
		return false;
	if (IsA(expr, Const))
		return true;
	if (IsA(expr, Param))
	{
		Param	   *p = (Param *) expr;

		return p->paramkind == PARAM_EXTERN || p->paramkind == PARAM_EXEC;
	}
	return false;
}

/* The SQLite spelling of a built-in comparison operator, or NULL. */
static const char *
comparison_name(Oid opno, bool *is_range)
{
	HeapTuple	tup;
	Form_pg_operator form;
	const char *result = NULL;
	static const char *const names[] = {"=", "<>", "<", "<=", ">", ">="};
	int			i;

	if (opno >= FirstGenbkiObjectId)
		return NULL;			/* user-defined: semantics unknown */
	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
	if (!HeapTupleIsValid(tup))
		return NULL;
	form = (Form_pg_operator) GETSTRUCT(tup);
	for (i = 0; i < lengthof(names); i++)
		if (strcmp(NameStr(form->oprname), names[i]) == 0)
		{
			result = names[i];
			*is_range = (i >= 2);
		}
	ReleaseSysCache(tup);
	return result;
}

static bool
collation_ok(Oid collid, bool is_range)
{
	if (!OidIsValid(collid))
		return true;
	if (is_range)
		return lc_collate_is_c(collid);
	return get_collation_isdeterministic(collid);
}

static bool
pushable_opexpr(OpExpr *op, RelOptInfo *rel)
{
	Expr	   *l,
			   *r;
	Var		   *var;
	bool		is_range = false;
	TypeFamily	fam;

	if (list_length(op->args) != 2 || comparison_name(op->opno, &is_range) == NULL)
		return false;
	l = linitial(op->args);
	r = lsecond(op->args);
	var = own_var(l, rel);
	if (var == NULL)
	{
		var = own_var(r, rel);
		r = l;
	}
	if (var == NULL)
		return false;
	fam = type_family(var->vartype);
	if (fam == FAM_NONE || !column_accepts(rel, var, fam) || !value_operand(r, fam))
		return false;
	if (fam == FAM_BOOL && is_range)
		return false;
	return fam != FAM_TEXT || collation_ok(op->inputcollid, is_range);
}

static bool
pushable_saop(ScalarArrayOpExpr *saop, RelOptInfo *rel)
{
	bool		is_range = false;
	const char *name = comparison_name(saop->opno, &is_range);
	Var		   *var;
	Expr	   *arr;
	TypeFamily	fam;

	if (name == NULL || list_length(saop->args) != 2)
		return false;
	/* x = ANY (...) is IN, x <> ALL (...) is NOT IN; nothing else */
	if (!((saop->useOr && strcmp(name, "=") == 0) ||
		  (!saop->useOr && strcmp(name, "<>") == 0)))
		return false;
	var = own_var(linitial(saop->args), rel);
	arr = strip_relabel(lsecond(saop->args));
	if (var == NULL || arr == NULL || !IsA(arr, Const) || ((Const *) arr)->constisnull)
		return false;
	fam = type_family(var->vartype);
	if (fam == FAM_NONE || !column_accepts(rel, var, fam) ||
		type_family(get_element_type(((Const *) arr)->consttype)) != fam)
		return false;
	return fam != FAM_TEXT || collation_ok(saop->inputcollid, false);
}

/* Is a boolean clause (a qual, or an argument of AND/OR/NOT) pushable? */
static bool
pushable_cond(Expr *expr, RelOptInfo *rel)
{
	Var		   *var;

	if (expr == NULL)
		return false;
	if ((var = own_var(expr, rel)) != NULL)
		return var->vartype == BOOLOID && column_accepts(rel, var, FAM_BOOL);

	switch (nodeTag(expr))
	{
		case T_BoolExpr:
			{
				ListCell   *lc;

				foreach(lc, ((BoolExpr *) expr)->args)
					if (!pushable_cond(lfirst(lc), rel))
						return false;
				return true;
			}
		case T_NullTest:
			{
				NullTest   *nt = (NullTest *) expr;

				var = own_var(nt->arg, rel);
				return !nt->argisrow && var != NULL && column_exists(rel, var);
			}
		case T_OpExpr:
			return pushable_opexpr((OpExpr *) expr, rel);
		case T_ScalarArrayOpExpr:
			return pushable_saop((ScalarArrayOpExpr *) expr, rel);
		default:
			return false;
	}
}

bool
owsync_is_pushable(RelOptInfo *baserel, Expr *expr)
{
	return pushable_cond(expr, baserel);
}

/* ---------------------------------------------------------------------
 * SQL generation
 * ---------------------------------------------------------------------
 */

static void
deparse_column(Var *var, DeparseCtx *ctx)
{
	owsync_quote_ident(ctx->buf, ctx->info->cols[var->varattno - 1].name);
}

/* A datum of an integer, boolean or text type as a SQLite literal. */
static void
deparse_datum(Datum value, Oid typid, bool isnull, StringInfo buf)
{
	if (isnull)
		appendStringInfoString(buf, "NULL");
	else if (typid == BOOLOID)
		appendStringInfoString(buf, DatumGetBool(value) ? "1" : "0");
	else if (type_family(typid) == FAM_INT)
	{
		Oid			out;
		bool		varlena;

		getTypeOutputInfo(typid, &out, &varlena);
		appendStringInfoString(buf, OidOutputFunctionCall(out, value));
	}
	else
		quote_sqlite_literal(buf, TextDatumGetCString(value));
}

/* The non-column operand: a literal for a Const, ?N for a Param. */
static void
deparse_value(Expr *expr, DeparseCtx *ctx)
{
	expr = strip_relabel(expr);
	if (IsA(expr, Const))
	{
		Const	   *c = (Const *) expr;

		deparse_datum(c->constvalue, c->consttype, c->constisnull, ctx->buf);
	}
	else
	{
		*ctx->params = lappend(*ctx->params, expr);
		appendStringInfo(ctx->buf, "?%d", list_length(*ctx->params));
	}
}

static void
deparse_operand(Expr *expr, DeparseCtx *ctx)
{
	Var		   *var = own_var(expr, ctx->rel);

	if (var)
		deparse_column(var, ctx);
	else
		deparse_value(expr, ctx);
}

static void
deparse_saop(ScalarArrayOpExpr *saop, DeparseCtx *ctx)
{
	Const	   *arr = (Const *) strip_relabel(lsecond(saop->args));
	ArrayType  *a = DatumGetArrayTypeP(arr->constvalue);
	Oid			elemtype = ARR_ELEMTYPE(a);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i;

	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(a, elemtype, typlen, typbyval, typalign, &elems, &nulls, &n);

	if (n == 0)
	{
		/* x IN () is false, x NOT IN () is true, even for NULL x */
		appendStringInfoString(ctx->buf, saop->useOr ? "0" : "1");
		return;
	}
	appendStringInfoChar(ctx->buf, '(');
	deparse_column(own_var(linitial(saop->args), ctx->rel), ctx);
	appendStringInfoString(ctx->buf, saop->useOr ? " IN (" : " NOT IN (");
	for (i = 0; i < n; i++)
	{
		if (i > 0)
			appendStringInfoString(ctx->buf, ", ");
		deparse_datum(elems[i], elemtype, nulls[i], ctx->buf);
	}
	appendStringInfoString(ctx->buf, "))");
}

static void
deparse_cond(Expr *expr, DeparseCtx *ctx)
{
	Var		   *var = own_var(expr, ctx->rel);

	if (var)
	{
		/* a boolean column used as a condition */
		appendStringInfoChar(ctx->buf, '(');
		deparse_column(var, ctx);
		appendStringInfoString(ctx->buf, " = 1)");
		return;
	}

	switch (nodeTag(expr))
	{
		case T_BoolExpr:
			{
				BoolExpr   *b = (BoolExpr *) expr;
				ListCell   *lc;
				const char *sep = b->boolop == AND_EXPR ? " AND " : " OR ";

				if (b->boolop == NOT_EXPR)
				{
					appendStringInfoString(ctx->buf, "(NOT ");
					deparse_cond(linitial(b->args), ctx);
					appendStringInfoChar(ctx->buf, ')');
					return;
				}
				appendStringInfoChar(ctx->buf, '(');
				foreach(lc, b->args)
				{
					if (lc != list_head(b->args))
						appendStringInfoString(ctx->buf, sep);
					deparse_cond(lfirst(lc), ctx);
				}
				appendStringInfoChar(ctx->buf, ')');
				return;
			}
		case T_NullTest:
			{
				NullTest   *nt = (NullTest *) expr;

				appendStringInfoChar(ctx->buf, '(');
				deparse_column(own_var(nt->arg, ctx->rel), ctx);
				appendStringInfoString(ctx->buf, nt->nulltesttype == IS_NULL ?
									   " IS NULL)" : " IS NOT NULL)");
				return;
			}
		case T_OpExpr:
			{
				OpExpr	   *op = (OpExpr *) expr;
				bool		is_range;

				appendStringInfoChar(ctx->buf, '(');
				deparse_operand(linitial(op->args), ctx);
				appendStringInfo(ctx->buf, " %s ", comparison_name(op->opno, &is_range));
				deparse_operand(lsecond(op->args), ctx);
				appendStringInfoChar(ctx->buf, ')');
				return;
			}
		case T_ScalarArrayOpExpr:
			deparse_saop((ScalarArrayOpExpr *) expr, ctx);
			return;
		default:
			elog(ERROR, "unexpected node type %d in owsync_fdw pushdown", (int) nodeTag(expr));
	}
}

/* owsync_digest() over every column but the computed ones, in column order */
static void
deparse_digest(StringInfo buf, int natts, const OwsyncColumnOpts *cols)
{
	int			i;
	bool		first = true;

	appendStringInfoString(buf, "owsync_digest(");
	for (i = 0; i < natts; i++)
	{
		if (cols[i].name == NULL || cols[i].digest || cols[i].raw)
			continue;
		if (!first)
			appendStringInfoString(buf, ", ");
		owsync_quote_ident(buf, cols[i].name);
		first = false;
	}
	appendStringInfoChar(buf, ')');
}

/*
 * SELECT list and FROM clause.  Columns in attrs_used (all columns when it
 * holds the whole-row reference, none when it is empty) are fetched in
 * attribute order; retrieved_attrs gets their attribute numbers.  Error
 * messages name the row by its key, so when anything is fetched the key
 * columns are too: keys gets one (result index, name) pair per key column,
 * pointing at the fetched column or at one appended for the purpose.
 */
void
owsync_deparse_select(StringInfo buf, const char *sqlite_table, int natts,
					  const OwsyncColumnOpts *cols, Bitmapset *attrs_used,
					  List **retrieved_attrs, List **keys)
{
	bool		all = bms_is_member(0 - FirstLowInvalidHeapAttributeNumber, attrs_used);
	int		   *position = palloc(sizeof(int) * Max(natts, 1));
	int			i;
	int			ncols = 0;

	*retrieved_attrs = NIL;
	*keys = NIL;
	appendStringInfoString(buf, "SELECT ");
	for (i = 0; i < natts; i++)
	{
		position[i] = -1;
		if (cols[i].name == NULL)
			continue;			/* dropped column */
		if (!all && !bms_is_member(i + 1 - FirstLowInvalidHeapAttributeNumber, attrs_used))
			continue;
		if (ncols > 0)
			appendStringInfoString(buf, ", ");
		if (cols[i].digest)
			deparse_digest(buf, natts, cols);
		else if (cols[i].raw)
		{
			/* storage class and exact bytes: lossless whatever the value */
			appendStringInfoString(buf, "(typeof(");
			owsync_quote_ident(buf, cols[i].name);
			appendStringInfoString(buf, ") || ':' || hex(");
			owsync_quote_ident(buf, cols[i].name);
			appendStringInfoString(buf, "))");
		}
		else
			owsync_quote_ident(buf, cols[i].name);
		*retrieved_attrs = lappend_int(*retrieved_attrs, i + 1);
		position[i] = ncols++;
	}
	for (i = 0; *retrieved_attrs != NIL && i < natts; i++)
	{
		if (cols[i].name == NULL || !cols[i].key || cols[i].digest || cols[i].raw)
			continue;
		if (position[i] < 0)
		{
			appendStringInfoString(buf, ", ");
			owsync_quote_ident(buf, cols[i].name);
			position[i] = ncols++;
		}
		*keys = lappend(*keys, list_make2(makeInteger(position[i]), makeString(cols[i].name)));
	}
	if (ncols == 0)
		appendStringInfoString(buf, "NULL");
	appendStringInfoString(buf, " FROM ");
	owsync_quote_ident(buf, sqlite_table);
}

/* WHERE clause from the pushed RestrictInfos; params gets the ?N expressions. */
void
owsync_deparse_where(StringInfo buf, RelOptInfo *baserel, List *remote_conds,
					 List **params)
{
	DeparseCtx	ctx;
	ListCell   *lc;

	ctx.rel = baserel;
	ctx.info = (OwsyncRelInfo *) baserel->fdw_private;
	ctx.buf = buf;
	ctx.params = params;

	foreach(lc, remote_conds)
	{
		RestrictInfo *ri = lfirst_node(RestrictInfo, lc);

		appendStringInfoString(buf, lc == list_head(remote_conds) ? " WHERE " : " AND ");
		deparse_cond(ri->clause, &ctx);
	}
}

/* ---------------------------------------------------------------------
 * Writes (modify.c): parameters are numbered ?1, ?2, ... in the order of
 * the lists
 * ---------------------------------------------------------------------
 */

/* " WHERE "k1" = ?n AND ...", numbering from first */
static void
deparse_key_match(StringInfo buf, List *keynames, int first)
{
	ListCell   *lc;

	foreach(lc, keynames)
	{
		appendStringInfoString(buf, lc == list_head(keynames) ? " WHERE " : " AND ");
		owsync_quote_ident(buf, strVal(lfirst(lc)));
		appendStringInfo(buf, " = ?%d", first++);
	}
}

/* INSERT of nrows rows of the named columns (DEFAULT VALUES for none). */
void
owsync_deparse_insert(StringInfo buf, const char *sqlite_table, List *colnames, int nrows)
{
	ListCell   *lc;
	int			param = 1;

	appendStringInfoString(buf, "INSERT INTO ");
	owsync_quote_ident(buf, sqlite_table);
	if (colnames == NIL)
	{
		appendStringInfoString(buf, " DEFAULT VALUES");
		return;
	}
	appendStringInfoString(buf, " (");
	foreach(lc, colnames)
	{
		if (lc != list_head(colnames))
			appendStringInfoString(buf, ", ");
		owsync_quote_ident(buf, strVal(lfirst(lc)));
	}
	appendStringInfoString(buf, ") VALUES ");
	for (int row = 0; row < nrows; row++)
	{
		appendStringInfoString(buf, row > 0 ? ", (" : "(");
		foreach(lc, colnames)
			appendStringInfo(buf, lc == list_head(colnames) ? "?%d" : ", ?%d", param++);
		appendStringInfoChar(buf, ')');
	}
}

/* UPDATE of the named columns of the row with the given key. */
void
owsync_deparse_update(StringInfo buf, const char *sqlite_table, List *colnames,
					  List *keynames)
{
	ListCell   *lc;
	int			param = 1;

	appendStringInfoString(buf, "UPDATE ");
	owsync_quote_ident(buf, sqlite_table);
	foreach(lc, colnames)
	{
		appendStringInfoString(buf, lc == list_head(colnames) ? " SET " : ", ");
		owsync_quote_ident(buf, strVal(lfirst(lc)));
		appendStringInfo(buf, " = ?%d", param++);
	}
	deparse_key_match(buf, keynames, param);
}

/* DELETE of the row with the given key. */
void
owsync_deparse_delete(StringInfo buf, const char *sqlite_table, List *keynames)
{
	appendStringInfoString(buf, "DELETE FROM ");
	owsync_quote_ident(buf, sqlite_table);
	deparse_key_match(buf, keynames, 1);
}
