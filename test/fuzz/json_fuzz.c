/*
 * libFuzzer target for owsync's fast json check (src/json_valid.c).
 *
 * src/json_valid.c is compiled twice into this binary: once as built on
 * x86-64 (its SSE2 string scan), as owsync_json_valid_fast_sse2, and once
 * without SSE2 (its portable 8-byte word scan, what other CPUs build), as
 * owsync_json_valid_fast_portable.  Each input is given to both and to
 * PostgreSQL's own JSON parser, the frontend build of src/common/jsonapi.c
 * linked from libpgcommon.a: the same lexer and parser the json type's input
 * function runs (json_in: no de-escaping, nullSemAction).
 *
 * What must hold for every input s (any failure aborts, and libFuzzer keeps
 * the input):
 *
 * 1. Both builds give the same answer.
 *
 * 2. "Valid" is final (the checker's contract: owsync stores the bytes as
 *    json without asking PostgreSQL): if the checker says valid, then s is
 *    valid UTF-8 without NUL bytes (PostgreSQL's own verifier,
 *    pg_encoding_verifymbstr) and PostgreSQL's parser accepts s.
 *
 * 3. The checker is not stricter than PostgreSQL, except where it says so:
 *    if PostgreSQL accepts s and s is valid UTF-8 without NUL bytes, the
 *    checker says valid, except
 *    a. nesting deeper than OWSYNC_JSON_MAX_DEPTH (1000) open containers:
 *       the checker answers "not valid" and leaves such input to PostgreSQL
 *       (whose recursion has a stack limit) -- documented in json_valid.c;
 *       to keep this side simple, the exception applies when the input
 *       nests deeper than 1000 counting empty containers too.
 *    Not an exception but the same rule seen from the other side: the frontend
 *    parser does not check the encoding (the backend's text input has done
 *    that before json_in runs), so input that is not valid UTF-8 or has NUL
 *    bytes must be "not valid" for the checker whatever the parser says,
 *    which rule 2 checks.
 *    Too strict costs speed, never data (the caller then asks PostgreSQL);
 *    a difference here that is not listed above is still a finding: the
 *    checker's comment says it accepts exactly the json type's grammar.
 *
 * Things both sides agree on by design and that the corpus covers: \u0000
 * and unpaired surrogates in \u escapes are accepted (the json type does not
 * de-escape; jsonb does and is checked by PostgreSQL), whitespace is space,
 * tab, CR and LF only, a number or literal may not run into letters, digits,
 * '_' or non-ASCII bytes.
 *
 * Set OWSYNC_FUZZ_VERBOSE=1 to print the verdicts of each input run
 * (e.g. ./json_fuzz corpus/json/* with OWSYNC_FUZZ_VERBOSE=1).
 */
#include "postgres_fe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"

#define OWSYNC_JSON_MAX_DEPTH 1000

/* deeper input is not given to PostgreSQL's parser: its frontend build has no stack check */
#define PG_PARSER_MAX_DEPTH 20000

extern bool owsync_json_valid_fast_sse2(const char *s, size_t len);
extern bool owsync_json_valid_fast_portable(const char *s, size_t len);

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Deepest nesting of arrays and objects outside strings.  Meant for input
 * PostgreSQL accepted, so strings are well formed; for other input it is
 * only an upper bound that keeps the parser's recursion in bounds.
 */
static int
max_depth(const char *s, size_t len)
{
	int			depth = 0,
				max = 0;
	bool		in_string = false;

	for (size_t i = 0; i < len; i++)
	{
		char		c = s[i];

		if (in_string)
		{
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		}
		else if (c == '"')
			in_string = true;
		else if (c == '[' || c == '{')
		{
			if (++depth > max)
				max = depth;
		}
		else if ((c == ']' || c == '}') && depth > 0)
			depth--;
	}
	return max;
}

/* true when PostgreSQL's parser accepts s[0..len) as the json type does */
static bool
pg_json_accepts(const char *s, size_t len)
{
	char	   *copy = malloc(len + 1);
	JsonLexContext *lex;
	JsonParseErrorType res;

	memcpy(copy, s, len);
	copy[len] = '\0';			/* not read by the parser: it works on the length */
	lex = makeJsonLexContextCstringLen(copy, (int) len, PG_UTF8, false);
	res = pg_parse_json(lex, &nullSemAction);
	pfree(lex);
	free(copy);
	return res == JSON_SUCCESS;
}

/* true when s[0..len) is valid UTF-8 without NUL bytes, by PostgreSQL's verifier */
static bool
utf8_without_nul(const char *s, size_t len)
{
	return memchr(s, '\0', len) == NULL &&
		pg_encoding_verifymbstr(PG_UTF8, s, (int) len) == (int) len;
}

static void
finding(const char *what, bool sse2, bool portable, bool pg, bool utf8, int depth)
{
	fprintf(stderr, "FINDING: %s (sse2=%d portable=%d postgres=%d utf8=%d depth=%d)\n",
			what, sse2, portable, pg, utf8, depth);
	abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *) data;
	bool		sse2,
				portable,
				pg = false,
				utf8;
	int			depth;
	static int	verbose = -1;

	if (size > 64 * 1024 * 1024)
		return 0;
	sse2 = owsync_json_valid_fast_sse2(s, size);
	portable = owsync_json_valid_fast_portable(s, size);
	utf8 = utf8_without_nul(s, size);
	depth = max_depth(s, size);
	if (depth <= PG_PARSER_MAX_DEPTH)
		pg = pg_json_accepts(s, size);

	if (verbose < 0)
		verbose = getenv("OWSYNC_FUZZ_VERBOSE") != NULL;
	if (verbose)
		fprintf(stderr, "verdict: sse2=%d portable=%d postgres=%d utf8=%d depth=%d size=%zu\n",
				sse2, portable, pg, utf8, depth, size);

	if (sse2 != portable)
		finding("the SSE2 and portable builds disagree", sse2, portable, pg, utf8, depth);
	if (sse2 && depth > PG_PARSER_MAX_DEPTH)
		finding("valid beyond the checker's own depth limit", sse2, portable, pg, utf8, depth);
	if (sse2 && !utf8)
		finding("valid, but not UTF-8 without NUL bytes", sse2, portable, pg, utf8, depth);
	if (sse2 && !pg)
		finding("valid, but PostgreSQL's parser refuses it", sse2, portable, pg, utf8, depth);
	if (!sse2 && pg && utf8 && depth <= OWSYNC_JSON_MAX_DEPTH)
		finding("PostgreSQL accepts valid UTF-8 the checker refuses", sse2, portable, pg, utf8, depth);
	return 0;
}
