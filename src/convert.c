/*-------------------------------------------------------------------------
 *
 * convert.c
 *		SQLite values to PostgreSQL datums (and parameters the other way).
 *
 * Lossless or loud: a value either lands unchanged in meaning or the read
 * fails with an error naming the server, table, column and the row's key,
 * and saying what was found.  Nothing is truncated, replaced or guessed.
 * Integers, floats and booleans convert without a text round trip.
 *
 * What each PostgreSQL type accepts (by SQLite storage class):
 *	bigint/integer/smallint	INTEGER in range
 *	boolean					INTEGER 0 or 1
 *	double precision/real	REAL; INTEGER when exactly representable
 *	numeric					INTEGER, REAL, TEXT holding a decimal number
 *	text/varchar			TEXT that is valid UTF-8 without NUL (varchar(n): fits)
 *	json/jsonb				TEXT holding valid JSON; INTEGER and REAL (a JSON
 *							column has NUMERIC affinity, so SQLite stores the
 *							JSON text "5" as the integer 5)
 *	bytea					BLOB
 *	date					TEXT 'YYYY-MM-DD'
 *	timestamp				TEXT 'YYYY-MM-DD HH:MM[:SS[.ffffff]]' ('T' allowed)
 *	other types				TEXT through the type's input function
 *
 *-------------------------------------------------------------------------
 */
#include "owsync_fdw.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/float.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

/* 2^53: the largest range in which every integer is an exact double */
#define OWSYNC_EXACT_DOUBLE_INT ((int64) 1 << 53)

static char *describe_key(const OwsyncRowRef *ref);

static const char *
storage_class_name(int type)
{
	switch (type)
	{
		case SQLITE_INTEGER:
			return "INTEGER";
		case SQLITE_FLOAT:
			return "REAL";
		case SQLITE_TEXT:
			return "TEXT";
		case SQLITE_BLOB:
			return "BLOB";
		default:
			return "NULL";
	}
}

OwsyncKind
owsync_kind_for_type(Oid typid)
{
	switch (typid)
	{
		case INT8OID:
			return OWK_INT8;
		case INT4OID:
			return OWK_INT4;
		case INT2OID:
			return OWK_INT2;
		case BOOLOID:
			return OWK_BOOL;
		case FLOAT8OID:
			return OWK_FLOAT8;
		case FLOAT4OID:
			return OWK_FLOAT4;
		case NUMERICOID:
			return OWK_NUMERIC;
		case TEXTOID:
		case VARCHAROID:
			return OWK_TEXT;
		case JSONOID:
			return OWK_JSON;
		case JSONBOID:
			return OWK_JSONB;
		case BYTEAOID:
			return OWK_BYTEA;
		case DATEOID:
			return OWK_DATE;
		case TIMESTAMPOID:
			return OWK_TIMESTAMP;
		default:
			return OWK_OTHER;
	}
}

void
owsync_init_column(OwsyncColumn *col, AttrNumber attnum, const char *name,
				   Oid typid, int32 typmod)
{
	col->attnum = attnum;
	col->name = pstrdup(name);
	col->typid = typid;
	col->typmod = typmod;
	col->kind = owsync_kind_for_type(typid);
	col->buf = NULL;
	col->bufsize = 0;
	col->bufcxt = CurrentMemoryContext;
	if (col->kind == OWK_NUMERIC || col->kind == OWK_JSONB || col->kind == OWK_DATE ||
		col->kind == OWK_TIMESTAMP || col->kind == OWK_OTHER)
	{
		Oid			infunc;

		getTypeInputInfo(typid, &infunc, &col->ioparam);
		fmgr_info(infunc, &col->input);
	}
}

/*
 * A varlena (text, json, bytea) holding the current row's value.  It lives
 * in the column's buffer, which only grows: a slot's values are only valid
 * until the next row is fetched, so the buffer is simply reused, with no
 * allocation (and for large values no malloc, free and page faults) per row.
 */
static Datum
varlena_value(OwsyncColumn *col, const void *data, int len)
{
	Size		need = (Size) len + VARHDRSZ;
	struct varlena *v;

	if (need > col->bufsize)
	{
		Size		size = Max(need, Max(col->bufsize * 2, 1024));

		if (col->buf)
			pfree(col->buf);
		col->buf = MemoryContextAllocHuge(col->bufcxt, size);
		col->bufsize = size;
	}
	v = (struct varlena *) col->buf;
	SET_VARSIZE(v, need);
	if (len > 0)
		memcpy(VARDATA(v), data, len);
	return PointerGetDatum(v);
}

