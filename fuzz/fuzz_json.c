/*
 * libFuzzer target for the built-in JSON codec (src/json.c): arbitrary
 * bytes as JSON text.
 *
 *   - jr_json_decode never crashes; jr_json_skip (the check scan.c uses)
 *     accepts exactly what it decodes; jr_json_decode_at (scan.c's
 *     decoder of a result where it lies) reads the value at the start of
 *     the text as jr_json_decode reads the whole text, ends where
 *     jr_json_skip ends, and one level deeper in a text refuses exactly
 *     the values that nest 1,000 levels;
 *   - what decodes encodes, and the text written reads back to the same
 *     value (exact number types, the sign of zero) and writes the same text
 *     again: encoding is a fixed point;
 *   - differential against lua-cjson (a private strict instance): what we
 *     accept, cjson accepts too (except lone surrogates, which we read as
 *     U+FFFD and cjson refuses), with the same strings, structure and
 *     numbers (cjson 2.1.0 reads every number as a double: ours must be the
 *     same double, or the integer it rounds).
 *
 * A finding is a crash, a sanitizer report or one of these checks failing
 * (abort()). The checks are Lua, in CHECKS below, over the C codec.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "../src/jrws.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;
static int check_ref;

static const char CHECKS[] =
"local json, cjson = ...\n"
"local decode, encode = json.json_decode, json.json_encode\n"
"local null, array_mt = json.json_null, json.json_array_mt\n"
"local mtype = math.type\n"
"local function same(a, b, exact)\n"
"  local ta = type(a)\n"
"  if ta ~= type(b) then return false end\n"
"  if ta == 'number' then\n"
"    if exact then return mtype(a) == mtype(b) and a == b and 1/a == 1/b end\n"
"    return a + 0.0 == b + 0.0\n"
"  end\n"
"  if ta ~= 'table' then return a == b end\n"
"  if exact and getmetatable(a) ~= getmetatable(b) then return false end\n"
"  for k, v in pairs(a) do\n"
"    if not same(v, b[k], exact) then return false end\n"
"  end\n"
"  for k in pairs(b) do if a[k] == nil then return false end end\n"
"  return true\n"
"end\n"
"local function levels(x)\n"
"  if type(x) ~= 'table' then return 0 end\n"
"  local most = 0\n"
"  for _, y in pairs(x) do most = math.max(most, levels(y)) end\n"
"  return most + 1\n"
"end\n"
"return function(text, checked, at, at_deeper)\n"
"  local v, err = decode(text)\n"
"  if (v ~= nil) ~= checked then\n"
"    error(('decode and check disagree on %q: %s'):format(text, tostring(err)))\n"
"  end\n"
"  if at ~= nil and at_deeper ~= (levels(at) < 1000) then\n"
"    error(('one level deeper, decode_at misjudges the depth of %q'):format(text))\n"
"  end\n"
"  if v == nil then return end\n"
"  if not same(v, at, true) then error(('decode_at reads %q differently'):format(text)) end\n"
"  local ok, e1 = pcall(encode, v)\n"
"  if not ok then error(('decoded but cannot encode %q: %s'):format(text, e1)) end\n"
"  local v2, err2 = decode(e1)\n"
"  if v2 == nil then error(('wrote text we cannot read: %q: %s'):format(e1, err2)) end\n"
"  if not same(v, v2, true) then error(('round trip changed %q into %q'):format(text, e1)) end\n"
"  local e2 = encode(v2)\n"
"  if #e2 ~= #e1 then error(('encoding is not a fixed point: %q then %q'):format(e1, e2)) end\n"
"  if text:find('\\\\[uU][dD][89a-fA-F]') then return end\n"
"  local c, cerr = cjson.decode(text)\n"
"  if c == nil and cerr ~= nil then\n"
"    error(('cjson refuses what we accept: %q: %s'):format(text, cerr))\n"
"  end\n"
"  if not same(v, c, false) then error(('cjson reads %q differently'):format(text)) end\n"
"end\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	L = luaL_newstate();
	luaL_openlibs(L);
	if (luaL_loadbuffer(L, CHECKS, sizeof CHECKS - 1, "=checks")) {
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
		abort();
	}
	lua_newtable(L);
	jr_json_open(L);
	/* a private strict cjson: NaN, 0x10 and the like are not JSON */
	if (luaL_dostring(L, "local c = require('cjson.safe').new() "
			  "c.decode_invalid_numbers(false) return c")) {
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
		abort();
	}
	lua_call(L, 2, 1);
	check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data, *end = text + size, *p;

	const char *at, *deeper;

	p = jr_json_skip(text, end);
	lua_rawgeti(L, LUA_REGISTRYINDEX, check_ref);
	lua_pushlstring(L, text, size);
	at = jr_json_decode_at(L, text, end, 0); /* the value, or nothing */
	if (at != p) {
		fprintf(stderr, "\n==fuzz_json== FINDING: decode_at and skip end "
			"apart (%ld, %ld)\n", at ? (long)(at - text) : -1L,
			p ? (long)(p - text) : -1L);
		abort();
	}
	if (!at)
		lua_pushnil(L);
	if ((deeper = jr_json_decode_at(L, text, end, 1)))
		lua_pop(L, 1);
	lua_pushboolean(L, deeper != NULL);
	while (p && p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	lua_pushboolean(L, p == end);
	lua_rotate(L, -3, 1); /* check, text, checked, value, deeper */
	if (lua_pcall(L, 4, 0, 0)) {
		fprintf(stderr, "\n==fuzz_json== FINDING: %s\n", lua_tostring(L, -1));
		abort();
	}
	lua_settop(L, 0);
	lua_gc(L, LUA_GCSTEP, 0);
	return 0;
}
