/*
 * The Lua glue the layers share: reading option tables (connect.c,
 * vhost.c, server.c) and making a class's metatable (conn.c, server.c).
 * A leaf.
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

/* Registers metatable `name` once: methods (and `more`, or NULL) as its
 * __index, gc as __gc, tostring as __tostring. */
void jr_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
		  const luaL_Reg *more, lua_CFunction gc, lua_CFunction tostring)
{
	if (luaL_newmetatable(L, name)) {
		lua_newtable(L);
		luaL_setfuncs(L, methods, 0);
		if (more)
			luaL_setfuncs(L, more, 0);
		lua_setfield(L, -2, "__index");
		lua_pushcfunction(L, gc);
		lua_setfield(L, -2, "__gc");
		lua_pushcfunction(L, tostring);
		lua_setfield(L, -2, "__tostring");
	}
	lua_pop(L, 1);
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
