/*
 * libFuzzer target: arbitrary bytes as inbound websocket messages, through
 * the path the real client uses for every received chunk.
 *
 *   jr_conn_rx (reassembly, size limit)  ->  event queue  ->  core.pop in
 *   the scheduler's dispatch  ->  Link:message  ->  dispatch.incoming
 *   (parsing, responses to waiting calls, requests to handlers)  ->
 *   handler tasks  ->  replies (conn:send, which fails: there is no wsi).
 *
 * Only libwebsockets' own frame parser is left out: the harness plays its
 * part, calling jr_conn_rx with first/final flags and the "remaining in
 * this frame" hint the way LWS_CALLBACK_CLIENT_RECEIVE does.
 *
 * Input: two plan bytes, then the payload.
 *   plan[0] bits 0-2  chunk size: whole, 1, 2, 3, 7, 64, 4096, random 1-64
 *           bit 3     binary frames
 *           bit 4     several messages: the payload split at NUL bytes
 *           bit 5     the close arrives with the messages, before their
 *                     handlers run (else a scheduler turn later)
 *           bit 6     frames announce more than they carry (the
 *                     "remaining" hint comes from the peer's header)
 *           bit 7     each message sent as several websocket frames
 *   plan[1] bits 0-2  max_message_size: 1 MiB, 1, 8, 64, 256, 1 Ki,
 *                     64 Ki, 16 MiB (the default; rarer: hostile hints
 *                     make it a 16 MiB allocation)
 *           bit 3     calls of ours are waiting for answers (ids 1, 2;
 *                     id 3 has timed out already)
 *           bit 4     handler_timeout = 0
 *           bits 5-6  how the peer closes: 1000, 1001, no status, 4000
 *           bit 7     dispatch and run the scheduler after every message
 *
 * Findings: a crash, a sanitizer report, a leak, or fuzz/harness.lua's
 * checks (an error nobody catches, a reply that is not valid JSON-RPC, a
 * call left waiting after the close) -- those abort().
 *
 * Lua code is not compiled with coverage, so a line hook feeds (file,
 * line) edges into libFuzzer's extra counters: the fuzzer sees dispatch.lua
 * branches as well as the C ones.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "../src/jrws.h"

#ifndef JR_FUZZ_ROOT
#define JR_FUZZ_ROOT "."
#endif

#define LUA_COV_SIZE 65536

__attribute__((used, section("__libfuzzer_extra_counters")))
static uint8_t lua_cov[LUA_COV_SIZE];
static uintptr_t lua_cov_prev;

static lua_State *L;
static int harness_ref;      /* the table fuzz/harness.lua returns */
static jr_conn *sentinel;    /* its empty message ends one dispatch */
static unsigned long inputs;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* JRWS_FUZZ_LINES=file: the module's Lua lines that ran, for a report
 * (fuzz_inbound -runs=0 fuzz/out/corpus lists what the corpus covers). */
#define LINES_MAX 8192
static FILE *lines_out;
static struct { const char *src; int line; } lines_seen[LINES_MAX];

static void lines_note(const lua_Debug *ar)
{
	uintptr_t h = ((uintptr_t)ar->source * 31 + (uintptr_t)ar->currentline)
		      % LINES_MAX;
	size_t i;

	if (!strstr(ar->source, "/jsonrpc_websocket/"))
		return;
	for (i = 0; i < LINES_MAX; i++, h = (h + 1) % LINES_MAX) {
		if (!lines_seen[h].src) {
			lines_seen[h].src = ar->source;
			lines_seen[h].line = ar->currentline;
			fprintf(lines_out, "%s:%d\n", ar->source + 1,
				ar->currentline);
			fflush(lines_out);
			return;
		}
		if (lines_seen[h].src == ar->source &&
		    lines_seen[h].line == ar->currentline)
			return;
	}
}

static void lua_cov_hook(lua_State *T, lua_Debug *ar)
{
	uintptr_t cur;

	if (!lua_getinfo(T, "S", ar))
		return;
	if (lines_out)
		lines_note(ar);
	cur = ((uintptr_t)ar->source >> 3) * 2654435761u
	      ^ (uintptr_t)ar->currentline * 40503u;
	lua_cov[(cur ^ lua_cov_prev) & (LUA_COV_SIZE - 1)]++;
	lua_cov_prev = cur >> 1;
}

