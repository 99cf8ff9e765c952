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

static void
owsync_digest_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	XXH3_state_t state;
	int			i;

	XXH3_64bits_reset(&state);
	for (i = 0; i < argc; i++)
	{
		sqlite3_value *v = argv[i];
		unsigned char tag;

		switch (sqlite3_value_type(v))
		{
			case SQLITE_INTEGER:
				tag = TAG_INTEGER;
				XXH3_64bits_update(&state, &tag, 1);
				put_u64(&state, (uint64) sqlite3_value_int64(v));
				break;
			case SQLITE_FLOAT:
				{
					double		d = sqlite3_value_double(v);
					uint64		bits;

					memcpy(&bits, &d, sizeof(bits));
					tag = TAG_REAL;
					XXH3_64bits_update(&state, &tag, 1);
					put_u64(&state, bits);
					break;
				}
			case SQLITE_TEXT:
				{
					/* text first, then its length: no conversion happens */
					const unsigned char *p = sqlite3_value_text(v);
					int			n = sqlite3_value_bytes(v);

					tag = TAG_TEXT;
					XXH3_64bits_update(&state, &tag, 1);
					put_u64(&state, (uint64) n);
					XXH3_64bits_update(&state, p, n);
					break;
				}
			case SQLITE_BLOB:
				{
					const void *p = sqlite3_value_blob(v);
					int			n = sqlite3_value_bytes(v);

					tag = TAG_BLOB;
					XXH3_64bits_update(&state, &tag, 1);
					put_u64(&state, (uint64) n);
					if (n > 0)
						XXH3_64bits_update(&state, p, n);
					break;
				}
			default:
				tag = TAG_NULL;
				XXH3_64bits_update(&state, &tag, 1);
				break;
		}
	}
	sqlite3_result_int64(ctx, (sqlite3_int64) XXH3_64bits_digest(&state));
}

/* Register owsync_digest() on a connection; returns a SQLite result code. */
int
owsync_register_digest(sqlite3 *db)
{
	return sqlite3_create_function_v2(db, "owsync_digest", -1,
									  SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
									  NULL, owsync_digest_fn, NULL, NULL, NULL);
}
