/*
 * luaopen_jsonrpc_websocket_core: the transport the Lua module is built on.
 * See jrws.h for how the pieces fit.
 */
#include "jrws.h"

/* new_list(n) -> an empty table with room for n list items: filling a
 * table that grows costs a resize at every power of two, and Lua 5.4 has
 * no table.create. */
static int l_new_list(lua_State *L)
{
	lua_Integer n = luaL_checkinteger(L, 1);

	luaL_argcheck(L, n >= 0 && n <= 1 << 24, 1, "out of range");
	lua_createtable(L, (int)n, 0);
	return 1;
}

LUALIB_API int luaopen_jsonrpc_websocket_core(lua_State *L)
{
	jr_loop_open(L);
	jr_conn_open(L);
	jr_listener_open(L);
	lua_newtable(L);
	lua_getfield(L, LUA_REGISTRYINDEX, JR_LOOP_KEY);
	luaL_setfuncs(L, jr_loop_functions, 1); /* the loop as upvalue */
	luaL_setfuncs(L, jr_conn_functions, 0);
	luaL_setfuncs(L, jr_scan_functions, 0);
	luaL_setfuncs(L, jr_encode_functions, 0);
	luaL_setfuncs(L, jr_listener_functions, 0);
	luaL_setfuncs(L, jr_workers_functions, 0);
	jr_json_open(L);
	lua_pushcfunction(L, l_new_list);
	lua_setfield(L, -2, "new_list");
	lua_pushinteger(L, JR_INLINE_ARGS);
	lua_setfield(L, -2, "INLINE_ARGS");
	return 1;
}
