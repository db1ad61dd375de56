/*
 * A websocket connection, the object: a client one (connect.c) or a
 * session a listener accepted (server.c; `listener` is set). Its struct,
 * its lifetime and the split into conn.c, connect.c, send.c and
 * receive.c are described in conn.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"

/* Sets *dst to a copy of src (len bytes, at most size - 1 kept), or to
 * NULL when that is empty. Out of memory, the text is lost (NULL): it is
 * only ever a description. */
void jr_set_text(char **dst, size_t size, const void *src, size_t len)
{
	char *s = NULL;

	if (len >= size)
		len = size - 1;
	if (src && len && (s = malloc(len + 1))) {
		memcpy(s, src, len);
		s[len] = '\0';
	}
	free(*dst);
	*dst = s;
}

/* jr_set_text of a formatted text (size at most JR_FAILURE_SIZE). */
void jr_set_textf(char **dst, size_t size, const char *fmt, ...)
{
	char buf[JR_FAILURE_SIZE];
	va_list ap;
	int n;

	if (size > sizeof buf)
		size = sizeof buf;
	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	jr_set_text(dst, size, buf, n < 0 ? 0 : strlen(buf));
}

/* The connection ends by our decision, with `code` and `reason`: what the
 * closed event reports. */
void jr_end_here(jr_conn *c, int code, const char *reason)
{
	c->end_code = code;
	c->closed_here = 1;
	jr_set_text(&c->end_reason, JR_REASON_SIZE, reason, strlen(jr_text(reason)));
}

void jr_conn_free(jr_conn *c)
{
	int i;
	if (c->loop)
		jr_loop_forget_conn(c->loop, c);
	jr_list_leave(c, offsetof(jr_conn, all));
	jr_unmark_flush(c);
	jr_keepalive_stop(c);
	jr_free_out(c);
	/* a name whose value could not be copied is not counted in nheaders */
	for (i = 0; c->headers && c->headers[i]; i++)
		free(c->headers[i]);
	free(c->headers);
	free(c->auth);
	free(c->rx);
	free(c->unsent);
	free(c->subprotocol);
	free(c->close_reason);
	free(c->end_reason);
	free(c->failure);
	free(c);
}

/* The loop is going away: connections outlive it only as Lua garbage. */
void jr_conn_detach_all(jr_loop *loop)
{
	jr_conn *c;
	for (c = loop->conns; c; c = c->all.next) {
		c->loop = NULL;
		c->all.pprev = NULL;
		c->flush_links.pprev = NULL;
		c->ka.pprev = NULL;
	}
	loop->conns = NULL;
	loop->to_flush = NULL;
	loop->keepalive = NULL;
}

void jr_request_close(jr_conn *c, int code, const char *reason)
{
	c->want_close = 1;
	c->close_code = code;
	jr_set_text(&c->close_reason, JR_REASON_SIZE, reason, strlen(reason));
}

/* ---- what pop() hands to Lua (drive.c) --------------------------------- */

void jr_conn_push_owner(lua_State *L, jr_conn *c)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, c->self_ref);
	lua_getiuservalue(L, -1, 1);
	lua_remove(L, -2);
}

/*
 * The trace hook (conn:trace) sees every message as its text: "out" when
 * it is queued (whoever wrote it, Lua or send_call/send_batch in C), "in"
 * when pop() takes it (before scan.c reads a response in C). Both run in
 * Lua calls, never in an lws callback. A failing hook is told on stderr:
 * it must not change what the connection does.
 */
void jr_trace(lua_State *L, jr_conn *c, const char *direction,
		     const void *text, size_t len)
{
	luaL_checkstack(L, 4, "trace hook");
	lua_rawgeti(L, LUA_REGISTRYINDEX, c->self_ref);
	lua_getiuservalue(L, -1, 2);
	lua_remove(L, -2);
	lua_pushstring(L, direction);
	lua_pushlstring(L, text, len);
	if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
		fprintf(stderr, "jsonrpc_websocket: trace hook failed: %s\n",
			lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
		lua_pop(L, 1);
	}
}

/* For pop() (loop.c): a message has arrived. */
void jr_conn_trace_in(lua_State *L, jr_conn *c, const char *text, size_t len)
{
	if (c->tracing)
		jr_trace(L, c, "in", text, len);
}

static void jr_push_unsent(lua_State *L, jr_conn *c)
{
	size_t i;
	lua_Integer id;

	if (!c->nunsent) {
		lua_pushnil(L);
		return;
	}
	lua_createtable(L, 0, (int)c->nunsent);
	for (i = 0; i < c->nunsent; i++)
		for (id = c->unsent[2 * i]; id < c->unsent[2 * i] + c->unsent[2 * i + 1]; id++) {
			lua_pushboolean(L, 1);
			lua_rawseti(L, -2, id);
		}
	free(c->unsent);
	c->unsent = NULL;
	c->nunsent = 0;
}

