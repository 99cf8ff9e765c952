/*-------------------------------------------------------------------------
 *
 * digest.c
 *		Per-row digests computed inside SQLite.
 *
 * The sync cannot trust Open WebUI's updated_at (many writes skip it, some
 * tables have none), so it compares a digest of every row with the one it
 * stored at the last sync and fetches only rows whose digest changed.  The
 * digest is computed where the data is: a SQL function registered on each
 * SQLite connection,
 *
 *		owsync_digest(v1, v2, ...) -> 64-bit integer
 *
 * hashing (XXH3, libxxhash) each value's storage class and its exact bytes:
 * integers as 8 little-endian bytes, reals as their 8 IEEE bytes, text and
 * blobs as a length and their bytes, NULL as its class alone.  So a change
 * of value or of storage class (the integer 5 becoming the text '5') changes
 * the digest, and values are delimited (('ab','c') differs from ('a','bc')).
 *
 * A foreign table column with OPTIONS (digest 'true') is computed this way
 * over all its other columns, in column order (deparse.c).
 *
 *-------------------------------------------------------------------------
 */
#include "owsync_fdw.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "funcapi.h"
#include "utils/lsyscache.h"

#define XXH_STATIC_LINKING_ONLY	/* XXH3_state_t on the stack */
#include <xxhash.h>

/* storage class tags fed to the hash */
#define TAG_NULL	0
#define TAG_INTEGER 1
#define TAG_REAL	2
#define TAG_TEXT	3
#define TAG_BLOB	4

static void
put_u64(XXH3_state_t *state, uint64 v)
{
	unsigned char b[8];
	int			i;

	for (i = 0; i < 8; i++)
		b[i] = (unsigned char) (v >> (8 * i));
	XXH3_64bits_update(state, b, sizeof(b));
}

/* Feed one value (its storage class and exact bytes) to a hash state. */
static void
hash_value(XXH3_state_t *state, sqlite3_value *v)
{
	unsigned char tag;

	switch (sqlite3_value_type(v))
	{
		case SQLITE_INTEGER:
			tag = TAG_INTEGER;
			XXH3_64bits_update(state, &tag, 1);
			put_u64(state, (uint64) sqlite3_value_int64(v));
			break;
		case SQLITE_FLOAT:
			{
				double		d = sqlite3_value_double(v);
				uint64		bits;

				memcpy(&bits, &d, sizeof(bits));
				tag = TAG_REAL;
				XXH3_64bits_update(state, &tag, 1);
				put_u64(state, bits);
				break;
			}
		case SQLITE_TEXT:
			{
				/* text first, then its length: no conversion happens */
				const unsigned char *p = sqlite3_value_text(v);
				int			n = sqlite3_value_bytes(v);

				tag = TAG_TEXT;
				XXH3_64bits_update(state, &tag, 1);
				put_u64(state, (uint64) n);
				XXH3_64bits_update(state, p, n);
				break;
			}
		case SQLITE_BLOB:
			{
				const void *p = sqlite3_value_blob(v);
				int			n = sqlite3_value_bytes(v);

				tag = TAG_BLOB;
				XXH3_64bits_update(state, &tag, 1);
				put_u64(state, (uint64) n);
				if (n > 0)
					XXH3_64bits_update(state, p, n);
				break;
			}
		default:
			tag = TAG_NULL;
			XXH3_64bits_update(state, &tag, 1);
			break;
	}
}

static uint64
hash_row(int argc, sqlite3_value **argv)
{
	XXH3_state_t state;
	int			i;

	XXH3_64bits_reset(&state);
	for (i = 0; i < argc; i++)
		hash_value(&state, argv[i]);
	return XXH3_64bits_digest(&state);
}

static void
owsync_digest_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	sqlite3_result_int64(ctx, (sqlite3_int64) hash_row(argc, argv));
}

/*
 * Key sets.  The hash of a row's key values (hash_row over the key columns)
 * places the key in one of 2^nbits buckets by its top nbits bits.  The sum
 * of the hashes of a bucket's keys (wrapping, so order-independent) stands
 * for the bucket's key set: equal sums mean equal sets but for a 2^-64
 * chance.  The sync stores a table's bucket sums at each sync; when keys
 * were inserted or deleted since, only the buckets whose sum moved need
 * their keys compared, not the whole table.
 *
 * In SQLite, owsync_keybuckets(nbits, k1, k2, ...) is the aggregate of the
 * sums, returned as a blob of 2^nbits little-endian 64-bit integers (NULL
 * for no rows).
 */
