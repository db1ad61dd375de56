/*
 * Who drives the engine: the top of the C layers, the Lua face of loop.c.
 * The scheduler (lua/jsonrpc_websocket/scheduler.lua) calls step() and
 * pop(); a host loop (luv, cqueues, any poll()) watches pollfd() and
 * timeout() and calls step(0) through the scheduler. pop() is the one
 * place that knows every kind of event and who owns it (conn.c, server.c);
 * teardown puts the engine, the vhosts and the connections away in order.
 *
 * Layers, bottom-up: loop.c (engine) < vhost.c < conn.c < server.c <
 * drive.c. Nothing below calls up.
 */
#include <stdlib.h>

#include "jrws.h"

/* The functions here find the loop in their upvalue (the loop userdata,
 * see core.c), not in the registry: step and pop run once per turn. */
static jr_loop *jr_loop_upvalue(lua_State *L)
{
	return *(jr_loop **)lua_touserdata(L, lua_upvalueindex(1));
}

/*
 * step([timeout_ms]): service the engine once. timeout_ms < 0 (default)
 * waits for I/O only, 0 does not wait, > 0 waits at most that long.
 * Returns true when events are waiting to be popped.
 */
static int l_step(lua_State *L)
{
	jr_loop *loop = jr_loop_upvalue(L);
	lua_Integer timeout_ms = luaL_optinteger(L, 1, -1);

	if (loop->in_hook)
		return luaL_error(L, "jsonrpc_websocket: the loop cannot run "
				     "inside an authorize hook");
	jr_loop_context(L, loop);
	loop->L = L;
	if (loop->flush_pending)
		jr_conn_flush_all(loop);
	jr_loop_service(loop, (long)timeout_ms);
	loop->L = NULL;
	lua_pushboolean(L, loop->head != NULL);
	return 1;
}

/* pollfd() -> the engine's descriptor: readable when step(0) has I/O. */
static int l_pollfd(lua_State *L)
{
	jr_loop *loop = jr_loop_upvalue(L);

	jr_loop_context(L, loop);
	lua_pushinteger(L, jr_loop_pollfd(loop));
	return 1;
}

/* timeout() -> milliseconds until the engine needs a step without I/O,
 * or -1 when only I/O can give it work. */
static int l_timeout(lua_State *L)
{
	jr_loop *loop = jr_loop_upvalue(L);

	if (!loop->cx)
		lua_pushinteger(L, -1);
	else
		lua_pushinteger(L, jr_loop_timeout_ms(loop));
	return 1;
}

typedef int (*jr_reader)(lua_State *L, const char *text, size_t len);

/* Pushes handler and what read() makes of the message e; returns how many
 * values that is, or 0 (leaving nothing pushed) when read() did not take
 * it. */
static int jr_read_as(lua_State *L, const char *handler, jr_reader read,
		      jr_event *e)
{
	int n;

	lua_pushstring(L, handler);
	if ((n = read(L, e->data, e->len)))
		return 1 + n;
	lua_pop(L, 1);
	return 0;
}

/* A message, or the request, notification or response it is when it is
 * a simple one (scan.c): read here, it never becomes a Lua string. A
 * listener's session is asked for requests first, a client for
 * responses. Returns how many pushed. */
static int jr_push_message(lua_State *L, jr_event *e)
{
	int n, session = jr_conn_listener(e->conn) != NULL;

	jr_conn_trace_in(L, e->conn, e->data, e->len);
	jr_conn_push_owner(L, e->conn);
	if (jr_conn_builtin_codec(e->conn) &&
	    ((session && (n = jr_push_request(L, e->data, e->len))) ||
	     (n = jr_read_as(L, "on_response", jr_push_response, e)) ||
	     (n = jr_read_as(L, "on_responses", jr_push_responses, e)) ||
	     (!session && (n = jr_push_request(L, e->data, e->len)))))
		return 1 + n;
	lua_pushliteral(L, "on_message");
	lua_pushlstring(L, e->data, e->len);
	lua_pushboolean(L, e->binary);
	return 4;
}