/*
 * Errors raised by a type's input function do not know where the value came
 * from: this context line says it.
 */
typedef struct InputErrorCtx
{
	const OwsyncColumn *col;
	const OwsyncRowRef *ref;
} InputErrorCtx;

static void
input_error_callback(void *arg)
{
	InputErrorCtx *ctx = (InputErrorCtx *) arg;

	errcontext("column \"%s\" of SQLite table \"%s\" on server \"%s\", key (%s)",
			   ctx->col->name, ctx->ref->tablename, ctx->ref->servername,
			   describe_key(ctx->ref));
}

/* The type's input function on a checked string (numeric, jsonb, dates, others). */
static Datum
input_value(OwsyncColumn *col, const OwsyncRowRef *ref, char *str)
{
	ErrorContextCallback errcb;
	InputErrorCtx ctx;
	Datum		result;

	ctx.col = col;
	ctx.ref = ref;
	errcb.callback = input_error_callback;
	errcb.arg = &ctx;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	result = InputFunctionCall(&col->input, str, col->ioparam, col->typmod);
	error_context_stack = errcb.previous;
	return result;
}

/*
 * The key of the current row as "name=value, ..." for error messages.  Runs
 * while an error is being built, so it only reads and never throws.
 */
static char *
describe_key(const OwsyncRowRef *ref)
{
	StringInfoData buf;
	int			i;

	if (ref->nkeys == 0)
		return pstrdup("no key columns");

	initStringInfo(&buf);
	for (i = 0; i < ref->nkeys; i++)
	{
		int			idx = ref->keyidx[i];
		int			type = sqlite3_column_type(ref->stmt, idx);

		if (i > 0)
			appendStringInfoString(&buf, ", ");
		appendStringInfo(&buf, "%s=", ref->keynames[i]);
		if (type == SQLITE_NULL)
			appendStringInfoString(&buf, "NULL");
		else if (type == SQLITE_INTEGER)
			appendStringInfo(&buf, INT64_FORMAT, (int64) sqlite3_column_int64(ref->stmt, idx));
		else
		{
			/* text shown quoted, printable ASCII only, at most 64 bytes */
			const unsigned char *s = sqlite3_column_text(ref->stmt, idx);
			int			len = sqlite3_column_bytes(ref->stmt, idx);
			int			j;

			appendStringInfoChar(&buf, '\'');
			for (j = 0; s && j < len && j < 64; j++)
			{
				if (s[j] >= 0x20 && s[j] < 0x7f && s[j] != '\'')
					appendStringInfoChar(&buf, s[j]);
				else
					appendStringInfo(&buf, "\\x%02x", s[j]);
			}
			if (len > 64)
				appendStringInfoString(&buf, "...");
			appendStringInfoChar(&buf, '\'');
		}
	}
	return buf.data;
}

/* The single shape of every conversion error. */
static void
bad_value(const OwsyncColumn *col, const OwsyncRowRef *ref, int sqlstate,
		  const char *detail) pg_attribute_noreturn();

static void
bad_value(const OwsyncColumn *col, const OwsyncRowRef *ref, int sqlstate,
		  const char *detail)
{
	if (ref->nkeys == 0)
		ereport(ERROR,
				(errcode(sqlstate),
				 errmsg("cannot read column \"%s\" of SQLite table \"%s\" on server \"%s\" as %s",
						col->name, ref->tablename, ref->servername,
						format_type_with_typemod(col->typid, col->typmod)),
				 errdetail_internal("%s The table has no key columns to name the row.", detail)));
	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg("cannot read column \"%s\" of SQLite table \"%s\" on server \"%s\" as %s, key (%s)",
					col->name, ref->tablename, ref->servername,
					format_type_with_typemod(col->typid, col->typmod),
					describe_key(ref)),
			 errdetail_internal("%s", detail)));
}

static void
bad_class(const OwsyncColumn *col, const OwsyncRowRef *ref, int type) pg_attribute_noreturn();