/* owner, "on_closed", code, reason, failure, http_status, was_open,
 * closed_here, unsent (a set of request ids that never left, or nil); and
 * the userdata is no longer anchored. */
int jr_conn_push_closed(lua_State *L, jr_conn *c)
{
	jr_conn_push_owner(L, c);
	lua_pushliteral(L, "on_closed");
	lua_pushinteger(L, c->end_code ? c->end_code
				       : LWS_CLOSE_STATUS_ABNORMAL_CLOSE);
	lua_pushstring(L, jr_text(c->end_reason));
	if (c->failure)
		lua_pushstring(L, c->failure);
	else
		lua_pushnil(L);
	lua_pushinteger(L, c->http_status);
	lua_pushboolean(L, c->established);
	lua_pushboolean(L, c->closed_here);
	jr_push_unsent(L, c);
	luaL_unref(L, LUA_REGISTRYINDEX, c->self_ref);
	c->self_ref = LUA_NOREF;
	return 9;
}

/* ---- making one, and its methods -------------------------------------- */

/* A zeroed connection, linked into loop->conns; NULL when out of memory. */
jr_conn *jr_conn_alloc(jr_loop *loop)
{
	jr_conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->loop = loop;
	c->self_ref = LUA_NOREF;
	c->out_tail = &c->out_head;
	c->max_out_bytes = JR_DEFAULT_QUEUE_BYTES;
	c->max_out_count = JR_DEFAULT_QUEUE_MESSAGES;
	c->out_timeout = (lws_usec_t)JR_DEFAULT_QUEUE_TIMEOUT * LWS_US_PER_SEC;
	jr_list_push(&loop->conns, c, offsetof(jr_conn, all));
	return c;
}

jr_conn *jr_new_conn(lua_State *L, jr_loop *loop)
{
	jr_conn **pc = lua_newuserdatauv(L, sizeof *pc, 2);
	*pc = jr_conn_alloc(loop);
	if (!*pc)
		luaL_error(L, "jsonrpc_websocket: out of memory");
	luaL_setmetatable(L, JR_CONN_MT);
	(*pc)->owners.lua = 1;
	return *pc;
}

/* conn:close([code [, reason]]): a polite close once queued data is out;
 * a connection still in its handshake is simply dropped. */
static int l_close(lua_State *L)
{
	jr_conn *c = jr_check_conn(L, 1);
	int code = (int)luaL_optinteger(L, 2, LWS_CLOSE_STATUS_NORMAL);
	size_t rlen;
	const char *reason = luaL_optlstring(L, 3, "", &rlen);

	luaL_argcheck(L, rlen <= 123, 3, "close reason longer than 123 bytes");
	if (!c->wsi || c->want_close) {
		lua_pushboolean(L, 0);
		return 1;
	}
	if (!c->established) {
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
	} else {
		jr_request_close(c, code, reason);
		lws_callback_on_writable(c->wsi);
	}
	if (c->loop)
		jr_loop_changed(c->loop);
	lua_pushboolean(L, 1);
	return 1;
}

/* conn:abort(): drop the socket now, no close frame. */
static int l_abort(lua_State *L)
{
	jr_conn *c = jr_check_conn(L, 1);
	if (c->wsi)
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
	c->aborted = 1;
	if (c->loop)
		jr_loop_changed(c->loop);
	return 0;
}

/* conn:reading(on): reading from the peer on or off. Off, libwebsockets
 * leaves what arrives in the kernel, whose buffers fill until TCP stops
 * the peer (lws_rx_flow_control). */
static int l_reading(lua_State *L)
{
	jr_conn *c = jr_check_conn(L, 1);
	int on = lua_toboolean(L, 2);

	if (c->wsi && c->reading_paused == on) {
		c->reading_paused = !on;
		lws_rx_flow_control(c->wsi, on);
		/* what lws kept buffered meanwhile waits for its service */
		if (on && c->loop)
			jr_loop_changed(c->loop);
	}
	return 0;
}

/* conn:builtin_codec(on): the codec is the built-in one (json.c):
 * send_call may write simple params itself (encode.c), and pop() may hand
 * simple responses over already read, as "response" events (scan.c). */
static int l_builtin_codec(lua_State *L)
{
	jr_check_conn(L, 1)->builtin_codec = lua_toboolean(L, 2);
	return 0;
}

/* conn:trace(fn | nil): fn(direction, text) for every message, "out"
 * and "in" (see jr_trace); nil stops it. */
static int l_trace(lua_State *L)
{
	jr_conn *c = jr_check_conn(L, 1);

	if (!lua_isnoneornil(L, 2))
		luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_settop(L, 2);
	c->tracing = !lua_isnil(L, 2);
	lua_setiuservalue(L, 1, 2);
	return 0;
}