static int l_fail(lua_State *T)
{
	fprintf(stderr, "\n==fuzz_inbound== FINDING: %s\n",
		luaL_tolstring(T, 1, NULL));
	abort();
}

/* new_conn(owner, max_message) -> a detached conn (see conn.c) */
static int l_new_conn(lua_State *T)
{
	lua_Integer max = luaL_checkinteger(T, 2);
	luaL_checkany(T, 1);
	jr_conn_new_detached(T, 1, (size_t)max);
	return 1;
}

static jr_conn *to_conn(lua_State *T, int idx)
{
	jr_conn **pc = luaL_checkudata(T, idx, JR_CONN_MT);
	return *pc;
}

static const char *root(void)
{
	const char *r = getenv("JRWS_FUZZ_ROOT");
	return r && *r ? r : JR_FUZZ_ROOT;
}

/* Calls harness[name](args on the stack); any error is a finding. */
static void call(const char *name, int nargs, int nres)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, harness_ref);
	lua_getfield(L, -1, name);
	lua_remove(L, -2);
	lua_insert(L, -1 - nargs);
	if (lua_pcall(L, nargs, nres, 0) != LUA_OK) {
		fprintf(stderr, "\n==fuzz_inbound== FINDING: harness.%s raised: %s\n",
			name, luaL_tolstring(L, -1, NULL));
		abort();
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[4096];
	(void)argc;
	(void)argv;

	L = luaL_newstate();
	luaL_openlibs(L);
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
	lua_pushcfunction(L, luaopen_jsonrpc_websocket_core);
	lua_setfield(L, -2, "jsonrpc_websocket.core");
	lua_pop(L, 1);
	lua_getglobal(L, "package");
	snprintf(path, sizeof path, "%s/lua/?.lua;%s/lua/?/init.lua;", root(),
		 root());
	lua_pushstring(L, path);
	lua_getfield(L, -2, "path");
	lua_concat(L, 2);
	lua_setfield(L, -2, "path");
	lua_pop(L, 1);

	snprintf(path, sizeof path, "%s/fuzz/harness.lua", root());
	if (luaL_loadfile(L, path) != LUA_OK) {
		fprintf(stderr, "fuzz_inbound: %s\n", lua_tostring(L, -1));
		exit(1);
	}
	lua_newtable(L);
	lua_pushcfunction(L, l_fail);
	lua_setfield(L, -2, "fail");
	lua_pushcfunction(L, l_new_conn);
	lua_setfield(L, -2, "new_conn");
	if (lua_pcall(L, 1, 2, 0) != LUA_OK) {
		fprintf(stderr, "fuzz_inbound: %s\n", lua_tostring(L, -1));
		exit(1);
	}
	sentinel = to_conn(L, -1); /* anchored by its registry ref */
	lua_pop(L, 1);
	harness_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	if (getenv("JRWS_FUZZ_LINES"))
		lines_out = fopen(getenv("JRWS_FUZZ_LINES"), "w");
	lua_sethook(L, lua_cov_hook, LUA_MASKLINE, 0);
	return 0;
}

/* ---- the plan ------------------------------------------------------------ */

struct plan {
	size_t chunk;       /* 0: random sizes */
	int binary, multi, close_early, hostile, frames, pending, htimeout;
	int close_code, interleave;
	size_t max_message;
	uint32_t rng;
};

static uint32_t next_rand(struct plan *p)
{
	p->rng ^= p->rng << 13;
	p->rng ^= p->rng >> 17;
	p->rng ^= p->rng << 5;
	return p->rng;
}

static void read_plan(struct plan *p, const uint8_t *d, size_t n)
{
	static const size_t chunks[8] = { SIZE_MAX, 1, 2, 3, 7, 64, 4096, 0 };
	static const size_t maxes[8] = { 1 << 20, 1, 8, 64, 256, 1024,
					 65536, (size_t)16 << 20 };
	static const int codes[4] = { 1000, 1001, 0, 4000 };
	uint8_t a = n > 0 ? d[0] : 0, b = n > 1 ? d[1] : 0;

	memset(p, 0, sizeof *p);
	p->chunk = chunks[a & 7];
	p->binary = a >> 3 & 1;
	p->multi = a >> 4 & 1;
	p->close_early = a >> 5 & 1;
	p->hostile = a >> 6 & 1;
	p->frames = a >> 7 & 1;
	p->max_message = maxes[b & 7];
	p->pending = b >> 3 & 1;
	p->htimeout = b >> 4 & 1;
	p->close_code = codes[b >> 5 & 3];
	p->interleave = b >> 7 & 1;
	p->rng = 0x9e3779b9u ^ ((uint32_t)a << 8 | b) ^ (uint32_t)n * 2246822519u;
}

