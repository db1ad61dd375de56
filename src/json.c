/*
 * The built-in JSON codec: RFC 8259 text straight to Lua values and back,
 * exact both ways.
 *
 * Decoding: integers that fit 64 bits are Lua integers, other numbers the
 * nearest double (strtod); null is the light userdata NULL (jsonrpc.null,
 * the same value as cjson.null); an empty array gets the metatable
 * array_mt, so it encodes as [] again. Strict: anything RFC 8259 does not
 * allow is an error (leading zeros, "1.", ".5", raw control characters in
 * strings, invalid UTF-8, trailing bytes), nesting deeper than
 * JR_JSON_MAX_DEPTH is an error, and a \u escape of a lone surrogate
 * decodes to U+FFFD (so decoded strings are always valid UTF-8).
 *
 * Encoding: integers whole, floats as the shortest text that reads back
 * to the same double and reads back as a float ("0.1", "1e+300", "5e-324",
 * "-0.0", "2.0"); strings must be valid UTF-8 (a text frame may carry
 * nothing else) and are written with only '"', '\' and control characters
 * escaped. Tables: a table whose keys are all positive integers is an
 * array (holes are null; an excessively sparse one is an error), any
 * other non-empty one an object (integer and float keys written as
 * strings), an empty one {} unless its metatable is array_mt; other
 * metatables are ignored (the raw contents go out). NaN, infinities,
 * functions, userdata, cycles and nesting deeper than JR_JSON_MAX_DEPTH
 * are errors naming what.
 *
 * Neither direction calls Lua code, so the two share one scratch buffer
 * per Lua state (an upvalue; in the registry too, for jr_json_decode_at),
 * grown as needed.
 *
 * Why one file of ~1,100 lines: the decoder, the encoder and the number
 * and string writers share the grammar's tables, the scratch buffer and
 * the UTF-8 checks; split, those would become an interface of their own
 * for one codec. The sections read top-down: the scratch buffer, UTF-8,
 * writing strings and numbers, decoding, encoding, the Lua face.
 */
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jrws.h"

#define JR_SPARSE_SAFE 10   /* arrays up to this length may be any sparse */
#define JR_SCRATCH_KEEP (1024 * 1024) /* a scratch larger is freed after use */

/* their addresses are the registry keys of array_mt and of the scratch
 * buffer */
static const char jr_json_array_key = 0;
static const char jr_json_scratch_key = 0;

/* ---- scratch buffer (upvalue 1 of json_encode and json_decode) ------ */

struct jr_scratch {
	char *data;
	size_t cap;
};

static int scratch_gc(lua_State *L)
{
	jr_scratch *s = lua_touserdata(L, 1);
	free(s->data);
	s->data = NULL;
	s->cap = 0;
	return 0;
}

/* Room for at least need bytes; raises on out of memory. */
static char *scratch_reserve(lua_State *L, jr_scratch *s, size_t need)
{
	if (need > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		char *data;
		while (cap < need)
			cap *= 2;
		if (!(data = realloc(s->data, cap)))
			luaL_error(L, "out of memory");
		s->data = data;
		s->cap = cap;
	}
	return s->data;
}

static void scratch_trim(jr_scratch *s)
{
	if (s->cap > JR_SCRATCH_KEEP) {
		free(s->data);
		s->data = NULL;
		s->cap = 0;
	}
}

/* Exact powers of ten: with a decimal mantissa below 2^53, one multiply
 * or divide by one of these is correctly rounded (Clinger's fast path),
 * as strtod would round, and much faster. */
static const double powers_of_ten[] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};
#define JR_2_53 9007199254740992ull

/* ---- UTF-8 ---------------------------------------------------------- */

/* The length of the valid UTF-8 sequence (2 to 4 bytes) that starts at
 * s, a byte >= 0x80, with n bytes available; 0 when it is not one
 * (overlong forms, surrogates and code points past U+10FFFF are not). */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

static char *utf8_write(char *p, unsigned long cp)
{
	if (cp < 0x80) {
		*p++ = (char)cp;
	} else if (cp < 0x800) {
		*p++ = (char)(0xc0 | (cp >> 6));
		*p++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*p++ = (char)(0xe0 | (cp >> 12));
		*p++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*p++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*p++ = (char)(0xf0 | (cp >> 18));
		*p++ = (char)(0x80 | ((cp >> 12) & 0x3f));
		*p++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*p++ = (char)(0x80 | (cp & 0x3f));
	}
	return p;
}

