/*
 * The loop: one libwebsockets context per Lua state, created on first use
 * and destroyed when the state closes; the bounded service step; the FIFO
 * of events that callbacks leave for Lua; the monotonic clock.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include "jrws.h"

#define JR_SERV_BUF (64 * 1024) /* bytes per recv(), handshake space */

/* lws sizes its fd tables by RLIMIT_NOFILE (16 B each); cap huge limits. */
static unsigned int jr_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 65536)
		return 65536;
	return 0;
}

static void jr_log_emit(int level, const char *line)
{
	/* lws reports failures through our events; its own lines are noise
	 * for users unless they ask for them (as trace.lua reads it). */
	const char *debug = getenv("JSONRPC_WS_DEBUG");

	if (debug && *debug && strcmp(debug, "0"))
		fprintf(stderr, "libwebsockets[%d]: %s", level, line);
}

/*
 * One context for every connection of this Lua state, TLS or not: OpenSSL's
 * global init is done once here (lws takes process-global ex-data indices
 * per TLS context, so several contexts would leak), while the costly part,
 * a client SSL_CTX with the system CA store, waits for the first wss://
 * vhost (vhost.c). The context itself has no vhost: each transport
 * configuration gets its own.
 */
static struct lws_context *jr_create_context(void)
{
	struct lws_context_creation_info ci;

	memset(&ci, 0, sizeof ci);
	ci.port = CONTEXT_PORT_NO_LISTEN;
	ci.options = LWS_SERVER_OPTION_JUST_USE_RAW_ORIGIN
		   | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT
		   | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	ci.pt_serv_buf_size = JR_SERV_BUF;
	ci.fd_limit_per_thread = jr_fd_limit();
	ci.timeout_secs = 30; /* handshake steps; ws_connect has its own deadline */
	ci.connect_timeout_secs = 30;
	lws_set_log_level(LLL_ERR | LLL_WARN, jr_log_emit);
	return lws_create_context(&ci);
}

jr_loop *jr_loop_get(lua_State *L)
{
	jr_loop *loop;
	lua_getfield(L, LUA_REGISTRYINDEX, JR_LOOP_KEY);
	loop = *(jr_loop **)lua_touserdata(L, -1);
	lua_pop(L, 1);
	return loop;
}

struct lws_context *jr_loop_context(lua_State *L, jr_loop *loop)
{
	if (!loop->cx) {
		loop->cx = jr_create_context();
		if (!loop->cx)
			luaL_error(L, "jsonrpc_websocket: cannot create the "
				      "libwebsockets context");
	}
	return loop->cx;
}

/* Called from lws callbacks: record only, never touch Lua. */
int jr_loop_push(jr_loop *loop, jr_conn *c, enum jr_event_kind kind,
		 char *data, size_t len, int binary)
{
	jr_event *e;

	if (loop->destroying || !(e = malloc(sizeof *e)))
		return -1;
	e->next = NULL;
	e->conn = c;
	e->kind = kind;
	e->data = data;
	e->len = len;
	e->binary = binary;
	*loop->tail = e;
	loop->tail = &e->next;
	return 0;
}

/* Drop queued events of a connection whose memory is about to go. */
void jr_loop_forget_conn(jr_loop *loop, jr_conn *c)
{
	jr_event **pe = &loop->head, *e;

	while ((e = *pe)) {
		if (e->conn == c) {
			*pe = e->next;
			free(e->data);
			free(e);
		} else {
			pe = &e->next;
		}
	}
	loop->tail = &loop->head;
	while (*loop->tail)
		loop->tail = &(*loop->tail)->next;
}

/*
 * Events born in lws's timer phase (handshake or close timeouts) do not end
 * the poll() that follows; cancelling the service makes it return.
 */
void jr_loop_wake(jr_loop *loop)
{
	if (loop->in_service && loop->cx)
		lws_cancel_service(loop->cx);
}

/* The step's time is up. lws runs this at the start of a pass, before
 * its poll(), which must then not wait: cancelling the service wakes it. */
static void jr_wake_cb(lws_sorted_usec_list_t *sul)
{
	jr_loop *loop = lws_container_of(sul, jr_loop, wake);

	loop->time_up = 1;
	lws_cancel_service(loop->cx);
}

/* step and pop run once per turn and per event: they find the loop in
 * their upvalue (the loop userdata, see core.c), not in the registry. */
static jr_loop *jr_loop_upvalue(lua_State *L)
{
	return *(jr_loop **)lua_touserdata(L, lua_upvalueindex(1));
}

/*
 * step([timeout_ms]): service libwebsockets once. timeout_ms < 0 (default)
 * waits for I/O only, 0 does not wait, > 0 waits at most that long.
 * Returns true when events are waiting to be popped.
 */