/* How much more than it sends a frame's header may announce: a peer
 * chooses it (lws refuses lengths with bit 63 set). Huge claims are rare
 * (each costs a max_message_size allocation, slow under ASan). */
static size_t frame_extra(struct plan *p)
{
	static const size_t extra[8] = { 0, 1, 2, 64, 1000, 4096, 30000,
					 65536 };
	uint32_t r;

	if (!p->hostile)
		return 0;
	r = next_rand(p);
	return (r & 31) == 0 ? (size_t)1 << 62 : extra[r >> 5 & 7];
}

/*
 * One message as lws delivers it: frames (FIN on the last), each frame in
 * chunks; first on the message's first chunk, final on its last.
 * Returns -1 when jr_conn_rx says the connection must close.
 */
static int feed_message(jr_conn *c, struct plan *p, const uint8_t *m,
			size_t n)
{
	size_t off = 0;
	int first = 1;

	do {
		size_t frame = n - off, in_frame = 0, extra;
		if (p->frames && frame > 1)
			frame = 1 + next_rand(p) % frame;
		extra = frame_extra(p);
		do {
			size_t len = p->chunk ? p->chunk : 1 + next_rand(p) % 64;
			int final;
			if (len > frame - in_frame)
				len = frame - in_frame;
			in_frame += len;
			final = off + in_frame == n;
			if (jr_conn_rx(c, m + off + in_frame - len, len, first,
				       final, p->binary,
				       frame - in_frame + extra))
				return -1;
			first = 0;
		} while (in_frame < frame);
		off += frame;
	} while (off < n);
	return 0;
}

/* Pops and dispatches every queued event the way scheduler turns do. */
static void dispatch(void)
{
	jr_conn_rx(sentinel, "", 0, 1, 1, 0, 0);
	call("dispatch", 0, 0);
}

static void end_conn(jr_conn *c, struct plan *p, int *closed)
{
	if (*closed)
		return;
	*closed = 1;
	jr_conn_end_detached(c, p->close_code, p->close_code == 4000
			     ? "fuzz: peer closes" : "");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct plan p;
	const uint8_t *m, *end;
	jr_conn *c;
	int closed = 0;

	read_plan(&p, data, size);
	m = data + (size < 2 ? size : 2);
	end = data + size;

	lua_pushinteger(L, (lua_Integer)p.max_message);
	lua_pushboolean(L, p.pending);
	lua_pushboolean(L, p.htimeout);
	call("begin", 3, 1);
	c = to_conn(L, -1);
	lua_pop(L, 1);

	for (;;) {
		const uint8_t *stop = p.multi ? memchr(m, 0, (size_t)(end - m))
					      : NULL;
		size_t n = (size_t)((stop ? stop : end) - m);
		if (feed_message(c, &p, m, n)) {
			end_conn(c, &p, &closed); /* lws drops the connection */
			break;
		}
		if (p.interleave) {
			dispatch();
			call("turn", 0, 0);
		}
		if (!stop)
			break;
		m = stop + 1;
	}
	if (p.close_early) /* in the same service step as the messages */
		end_conn(c, &p, &closed);
	dispatch();
	call("turn", 0, 0);
	end_conn(c, &p, &closed);
	dispatch();
	call("finish", 0, 0);
	if (++inputs % 2048 == 0) {
		/* what one input leaves behind must not add up */
		lua_gc(L, LUA_GCCOLLECT);
		if (lua_gc(L, LUA_GCCOUNT) > 64 * 1024) {
			fprintf(stderr, "\n==fuzz_inbound== FINDING: the Lua "
				"state grew to %d KiB\n", lua_gc(L, LUA_GCCOUNT));
			abort();
		}
	}
	return 0;
}