static void
bad_class(const OwsyncColumn *col, const OwsyncRowRef *ref, int type)
{
	bad_value(col, ref, ERRCODE_INVALID_TEXT_REPRESENTATION,
			  psprintf("Found a value of storage class %s.", storage_class_name(type)));
}

/*
 * Check SQLite text for NUL bytes and invalid UTF-8 in one pass (the
 * verifier stops at either) and return it as a server-encoded string.
 */
static char *
checked_text(const OwsyncColumn *col, const OwsyncRowRef *ref,
			 const char *s, int len)
{
	int			ok = pg_encoding_verifymbstr(PG_UTF8, s, len);

	if (ok < len)
	{
		if (s[ok] == '\0')
			bad_value(col, ref, ERRCODE_UNTRANSLATABLE_CHARACTER,
					  psprintf("Text contains a NUL byte at byte %d of %d.", ok + 1, len));
		bad_value(col, ref, ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
				  psprintf("Text is not valid UTF-8 at byte %d of %d (0x%02x).",
						   ok + 1, len, (unsigned char) s[ok]));
	}
	if (GetDatabaseEncoding() == PG_UTF8)
		return (char *) s;
	return pg_any_to_server(s, len, PG_UTF8);
}

/* Validate JSON text without throwing; with_escapes also rejects what jsonb can't hold. */
static void
check_json(const OwsyncColumn *col, const OwsyncRowRef *ref, char *s, int len,
		   bool with_escapes)
{
	JsonLexContext *lex;
	JsonParseErrorType err;

	lex = makeJsonLexContextCstringLen(s, len, GetDatabaseEncoding(), with_escapes);
	err = pg_parse_json(lex, &nullSemAction);
	if (err == JSON_SUCCESS)
		return;
	if (err == JSON_UNICODE_CODE_POINT_ZERO || err == JSON_UNICODE_HIGH_SURROGATE ||
		err == JSON_UNICODE_LOW_SURROGATE ||
		err == JSON_UNICODE_HIGH_ESCAPE)
		bad_value(col, ref, ERRCODE_UNTRANSLATABLE_CHARACTER,
				  psprintf("JSON text cannot be stored as jsonb: %s", json_errdetail(err, lex)));
	bad_value(col, ref, ERRCODE_INVALID_TEXT_REPRESENTATION,
			  psprintf("Invalid JSON: %s", json_errdetail(err, lex)));
}