int jr_conn_builtin_codec(const jr_conn *c)
{
	return c->builtin_codec;
}

static int l_subprotocol(lua_State *L)
{
	jr_conn *c = jr_check_conn(L, 1);
	if (!c->subprotocol)
		return 0;
	lua_pushstring(L, c->subprotocol);
	return 1;
}

static int l_tostring(lua_State *L)
{
	jr_conn **pc = luaL_checkudata(L, 1, JR_CONN_MT);
	jr_conn *c = *pc;
	const char *state = !c ? "collected" : !c->wsi ? "closed"
		: c->want_close ? "closing" : c->established ? "open"
		: "connecting";
	lua_pushfstring(L, "jsonrpc_websocket.conn (%s): %p", state, (void *)c);
	return 1;
}

/* __gc. Normally the wsi is gone by now (the anchor saw to it);
 * only while the Lua state closes can a live wsi remain: lws frees it
 * when the loop destroys the context, and WSI_DESTROY frees the struct. */
static int l_gc(lua_State *L)
{
	jr_conn *c = jr_take_pointer(L, 1, JR_CONN_MT);

	if (!c)
		return 0;
	if (jr_let_go(&c->owners, &c->owners.lua))
		jr_conn_free(c);
	else if (c->loop)
		jr_loop_forget_conn(c->loop, c);
	return 0;
}

static const luaL_Reg jr_conn_methods[] = {
	{"close", l_close},
	{"abort", l_abort},
	{"subprotocol", l_subprotocol},
	{"builtin_codec", l_builtin_codec},
	{"reading", l_reading},
	{"trace", l_trace},
	{NULL, NULL}
};

void jr_conn_open(lua_State *L)
{
	jr_new_class(L, JR_CONN_MT, jr_conn_methods, jr_send_methods, l_gc,
		     l_tostring);
}

/* ---- server sessions (server.c) --------------------------------------- */

/*
 * A listener accepted `wsi` (called in LWS_CALLBACK_ESTABLISHED). The
 * connection has no Lua userdata yet: jr_conn_push_new makes it when Lua
 * pops the accept event. Until then owners.lua is 0, so a session that dies
 * first is simply freed, its queued events with it.
 */
jr_conn *jr_conn_accepted(jr_loop *loop, struct lws *wsi, size_t max_message,
			  void *listener, const char *subprotocol)
{
	jr_conn *c = jr_conn_alloc(loop);
	if (!c)
		return NULL;
	c->wsi = wsi;
	c->owners.lws = 1;
	c->listener = listener;
	c->established = 1;
	c->raw_frames = 1; /* listeners offer no extensions */
	c->max_message = max_message ? max_message : JR_DEFAULT_MAX_MESSAGE;
	if (subprotocol)
		jr_set_text(&c->subprotocol, JR_SUBPROTOCOL_SIZE, subprotocol,
			    strlen(subprotocol));
	lws_set_opaque_user_data(wsi, c);
	return c;
}

void *jr_conn_listener(const jr_conn *c)
{
	return c->listener;
}

/* Pushes the userdata for an accepted session and anchors it until its
 * "closed" event is popped, as connect() does for clients. */
void jr_conn_push_new(lua_State *L, jr_conn *c)
{
	jr_conn **pc = lua_newuserdatauv(L, sizeof *pc, 2);
	*pc = c;
	luaL_setmetatable(L, JR_CONN_MT);
	c->owners.lua = 1;
	lua_pushvalue(L, -1);
	c->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

#ifdef JR_FUZZING
/*
 * Test-only (fuzz/): a connection that never had a wsi, as if its handshake
 * had just succeeded, so a harness can feed jr_conn_rx directly. Pushes the
 * userdata and anchors it as connect() does; sends fail ("not open").
 */
jr_conn *jr_conn_new_detached(lua_State *L, int owner_idx, size_t max_message)
{
	jr_conn *c;

	owner_idx = lua_absindex(L, owner_idx);
	c = jr_new_conn(L, jr_loop_get(L));
	lua_pushvalue(L, owner_idx);
	lua_setiuservalue(L, -2, 1);
	c->max_message = max_message;
	c->established = 1;
	lua_pushvalue(L, -1);
	c->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return c;
}

/* What WSI_DESTROY does for a detached connection: queue "closed". A close
 * already decided here (message too large) keeps its code. */
void jr_conn_end_detached(jr_conn *c, int code, const char *reason)
{
	if (c->want_close) { /* decided here: message too large */
		jr_end_here(c, c->close_code, c->close_reason);
	} else if (!c->end_code) {
		c->end_code = code;
		jr_set_text(&c->end_reason, JR_REASON_SIZE, reason,
			    strlen(reason));
	}
	if (c->loop)
		jr_loop_push(c->loop, c, JR_EV_CLOSED, NULL, 0, 0);
}
#endif