static int l_step(lua_State *L)
{
	jr_loop *loop = jr_loop_upvalue(L);
	lua_Integer timeout_ms = luaL_optinteger(L, 1, -1);
	struct lws_context *cx;

	if (loop->in_hook)
		return luaL_error(L, "jsonrpc_websocket: the loop cannot run "
				     "inside an authorize hook");
	cx = jr_loop_context(L, loop);
	loop->L = L;
	if (loop->flush_pending)
		jr_conn_flush_all(loop);
	if (loop->head)
		timeout_ms = 0;
	if (timeout_ms == 0) {
		lws_service(cx, -1);
	} else {
		loop->time_up = 0;
		if (timeout_ms > 0)
			lws_sul_schedule(cx, 0, &loop->wake, jr_wake_cb,
					 (lws_usec_t)timeout_ms * LWS_US_PER_MS);
		loop->in_service = 1;
		/* Until there is something for Lua, or the time is up: a
		 * pass that only wrote (a request going out) would otherwise
		 * cost Lua a turn. */
		do
			lws_service(cx, 0);
		while (!loop->head && !loop->time_up);
		loop->in_service = 0;
		lws_sul_cancel(&loop->wake);
	}
	loop->L = NULL;
	lua_pushboolean(L, loop->head != NULL);
	return 1;
}

/* A message, or the response it is when it is a simple one (scan.c):
 * read here, it never becomes a Lua string. Returns how many pushed. */
static int jr_push_message(lua_State *L, jr_event *e)
{
	int n;

	jr_conn_trace_in(L, e->conn, e->data, e->len);
	jr_conn_push_owner(L, e->conn);
	if (jr_conn_builtin_codec(e->conn)) {
		lua_pushliteral(L, "response");
		if ((n = jr_push_response(L, e->data, e->len)))
			return 2 + n;
		lua_pop(L, 1);
		lua_pushliteral(L, "responses");
		if ((n = jr_push_responses(L, e->data, e->len)))
			return 2 + n;
		lua_pop(L, 1);
	}
	lua_pushliteral(L, "message");
	lua_pushlstring(L, e->data, e->len);
	lua_pushboolean(L, e->binary);
	return 4;
}

/*
 * pop() -> owner, kind, ...  or nothing when the queue is empty.
 *   owner, "open"
 *   owner, "drained": the send queue that was full has room again
 *   owner, "message", data, is_binary
 *   owner, "response", id, result [, true: result is JSON text to decode]
 *   owner, "responses", {id, result, true|nil, ...}, count: a batch of them
 *          (these two only for conns with builtin_codec: see scan.c)
 *   owner, "closed", code, reason, failure, http_status, was_open,
 *          closed_here, written
 * `owner` is the Lua value given to connect().
 */
static int l_pop(lua_State *L)
{
	jr_loop *loop = jr_loop_upvalue(L);
	jr_event *e = loop->head;
	int n = 0;

	if (!e)
		return 0;
	loop->head = e->next;
	if (!loop->head)
		loop->tail = &loop->head;
	switch (e->kind) {
	case JR_EV_OPEN:
		jr_conn_push_owner(L, e->conn);
		lua_pushliteral(L, "open");
		n = 2;
		break;
	case JR_EV_MESSAGE:
		n = jr_push_message(L, e);
		break;
	case JR_EV_CLOSED:
		n = jr_conn_push_closed(L, e->conn);
		break;
	case JR_EV_DRAINED:
		jr_conn_push_owner(L, e->conn);
		lua_pushliteral(L, "drained");
		n = 2;
		break;
	case JR_EV_ACCEPT: /* 0 when its listener closed meanwhile */
		n = jr_server_push_accept(L, e);
		break;
	}
	free(e->data);
	free(e);
	return n;
}

static int l_now(lua_State *L)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
	return 1;
}

/* The loop is collected when the Lua state closes: tear lws down. */
static int l_loop_gc(lua_State *L)
{
	jr_loop **pl = lua_touserdata(L, 1), *loop = *pl;
	jr_event *e, *next;

	if (!loop)
		return 0;
	for (e = loop->head; e; e = next) {
		next = e->next;
		free(e->data);
		free(e);
	}
	loop->head = NULL;
	loop->tail = &loop->head;
	loop->destroying = 1;
	if (loop->cx)
		lws_context_destroy(loop->cx);
	jr_vhost_forget_all(loop);
	jr_conn_detach_all(loop);
	jr_frames_free(loop->frames);
	free(loop);
	*pl = NULL;
	return 0;
}

const luaL_Reg jr_loop_functions[] = {
	{"step", l_step},
	{"pop", l_pop},
	{"now", l_now},
	{NULL, NULL}
};

/* Creates this state's loop (once) and anchors it in the registry. */
void jr_loop_open(lua_State *L)
{
	jr_loop **pl;

	lua_getfield(L, LUA_REGISTRYINDEX, JR_LOOP_KEY);
	if (!lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	lua_pop(L, 1);
	pl = lua_newuserdatauv(L, sizeof *pl, 0);
	*pl = calloc(1, sizeof **pl);
	if (!*pl)
		luaL_error(L, "jsonrpc_websocket: out of memory");
	(*pl)->tail = &(*pl)->head;
	lua_newtable(L);
	lua_pushcfunction(L, l_loop_gc);
	lua_setfield(L, -2, "__gc");
	lua_setmetatable(L, -2);
	lua_setfield(L, LUA_REGISTRYINDEX, JR_LOOP_KEY);
}