/* digits at s[0..n) */
static bool
all_digits(const char *s, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* 'YYYY-MM-DD' */
static bool
is_date_text(const char *s, int len)
{
	return len == 10 && all_digits(s, 4) && s[4] == '-' && all_digits(s + 5, 2) &&
		s[7] == '-' && all_digits(s + 8, 2);
}

/* 'YYYY-MM-DD HH:MM[:SS[.f{1,6}]]', 'T' allowed as separator */
static bool
is_timestamp_text(const char *s, int len)
{
	if (len < 16 || !is_date_text(s, 10) || (s[10] != ' ' && s[10] != 'T') ||
		!all_digits(s + 11, 2) || s[13] != ':' || !all_digits(s + 14, 2))
		return false;
	if (len == 16)
		return true;
	if (len < 19 || s[16] != ':' || !all_digits(s + 17, 2))
		return false;
	if (len == 19)
		return true;
	return s[19] == '.' && len >= 21 && len <= 26 && all_digits(s + 20, len - 20);
}

/* '[+-]digits[.digits][e[+-]digits]' as SQLite would have kept it as TEXT */
static bool
is_decimal_text(const char *s, int len)
{
	int			i = 0,
				digits = 0;

	if (i < len && (s[i] == '+' || s[i] == '-'))
		i++;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
		digits++;
	if (i < len && s[i] == '.')
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
			digits++;
	if (digits == 0)
		return false;
	if (i < len && (s[i] == 'e' || s[i] == 'E'))
	{
		int			expdigits = 0;

		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
			expdigits++;
		if (expdigits == 0)
			return false;
	}
	return i == len;
}

/* A REAL as the shortest text that reads back as the same double. */
static char *
real_text(double d)
{
	return DatumGetCString(DirectFunctionCall1(float8out, Float8GetDatum(d)));
}

static Datum
convert_integer(OwsyncColumn *col, const OwsyncRowRef *ref, int64 v)
{
	switch (col->kind)
	{
		case OWK_INT8:
			return Int64GetDatum(v);
		case OWK_INT4:
			if (v < PG_INT32_MIN || v > PG_INT32_MAX)
				bad_value(col, ref, ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
						  psprintf("Integer " INT64_FORMAT " is out of range for type integer.", v));
			return Int32GetDatum((int32) v);
		case OWK_INT2:
			if (v < PG_INT16_MIN || v > PG_INT16_MAX)
				bad_value(col, ref, ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
						  psprintf("Integer " INT64_FORMAT " is out of range for type smallint.", v));
			return Int16GetDatum((int16) v);
		case OWK_BOOL:
			if (v != 0 && v != 1)
				bad_value(col, ref, ERRCODE_INVALID_TEXT_REPRESENTATION,
						  psprintf("Integer " INT64_FORMAT " is not a boolean (0 or 1).", v));
			return BoolGetDatum(v == 1);
		case OWK_FLOAT8:
		case OWK_FLOAT4:
			if (v > OWSYNC_EXACT_DOUBLE_INT || v < -OWSYNC_EXACT_DOUBLE_INT ||
				(col->kind == OWK_FLOAT4 && (int64) (float4) v != v))
				bad_value(col, ref, ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
						  psprintf("Integer " INT64_FORMAT " has no exact %s representation.",
								   v, col->kind == OWK_FLOAT4 ? "real" : "double precision"));
			return col->kind == OWK_FLOAT4 ? Float4GetDatum((float4) v) : Float8GetDatum((float8) v);
		case OWK_NUMERIC:
			return NumericGetDatum(int64_to_numeric(v));
		case OWK_JSON:
		case OWK_JSONB:
		case OWK_OTHER:
			{
				char		buf[32];

				snprintf(buf, sizeof(buf), INT64_FORMAT, v);
				if (col->kind == OWK_JSON)
					return PointerGetDatum(cstring_to_text(buf));
				return input_value(col, ref, buf);
			}
		default:
			bad_class(col, ref, SQLITE_INTEGER);
	}
}

static Datum
convert_real(OwsyncColumn *col, const OwsyncRowRef *ref, double d)
{
	switch (col->kind)
	{
		case OWK_FLOAT8:
			return Float8GetDatum(d);
		case OWK_FLOAT4:
			if (isfinite(d) && (double) (float4) d != d)
				bad_value(col, ref, ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
						  psprintf("REAL %s has no exact real representation.", real_text(d)));
			return Float4GetDatum((float4) d);
		case OWK_NUMERIC:
			return input_value(col, ref, real_text(d));
		case OWK_JSON:
		case OWK_JSONB:
			if (!isfinite(d))
				bad_value(col, ref, ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
						  psprintf("REAL %s cannot be written as a JSON number.", real_text(d)));
			if (col->kind == OWK_JSON)
				return PointerGetDatum(cstring_to_text(real_text(d)));
			return input_value(col, ref, real_text(d));
		case OWK_OTHER:
			return input_value(col, ref, real_text(d));
		default:
			bad_class(col, ref, SQLITE_FLOAT);
	}
}

static Datum
convert_text(OwsyncColumn *col, const OwsyncRowRef *ref, const char *raw, int len)
{
	char	   *s;

	if (col->kind == OWK_INT8 || col->kind == OWK_INT4 || col->kind == OWK_INT2 ||
		col->kind == OWK_BOOL || col->kind == OWK_FLOAT8 || col->kind == OWK_FLOAT4 ||
		col->kind == OWK_BYTEA)
		bad_class(col, ref, SQLITE_TEXT);

	/*
	 * The hot path (Open WebUI's JSON blobs): the fast check proves UTF-8,
	 * no NUL and valid json in one pass.  Anything it does not prove takes
	 * the full path below, which decides and explains.
	 */
	if (col->kind == OWK_JSON && GetDatabaseEncoding() == PG_UTF8 &&
		owsync_json_valid_fast(raw, len))
		return varlena_value(col, raw, len);

	s = checked_text(col, ref, raw, len);
	if (s != raw)
		len = strlen(s);

	switch (col->kind)
	{
		case OWK_TEXT:
			if (col->typmod > VARHDRSZ &&
				pg_mbstrlen_with_len(s, len) > col->typmod - VARHDRSZ)
				bad_value(col, ref, ERRCODE_STRING_DATA_RIGHT_TRUNCATION,
						  psprintf("Text of %d characters does not fit in %s.",
								   pg_mbstrlen_with_len(s, len),
								   format_type_with_typemod(col->typid, col->typmod)));
			return varlena_value(col, s, len);
		case OWK_JSON:
			check_json(col, ref, (char *) s, len, false);
			return varlena_value(col, s, len);
		case OWK_JSONB:
			check_json(col, ref, (char *) s, len, true);
			return input_value(col, ref, (char *) s);
		case OWK_NUMERIC:
			if (!is_decimal_text(s, len))
				bad_value(col, ref, ERRCODE_INVALID_TEXT_REPRESENTATION,
						  psprintf("TEXT value is not a decimal number (%d bytes).", len));
			return input_value(col, ref, (char *) s);
		case OWK_DATE:
			if (!is_date_text(s, len))
				bad_value(col, ref, ERRCODE_INVALID_DATETIME_FORMAT,
						  "TEXT value is not a date of the form YYYY-MM-DD.");
			return input_value(col, ref, (char *) s);
		case OWK_TIMESTAMP:
			if (!is_timestamp_text(s, len))
				bad_value(col, ref, ERRCODE_INVALID_DATETIME_FORMAT,
						  "TEXT value is not a timestamp of the form YYYY-MM-DD HH:MM[:SS[.ffffff]].");
			return input_value(col, ref, (char *) s);
		default:
			return input_value(col, ref, (char *) s);
	}
}

/*
 * Convert result column idx of the current row.  text, json and bytea
 * values live in the column's buffer, anything else is allocated in the
 * current memory context (the scan's per-row context); both are valid until
 * the next row.
 */
Datum
owsync_convert_value(OwsyncColumn *col, sqlite3_stmt *stmt, int idx,
					 bool *isnull, const OwsyncRowRef *ref)
{
	int			type = sqlite3_column_type(stmt, idx);

	*isnull = false;
	switch (type)
	{
		case SQLITE_NULL:
			*isnull = true;
			return (Datum) 0;
		case SQLITE_INTEGER:
			return convert_integer(col, ref, sqlite3_column_int64(stmt, idx));
		case SQLITE_FLOAT:
			return convert_real(col, ref, sqlite3_column_double(stmt, idx));
		case SQLITE_TEXT:
			{
				/* sqlite3_column_text NUL-terminates; bytes counts past embedded NULs */
				const char *s = (const char *) sqlite3_column_text(stmt, idx);

				return convert_text(col, ref, s, sqlite3_column_bytes(stmt, idx));
			}
		default:				/* SQLITE_BLOB */
			{
				const void *p = sqlite3_column_blob(stmt, idx);

				if (col->kind != OWK_BYTEA)
					bad_class(col, ref, SQLITE_BLOB);
				return varlena_value(col, p, sqlite3_column_bytes(stmt, idx));
			}
	}
}

/*
 * Text in the server encoding, bound as UTF-8; copied by SQLite unless the
 * caller keeps the value alive until the statement has run (static).
 */
static int
bind_text(sqlite3_stmt *stmt, int idx, const char *s, int len, bool static_value)
{
	char	   *u = pg_server_to_any(s, len, PG_UTF8);

	if (u != s)
		len = strlen(u);
	return sqlite3_bind_text(stmt, idx, u, len, static_value ? SQLITE_STATIC : SQLITE_TRANSIENT);
}

/* A timestamp as Python's str(datetime) writes it: microseconds only when not zero. */
static char *
timestamp_text(Timestamp ts, bool date_only)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (TIMESTAMP_NOT_FINITE(ts) || timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0 ||
		tm.tm_year < 1 || tm.tm_year > 9999)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("%s value is out of range for SQLite", date_only ? "date" : "timestamp"),
				 errdetail("SQLite holds dates as text YYYY-MM-DD, for years 1 to 9999.")));
	if (date_only)
		return psprintf("%04d-%02d-%02d", tm.tm_year, tm.tm_mon, tm.tm_mday);
	if (fsec != 0)
		return psprintf("%04d-%02d-%02d %02d:%02d:%02d.%06d", tm.tm_year, tm.tm_mon, tm.tm_mday,
						tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
	return psprintf("%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year, tm.tm_mon, tm.tm_mday,
					tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/*
 * Bind a PostgreSQL value as a SQLite parameter, in the form the value had
 * in SQLite: the inverse of owsync_convert_value for every type the wrapper
 * maps, so that pushed-down comparisons, writes and restore agree.
 *
 *	integers, boolean		INTEGER (booleans 0 and 1)
 *	float					REAL
 *	text, json				TEXT, byte for byte (json keeps its exact text;
 *							the JSON column's NUMERIC affinity turns '5'
 *							back into the integer it was read from)
 *	numeric					TEXT of the number (NUMERIC affinity again)
 *	jsonb					TEXT as jsonb writes it (not the original bytes)
 *	bytea					BLOB
 *	date, timestamp			TEXT 'YYYY-MM-DD[ HH:MM:SS[.ffffff]]'
 *	anything else			TEXT through the type's output function
 */
void
owsync_bind_datum(OwsyncConn *conn, sqlite3_stmt *stmt, int idx, Datum value,
				  Oid typid, bool isnull)
{
	owsync_bind_value(conn, stmt, idx, value, typid, isnull, false);
}

/*
 * The same; with static_value, text and blobs are not copied by SQLite: the
 * caller keeps value (and what it points to) until the statement has been
 * stepped and reset (restore does, row by row).
 */
void
owsync_bind_value(OwsyncConn *conn, sqlite3_stmt *stmt, int idx, Datum value,
				  Oid typid, bool isnull, bool static_value)
{
	int			rc;

	if (isnull)
		rc = sqlite3_bind_null(stmt, idx);
	else
	{
		switch (owsync_kind_for_type(typid))
		{
			case OWK_INT8:
				rc = sqlite3_bind_int64(stmt, idx, DatumGetInt64(value));
				break;
			case OWK_INT4:
				rc = sqlite3_bind_int64(stmt, idx, DatumGetInt32(value));
				break;
			case OWK_INT2:
				rc = sqlite3_bind_int64(stmt, idx, DatumGetInt16(value));
				break;
			case OWK_BOOL:
				rc = sqlite3_bind_int64(stmt, idx, DatumGetBool(value) ? 1 : 0);
				break;
			case OWK_FLOAT8:
				rc = sqlite3_bind_double(stmt, idx, DatumGetFloat8(value));
				break;
			case OWK_FLOAT4:
				rc = sqlite3_bind_double(stmt, idx, DatumGetFloat4(value));
				break;
			case OWK_TEXT:
			case OWK_JSON:
				{
					text	   *t = DatumGetTextPP(value);

					rc = bind_text(stmt, idx, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), static_value);
					break;
				}
			case OWK_BYTEA:
				{
					bytea	   *b = DatumGetByteaPP(value);

					rc = sqlite3_bind_blob(stmt, idx, VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b),
										   static_value ? SQLITE_STATIC : SQLITE_TRANSIENT);
					break;
				}
			case OWK_JSONB:
				{
					char	   *s = JsonbToCString(NULL, &DatumGetJsonbP(value)->root,
												   VARSIZE(DatumGetJsonbP(value)));

					rc = bind_text(stmt, idx, s, strlen(s), static_value);
					break;
				}
			case OWK_DATE:
				{
					DateADT		d = DatumGetDateADT(value);
					char	   *s;

					/* a date's range is wider than a timestamp's: out of range for both */
					if (DATE_NOT_FINITE(d) || d >= (TIMESTAMP_END_JULIAN - POSTGRES_EPOCH_JDATE))
						s = timestamp_text(DT_NOBEGIN, true);	/* raises the error */
					else
						s = timestamp_text((Timestamp) d * USECS_PER_DAY, true);
					rc = bind_text(stmt, idx, s, strlen(s), static_value);
					break;
				}
			case OWK_TIMESTAMP:
				{
					char	   *s = timestamp_text(DatumGetTimestamp(value), false);

					rc = bind_text(stmt, idx, s, strlen(s), static_value);
					break;
				}
			default:			/* numeric and any other type: its text */
				{
					Oid			outfunc;
					bool		varlena;
					char	   *s;

					getTypeOutputInfo(typid, &outfunc, &varlena);
					s = OidOutputFunctionCall(outfunc, value);
					rc = bind_text(stmt, idx, s, strlen(s), static_value);
					break;
				}
		}
	}
	if (rc != SQLITE_OK)
		owsync_sqlite_error(conn, rc, "bind a query parameter");
}
