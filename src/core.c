/*
 * luaopen_jsonrpc_websocket_core: the transport the Lua module is built on.
 * See jrws.h for how the pieces fit.
 */
#include "jrws.h"

LUALIB_API int luaopen_jsonrpc_websocket_core(lua_State *L)
{
	jr_loop_open(L);
	jr_conn_open(L);
	jr_server_open(L);
	lua_newtable(L);
	lua_getfield(L, LUA_REGISTRYINDEX, JR_LOOP_KEY);
	luaL_setfuncs(L, jr_loop_functions, 1); /* the loop as upvalue */
	luaL_setfuncs(L, jr_conn_functions, 0);
	luaL_setfuncs(L, jr_scan_functions, 0);
	luaL_setfuncs(L, jr_encode_functions, 0);
	luaL_setfuncs(L, jr_server_functions, 0);
	return 1;
}
