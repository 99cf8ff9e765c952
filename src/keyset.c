/*-------------------------------------------------------------------------
 *
 * keyset.c
 *		Key sets of SQLite tables, in buckets: how the sync finds inserted
 *		and deleted keys without comparing every key.
 *
 * The hash of a row's key values (owsync_digest(k1, k2, ...), computed by
 * SQLite; digest.c) places the key in one of 2^nbits buckets by its top
 * nbits bits.  The sum of the hashes of a bucket's keys (wrapping, so
 * order-independent) stands for the bucket's key set: equal sums mean equal
 * sets but for a 2^-64 chance.  The sync stores a table's bucket sums at
 * each sync; when keys were inserted or deleted since, only the buckets
 * whose sum moved need their keys compared, not the whole table.
 *
 * A scan of a table's key hashes is kept with the connection until its
 * snapshot ends (up to MAX_KEPT_KEYS of them), so that the keys of the moved
 * buckets are found without a second scan.
 *
 * Rows inserted or updated with a new updated_at are found by the fast
 * path's window (updated_at >= watermark - overlap); a table whose window
 * holds the rows it held at the last sync (owsync._source_window(): their
 * count and digest sum) and whose key set did not move is settled without
 * reading any row into PostgreSQL.
 *
 *-------------------------------------------------------------------------
 */
#include "owsync_fdw.h"

#include "access/relation.h"
#include "access/sysattr.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"

#define MAX_KEY_BITS 16
#define MAX_KEPT_KEYS (4 * 1024 * 1024)	/* 32 MB */

typedef struct OwsyncKeyScan
{
	char	   *query;			/* the SQLite query that produced them */
	int64		n;
	uint64	   *hashes;
} OwsyncKeyScan;

static inline uint32
key_bucket(uint64 h, int nbits)
{
	return nbits == 0 ? 0 : (uint32) (h >> (64 - nbits));
}

static int
check_key_bits(int32 nbits)
{
	if (nbits < 0 || nbits > MAX_KEY_BITS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bucket bits must be between 0 and %d", MAX_KEY_BITS),
				 errdetail("The value given was %d.", nbits)));
	return nbits;
}

/* "SELECT owsync_digest(k1, k2, ...) FROM <table>" for the key columns of a text[] */
static char *
key_query(const char *table, ArrayType *keys)
{
	Datum	   *elems;
	bool	   *nulls;
	int			nkeys,
				i;
	StringInfoData sql;

	deconstruct_array(keys, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &nkeys);
	if (nkeys == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a key set needs at least one key column")));
	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT owsync_digest(");
	for (i = 0; i < nkeys; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("key column names must not be null")));
		if (i > 0)
			appendStringInfoString(&sql, ", ");
		owsync_quote_ident(&sql, TextDatumGetCString(elems[i]));
	}
	appendStringInfoString(&sql, ") FROM ");
	owsync_quote_ident(&sql, table);
	return sql.data;
}

static void
free_key_scan(OwsyncKeyScan *ks)
{
	pfree(ks->hashes);
	pfree(ks->query);
	pfree(ks);
}

/*
 * The hash of every key of a table, read in the transaction's snapshot (SQLite
 * reads them from the key's index): from the connection when the last scan
 * was of the same keys, else from SQLite, and then kept with the connection.
 */
static OwsyncKeyScan *
scan_keys(OwsyncConn *conn, const char *query)
{
	OwsyncKeyScan *volatile ks = conn->keyscan;
	MemoryContext cxt = owsync_snapshot_context(conn);
	sqlite3_stmt *stmt;
	int64		cap = 1024;		/* doubled as needed */

	if (ks && strcmp(ks->query, query) == 0)
		return ks;
	if (ks)
	{
		free_key_scan(ks);
		conn->keyscan = NULL;
	}
	ks = MemoryContextAllocZero(cxt, sizeof(OwsyncKeyScan));
	ks->query = MemoryContextStrdup(cxt, query);
	ks->hashes = MemoryContextAlloc(cxt, sizeof(uint64) * cap);
	stmt = owsync_prepare(conn, query);
	PG_TRY();
	{
		while (owsync_step(conn, stmt, "hash a table's keys") == SQLITE_ROW)
		{
			if (ks->n == cap)
			{
				cap *= 2;
				ks->hashes = repalloc_huge(ks->hashes, sizeof(uint64) * cap);
			}
			ks->hashes[ks->n++] = (uint64) sqlite3_column_int64(stmt, 0);
		}
	}
	PG_FINALLY();
	{
		sqlite3_finalize(stmt);
	}
	PG_END_TRY();
	return ks;
}