/*
 * pop([deadline]) -> owner, handler, ...  or nothing when the queue is
 * empty; false when events wait but the clock (now()) has passed
 * `deadline` (a host loop's step budget: the clock is read here, in the
 * call that takes the event anyway).
 * The scheduler calls owner[handler](owner, ...): every event handler is
 * named on_<event>.
 *   owner, "on_open"
 *   owner, "on_drained": the send queue that was full has room again
 *   owner, "on_message", data, is_binary
 *   owner, "on_response", id, result (decoded; null is nil)
 *   owner, "on_responses", {id, result, id, result, ...}, count: a batch
 *   owner, "on_request", method, id, nargs, args...: a request, its id
 *          as the reply echoes it (an integer, or its exact text), its
 *          handler's arguments (nargs of them; more than 4: one table
 *          holds them)
 *   owner, "on_notification", method, params, params_is_object
 *          (these four only for conns with builtin_codec: see scan.c)
 *   owner, "on_closed", code, reason, failure, http_status, was_open,
 *          closed_here, unsent
 *   listener, "on_accept", conn, address (server.c)
 * `owner` is the Lua value given to connect() or listen().
 */
static int l_pop(lua_State *L)
{
	jr_loop *loop = jr_loop_upvalue(L);
	jr_event *e;
	int n = 0;

	if (loop->head && !lua_isnoneornil(L, 1)
	    && jr_loop_now() >= luaL_checknumber(L, 1)) {
		lua_pushboolean(L, 0);
		return 1;
	}
	if (!(e = jr_loop_take(loop)))
		return 0;
	switch (e->kind) {
	case JR_EV_OPEN:
		jr_conn_push_owner(L, e->conn);
		lua_pushliteral(L, "on_open");
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
		lua_pushliteral(L, "on_drained");
		n = 2;
		break;
	case JR_EV_ACCEPT: /* 0 when its listener closed meanwhile */
		n = jr_listener_push_accept(L, e);
		break;
	}
	jr_event_free(e);
	return n;
}

/* set_hosted(on): a host loop drives the engine now: work that appears
 * outside a step makes pollfd() readable (jr_loop_poke). */
static int l_set_hosted(lua_State *L)
{
	jr_loop_upvalue(L)->hosted = lua_toboolean(L, 1);
	return 0;
}

/* flush(): writes now what Lua queued since the last step (gathered
 * writes), as the next step would first. */
static int l_flush(lua_State *L)
{
	jr_loop *loop = jr_loop_upvalue(L);

	if (loop->flush_pending && !loop->in_hook)
		jr_conn_flush_all(loop);
	return 0;
}

static int l_now(lua_State *L)
{
	lua_pushnumber(L, (lua_Number)jr_loop_now());
	return 1;
}

/* The loop is collected when the Lua state closes: tear everything down.
 * Connections still alive then learn the loop is gone (detach) only after
 * lws has destroyed their wsis: their WSI_DESTROY frees them. */
static int l_loop_gc(lua_State *L)
{
	jr_loop **pl = lua_touserdata(L, 1), *loop = *pl;

	if (!loop)
		return 0;
	jr_loop_close_engine(loop);
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
	{"pollfd", l_pollfd},
	{"backend_timeout", l_timeout},
	{"set_hosted", l_set_hosted},
	{"flush", l_flush},
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
	*pl = jr_loop_new();
	if (!*pl)
		luaL_error(L, "jsonrpc_websocket: out of memory");
	lua_newtable(L);
	lua_pushcfunction(L, l_loop_gc);
	lua_setfield(L, -2, "__gc");
	lua_setmetatable(L, -2);
	lua_setfield(L, LUA_REGISTRYINDEX, JR_LOOP_KEY);
}
