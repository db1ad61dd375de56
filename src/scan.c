/*
 * Raw JSON scanning: find the exact text of a top-level member or the
 * elements of a top-level array without decoding, and read the common
 * success response where it lies (only its result is decoded, straight
 * from the text: json.c). Used to echo request ids
 * byte for byte (a decoder may turn 12345678901234567890 into a float) and
 * to split batches. Batches and responses are checked with the built-in
 * codec's strict grammar (json.c, jr_json_skip), so what is not JSON is
 * never taken apart here as if it were; json_member alone is lenient (see
 * there).
 */
#include <string.h>

#include "jrws.h"

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* ---- lenient scanning: json_member ---- */

/* p at the opening quote; returns just past the closing one, or NULL.
 * memchr finds the next quote; it closes the string unless a backslash
 * came before it (then the search goes on past the escaped byte). */
static const char *lenient_string(const char *p, const char *end)
{
	const char *quote, *backslash;

	p++;
	while (p < end) {
		if (!(quote = memchr(p, '"', (size_t)(end - p))))
			return NULL;
		if (!(backslash = memchr(p, '\\', (size_t)(quote - p))))
			return quote + 1;
		p = backslash + 2; /* past the byte it escapes */
	}
	return NULL;
}

static const char *lenient_container(const char *p, const char *end)
{
	size_t depth = 0;

	while (p < end) {
		switch (*p) {
		case '"':
			if (!(p = lenient_string(p, end)))
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

/* Whether c ends a number, true, false or null. */
static int ends_scalar(char c)
{
	switch (c) {
	case ',': case ']': case '}': case ' ': case '\t': case '\r': case '\n':
		return 1;
	default:
		return 0;
	}
}

/* The end of the value starting at p, or NULL when plainly malformed. */
static const char *lenient_value(const char *p, const char *end)
{
	if (p >= end)
		return NULL;
	if (*p == '"')
		return lenient_string(p, end);
	if (*p == '{' || *p == '[')
		return lenient_container(p, end);
	while (p < end && !ends_scalar(*p))
		p++;
	return p;
}

/* json_member(text, key) -> raw text of the top-level member, or nil.
 * Lenient: it serves text that decoded already (the exact id to echo,
 * whether params were [] or {}), and text that did not, to find the id of
 * an answer whose result cannot be read (dispatch.lua settles its caller
 * with the parse error); strictness would hide that id. */
static int l_json_member(lua_State *L)
{
	size_t len, klen;
	const char *text = luaL_checklstring(L, 1, &len);
	const char *key = luaL_checklstring(L, 2, &klen);
	const char *end = text + len, *p = skip_ws(text, end), *found = NULL, *fend = NULL;

	if (p >= end || *p != '{')
		return 0;
	for (p = skip_ws(p + 1, end); p < end && *p == '"';) {
		const char *k = p + 1, *kend = lenient_string(p, end), *v;
		if (!kend)
			return 0;
		p = skip_ws(kend, end);
		if (p >= end || *p != ':')
			return 0;
		v = skip_ws(p + 1, end);
		if (!(p = lenient_value(v, end)))
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

/* ---- strict scanning: json_elements and the responses pop() reads ---- */

/* The end of the value at p, or NULL when it is not valid JSON (checked
 * as strictly as the built-in codec decodes, json.c). */
static const char *skip_value(const char *p, const char *end)
{
	return jr_json_skip(p, end);
}

/* After a member or element at p: past the ',' and the space after it
 * (*more set), or at the closing bracket (*more clear); NULL when
 * neither follows. */
static const char *next_item(const char *p, const char *end, char close,
			     int *more)
{
	p = skip_ws(p, end);
	*more = p < end && *p == ',';
	if (*more)
		return skip_ws(p + 1, end);
	return p < end && *p == close ? p : NULL;
}

/* p at a string's opening quote: just past its closing quote when the
 * string is plain (printable ASCII, no escapes: valid JSON at a glance),
 * else NULL. The keys the fast paths look for are all plain: a message
 * with another key goes the general way. */
static const char *plain_string_end(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '"')
			return p + 1;
		if (ch == '\\' || ch < 0x20 || ch >= 0x80)
			return NULL;
	}
	return NULL;
}

/* p at a member of an object: its key (quotes excluded) in *k, *klen,
 * and the start of its value; NULL when malformed, or when the key is not
 * plain (see plain_string_end). */
static const char *member_value(const char *p, const char *end,
				const char **k, size_t *klen)
{
	const char *kend;

	if (p >= end || *p != '"' || !(kend = plain_string_end(p, end)))
		return NULL;
	*k = p + 1;
	*klen = (size_t)(kend - 1 - *k);
	p = skip_ws(kend, end);
	if (p >= end || *p != ':')
		return NULL;
	return skip_ws(p + 1, end);
}

/* json_elements(text [, max [, lenient]]) -> { raw element, ... } for a
 * top-level array, or nil when the text is not a valid JSON array; false
 * when it has more than max elements (a batch too long: refused before its
 * elements cost anything). `lenient`: the elements are split as
 * json_member finds values (an answer that is not JSON as a whole may
 * still hold answers to calls of ours: dispatch.lua settles them). */
static int l_json_elements(lua_State *L)
{
	size_t len;
	const char *text = luaL_checklstring(L, 1, &len);
	lua_Integer max = luaL_optinteger(L, 2, LUA_MAXINTEGER);
	const char *(*skip)(const char *, const char *) =
		lua_toboolean(L, 3) ? lenient_value : skip_value;
	const char *end = text + len, *p = skip_ws(text, end), *v;
	lua_Integer n = 0;
	int more = 1;

	if (p >= end || *p != '[')
		return 0;
	lua_newtable(L);
	p = skip_ws(p + 1, end);
	if (p < end && *p == ']')
		more = 0;
	while (more) {
		if (!(p = skip(v = p, end)))
			return 0;
		if (n >= max) {
			lua_pushboolean(L, 0);
			return 1;
		}
		lua_pushlstring(L, v, (size_t)(p - v));
		lua_rawseti(L, -2, ++n);
		if (!(p = next_item(p, end, ']', &more)))
			return 0;
	}
	if (skip_ws(p + 1, end) != end)
		return 0;
	return 1;
}

/* A JSON integer token that fits a lua_Integer: pushes it, returns 1. */
static int push_integer(lua_State *L, const char *p, const char *end)
{
	unsigned long long v = 0, limit = (unsigned long long)LUA_MAXINTEGER;
	int neg = 0;

	if (p < end && *p == '-') {
		neg = 1;
		limit++; /* -(LUA_MAXINTEGER + 1) is LUA_MININTEGER */
		p++;
	}
	if (p >= end || (*p == '0' && end - p > 1))
		return 0; /* empty or leading zero: let the codec judge */
	for (; p < end; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (d > 9 || v > (limit - d) / 10)
			return 0; /* not an integer, or too big: the codec's float */
		v = v * 10 + d;
	}
	lua_pushinteger(L, neg ? (lua_Integer)(0 - v) : (lua_Integer)v);
	return 1;
}

/* Whether the member key k, klen is name, and not seen already (`seen`:
 * where its value was found, or NULL): a duplicate is the general path's
 * to judge. */
static int key_is(const char *k, size_t klen, const char *name, size_t n,
		  const char *seen)
{
	return klen == n && !memcmp(k, name, n) && !seen;
}

/* Turns a JSON null on the top of the stack into nil. */
static void null_to_nil(lua_State *L)
{
	if (lua_islightuserdata(L, -1) && !lua_touserdata(L, -1)) {
		lua_pop(L, 1);
		lua_pushnil(L);
	}
}

/*
 * The fast path for the common message: {"jsonrpc":"2.0","id":<int>,
 * "result":...} with no "error" and no "method", starting at p. On
 * success pushes id and the result, decoded where it lies (json.c, as
 * strictly as a whole message, counting the envelope in the nesting
 * limit; null is nil), and returns the end of the object. Anything else,
 * a result that is not JSON included, pushes nothing and returns NULL: it
 * goes the general way, which says what is wrong with it.
 */
static const char *scan_response(lua_State *L, const char *p, const char *end)
{
	int top = lua_gettop(L), more = 1;
	const char *id = NULL, *id_end = NULL, *res = NULL;

	if (p >= end || *p != '{')
		return NULL;
	p = skip_ws(p + 1, end);
	while (more) {
		const char *k, *v;
		size_t klen;
		int is_id, is_result;
		if (!(v = member_value(p, end, &k, &klen)))
			goto not_one;
		is_id = key_is(k, klen, "id", 2, id);
		is_result = key_is(k, klen, "result", 6, res);
		/* error, method, something unusual, a repeated id or result:
		 * the general path reads it, so its value is not read here */
		if (!is_id && !is_result && !key_is(k, klen, "jsonrpc", 7, NULL))
			goto not_one;
		if (is_result) {
			res = v;
			p = jr_json_decode_at(L, v, end, 1);
		} else {
			p = skip_value(v, end);
		}
		if (!p)
			goto not_one;
		if (is_id) {
			id = v;
			id_end = p;
			/* the usual order: the id goes first, as it came */
			if (!res && !push_integer(L, id, id_end))
				goto not_one;
		}
		if (!(p = next_item(p, end, '}', &more)))
			goto not_one;
	}
	if (!id || !res)
		goto not_one;
	if (lua_gettop(L) == top + 1) { /* the result came first */
		if (!push_integer(L, id, id_end))
			goto not_one;
		lua_insert(L, -2);
	}
	null_to_nil(L); /* a null result: the caller's nil */
	return p + 1;
not_one:
	lua_settop(L, top);
	return NULL;
}

/* Pushes id, result for a message that is one such response and returns
 * 2; else pushes nothing and returns 0. (Lua: json_response(text);
 * drive.c: the messages pop() hands over.) */
int jr_push_response(lua_State *L, const char *text, size_t len)
{
	const char *end = text + len, *p;
	int top = lua_gettop(L);

	p = scan_response(L, skip_ws(text, end), end);
	if (!p)
		return 0;
	if (skip_ws(p, end) != end) {
		lua_settop(L, top);
		return 0;
	}
	return 2;
}

/*
 * For a batch answer whose every element is such a response: pushes a
 * table {id1, result1, id2, result2, ...} (holes where a result is null)
 * and the count, and returns 2; else pushes nothing and returns 0.
 */
int jr_push_responses(lua_State *L, const char *text, size_t len)
{
	const char *end = text + len, *p = skip_ws(text, end);
	int top = lua_gettop(L), list = top + 1, n = 0, more = 1;

	if (p >= end || *p != '[')
		return 0;
	/* room for as many answers as the text could hold (the shortest,
	 * {"id":1,"result":1}, takes 20 bytes), within reason */
	lua_createtable(L, 2 * (int)(len / 20 < 1024 ? len / 20 + 1 : 1024), 0);
	for (p = skip_ws(p + 1, end); more;) {
		if (!(p = scan_response(L, p, end)))
			goto not_all;
		/* within the room made above each lands in the array part */
		lua_rawseti(L, list, 2 * n + 2);
		lua_rawseti(L, list, 2 * n + 1);
		n++;
		if (!(p = next_item(p, end, ']', &more)))
			goto not_all;
	}
	if (skip_ws(p + 1, end) != end)
		goto not_all;
	lua_pushinteger(L, n);
	return 2;
not_all:
	lua_settop(L, top);
	return 0;
}

/* An id the reply can echo as it is: a string, a number or null. */
static int is_echoable_id(const char *v, const char *end)
{
	return *v == '"' || *v == '-' || (*v >= '0' && *v <= '9') ||
	       (end - v == 4 && !memcmp(v, "null", 4));
}

/* The id of a request as the reply echoes it: an integer when its text is
 * one plainly (no "-0"), else its exact text; nil when there is none. */
static void push_id(lua_State *L, const char *id, const char *id_end)
{
	if (!id)
		lua_pushnil(L);
	else if ((*id == '-' && id[1] == '0') || !push_integer(L, id, id_end))
		lua_pushlstring(L, id, (size_t)(id_end - id));
}

/*
 * A handler's arguments from the params array at p (valid JSON: checked
 * already), each element decoded, JSON null as nil: up to JR_INLINE_ARGS
 * of them pushed as they are, more gathered into one table (pushed
 * alone). Returns how many arguments there are; -1 (nothing pushed) when
 * an element is nested too deep.
 */
static int push_arguments(lua_State *L, const char *p, const char *end)
{
	int top = lua_gettop(L), n = 0, more, i;

	p = skip_ws(p + 1, end);
	if (*p == ']')
		return 0;
	for (more = 1; more; n++) {
		if (n == JR_INLINE_ARGS) { /* too many: into a table */
			lua_createtable(L, 2 * JR_INLINE_ARGS, 0);
			lua_insert(L, top + 1);
			for (i = n; i >= 1; i--)
				lua_rawseti(L, top + 1, i);
		}
		if (!(p = jr_json_decode_at(L, p, end, 2))) {
			lua_settop(L, top);
			return -1;
		}
		null_to_nil(L);
		if (n >= JR_INLINE_ARGS)
			lua_rawseti(L, top + 1, n + 1);
		p = next_item(p, end, ']', &more);
	}
	return n;
}

/* A request's event: "on_request", method, id, the count of arguments
 * and the arguments (push_arguments; object params: one, the table). The
 * stack holds method and id. Returns how many values it pushed in all;
 * 0 (nothing left pushed) when params nest too deep. */
static int push_request_event(lua_State *L, const char *params,
			      const char *end)
{
	int top = lua_gettop(L), nargs = 0;

	if (params && *params == '{') {
		if (!jr_json_decode_at(L, params, end, 1))
			return 0;
		nargs = 1;
	} else if (params && (nargs = push_arguments(L, params, end)) < 0) {
		return 0;
	}
	lua_pushinteger(L, nargs);
	lua_insert(L, top + 1);
	lua_pushliteral(L, "on_request");
	lua_insert(L, top - 1);
	return 4 + (nargs > JR_INLINE_ARGS ? 1 : nargs);
}

/* A notification's event: "on_notification", method, params (decoded, as
 * streams take them; nil when none), whether params is an object. The
 * stack holds method. Returns 4, or 0 (nothing left pushed) when params
 * nest too deep. */
static int push_notification_event(lua_State *L, const char *params,
				   const char *end)
{
	if (!params)
		lua_pushnil(L);
	else if (!jr_json_decode_at(L, params, end, 1))
		return 0;
	lua_pushboolean(L, params && *params == '{');
	lua_pushliteral(L, "on_notification");
	lua_insert(L, -4);
	return 4;
}

/*
 * The fast path for the common request or notification: an object of
 * "jsonrpc", "method" (a string without escapes), "params" (an array or
 * an object) and "id" (a string, a number or null), in any order, each at
 * most once, params and id optional, nothing else. Pushes the event it
 * makes (push_request_event, push_notification_event; the id as the
 * reply echoes it: push_id) and returns how many values that is.
 * Anything else pushes nothing and returns 0: the general path
 * (dispatch.lua) reads it and says what is wrong with it.
 */
int jr_push_request(lua_State *L, const char *text, size_t len)
{
	const char *end = text + len, *p = skip_ws(text, end);
	const char *version = NULL, *method = NULL, *method_end = NULL;
	const char *params = NULL, *id = NULL, *id_end = NULL;
	int more = 1, top = lua_gettop(L), n;

	if (p >= end || *p != '{')
		return 0;
	for (p = skip_ws(p + 1, end); more;) {
		const char *k, *v;
		size_t klen;
		/* most values here are plain strings: checked at a glance */
		if (!(v = member_value(p, end, &k, &klen)) ||
		    (!(*v == '"' && (p = plain_string_end(v, end))) &&
		     !(p = skip_value(v, end))))
			return 0;
		if (key_is(k, klen, "params", 6, params))
			params = v;
		else if (key_is(k, klen, "method", 6, method))
			method = v, method_end = p;
		else if (key_is(k, klen, "id", 2, id))
			id = v, id_end = p;
		else if (key_is(k, klen, "jsonrpc", 7, version))
			version = v;
		else
			return 0;
		if (!(p = next_item(p, end, '}', &more)))
			return 0;
	}
	if (skip_ws(p + 1, end) != end || !method || *method != '"' ||
	    memchr(method, '\\', (size_t)(method_end - method)) ||
	    (params && *params != '[' && *params != '{') ||
	    (id && !is_echoable_id(id, id_end)))
		return 0;
	lua_pushlstring(L, method + 1, (size_t)(method_end - method - 2));
	/* params were only checked while the members were scanned: how they
	 * are read depends on whether there is an id, which may follow them */
	if (id) {
		push_id(L, id, id_end);
		n = push_request_event(L, params, end);
	} else {
		n = push_notification_event(L, params, end);
	}
	if (!n)
		lua_settop(L, top);
	return n;
}

static int l_json_response(lua_State *L)
{
	size_t len;
	const char *text = luaL_checklstring(L, 1, &len);
	return jr_push_response(L, text, len);
}

/* json_request(text) -> the event pop would make of a request or
 * notification ("on_request", ... | "on_notification", ...), or nothing. */
static int l_json_request(lua_State *L)
{
	size_t len;
	const char *text = luaL_checklstring(L, 1, &len);
	return jr_push_request(L, text, len);
}

const luaL_Reg jr_scan_functions[] = {
	{"json_member", l_json_member},
	{"json_request", l_json_request},
	{"json_elements", l_json_elements},
	{"json_response", l_json_response},
	{NULL, NULL}
};