/* Keep a scan for the next call, or free it when it is too large to keep. */
static void
keep_keys(OwsyncConn *conn, OwsyncKeyScan *ks)
{
	if (ks->n <= MAX_KEPT_KEYS)
		conn->keyscan = ks;
	else
	{
		free_key_scan(ks);
		conn->keyscan = NULL;
	}
}

/*
 * owsync.key_buckets(server, table, key_columns, nbits): the bucket sums of a
 * SQLite table's keys as a bigint[] indexed from 0: element 0 is the sum of
 * all buckets (the hash of the whole key set), element 1 + b the sum of
 * bucket b.  Needs USAGE on the server.
 */
PG_FUNCTION_INFO_V1(owsync_key_buckets);

Datum
owsync_key_buckets(PG_FUNCTION_ARGS)
{
	ForeignServer *server = owsync_usable_server(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	char	   *query = key_query(text_to_cstring(PG_GETARG_TEXT_PP(1)), PG_GETARG_ARRAYTYPE_P(2));
	int			nbits = check_key_bits(PG_GETARG_INT32(3));
	int			nbuckets = 1 << nbits;
	OwsyncConn *conn = owsync_get_connection(server);
	OwsyncKeyScan *ks = scan_keys(conn, query);
	uint64	   *sum = palloc0(sizeof(uint64) * (nbuckets + 1));
	Datum	   *elems = palloc(sizeof(Datum) * (nbuckets + 1));
	int			dims[1] = {nbuckets + 1};
	int			lbs[1] = {0};
	int64		i;

	for (i = 0; i < ks->n; i++)
	{
		sum[1 + key_bucket(ks->hashes[i], nbits)] += ks->hashes[i];
		sum[0] += ks->hashes[i];
	}
	keep_keys(conn, ks);
	for (i = 0; i <= nbuckets; i++)
		elems[i] = Int64GetDatum((int64) sum[i]);
	PG_RETURN_ARRAYTYPE_P(construct_md_array(elems, NULL, 1, dims, lbs, INT8OID, 8,
											 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * owsync.moved_buckets(buckets, stored, added): the buckets (numbered from 0)
 * whose sum in buckets (key_buckets() now) is not the one in stored
 * (key_buckets() at the last sync) plus the hashes of the keys in added (the
 * keys known to be new).  NULL when stored is NULL or has another size.
 */
PG_FUNCTION_INFO_V1(owsync_moved_buckets);

Datum
owsync_moved_buckets(PG_FUNCTION_ARGS)
{
	ArrayType  *now_a;
	Datum	   *now,
			   *stored,
			   *added = NULL;
	int			n,
				nstored,
				nadded = 0,
				nbits = 0,
				i;
	uint64	   *expect;
	Datum	   *moved;
	int			nmoved = 0;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	now_a = PG_GETARG_ARRAYTYPE_P(0);
	deconstruct_array(now_a, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &now, NULL, &n);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &stored, NULL, &nstored);
	if (!PG_ARGISNULL(2))
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  &added, NULL, &nadded);
	if (n != nstored || n < 2 || ((n - 1) & (n - 2)) != 0)
		PG_RETURN_NULL();		/* not the same buckets, or not buckets */
	while ((1 << nbits) < n - 1)
		nbits++;

	expect = palloc(sizeof(uint64) * (n - 1));
	for (i = 0; i < n - 1; i++)
		expect[i] = (uint64) DatumGetInt64(stored[i + 1]);
	for (i = 0; i < nadded; i++)
	{
		uint64		h = (uint64) DatumGetInt64(added[i]);

		expect[key_bucket(h, nbits)] += h;
	}
	moved = palloc(sizeof(Datum) * (n - 1));
	for (i = 0; i < n - 1; i++)
		if ((uint64) DatumGetInt64(now[i + 1]) != expect[i])
			moved[nmoved++] = Int32GetDatum(i);
	PG_RETURN_ARRAYTYPE_P(construct_array(moved, nmoved, INT4OID, 4, true, TYPALIGN_INT));
}

/*
 * owsync.key_hashes(server, table, key_columns, nbits, buckets): the hash of
 * every key of a SQLite table that falls in one of the given buckets (in the
 * transaction's snapshot).  The sync compares them with the hashes of the
 * keys it stored in those buckets.  Needs USAGE on the server.
 */
PG_FUNCTION_INFO_V1(owsync_key_hashes);

Datum
owsync_key_hashes(PG_FUNCTION_ARGS)
{
	ForeignServer *server = owsync_usable_server(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	char	   *query = key_query(text_to_cstring(PG_GETARG_TEXT_PP(1)), PG_GETARG_ARRAYTYPE_P(2));
	int			nbits = check_key_bits(PG_GETARG_INT32(3));
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Bitmapset  *wanted = NULL;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int64		i;
	OwsyncConn *conn;
	OwsyncKeyScan *ks;

	deconstruct_array(PG_GETARG_ARRAYTYPE_P(4), INT4OID, 4, true, TYPALIGN_INT, &elems, &nulls, &n);
	for (i = 0; i < n; i++)
	{
		int32		b = DatumGetInt32(elems[i]);

		if (nulls[i] || b < 0 || b >= (1 << nbits))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("bucket numbers must lie between 0 and %d", (1 << nbits) - 1)));
		wanted = bms_add_member(wanted, b);
	}
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (wanted == NULL)
		return (Datum) 0;

	conn = owsync_get_connection(server);
	ks = scan_keys(conn, query);
	for (i = 0; i < ks->n; i++)
		if (bms_is_member(key_bucket(ks->hashes[i], nbits), wanted))
		{
			Datum		value = Int64GetDatum((int64) ks->hashes[i]);
			bool		isnull = false;

			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
		}
	keep_keys(conn, ks);
	return (Datum) 0;
}

/*
 * owsync.key_hash(k1 [, k2 ...]): in PostgreSQL, the hash SQLite computes
 * for a key with these values (owsync_digest() of the key columns: text as
 * TEXT in UTF-8, integers as INTEGER).  The digest tables keep it for each
 * key, and the sync adds up the hashes of the new keys the fast path fetched
 * to tell whether they alone account for a key set that moved.  NULL for key
 * types it cannot mirror (the sync then compares the keys themselves).
 */
PG_FUNCTION_INFO_V1(owsync_key_hash);

Datum
owsync_key_hash(PG_FUNCTION_ARGS)
{
	OwsyncHashValue few[4];		/* keys have one or two columns */
	OwsyncHashValue *values = PG_NARGS() <= lengthof(few) ? few :
		palloc(sizeof(OwsyncHashValue) * PG_NARGS());
	int			i;

	for (i = 0; i < PG_NARGS(); i++)
	{
		Oid			type = get_fn_expr_argtype(fcinfo->flinfo, i);
		OwsyncHashValue *v = &values[i];

		if (PG_ARGISNULL(i))
		{
			v->type = SQLITE_NULL;
			continue;
		}
		switch (type)
		{
			case INT2OID:
			case INT4OID:
			case INT8OID:
				v->type = SQLITE_INTEGER;
				v->integer = type == INT8OID ? PG_GETARG_INT64(i) :
					type == INT4OID ? PG_GETARG_INT32(i) : PG_GETARG_INT16(i);
				break;
			case TEXTOID:
			case VARCHAROID:
				{
					text	   *t = PG_GETARG_TEXT_PP(i);
					int			len = VARSIZE_ANY_EXHDR(t);
					char	   *utf8 = pg_server_to_any(VARDATA_ANY(t), len, PG_UTF8);

					v->type = SQLITE_TEXT;
					v->bytes = utf8;
					v->len = utf8 != VARDATA_ANY(t) ? strlen(utf8) : len;
					break;
				}
			default:
				PG_RETURN_NULL();
		}
	}
	PG_RETURN_INT64((int64) owsync_hash_values(values, PG_NARGS()));
}

/* A 128-bit sum of signed 64-bit values, as numeric text. */
static char *
sum_text(uint64 lo, int64 hi)
{
	/* hi * 2^64 + lo, in numeric */
	Datum		two64 = DirectFunctionCall3(numeric_in, CStringGetDatum("18446744073709551616"),
											ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	Datum		low = DirectFunctionCall3(numeric_in, CStringGetDatum(psprintf(UINT64_FORMAT, lo)),
										  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	Datum		high = DirectFunctionCall1(int8_numeric, Int64GetDatum(hi));
	Datum		sum = DirectFunctionCall2(numeric_add,
										  DirectFunctionCall2(numeric_mul, high, two64), low);

	return DatumGetCString(DirectFunctionCall1(numeric_out, sum));
}

/*
 * Open an owsync_fdw foreign table the user may SELECT from (its server in
 * *server), or raise the error that says why not.
 */
static Relation
open_source(Oid relid, ForeignServer **server)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	AclResult	aclresult;

	if (rel->rd_rel->relkind != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a foreign table", RelationGetRelationName(rel))));
	*server = GetForeignServer(GetForeignTable(relid)->serverid);
	if (strcmp(GetForeignDataWrapper((*server)->fdwid)->fdwname, "owsync_fdw") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("foreign table \"%s\" does not use owsync_fdw", RelationGetRelationName(rel))));
	aclresult = pg_class_aclcheck(relid, GetUserId(), ACL_SELECT);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FOREIGN_TABLE, RelationGetRelationName(rel));
	return rel;
}

/*
 * owsync._source_rows(src): the number of rows of an owsync_fdw foreign
 * table's SQLite table, in the transaction's snapshot (SQLite counts them
 * from its b-tree, reading no row).  Needs SELECT on the foreign table.
 */
PG_FUNCTION_INFO_V1(owsync_source_rows);

Datum
owsync_source_rows(PG_FUNCTION_ARGS)
{
	ForeignServer *server;
	Relation	rel = open_source(PG_GETARG_OID(0), &server);
	StringInfoData sql;
	OwsyncConn *conn;
	sqlite3_stmt *stmt;
	volatile int64 rows = 0;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT count(*) FROM ");
	owsync_quote_ident(&sql, owsync_get_table_name(GetForeignTable(RelationGetRelid(rel))));
	relation_close(rel, AccessShareLock);

	conn = owsync_get_connection(server);
	stmt = owsync_prepare(conn, sql.data);
	PG_TRY();
	{
		if (owsync_step(conn, stmt, "count a table's rows") == SQLITE_ROW)
			rows = sqlite3_column_int64(stmt, 0);
	}
	PG_FINALLY();
	{
		sqlite3_finalize(stmt);
	}
	PG_END_TRY();
	PG_RETURN_INT64(rows);
}

/*
 * owsync._source_window(src, wm_column, since): the signature of the rows of
 * an owsync_fdw foreign table with wm_column >= since (the comparison runs
 * in SQLite), or of all its rows when wm_column is NULL: "count:sum" of
 * their digests, as owsync._window_sig() gives it for any relation, read in
 * the transaction's snapshot without planning a foreign scan.  Needs SELECT
 * on the foreign table.
 */
PG_FUNCTION_INFO_V1(owsync_source_window);

Datum
owsync_source_window(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Relation	rel;
	ForeignServer *server;
	OwsyncColumnOpts *cols;
	int			natts;
	AttrNumber	digest = InvalidAttrNumber;
	AttrNumber	wm = InvalidAttrNumber;
	StringInfoData sql;
	List	   *retrieved;
	List	   *keys;
	OwsyncConn *conn;
	sqlite3_stmt *stmt;
	volatile int64 count = 0;
	volatile uint64 lo = 0;
	volatile int64 hi = 0;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	rel = open_source(relid, &server);

	natts = RelationGetNumberOfAttributes(rel);
	cols = owsync_get_all_column_opts(rel);
	for (int i = 0; i < natts; i++)
		if (cols[i].name != NULL && cols[i].digest)
			digest = i + 1;
	if (digest == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("foreign table \"%s\" has no digest column", RelationGetRelationName(rel))));
	if (!PG_ARGISNULL(1))
	{
		char	   *wm_name = NameStr(*PG_GETARG_NAME(1));

		wm = get_attnum(relid, wm_name);
		if (wm <= 0 || cols[wm - 1].name == NULL || cols[wm - 1].digest || cols[wm - 1].raw)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("foreign table \"%s\" has no column \"%s\" to compare",
							RelationGetRelationName(rel), wm_name)));
	}

	initStringInfo(&sql);
	owsync_deparse_select(&sql, owsync_get_table_name(GetForeignTable(relid)), natts, cols,
						  bms_make_singleton(digest - FirstLowInvalidHeapAttributeNumber),
						  &retrieved, &keys);
	if (wm != InvalidAttrNumber)
	{
		appendStringInfoString(&sql, " WHERE ");
		owsync_quote_ident(&sql, cols[wm - 1].name);
		appendStringInfoString(&sql, " >= ?");
	}
	relation_close(rel, AccessShareLock);

	conn = owsync_get_connection(server);
	stmt = owsync_prepare(conn, sql.data);
	PG_TRY();
	{
		if (wm != InvalidAttrNumber && PG_ARGISNULL(2))
			sqlite3_bind_null(stmt, 1);
		else if (wm != InvalidAttrNumber)
			sqlite3_bind_int64(stmt, 1, PG_GETARG_INT64(2));
		while (owsync_step(conn, stmt, "sum a table's digests") == SQLITE_ROW)
		{
			int64		d = sqlite3_column_int64(stmt, 0);
			uint64		next = lo + (uint64) d;

			/* (hi, lo) += d: carry out of lo, and d's sign extension */
			hi += (next < lo ? 1 : 0) + (d < 0 ? -1 : 0);
			lo = next;
			count++;
		}
	}
	PG_FINALLY();
	{
		sqlite3_finalize(stmt);
	}
	PG_END_TRY();
	PG_RETURN_TEXT_P(cstring_to_text(psprintf(INT64_FORMAT ":%s", count, sum_text(lo, hi))));
}