#define MAX_KEY_BITS 16

typedef struct KeyBuckets
{
	int			nbits;
	uint64		sum[FLEXIBLE_ARRAY_MEMBER];
} KeyBuckets;

static inline uint32
key_bucket(uint64 h, int nbits)
{
	return nbits == 0 ? 0 : (uint32) (h >> (64 - nbits));
}

static void
owsync_keybuckets_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	int			nbits = sqlite3_value_int(argv[0]);
	KeyBuckets *kb;
	uint64		h;

	if (nbits < 0 || nbits > MAX_KEY_BITS)
	{
		sqlite3_result_error(ctx, "owsync_keybuckets: bucket bits out of range", -1);
		return;
	}
	kb = sqlite3_aggregate_context(ctx, offsetof(KeyBuckets, sum) + (sizeof(uint64) << nbits));
	if (kb == NULL)
	{
		sqlite3_result_error_nomem(ctx);
		return;
	}
	kb->nbits = nbits;
	h = hash_row(argc - 1, argv + 1);
	kb->sum[key_bucket(h, nbits)] += h;
}

static void
owsync_keybuckets_final(sqlite3_context *ctx)
{
	KeyBuckets *kb = sqlite3_aggregate_context(ctx, 0);

	if (kb == NULL)
	{
		sqlite3_result_null(ctx);
		return;
	}
	sqlite3_result_blob(ctx, kb->sum, (int) (sizeof(uint64) << kb->nbits), SQLITE_TRANSIENT);
}

