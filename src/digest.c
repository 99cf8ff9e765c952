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
 * over all its other columns, in column order (deparse.c).  The same hash of
 * values held outside SQLite (owsync_hash_values) lets PostgreSQL compute
 * what SQLite computes for a key (keyset.c).
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

/*
 * A row's hash: the bytes fed to it gather in a small buffer and are hashed
 * in one call (XXH3's one-shot function is much faster than its streaming
 * one on short input, and gives the same result); past the buffer, the
 * streaming state takes over.
 */
typedef struct Hasher
{
	size_t		len;
	bool		streaming;
	unsigned char buf[256];
	XXH3_state_t state;
} Hasher;

static void
hasher_put(Hasher *h, const void *p, size_t n)
{
	if (!h->streaming)
	{
		if (h->len + n <= sizeof(h->buf))
		{
			memcpy(h->buf + h->len, p, n);
			h->len += n;
			return;
		}
		XXH3_64bits_reset(&h->state);
		XXH3_64bits_update(&h->state, h->buf, h->len);
		h->streaming = true;
	}
	XXH3_64bits_update(&h->state, p, n);
}

static uint64
hasher_digest(Hasher *h)
{
	return h->streaming ? XXH3_64bits_digest(&h->state) : XXH3_64bits(h->buf, h->len);
}

/* a storage class tag, then an optional 8-byte little-endian number */
static void
hash_tag(Hasher *h, unsigned char tag, bool with_number, uint64 v)
{
	unsigned char b[9];
	int			i;

	b[0] = tag;
	for (i = 0; i < 8; i++)
		b[1 + i] = (unsigned char) (v >> (8 * i));
	hasher_put(h, b, with_number ? 9 : 1);
}

/* text or blob: tag, length, bytes */
static void
hash_bytes(Hasher *h, unsigned char tag, const void *p, int n)
{
	hash_tag(h, tag, true, (uint64) n);
	if (n > 0)
		hasher_put(h, p, n);
}

/* the 8 IEEE bytes of a double, as a number */
static uint64
real_bits(double d)
{
	uint64		bits;

	memcpy(&bits, &d, sizeof(bits));
	return bits;
}

/* Feed one SQLite value (its storage class and exact bytes) to a hash. */
static void
hash_value(Hasher *h, sqlite3_value *v)
{
	switch (sqlite3_value_type(v))
	{
		case SQLITE_INTEGER:
			hash_tag(h, TAG_INTEGER, true, (uint64) sqlite3_value_int64(v));
			break;
		case SQLITE_FLOAT:
			hash_tag(h, TAG_REAL, true, real_bits(sqlite3_value_double(v)));
			break;
		case SQLITE_TEXT:
			{
				/* text first, then its length: no conversion happens */
				const unsigned char *p = sqlite3_value_text(v);

				hash_bytes(h, TAG_TEXT, p, sqlite3_value_bytes(v));
				break;
			}
		case SQLITE_BLOB:
			{
				const void *p = sqlite3_value_blob(v);

				hash_bytes(h, TAG_BLOB, p, sqlite3_value_bytes(v));
				break;
			}
		default:
			hash_tag(h, TAG_NULL, false, 0);
			break;
	}
}

/* Feed one value held outside SQLite to a hash, as hash_value would. */
static void
hash_held_value(Hasher *h, const OwsyncHashValue *v)
{
	switch (v->type)
	{
		case SQLITE_INTEGER:
			hash_tag(h, TAG_INTEGER, true, (uint64) v->integer);
			break;
		case SQLITE_FLOAT:
			hash_tag(h, TAG_REAL, true, real_bits(v->real));
			break;
		case SQLITE_TEXT:
			hash_bytes(h, TAG_TEXT, v->bytes, v->len);
			break;
		case SQLITE_BLOB:
			hash_bytes(h, TAG_BLOB, v->bytes, v->len);
			break;
		default:
			hash_tag(h, TAG_NULL, false, 0);
			break;
	}
}

static void
hasher_init(Hasher *h)
{
	h->len = 0;
	h->streaming = false;
}

/* owsync_digest(v1, v2, ...) as SQLite calls it. */
static void
owsync_digest_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	Hasher		h;
	int			i;

	hasher_init(&h);
	for (i = 0; i < argc; i++)
		hash_value(&h, argv[i]);
	sqlite3_result_int64(ctx, (sqlite3_int64) hasher_digest(&h));
}

/* Register owsync_digest() on a SQLite handle; returns a SQLite result code. */
int
owsync_register_digest(sqlite3 *db)
{
	return sqlite3_create_function_v2(db, "owsync_digest", -1,
									  SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
									  NULL, owsync_digest_fn, NULL, NULL, NULL);
}

/*
 * The digest SQLite's owsync_digest() gives for these values, computed
 * without SQLite: equal for equal storage classes and bytes.
 */
uint64
owsync_hash_values(const OwsyncHashValue *values, int n)
{
	Hasher		h;
	int			i;

	hasher_init(&h);
	for (i = 0; i < n; i++)
		hash_held_value(&h, &values[i]);
	return hasher_digest(&h);
}
