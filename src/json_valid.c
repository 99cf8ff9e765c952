/*-------------------------------------------------------------------------
 *
 * json_valid.c
 *		A fast check that text is JSON the json type accepts.
 *
 * Every JSON value read into a json column is validated (invalid JSON is an
 * error, never a silent NULL or '{}').  PostgreSQL's own parser alone would
 * make that validation cost several times what reading the data out of
 * SQLite costs.  Open WebUI's JSON is mostly long string content, so this
 * checker scans strings 16 bytes at a time (SSE2, or 8 with plain 64-bit
 * words elsewhere) and walks the structure without recursion.
 *
 * The check also proves the text is valid UTF-8 without NUL bytes (bytes
 * below 0x20 are refused everywhere, and non-ASCII bytes may only appear in
 * strings, where each sequence is verified), so a json value that passes
 * needs no separate encoding pass.
 *
 * It accepts exactly the grammar of PostgreSQL's json lexer/parser
 * (src/common/jsonapi.c): RFC 8259 values; whitespace is space, tab, CR, LF;
 * a number or literal may not run into letters, digits, '_' or non-ASCII
 * bytes; strings may not hold bytes below 0x20; escapes are \" \\ \/ \b \f
 * \n \r \t and \u with four hex digits (the json type does not pair
 * surrogates or reject \u0000; jsonb does, and is checked by PostgreSQL).
 *
 * The answer "valid" is final; "not valid" is not: the caller then runs
 * PostgreSQL's parser, which decides and words the error.  So a checker
 * that is too strict costs speed, never data.  Nesting deeper than
 * OWSYNC_JSON_MAX_DEPTH is also left to PostgreSQL (whose recursion has a
 * stack limit).  sql/json.sql compares both on edge cases and mutations.
 *
 *-------------------------------------------------------------------------
 */
#include "owsync_fdw.h"

#include "mb/pg_wchar.h"
#include "port/pg_bitutils.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define OWSYNC_JSON_MAX_DEPTH 1000

