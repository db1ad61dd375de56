/*
 * Raw JSON scanning: find the exact text of a top-level member or the
 * elements of a top-level array without decoding. Used to echo request ids
 * byte for byte (a decoder may turn 12345678901234567890 into a float) and
 * to split batches. Iterative, so 100,000 levels of nesting cost no stack.
 */
#include <string.h>

#include "jrws.h"

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* p at the opening quote; returns just past the closing one, or NULL. */
static const char *skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

static const char *skip_container(const char *p, const char *end)
{
	size_t depth = 0;

	while (p < end) {
		switch (*p) {
		case '"':
			if (!(p = skip_string(p, end)))
				return NULL;
			continue;
		case '{': case '[':
			depth++;
			break;
		case '}': case ']':
			if (--depth == 0)
				return p + 1;
			break;
		}
		p++;
	}
	return NULL;
}

/* Returns the end of the value starting at p, or NULL if malformed. */
static const char *skip_value(const char *p, const char *end)
{
	if (p >= end)
		return NULL;
	if (*p == '"')
		return skip_string(p, end);
	if (*p == '{' || *p == '[')
		return skip_container(p, end);
	while (p < end && !strchr(",]} \t\r\n", *p))
		p++;
	return p;
}

/* json_member(text, key) -> raw text of the top-level member, or nil. */
static int l_json_member(lua_State *L)
{
	size_t len, klen;
	const char *text = luaL_checklstring(L, 1, &len);
	const char *key = luaL_checklstring(L, 2, &klen);
	const char *end = text + len, *p = skip_ws(text, end), *found = NULL, *fend = NULL;

	if (p >= end || *p != '{')
		return 0;
	for (p = skip_ws(p + 1, end); p < end && *p == '"';) {
		const char *k = p + 1, *kend = skip_string(p, end), *v;
		if (!kend)
			return 0;
		p = skip_ws(kend, end);
		if (p >= end || *p != ':')
			return 0;
		v = skip_ws(p + 1, end);
		if (!(p = skip_value(v, end)))
			return 0;
		if ((size_t)(kend - 1 - k) == klen && !memcmp(k, key, klen)) {
			found = v; /* the last one wins, as when decoding */
			fend = p;
		}
		p = skip_ws(p, end);
		if (p < end && *p == ',')
			p = skip_ws(p + 1, end);
	}
	if (!found)
		return 0;
	lua_pushlstring(L, found, (size_t)(fend - found));
	return 1;
}

/* json_elements(text) -> { raw element, ... } for a top-level array, or nil. */
static int l_json_elements(lua_State *L)
{
	size_t len;
	const char *text = luaL_checklstring(L, 1, &len);
	const char *end = text + len, *p = skip_ws(text, end);
	lua_Integer n = 0;

	if (p >= end || *p != '[')
		return 0;
	lua_newtable(L);
	for (p = skip_ws(p + 1, end); p < end && *p != ']';) {
		const char *v = p;
		if (!(p = skip_value(v, end)) || p == v)
			return 0;
		lua_pushlstring(L, v, (size_t)(p - v));
		lua_rawseti(L, -2, ++n);
		p = skip_ws(p, end);
		if (p < end && *p == ',')
			p = skip_ws(p + 1, end);
	}
	return 1;
}

const luaL_Reg jr_scan_functions[] = {
	{"json_member", l_json_member},
	{"json_elements", l_json_elements},
	{NULL, NULL}
};