/* ---- writing strings and numbers (shared with encode.c) ------------- */

/* How each byte is written inside a string: 0 as it is; 'U' the start of
 * a multi-byte UTF-8 sequence, checked, then as it is; else the letter
 * after the backslash ('u': \u00XX). Runs of plain bytes cost a load and
 * a test each, and are copied whole. */
static const char escapes[256] = {
	'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',
	'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',
	['"'] = '"', ['\\'] = '\\',
	[0x80 ... 0xff] = 'U',
};

/* How many of the n bytes at s are plain (printable ASCII, not '"' or
 * '\\'), eight at a time; the last few the caller's table finds. */
#define JR_ONES 0x0101010101010101ull
#define JR_HIGHS 0x8080808080808080ull
static size_t plain_words(const unsigned char *s, size_t n)
{
	size_t i = 0;
	unsigned long long w, q, b;

	for (; i + 8 <= n; i += 8) {
		memcpy(&w, s + i, 8);
		q = w ^ (JR_ONES * '"');
		b = w ^ (JR_ONES * '\\');
		/* a byte >= 0x80, < 0x20, or a zero byte in q or b */
		if ((w | ((w - JR_ONES * 0x20) & ~w) | ((q - JR_ONES) & ~q)
		     | ((b - JR_ONES) & ~b)) & JR_HIGHS)
			break;
	}
	return i;
}

static size_t plain_run(const unsigned char *s, size_t i, size_t len)
{
	i += plain_words(s + i, len - i);
	while (i < len && !escapes[s[i]])
		i++;
	return i;
}

size_t jr_json_string_size(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = len + 2, i = 0, seq;

	while ((i = plain_run(s, i, len)) < len) {
		switch (escapes[s[i]]) {
		case 'U':
			if (!(seq = utf8_sequence(s + i, len - i)))
				return 0;
			i += seq;
			break;
		case 'u':
			n += 5;
			i++;
			break;
		default:
			n += 1;
			i++;
		}
	}
	return n;
}

/* The string, quoted and escaped: at most 6 * len + 2 bytes. Stops at
 * invalid UTF-8 and returns NULL, *bad its offset. */
static char *write_string(char *p, const char *str, size_t len, size_t *bad)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0, run, seq;

	*p++ = '"';
	while (i < len) {
		run = plain_run(s, i, len);
		memcpy(p, s + i, run - i);
		p += run - i;
		if ((i = run) == len)
			break;
		if (escapes[s[i]] == 'U') {
			if (!(seq = utf8_sequence(s + i, len - i))) {
				*bad = i;
				return NULL;
			}
			memcpy(p, s + i, seq);
			p += seq;
			i += seq;
			continue;
		}
		*p++ = '\\';
		*p = escapes[s[i]];
		if (*p++ == 'u') {
			*p++ = '0';
			*p++ = '0';
			*p++ = hex[s[i] >> 4];
			*p++ = hex[s[i] & 15];
		}
		i++;
	}
	*p++ = '"';
	return p;
}

char *jr_json_write_string(char *p, const char *s, size_t len)
{
	size_t bad;
	return write_string(p, s, len, &bad);
}

/* Whether "%.*g" of x at this precision reads back as x. */
static int float_text(char *buf, int prec, double x)
{
	snprintf(buf, JR_NUMBER_MAX, "%.*g", prec, x);
	return strtod(buf, NULL) == x;
}

/*
 * The common float, a short decimal such as 0.25 or 1234.5 in the range
 * where "%.15g" writes no exponent, without printf: the smallest k that
 * makes x * 10^k a whole number m below 10^15, when m / 10^k (one
 * correctly rounded division, as strtod would read it) is x again. A text
 * of 15 digits or fewer that reads back is the only one (see
 * jr_json_write_float), so this is the text "%.15g" would write. NULL when x is not such a float.
 */
