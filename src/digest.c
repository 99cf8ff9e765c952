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
 * owsync_keyset(k1, k2, ...): an aggregate hash of a table's set of keys,
 * the wrapping sum of each row's hash, so independent of row order.  Equal
 * sums mean equal key sets but for a 2^-64 chance: the sync skips its key
 * diff (inserts and deletes) when a table's sum did not move.
 */
static void
owsync_keyset_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	uint64	   *sum = sqlite3_aggregate_context(ctx, sizeof(uint64));

	if (sum)
		*sum += hash_row(argc, argv);
}

static void
owsync_keyset_final(sqlite3_context *ctx)
{
	uint64	   *sum = sqlite3_aggregate_context(ctx, 0);

	sqlite3_result_int64(ctx, (sqlite3_int64) (sum ? *sum : 0));
}

/* Register owsync_digest() on a connection; returns a SQLite result code. */
int
owsync_register_digest(sqlite3 *db)
{
	int			rc;

	rc = sqlite3_create_function_v2(db, "owsync_digest", -1,
									SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
									NULL, owsync_digest_fn, NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_create_function_v2(db, "owsync_keyset", -1,
										SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
										NULL, NULL, owsync_keyset_step, owsync_keyset_final, NULL);
	return rc;
}

/*
 * owsync.key_set_hash(server, table, key_columns): owsync_keyset() of a
 * SQLite table's key columns, read in the transaction's snapshot (SQLite
 * reads it from the key's index).  Needs USAGE on the server.
 */
PG_FUNCTION_INFO_V1(owsync_key_set_hash);

Datum
owsync_key_set_hash(PG_FUNCTION_ARGS)
{
	ForeignServer *server = owsync_usable_server(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	char	   *table = text_to_cstring(PG_GETARG_TEXT_PP(1));
	ArrayType  *keys = PG_GETARG_ARRAYTYPE_P(2);
	Datum	   *elems;
	bool	   *nulls;
	int			nkeys,
				i;
	StringInfoData sql;
	OwsyncConn *conn;
	sqlite3_stmt *stmt;
	int64		result = 0;

	deconstruct_array(keys, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &nkeys);
	if (nkeys == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a key set needs at least one key column")));
	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT owsync_keyset(");
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

	conn = owsync_get_connection(server);
	stmt = owsync_prepare(conn, sql.data);
	PG_TRY();
	{
		if (owsync_step(conn, stmt, "hash a table's keys") == SQLITE_ROW)
			result = sqlite3_column_int64(stmt, 0);
	}
	PG_FINALLY();
	{
		sqlite3_finalize(stmt);
	}
	PG_END_TRY();
	PG_RETURN_INT64(result);
}

/*
 * owsync.key_hash(k1 [, k2 ...]): in PostgreSQL, the hash SQLite's
 * owsync_keyset() adds up for a row with these key values (text as TEXT in
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
