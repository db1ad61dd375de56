/*
 * JSON writing for the common call: positional params that are all nil,
 * booleans, finite numbers or valid UTF-8 strings, written straight into
 * the send buffer, with json.c's writers (so a number or string has one
 * spelling whichever path writes it). Tables, and anything else, go
 * through the codec instead (lua/jsonrpc_websocket/codec.lua); so does
 * everything when the user gave a codec of their own.
 */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "jrws.h"

/* Bytes needed for the value at idx, or 0 when it is not simple. */
size_t jr_simple_value_size(lua_State *L, int idx)
{
	size_t len;
	const char *s;

	switch (lua_type(L, idx)) {
	case LUA_TNIL:
	case LUA_TBOOLEAN:
		return 5; /* null, true, false */
	case LUA_TNUMBER:
		if (!lua_isinteger(L, idx) && !isfinite(lua_tonumber(L, idx)))
			return 0; /* the codec says what is wrong with it */
		return JR_NUMBER_MAX;
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &len);
		return jr_json_string_size(s, len); /* 0: not UTF-8 */
	default:
		return 0;
	}
}

char *jr_write_simple_value(lua_State *L, int idx, char *p)
{
	size_t len;
	const char *s;

	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		memcpy(p, "null", 4);
		return p + 4;
	case LUA_TBOOLEAN:
		if (lua_toboolean(L, idx)) {
			memcpy(p, "true", 4);
			return p + 4;
		}
		memcpy(p, "false", 5);
		return p + 5;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx))
			return jr_json_write_integer(p, lua_tointeger(L, idx));
		return jr_json_write_float(p, (double)lua_tonumber(L, idx));
	default:
		s = lua_tolstring(L, idx, &len);
		return jr_json_write_string(p, s, len);
	}
}

size_t jr_simple_array_size(lua_State *L, int first, int n)
{
	size_t total = 2 + (n > 0 ? (size_t)(n - 1) : 0); /* [ , ] */
	int i;

	for (i = 0; i < n; i++) {
		size_t size = jr_simple_value_size(L, first + i);
		if (!size)
			return 0;
		total += size;
	}
	return total;
}

char *jr_write_simple_array(lua_State *L, int first, int n, char *p)
{
	int i;

	*p++ = '[';
	for (i = 0; i < n; i++) {
		if (i)
			*p++ = ',';
		p = jr_write_simple_value(L, first + i, p);
	}
	*p++ = ']';
	return p;
}

/* The parts of a message after its prefix (see codec.method_prefix):
 * the params member's key, and the id member (if any) with the end. */
char *jr_write_params_key(char *p)
{
	memcpy(p, ",\"params\":", 10);
	return p + 10;
}

char *jr_write_message_end(char *p, int has_id, lua_Integer id)
{
	if (has_id) {
		memcpy(p, ",\"id\":", 6);
		p = jr_json_write_integer(p + 6, id);
	}
	*p++ = '}';
	return p;
}

/* A whole message: prefix, then ,"params":params unless params is NULL,
 * then the end. Needs plen + jlen + JR_MESSAGE_TAIL bytes at most. */
static char *jr_write_message(char *p, const char *prefix, size_t plen,
			      const char *params, size_t jlen,
			      int has_id, lua_Integer id)
{
	memcpy(p, prefix, plen);
	p += plen;
	if (params) {
		p = jr_write_params_key(p);
		memcpy(p, params, jlen);
		p += jlen;
	}
	return jr_write_message_end(p, has_id, id);
}

/* Entry i of a batch (see jr_batch_size): its prefix and params text
 * (NULL: none). Pushes nothing. */
static const char *jr_batch_entry(lua_State *L, int list, lua_Integer i,
				  size_t *plen, const char **params, size_t *jlen)
{
	const char *prefix;

	lua_rawgeti(L, list, 2 * i - 1);
	prefix = lua_tolstring(L, -1, plen);
	lua_rawgeti(L, list, 2 * i);
	*params = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, jlen) : NULL;
	lua_pop(L, 2); /* the strings stay alive in the list */
	return prefix;
}

/*
 * A batch of n messages, described by the list at stack index list:
 * method prefix (codec.method_prefix), then params (JSON text, or false
 * for none), for each; and by notify at list + 1: nil when every message
 * is a request, else a table true at the index of each notification. The
 * requests get consecutive ids. Returns the bytes needed at most; raises
 * when an entry is malformed, before anything is allocated.
 */
size_t jr_batch_size(lua_State *L, int list, lua_Integer n)
{
	size_t total = 2, plen, jlen = 0; /* [ ] */
	const char *params;
	lua_Integer i;

	for (i = 1; i <= n; i++) {
		if (!jr_batch_entry(L, list, i, &plen, &params, &jlen))
			luaL_error(L, "batch entry %I has no method prefix", i);
		total += plen + (params ? jlen : 0) + JR_MESSAGE_TAIL + 1;
	}
	return total;
}