static char *write_short_float(char *p, double x)
{
	double a = fabs(x), y;
	unsigned long long m;
	char digits[24];
	int k, n = 0;

	if (!(a >= 1e-4 && a < 1e15))
		return NULL;
	for (k = 0; k <= 15; k++) {
		y = a * powers_of_ten[k];
		if (y >= 1e15)
			return NULL;
		if (y == floor(y))
			break;
	}
	if (k > 15 || (double)(m = (unsigned long long)y) / powers_of_ten[k] != a)
		return NULL;
	do {
		digits[n++] = (char)('0' + m % 10);
		m /= 10;
	} while (m || n <= k); /* at least one digit before the point */
	if (signbit(x))
		*p++ = '-';
	while (n--) {
		if (n == k - 1)
			*p++ = '.';
		*p++ = digits[n];
	}
	if (!k) {
		*p++ = '.';
		*p++ = '0';
	}
	while (p[-1] == '0' && p[-2] != '.') /* 0.50: a rounding's zero */
		p--;
	return p;
}

/* Decimal digits of an integer, without printf. */
char *jr_json_write_integer(char *p, lua_Integer v)
{
	char digits[24];
	int n = 0;
	lua_Unsigned u = (lua_Unsigned)v;

	if (v < 0) {
		*p++ = '-';
		u = 0u - u; /* exact for LUA_MININTEGER too */
	}
	do {
		digits[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	while (n)
		*p++ = digits[--n];
	return p;
}

/*
 * A finite double as the shortest text that reads back the same. For a
 * normal double, when some text of 15 digits or fewer reads back, "%.15g"
 * is it (15-digit decimals are further apart than doubles); else 16 or
 * 17 digits. A subnormal has fewer bits, so fewer digits may do: those
 * try every precision. Then the locale's decimal point becomes '.', and
 * a text that reads as an integer gets ".0" (2.0 stays a float).
 */
char *jr_json_write_float(char *p, double x)
{
	char buf[JR_NUMBER_MAX], *q;
	char point = lua_getlocaledecpoint();
	int prec = fabs(x) < DBL_MIN ? 1 : 15, integral = 1;
	size_t i, n;

	if ((q = write_short_float(p, x)))
		return q;
	while (prec < 17 && !float_text(buf, prec, x))
		prec++;
	if (prec == 17)
		float_text(buf, 17, x);
	n = strlen(buf);
	for (i = 0; i < n; i++) {
		char c = buf[i];
		if (c == point)
			buf[i] = '.';
		if (!(c == '-' || (c >= '0' && c <= '9')))
			integral = 0;
	}
	memcpy(p, buf, n);
	p += n;
	if (integral) {
		memcpy(p, ".0", 2);
		p += 2;
	}
	return p;
}

/* ---- decoding ------------------------------------------------------- */

typedef struct jr_decoder {
	lua_State *L; /* NULL: only check the text (jr_json_skip) */
	const char *p, *end;
	const char *error; /* what is wrong at p, or NULL */
	int depth;
	jr_scratch *scratch; /* NULL: not looked up yet (jr_json_decode_at) */
} jr_decoder;

/* Byte classes inside a string: 0 plain, 1 '"', 2 '\', 3 control, 4 the
 * start of a multi-byte UTF-8 sequence. */
static const char string_class[256] = {
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
	['"'] = 1, ['\\'] = 2,
	[0x80 ... 0xff] = 4,
};

/* The scratch buffer of this state's codec (jr_json_open anchors it in
 * the registry), for decoders that are not json_decode itself. */
static jr_scratch *registry_scratch(lua_State *L)
{
	jr_scratch *s;

	lua_rawgetp(L, LUA_REGISTRYINDEX, &jr_json_scratch_key);
	s = lua_touserdata(L, -1);
	lua_pop(L, 1);
	return s;
}

/* Room for need bytes in the decoder's scratch buffer (found when first
 * needed: most values need none). */
static char *decoder_scratch(jr_decoder *d, size_t need)
{
	if (!d->scratch)
		d->scratch = registry_scratch(d->L);
	return scratch_reserve(d->L, d->scratch, need);
}

static int fail(jr_decoder *d, const char *what)
{
	if (!d->error)
		d->error = what;
	return 0;
}

static void skip_space(jr_decoder *d)
{
	const char *p = d->p, *end = d->end;
	while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	d->p = p;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The 4 hex digits at p (a \u escape's), or -1. */
static long hex4(const char *p, const char *end)
{
	long v = 0;
	int i, h;

	if (end - p < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		if ((h = hex_digit(p[i])) < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* d->p just past a backslash: writes what the escape stands for at *out
 * and moves past it. */
static int unescape(jr_decoder *d, char **out)
{
	const char *p = d->p;
	long cp, lo;

	if (p >= d->end)
		return fail(d, "unfinished string");
	switch (*p) {
	case '"': case '\\': case '/':
		*(*out)++ = *p;
		break;
	case 'b': *(*out)++ = '\b'; break;
	case 'f': *(*out)++ = '\f'; break;
	case 'n': *(*out)++ = '\n'; break;
	case 'r': *(*out)++ = '\r'; break;
	case 't': *(*out)++ = '\t'; break;
	case 'u':
		if ((cp = hex4(p + 1, d->end)) < 0)
			return fail(d, "bad \\u escape");
		p += 4;
		if (cp >= 0xd800 && cp <= 0xdbff && p + 2 < d->end
		    && p[1] == '\\' && p[2] == 'u'
		    && (lo = hex4(p + 3, d->end)) >= 0xdc00 && lo <= 0xdfff) {
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			p += 6;
		} else if (cp >= 0xd800 && cp <= 0xdfff) {
			cp = 0xfffd; /* a lone surrogate */
		}
		*out = utf8_write(*out, (unsigned long)cp);
		break;
	default:
		return fail(d, "bad escape");
	}
	d->p = p + 1;
	return 1;
}

/* d->p at the opening quote: pushes the string, moves past its end. An
 * escaped string is unescaped into the scratch buffer, never longer than
 * its JSON text. */
static int decode_string(jr_decoder *d)
{
	const unsigned char *s = (const unsigned char *)d->p + 1;
	const unsigned char *end = (const unsigned char *)d->end;
	const unsigned char *from = s;
	char *out = NULL, *buf = NULL, check[4];
	size_t seq;

	for (;;) {
		s += plain_words(s, (size_t)(end - s));
		while (s < end && !string_class[*s])
			s++;
		if (s >= end) {
			d->p = (const char *)s;
			return fail(d, "unfinished string");
		}
		switch (string_class[*s]) {
		case 1:
			if (!d->L) {
				/* checked only */
			} else if (buf) {
				memcpy(out, from, (size_t)(s - from));
				out += s - from;
				lua_pushlstring(d->L, buf, (size_t)(out - buf));
			} else {
				lua_pushlstring(d->L, (const char *)from, (size_t)(s - from));
			}
			d->p = (const char *)s + 1;
			return 1;
		case 2:
			if (!d->L) {
				out = check; /* checked, not kept */
			} else {
				if (!buf) /* the rest of the text bounds the
					   * unescaped rest */
					out = buf = decoder_scratch(d,
						(size_t)(end - from) + 1);
				memcpy(out, from, (size_t)(s - from));
				out += s - from;
			}
			d->p = (const char *)s + 1;
			if (!unescape(d, &out))
				return 0;
			s = from = (const unsigned char *)d->p;
			break;
		case 3:
			d->p = (const char *)s;
			return fail(d, "control character in string");
		default:
			if (!(seq = utf8_sequence(s, (size_t)(end - s)))) {
				d->p = (const char *)s;
				return fail(d, "invalid UTF-8 in string");
			}
			s += seq;
		}
	}
}

/* A number the grammar has checked, too big for an integer or with a
 * fraction or exponent: strtod on a NUL-terminated copy, its '.' made
 * the locale's decimal point. Past the largest double it is an error
 * (infinity is no JSON value); below the smallest it is 0, the nearest.
 * A check (jr_json_skip) reads only what might be that large. */
static int push_double(jr_decoder *d, const char *from, size_t n,
		       int maybe_huge)
{
	char small[64], *copy = small, *dot;
	double x;

	if (!d->L && !maybe_huge)
		return 1;
	if (n >= sizeof small && d->L)
		copy = decoder_scratch(d, n + 1);
	else if (n >= sizeof small && !(copy = malloc(n + 1))) /* a check */
		return fail(d, "out of memory");
	memcpy(copy, from, n);
	copy[n] = 0;
	if ((dot = memchr(copy, '.', n)))
		*dot = lua_getlocaledecpoint();
	x = strtod(copy, NULL);
	if (!d->L && copy != small)
		free(copy);
	if (isinf(x)) {
		d->p = from;
		return fail(d, "number out of range");
	}
	if (d->L)
		lua_pushnumber(d->L, (lua_Number)x);
	return 1;
}


/* The digits at p: their value (while below 2^53; else *exact is
 * cleared), their count in *n. Returns their end. */
static const char *mantissa_digits(const char *p, const char *end,
				   unsigned long long *m, int *n, int *exact)
{
	const char *from = p;

	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		if (*m < (JR_2_53 - 9) / 10)
			*m = *m * 10 + (unsigned)(*p - '0');
		else
			*exact = 0;
	}
	*n = (int)(p - from);
	return p;
}

static int decode_number(jr_decoder *d)
{
	const char *p = d->p, *end = d->end, *from = p;
	int negative = 0, is_integer = 1, exponent = 0, exact = 1, nfrac = 0;
	int e = 0, n;
	unsigned long long v = 0, limit = (unsigned long long)LUA_MAXINTEGER;
	unsigned long long m = 0; /* the decimal mantissa, for the fast path */
	double x;

	if (*p == '-') {
		negative = 1;
		limit++; /* LUA_MININTEGER */
		p++;
	}
	if (p < end && *p == '0') {
		p++;
	} else if (p < end && *p >= '1' && *p <= '9') {
		for (; p < end && *p >= '0' && *p <= '9'; p++) {
			unsigned dig = (unsigned)(*p - '0');
			if (v > (limit - dig) / 10)
				is_integer = 0; /* beyond 64 bits: the nearest double */
			else
				v = v * 10 + dig;
		}
	} else {
		d->p = p;
		return fail(d, "bad number");
	}
	m = v;
	exact = is_integer && v <= JR_2_53;
	if (p < end && *p == '.') {
		const char *frac = ++p;
		if ((p = mantissa_digits(p, end, &m, &nfrac, &exact)) == frac) {
			d->p = p;
			return fail(d, "bad number: no digit after '.'");
		}
		is_integer = 0;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		const char *exp;
		int exp_negative = 0;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			exp_negative = *p++ == '-';
		exp = p;
		for (; p < end && *p >= '0' && *p <= '9'; p++)
			if (e < 10000)
				e = e * 10 + (*p - '0');
		if (p == exp) {
			d->p = p;
			return fail(d, "bad number: no digit in exponent");
		}
		if (exp_negative)
			e = -e;
		is_integer = 0;
		exponent = 1;
	}
	d->p = p;
	if (is_integer) {
		if (d->L)
			lua_pushinteger(d->L, negative ? (lua_Integer)(0 - v) : (lua_Integer)v);
		return 1;
	}
	n = e - nfrac; /* the value is m * 10^n */
	if (exact && n >= -22 && n <= 22) {
		x = n < 0 ? (double)m / powers_of_ten[-n] : (double)m * powers_of_ten[n];
		if (d->L)
			lua_pushnumber(d->L, (lua_Number)(negative ? -x : x));
		return 1;
	}
	return push_double(d, from, (size_t)(p - from),
			   exponent || p - from > DBL_MAX_10_EXP);
}

/* true, false or null at d->p: pushes the boolean value, or for -1
 * null (the light userdata NULL). */
static int literal(jr_decoder *d, const char *word, size_t n, int value)
{
	if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n))
		return fail(d, "unexpected character");
	d->p += n;
	if (d->L && value < 0)
		lua_pushlightuserdata(d->L, NULL);
	else if (d->L)
		lua_pushboolean(d->L, value);
	return 1;
}

static int decode_value(jr_decoder *d);

static int enter(jr_decoder *d)
{
	if (++d->depth > JR_JSON_MAX_DEPTH)
		return fail(d, "nested deeper than " JR_STR(JR_JSON_MAX_DEPTH) " levels");
	if (d->L && !lua_checkstack(d->L, 4))
		return fail(d, "out of Lua stack");
	d->p++;
	skip_space(d);
	return 1;
}

/* After an item of an array or object: 1 past a ',' (another follows),
 * 0 past the closing bracket (the container is done), -1 when neither
 * follows. */
static int next_item(jr_decoder *d, char close, const char *expected)
{
	skip_space(d);
	if (d->p < d->end && *d->p == ',') {
		d->p++;
		skip_space(d);
		return 1;
	}
	if (d->p < d->end && *d->p == close) {
		d->p++;
		d->depth--;
		return 0;
	}
	fail(d, expected);
	return -1;
}

static int decode_array(jr_decoder *d)
{
	lua_Integer n = 0;
	int more;

	if (!enter(d))
		return 0;
	if (d->L) /* room for a few items: fewer rehashes as it fills */
		lua_createtable(d->L, 4, 0);
	if (d->p < d->end && *d->p == ']') {
		d->p++;
		d->depth--;
		if (!d->L)
			return 1;
		lua_pushlightuserdata(d->L, (void *)&jr_json_array_key);
		lua_rawget(d->L, LUA_REGISTRYINDEX);
		lua_setmetatable(d->L, -2); /* [] encodes as [] again */
		return 1;
	}
	for (;;) {
		if (!decode_value(d))
			return 0;
		if (d->L)
			lua_rawseti(d->L, -2, ++n);
		if ((more = next_item(d, ']', "expected ',' or ']'")) <= 0)
			return more == 0;
	}
}

static int decode_object(jr_decoder *d)
{
	int more;

	if (!enter(d))
		return 0;
	if (d->L)
		lua_createtable(d->L, 0, 4);
	if (d->p < d->end && *d->p == '}') {
		d->p++;
		d->depth--;
		return 1;
	}
	for (;;) {
		if (d->p >= d->end || *d->p != '"')
			return fail(d, "expected a string key");
		if (!decode_string(d))
			return 0;
		skip_space(d);
		if (d->p >= d->end || *d->p != ':')
			return fail(d, "expected ':'");
		d->p++;
		skip_space(d);
		if (!decode_value(d))
			return 0;
		if (d->L) /* a repeated key: the last one wins */
			lua_rawset(d->L, -3);
		if ((more = next_item(d, '}', "expected ',' or '}'")) <= 0)
			return more == 0;
	}
}

/* d->p at the value (space skipped): pushes it. */
static int decode_value(jr_decoder *d)
{
	if (d->p >= d->end)
		return fail(d, "unexpected end");
	switch (*d->p) {
	case '"':
		return decode_string(d);
	case '{':
		return decode_object(d);
	case '[':
		return decode_array(d);
	case 't':
		return literal(d, "true", 4, 1);
	case 'f':
		return literal(d, "false", 5, 0);
	case 'n':
		return literal(d, "null", 4, -1);
	default:
		if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9'))
			return decode_number(d);
		return fail(d, "unexpected character");
	}
}

/* Pushes the value of the JSON text and returns 1; or pushes the error
 * message and returns 0. Raises only when memory runs out. */
int jr_json_decode(lua_State *L, const char *text, size_t len, jr_scratch *scratch)
{
	jr_decoder d = { L, text, text + len, NULL, 0, scratch };
	int top = lua_gettop(L);

	skip_space(&d);
	if (decode_value(&d)) {
		skip_space(&d);
		if (d.p == d.end)
			return 1;
		fail(&d, "unexpected text after the value");
	}
	lua_settop(L, top);
	if (d.p >= d.end)
		lua_pushfstring(L, "invalid JSON: %s at the end of the text",
				d.error);
	else if (*d.p > 0x20 && *d.p < 0x7f)
		lua_pushfstring(L, "invalid JSON: %s at byte %d ('%c')", d.error,
				(int)(d.p - text) + 1, *d.p);
	else
		lua_pushfstring(L, "invalid JSON: %s at byte %d (byte value %d)",
				d.error, (int)(d.p - text) + 1,
				(int)(unsigned char)*d.p);
	return 0;
}

/* Decodes the one JSON value that starts at p (after any space) inside
 * text already `depth` levels deep (the nesting limit counts those), as
 * strictly as jr_json_decode, and pushes it; returns its end. When it is
 * not a value, pushes nothing and returns NULL. Raises only when memory
 * runs out. (scan.c: a response's result, a request's params, read
 * where they lie.) */
const char *jr_json_decode_at(lua_State *L, const char *p, const char *end,
			      int depth)
{
	jr_decoder d = { L, p, end, NULL, depth, NULL };
	int top = lua_gettop(L), ok;

	skip_space(&d);
	ok = decode_value(&d);
	if (d.scratch)
		scratch_trim(d.scratch);
	if (ok)
		return d.p;
	lua_settop(L, top);
	return NULL;
}

/* The end of the JSON value that starts at p (after any space), checked
 * as strictly as decoding checks it; NULL when it is not one. Pushes
 * nothing. */
const char *jr_json_skip(const char *p, const char *end)
{
	jr_decoder d = { NULL, p, end, NULL, 0, NULL };

	skip_space(&d);
	return decode_value(&d) ? d.p : NULL;
}

/* json_decode(text) -> value | nil, message */
static int l_json_decode(lua_State *L)
{
	size_t len;
	const char *text = luaL_checklstring(L, 1, &len);
	jr_scratch *s = lua_touserdata(L, lua_upvalueindex(1));
	int ok = jr_json_decode(L, text, len, s);

	scratch_trim(s);
	if (ok)
		return 1;
	lua_pushnil(L);
	lua_insert(L, -2);
	return 2;
}

/* json_decode_strict(text) -> value, raising the message (the seam's
 * decode, as other codecs raise). */
static int l_json_decode_raising(lua_State *L)
{
	if (l_json_decode(L) == 1)
		return 1;
	return lua_error(L);
}

/* ---- encoding ------------------------------------------------------- */

typedef struct jr_encoder {
	lua_State *L;
	jr_scratch *buf;
	size_t len;
	int depth;
} jr_encoder;

static char *reserve(jr_encoder *e, size_t n)
{
	return scratch_reserve(e->L, e->buf, e->len + n) + e->len;
}

static void put(jr_encoder *e, const char *s, size_t n)
{
	memcpy(reserve(e, n), s, n);
	e->len += n;
}

static void put_char(jr_encoder *e, char c)
{
	*reserve(e, 1) = c;
	e->len++;
}

/* The string at idx. */
static void encode_string(jr_encoder *e, int idx)
{
	size_t n;
	const char *s = lua_tolstring(e->L, idx, &n);
	/* a long string is measured first: 6 bytes a byte would be a lot */
	size_t bad, size = n > 256 ? jr_json_string_size(s, n) : 0;
	char *start = reserve(e, size ? size : 6 * n + 2), *end;

	if (!(end = write_string(start, s, n, &bad))) {
		char hex[8];
		snprintf(hex, sizeof hex, "0x%02X", (unsigned char)s[bad]);
		luaL_error(e->L, "cannot encode a string that is not valid UTF-8 "
			   "(byte %d is %s)", (int)bad + 1, hex);
	}
	e->len += (size_t)(end - start);
}

static void encode_number(jr_encoder *e, int idx)
{
	char *p = reserve(e, JR_NUMBER_MAX), *end;
	lua_Number x;

	if (lua_isinteger(e->L, idx)) {
		end = jr_json_write_integer(p, lua_tointeger(e->L, idx));
	} else {
		x = lua_tonumber(e->L, idx);
		if (!isfinite(x))
			luaL_error(e->L, "cannot encode %s: JSON numbers are finite",
				   isnan(x) ? "NaN" : x > 0 ? "inf" : "-inf");
		end = jr_json_write_float(p, (double)x);
	}
	e->len += (size_t)(end - p);
}

static void encode_value(jr_encoder *e, int idx);

/* Whether the table at idx has the metatable array_mt (upvalue 2). */
static int is_array_mt(lua_State *L, int idx)
{
	int same;

	if (!lua_getmetatable(L, idx))
		return 0;
	same = lua_rawequal(L, -1, lua_upvalueindex(2));
	lua_pop(L, 1);
	return same;
}

/* How the table at idx is written: as an array of *n items (returns 1)
 * or as an object (0). */
static int array_length(jr_encoder *e, int idx, lua_Integer *n)
{
	lua_State *L = e->L;
	lua_Integer max = 0, count = 0, k;

	lua_pushnil(L);
	while (lua_next(L, idx)) {
		lua_pop(L, 1);
		if (!lua_isinteger(L, -1) || (k = lua_tointeger(L, -1)) < 1) {
			lua_pop(L, 1);
			return 0;
		}
		if (k > max)
			max = k;
		count++;
	}
	if (count == 0)
		return *n = 0, is_array_mt(L, idx);
	if (max > JR_SPARSE_SAFE && max / 2 > count)
		luaL_error(L, "cannot encode a sparse array (%I items, keys up to "
			   "%I): fill its holes with jsonrpc.null", count, max);
	*n = max;
	return 1;
}

static void encode_key(jr_encoder *e, int idx)
{
	lua_State *L = e->L;

	switch (lua_type(L, idx)) {
	case LUA_TSTRING:
		encode_string(e, idx);
		break;
	case LUA_TNUMBER:
		put_char(e, '"');
		encode_number(e, idx);
		put_char(e, '"');
		break;
	default:
		luaL_error(L, "cannot encode a table key of type %s",
			   luaL_typename(L, idx));
	}
}

/* Too deep: a cycle if a table on the way down (they are all on the
 * Lua stack) repeats, else just deep. Only on this error path. */
static void too_deep(lua_State *L)
{
	int i, j, top = lua_gettop(L);

	for (i = 1; i <= top; i++)
		for (j = i + 1; lua_istable(L, i) && j <= top; j++)
			if (lua_rawequal(L, i, j))
				luaL_error(L, "cannot encode a table that contains "
					   "itself (a cycle)");
	luaL_error(L, "cannot encode tables nested deeper than %d levels",
		   JR_JSON_MAX_DEPTH);
}

static void encode_table(jr_encoder *e, int idx)
{
	lua_State *L = e->L;
	lua_Integer n, i;

	if (e->depth++ >= JR_JSON_MAX_DEPTH)
		too_deep(L);
	luaL_checkstack(L, 4, "cannot encode: out of Lua stack");
	if (array_length(e, idx, &n)) {
		put_char(e, '[');
		for (i = 1; i <= n; i++) {
			if (i > 1)
				put_char(e, ',');
			lua_rawgeti(L, idx, i);
			encode_value(e, lua_gettop(L));
			lua_pop(L, 1);
		}
		put_char(e, ']');
	} else {
		int first = 1;
		put_char(e, '{');
		lua_pushnil(L);
		while (lua_next(L, idx)) {
			if (!first)
				put_char(e, ',');
			first = 0;
			encode_key(e, lua_gettop(L) - 1);
			put_char(e, ':');
			encode_value(e, lua_gettop(L));
			lua_pop(L, 1);
		}
		put_char(e, '}');
	}
	e->depth--;
}

static void encode_value(jr_encoder *e, int idx)
{
	lua_State *L = e->L;

	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		put(e, "null", 4);
		break;
	case LUA_TBOOLEAN:
		if (lua_toboolean(L, idx))
			put(e, "true", 4);
		else
			put(e, "false", 5);
		break;
	case LUA_TNUMBER:
		encode_number(e, idx);
		break;
	case LUA_TSTRING:
		encode_string(e, idx);
		break;
	case LUA_TTABLE:
		encode_table(e, idx);
		break;
	case LUA_TLIGHTUSERDATA:
		if (!lua_touserdata(L, idx)) { /* jsonrpc.null */
			put(e, "null", 4);
			break;
		}
		/* fall through */
	default:
		luaL_error(L, "cannot encode a value of type %s",
			   luaL_typename(L, idx));
	}
}

/* json_encode(value) -> JSON text; raises naming what cannot be encoded. */
static int l_json_encode(lua_State *L)
{
	jr_encoder e = { L, lua_touserdata(L, lua_upvalueindex(1)), 0, 0 };

	luaL_checkany(L, 1);
	lua_settop(L, 1);
	encode_value(&e, 1);
	lua_pushlstring(L, e.buf->data, e.len);
	scratch_trim(e.buf);
	return 1;
}

/* ---- the Lua face ----------------------------------------------------- */

/* Adds json_encode, json_decode, json_decode_raising, json_null and
 * json_array_mt to the table on top. */
void jr_json_open(lua_State *L)
{
	jr_scratch *s = lua_newuserdatauv(L, sizeof *s, 0);

	s->data = NULL;
	s->cap = 0;
	lua_newtable(L);
	lua_pushcfunction(L, scratch_gc);
	lua_setfield(L, -2, "__gc");
	lua_setmetatable(L, -2);
	lua_pushvalue(L, -1);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &jr_json_scratch_key);
	/* array_mt: the metatable that marks a table as an array */
	lua_newtable(L);
	lua_pushliteral(L, "jsonrpc_websocket.array");
	lua_setfield(L, -2, "__name");
	lua_pushlightuserdata(L, (void *)&jr_json_array_key);
	lua_pushvalue(L, -2);
	lua_rawset(L, LUA_REGISTRYINDEX);
	lua_pushvalue(L, -1);
	lua_setfield(L, -4, "json_array_mt");
	/* stack: module, scratch, array_mt */
	lua_pushvalue(L, -2);
	lua_pushvalue(L, -2);
	lua_pushcclosure(L, l_json_encode, 2);
	lua_setfield(L, -4, "json_encode");
	lua_pop(L, 1);
	lua_pushvalue(L, -1);
	lua_pushcclosure(L, l_json_decode, 1);
	lua_setfield(L, -3, "json_decode");
	lua_pushcclosure(L, l_json_decode_raising, 1);
	lua_setfield(L, -2, "json_decode_raising");
	lua_pushlightuserdata(L, NULL);
	lua_setfield(L, -2, "json_null");
}
