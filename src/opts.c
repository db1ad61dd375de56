/*
 * Reading option tables into C: the two helpers every layer that takes
 * options shares (connect.c, vhost.c, server.c). A leaf.
 */
#include <stdlib.h>
#include <string.h>

#include "jrws.h"

/* opts[key] as a string, or NULL when it is absent (or not a string or a
 * number); the string stays alive as long as opts holds it. */
const char *jr_opt_string(lua_State *L, int opts, const char *key)
{
	const char *s;
	lua_getfield(L, opts, key);
	s = lua_tostring(L, -1);
	lua_pop(L, 1);
	return s;
}

/* A malloc'ed copy of s; raises a Lua error when out of memory. */
char *jr_dup(lua_State *L, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);
	if (!d)
		luaL_error(L, "jsonrpc_websocket: out of memory");
	return memcpy(d, s, n);
}