/* Register owsync_digest() and owsync_keybuckets(); returns a SQLite result code. */
int
owsync_register_digest(sqlite3 *db)
{
	int			rc;

	rc = sqlite3_create_function_v2(db, "owsync_digest", -1,
									SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
									NULL, owsync_digest_fn, NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_create_function_v2(db, "owsync_keybuckets", -1,
										SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
										NULL, NULL, owsync_keybuckets_step, owsync_keybuckets_final,
										NULL);
	return rc;
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

/*
 * "SELECT <call>(<args>k1, k2, ...) FROM <table>" for the key column names of
 * a text[] argument.
 */
static char *
key_query(const char *call, const char *args, const char *table, ArrayType *keys)
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
	appendStringInfo(&sql, "SELECT %s(%s", call, args);
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

/*
 * owsync.key_buckets(server, table, key_columns, nbits): the bucket sums of
 * a SQLite table's keys, read in the transaction's snapshot (SQLite reads
 * them from the key's index), as a bigint[] indexed from 0: element 0 is the
 * sum of all buckets (the hash of the whole key set), element 1 + b the sum
 * of bucket b.  Needs USAGE on the server.
 */
PG_FUNCTION_INFO_V1(owsync_key_buckets);

Datum
owsync_key_buckets(PG_FUNCTION_ARGS)
{
	ForeignServer *server = owsync_usable_server(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	char	   *table = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int			nbits = check_key_bits(PG_GETARG_INT32(3));
	int			nbuckets = 1 << nbits;
	char		args[16];
	OwsyncConn *conn;
	sqlite3_stmt *stmt;
	Datum	   *elems = palloc0(sizeof(Datum) * (nbuckets + 1));
	int			dims[1] = {nbuckets + 1};
	int			lbs[1] = {0};
	uint64		total = 0;
	int			i;

	snprintf(args, sizeof(args), "%d, ", nbits);
	conn = owsync_get_connection(server);
	stmt = owsync_prepare(conn, key_query("owsync_keybuckets", args, table,
										  PG_GETARG_ARRAYTYPE_P(2)));
	PG_TRY();
	{
		if (owsync_step(conn, stmt, "hash a table's keys") == SQLITE_ROW &&
			sqlite3_column_type(stmt, 0) == SQLITE_BLOB)
		{
			const unsigned char *p = sqlite3_column_blob(stmt, 0);

			if (sqlite3_column_bytes(stmt, 0) != (int) (sizeof(uint64) * nbuckets))
				elog(ERROR, "owsync_keybuckets returned %d bytes for %d buckets",
					 sqlite3_column_bytes(stmt, 0), nbuckets);
			for (i = 0; i < nbuckets; i++)
			{
				uint64		v;

				memcpy(&v, p + sizeof(uint64) * i, sizeof(v));
				total += v;
				elems[i + 1] = Int64GetDatum((int64) v);
			}
		}
		else
			for (i = 0; i < nbuckets; i++)
				elems[i + 1] = Int64GetDatum(0);
	}
	PG_FINALLY();
	{
		sqlite3_finalize(stmt);
	}
	PG_END_TRY();
	elems[0] = Int64GetDatum((int64) total);
	PG_RETURN_ARRAYTYPE_P(construct_md_array(elems, NULL, 1, dims, lbs, INT8OID, 8,
											 FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
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
	char	   *table = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int			nbits = check_key_bits(PG_GETARG_INT32(3));
	ArrayType  *buckets = PG_GETARG_ARRAYTYPE_P(4);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Bitmapset  *wanted = NULL;
	Datum	   *elems;
	bool	   *nulls;
	int			n,
				i;
	OwsyncConn *conn;
	sqlite3_stmt *stmt;

	deconstruct_array(buckets, INT4OID, 4, true, TYPALIGN_INT, &elems, &nulls, &n);
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
	stmt = owsync_prepare(conn, key_query("owsync_digest", "", table, PG_GETARG_ARRAYTYPE_P(2)));
	PG_TRY();
	{
		while (owsync_step(conn, stmt, "hash a table's keys") == SQLITE_ROW)
		{
			uint64		h = (uint64) sqlite3_column_int64(stmt, 0);

			if (bms_is_member(key_bucket(h, nbits), wanted))
			{
				Datum		value = Int64GetDatum((int64) h);
				bool		isnull = false;

				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
			}
		}
	}
	PG_FINALLY();
	{
		sqlite3_finalize(stmt);
	}
	PG_END_TRY();
	return (Datum) 0;
}

/*
 * owsync.key_hash(k1 [, k2 ...]): in PostgreSQL, the hash SQLite's
 * owsync_keybuckets() adds up for a row with these key values (text as TEXT in
 * UTF-8, integers as INTEGER).  The sync adds the hashes of the new keys the
 * fast path fetched to the key-set hash of the last sync: when that makes
 * the source's key-set hash, nothing else was inserted or deleted, and the
 * full key diff is not needed.  NULL for key types it cannot mirror (the
 * diff then runs).
 */
PG_FUNCTION_INFO_V1(owsync_key_hash);

Datum
owsync_key_hash(PG_FUNCTION_ARGS)
{
	XXH3_state_t state;
	int			i;

	XXH3_64bits_reset(&state);
	for (i = 0; i < PG_NARGS(); i++)
	{
		Oid			type = get_fn_expr_argtype(fcinfo->flinfo, i);
		unsigned char tag;

		if (PG_ARGISNULL(i))
		{
			tag = TAG_NULL;
			XXH3_64bits_update(&state, &tag, 1);
			continue;
		}
		switch (type)
		{
			case INT2OID:
			case INT4OID:
			case INT8OID:
				{
					int64		v = type == INT8OID ? PG_GETARG_INT64(i) :
					type == INT4OID ? PG_GETARG_INT32(i) : PG_GETARG_INT16(i);

					tag = TAG_INTEGER;
					XXH3_64bits_update(&state, &tag, 1);
					put_u64(&state, (uint64) v);
					break;
				}
			case TEXTOID:
			case VARCHAROID:
				{
					text	   *t = PG_GETARG_TEXT_PP(i);
					int			len = VARSIZE_ANY_EXHDR(t);
					char	   *utf8 = pg_server_to_any(VARDATA_ANY(t), len, PG_UTF8);

					if (utf8 != VARDATA_ANY(t))
						len = strlen(utf8);
					tag = TAG_TEXT;
					XXH3_64bits_update(&state, &tag, 1);
					put_u64(&state, (uint64) len);
					XXH3_64bits_update(&state, utf8, len);
					break;
				}
			default:
				PG_RETURN_NULL();
		}
	}
	PG_RETURN_INT64((int64) XXH3_64bits_digest(&state));
}