static int jr_batch_is_request(lua_State *L, int notify, lua_Integer i)
{
	int is_request;

	if (lua_isnil(L, notify))
		return 1;
	lua_rawgeti(L, notify, i);
	is_request = !lua_toboolean(L, -1);
	lua_pop(L, 1);
	return is_request;
}

/* Writes the batch sized by jr_batch_size at p, its requests numbered
 * from first_id; *nids: how many requests. Returns the end. */
char *jr_write_batch(lua_State *L, int list, lua_Integer n,
		     lua_Integer first_id, char *p, lua_Integer *nids)
{
	size_t plen, jlen = 0;
	const char *prefix, *params;
	int is_request;
	lua_Integer i;

	*nids = 0;
	*p++ = '[';
	for (i = 1; i <= n; i++) {
		prefix = jr_batch_entry(L, list, i, &plen, &params, &jlen);
		is_request = jr_batch_is_request(L, list + 1, i);
		if (i > 1)
			*p++ = ',';
		p = jr_write_message(p, prefix, plen, params, jlen,
				     is_request, first_id + *nids);
		*nids += is_request;
	}
	*p++ = ']';
	return p;
}

/* Pushes the JSON array of the n values from stack index first and
 * returns 1; returns 0, pushing nothing, when one is not simple. */
static int jr_push_simple_array(lua_State *L, int first, int n)
{
	size_t cap = jr_simple_array_size(L, first, n);
	luaL_Buffer b;
	char *p, *start;

	if (!cap)
		return 0;
	start = luaL_buffinitsize(L, &b, cap);
	p = jr_write_simple_array(L, first, n, start);
	luaL_pushresultsize(&b, (size_t)(p - start));
	return 1;
}

/* simple_params(...) -> the JSON array of its arguments | false when
 * there are none (no params member) | nothing when one is not simple (the
 * codec's work, then). */
static int l_simple_params(lua_State *L)
{
	int n = lua_gettop(L);

	if (!n) {
		lua_pushboolean(L, 0);
		return 1;
	}
	return jr_push_simple_array(L, 1, n);
}

/* The length of the table at idx when it is a sequence 1..n with no
 * other key and no metatable; -1 when it is not. */
static lua_Integer jr_plain_list_length(lua_State *L, int idx)
{
	lua_Integer n, count = 0, k;

	if (lua_getmetatable(L, idx)) {
		lua_pop(L, 1);
		return -1;
	}
	n = (lua_Integer)lua_rawlen(L, idx);
	lua_pushnil(L);
	while (lua_next(L, idx)) {
		k = lua_isinteger(L, -2) ? lua_tointeger(L, -2) : 0;
		lua_pop(L, 1);
		if (k < 1 || k > n) {
			lua_pop(L, 1);
			return -1;
		}
		count++;
	}
	return count == n ? n : -1;
}

/* simple_list(t) -> the JSON array of t's items | nothing: when t is not
 * a plain sequence of simple values (then the codec does it, and says
 * what is wrong with it). The items go on the stack, where simple_params
 * finds its arguments. */
static int l_simple_list(lua_State *L)
{
	lua_Integer n, i;

	luaL_checktype(L, 1, LUA_TTABLE);
	n = jr_plain_list_length(L, 1);
	if (n < 0 || n >= INT_MAX || !lua_checkstack(L, (int)n + LUA_MINSTACK))
		return 0;
	for (i = 1; i <= n; i++)
		lua_rawgeti(L, 1, i);
	return jr_push_simple_array(L, 2, (int)n);
}

/* message_text(prefix, params, id) -> prefix, then ,"params":params
 * unless params is nil, then ,"id":id unless id is nil, then }: a request
 * or notification (see codec.lua), the id written without printf. */
static int l_message_text(lua_State *L)
{
	size_t plen, jlen = 0;
	const char *prefix = luaL_checklstring(L, 1, &plen);
	const char *params = luaL_optlstring(L, 2, NULL, &jlen);
	int has_id = !lua_isnoneornil(L, 3);
	lua_Integer id = has_id ? luaL_checkinteger(L, 3) : 0;
	luaL_Buffer b;
	char *start = luaL_buffinitsize(L, &b, plen + jlen + JR_MESSAGE_TAIL);
	char *p = jr_write_message(start, prefix, plen, params, jlen, has_id, id);

	luaL_pushresultsize(&b, (size_t)(p - start));
	return 1;
}

const luaL_Reg jr_encode_functions[] = {
	{"message_text", l_message_text},
	{"simple_params", l_simple_params},
	{"simple_list", l_simple_list},
	{NULL, NULL}
};
