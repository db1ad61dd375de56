/*
 * lua_host: a bare Lua 5.4 interpreter, used only to profile the Lua
 * client (make profile).
 *
 *   lua_host SCRIPT [ARGS...]
 *
 * Debian's lua5.4 binary is stripped, so perf and callgrind show the
 * interpreter as raw addresses. This host links Debian's static
 * liblua5.4.a, which keeps its symbol table, and exports it (-rdynamic)
 * so that C modules (cjson, jsonrpc_websocket.core) bind to it: profiles
 * then name luaV_execute, luaH_newkey, the collector's steps and so on.
 */
#include <stdio.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

static int traceback(lua_State *L)
{
	luaL_traceback(L, L, lua_tostring(L, 1), 1);
	return 1;
}

int main(int argc, char **argv)
{
	lua_State *L;
	int i, status;

	if (argc < 2) {
		fprintf(stderr, "usage: lua_host SCRIPT [ARGS...]\n");
		return 2;
	}
	L = luaL_newstate();
	luaL_openlibs(L);
	/* arg[0] is the script, as with the lua5.4 command */
	lua_createtable(L, argc, 0);
	for (i = 1; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i - 1);
	}
	lua_setglobal(L, "arg");
	lua_pushcfunction(L, traceback);
	status = luaL_loadfile(L, argv[1]);
	if (status == LUA_OK)
		status = lua_pcall(L, 0, 0, -2);
	if (status != LUA_OK)
		fprintf(stderr, "lua_host: %s\n", lua_tostring(L, -1));
	lua_close(L);
	return status == LUA_OK ? 0 : 1;
}