#define JSON_WS(c) ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')
#define JSON_DIGIT(c) ((c) >= '0' && (c) <= '9')
/* bytes that continue a number or literal token in PostgreSQL's lexer */
#define JSON_TOKEN_CHAR(c) \
	(((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') || JSON_DIGIT(c) || \
	 (c) == '_' || IS_HIGHBIT_SET(c))

static inline const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && JSON_WS(*p))
		p++;
	return p;
}

static inline bool
is_hex(char c)
{
	return JSON_DIGIT(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/*
 * p points after the opening quote; returns the position after the closing
 * quote, or NULL.
 */
static pg_attribute_always_inline const char *
scan_string(const char *p, const char *end)
{
#ifdef __SSE2__
	const __m128i quote = _mm_set1_epi8('"');
	const __m128i bslash = _mm_set1_epi8('\\');
	const __m128i ctl = _mm_set1_epi8(0x1f);
	const __m128i zero = _mm_setzero_si128();
#endif

	while (p < end)
	{
		unsigned char c;

#ifdef __SSE2__
		if (end - p >= 16)
		{
			__m128i		v = _mm_loadu_si128((const __m128i *) p);
			__m128i		special = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
															 _mm_cmpeq_epi8(v, bslash)),
											   /* v <= 0x1f, unsigned */
											   _mm_cmpeq_epi8(_mm_subs_epu8(v, ctl), zero));
			/* ... and bytes with the high bit set (non-ASCII) */
			int			mask = _mm_movemask_epi8(special) | _mm_movemask_epi8(v);

			if (mask == 0)
			{
				p += 16;
				continue;
			}
			p += pg_rightmost_one_pos32((uint32) mask);
		}
#else
		if (end - p >= 8)
		{
			uint64		w;
			const uint64 ones = UINT64CONST(0x0101010101010101);
			const uint64 highs = UINT64CONST(0x8080808080808080);
			uint64		q,
						b;

			memcpy(&w, p, 8);
			q = w ^ (ones * '"');
			b = w ^ (ones * '\\');
			/* any byte zero in q or b, any byte of w below 0x20 or above 0x7f */
			if (((((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w) | w) & highs) == 0)
			{
				p += 8;
				continue;
			}
		}
#endif
		c = (unsigned char) *p;
		if (c == '"')
			return p + 1;
		if (c < 0x20)
			return NULL;
		if (IS_HIGHBIT_SET(c))
		{
			int			l = pg_utf_mblen((const unsigned char *) p);

			if (end - p < l || !pg_utf8_islegal((const unsigned char *) p, l))
				return NULL;
			p += l;
			continue;
		}
		if (c == '\\')
		{
			if (end - p < 2)
				return NULL;
			switch (p[1])
			{
				case '"':
				case '\\':
				case '/':
				case 'b':
				case 'f':
				case 'n':
				case 'r':
				case 't':
					p += 2;
					break;
				case 'u':
					if (end - p < 6 || !is_hex(p[2]) || !is_hex(p[3]) ||
						!is_hex(p[4]) || !is_hex(p[5]))
						return NULL;
					p += 6;
					break;
				default:
					return NULL;
			}
			continue;
		}
		p++;
	}
	return NULL;
}

static const char *
scan_number(const char *p, const char *end)
{
	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0')
		p++;
	else if (p < end && *p >= '1' && *p <= '9')
	{
		while (p < end && JSON_DIGIT(*p))
			p++;
	}
	else
		return NULL;
	if (p < end && *p == '.')
	{
		p++;
		if (p >= end || !JSON_DIGIT(*p))
			return NULL;
		while (p < end && JSON_DIGIT(*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E'))
	{
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !JSON_DIGIT(*p))
			return NULL;
		while (p < end && JSON_DIGIT(*p))
			p++;
	}
	if (p < end && JSON_TOKEN_CHAR(*p))
		return NULL;
	return p;
}

static const char *
scan_literal(const char *p, const char *end)
{
	static const char *const literals[] = {"true", "false", "null"};
	int			i;

	for (i = 0; i < lengthof(literals); i++)
	{
		size_t		n = strlen(literals[i]);

		if ((size_t) (end - p) >= n && memcmp(p, literals[i], n) == 0 &&
			!(p + n < end && JSON_TOKEN_CHAR(p[n])))
			return p + n;
	}
	return NULL;
}

/*
 * True when s[0..len) is certainly valid UTF-8 without NUL bytes and valid
 * input for the json type.
 */
bool
owsync_json_valid_fast(const char *s, size_t len)
{
	const char *p = s;
	const char *end = s + len;
	char		stack[OWSYNC_JSON_MAX_DEPTH];	/* '{' or '[' per open level */
	int			depth = 0;
	enum
	{
		S_VALUE,				/* a value is due */
		S_AFTER,				/* a value ended */
		S_KEY					/* an object member is due */
	}			state = S_VALUE;

	for (;;)
	{
		p = skip_ws(p, end);
		if (state == S_VALUE)
		{
			char		c;

			if (p >= end)
				return false;
			c = *p;
			if (c == '{' || c == '[')
			{
				const char *q = skip_ws(p + 1, end);

				if (q < end && *q == (c == '{' ? '}' : ']'))
				{
					p = q + 1;	/* empty container */
					state = S_AFTER;
					continue;
				}
				if (depth == OWSYNC_JSON_MAX_DEPTH)
					return false;
				stack[depth++] = c;
				p = q;
				state = (c == '{') ? S_KEY : S_VALUE;
				continue;
			}
			if (c == '"')
				p = scan_string(p + 1, end);
			else if (c == '-' || JSON_DIGIT(c))
				p = scan_number(p, end);
			else
				p = scan_literal(p, end);
			if (p == NULL)
				return false;
			state = S_AFTER;
		}
		else if (state == S_AFTER)
		{
			char		close;

			if (depth == 0)
				return p == end;
			if (p >= end)
				return false;
			close = stack[depth - 1] == '{' ? '}' : ']';
			if (*p == ',')
				state = stack[depth - 1] == '{' ? S_KEY : S_VALUE;
			else if (*p == close)
				depth--;
			else
				return false;
			p++;
		}
		else
		{
			if (p >= end || *p != '"')
				return false;
			p = scan_string(p + 1, end);
			if (p == NULL)
				return false;
			p = skip_ws(p, end);
			if (p >= end || *p != ':')
				return false;
			p++;
			state = S_VALUE;
		}
	}
}
