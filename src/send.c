/*
 * The send queue of a connection: whole messages (struct jr_out) that
 * send, send_call and send_batch queue, bounded in bytes and count (a full
 * queue refuses, then says "drained"; one full too long drops the peer),
 * written as gathered raw frames at the next step (frame.c) or as
 * fragments on WRITEABLE, and, at the end, the request ids that never
 * left.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"

#define JR_WRITE_BURST 256 /* messages per WRITEABLE callback */
#define JR_QUEUE_FULL "send queue full"

void jr_free_out(jr_conn *c)
{
	struct jr_out *o, *next;
	for (o = c->out_head; o; o = next) {
		next = o->next;
		free(o);
	}
	c->out_head = NULL;
	c->out_tail = &c->out_head;
	c->out_bytes = c->out_count = 0;
}

/* The queue that was full has room again (half of it free): the senders
 * waiting for room hear it as a "drained" event. */
static void jr_queue_drained(jr_conn *c)
{
	c->out_full = 0;
	lws_sul_cancel(&c->stall);
	if (c->loop && !jr_loop_push(c->loop, c, JR_EV_DRAINED, NULL, 0, 0))
		jr_loop_wake(c->loop);
}

/* The queue stayed full for out_timeout: the peer does not read. It is
 * dropped without a close frame (that would wait behind what the peer
 * does not read) and reported as closed here with 1008. */
static void jr_stalled(lws_sorted_usec_list_t *sul)
{
	jr_conn *c = lws_container_of(sul, jr_conn, stall);

	if (!c->wsi)
		return;
	jr_end_here(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, JR_QUEUE_FULL);
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* The head message is all written: drop it. */
static void jr_out_done(jr_conn *c)
{
	struct jr_out *o = c->out_head;

	c->out_head = o->next;
	if (!c->out_head)
		c->out_tail = &c->out_head;
	c->out_bytes -= o->len;
	c->out_count--;
	free(o);
	if (c->out_full && c->out_bytes <= c->max_out_bytes / 2 &&
	    c->out_count <= c->max_out_count / 2)
		jr_queue_drained(c);
}

/* Writes the queued whole messages that fit in one gathered write
 * (frame.c). Returns how many, 0 when the head message does not fit (or
 * c must not use raw frames), -1 when the write failed (the messages stay
 * queued: the close that follows counts them as never sent). */
static int jr_write_gathered(struct lws *wsi, jr_conn *c)
{
	jr_loop *loop = c->loop;
	unsigned char *start, *p, *end;
	struct jr_out *o;
	int n = 0, i;

	if (!c->raw_frames || !loop)
		return 0;
	if (!loop->frames && !(loop->frames = jr_frames_new()))
		return 0;
	start = p = jr_frames_start(loop->frames);
	for (o = c->out_head; o && o->off == 0 &&
	     o->len + JR_FRAME_HEADER_MAX <= JR_GATHER - (size_t)(p - start);
	     o = o->next) {
		end = jr_frame_append(loop->frames, loop->cx, p, o->buf + LWS_PRE,
				      o->len, !c->listener);
		if (!end)
			break;
		p = end;
		n++;
	}
	if (p > start && lws_write(wsi, start, (size_t)(p - start),
				   LWS_WRITE_RAW) < (int)(p - start))
		return -1;
	for (i = 0; i < n; i++)
		jr_out_done(c);
	return n;
}

/*
 * The connections with output to flush at the next step are a list of
 * their own: a step costs what was written, not a walk over every
 * connection (15,000 idle ones made that walk 90% of a busy server's
 * time: issue 16).
 */
static void jr_mark_flush(jr_conn *c)
{
	c->flush = 1;
	if (c->flush_links.pprev || !c->loop)
		return;
	jr_list_push(&c->loop->to_flush, c, offsetof(jr_conn, flush_links));
}

void jr_unmark_flush(jr_conn *c)
{
	c->flush = 0;
	jr_list_leave(c, offsetof(jr_conn, flush_links));
}

/*
 * A message was queued. A connection that gathers its writes is flushed
 * at the start of the loop's next step (jr_conn_flush_all), when whatever
 * else Lua sends this turn has joined it: waiting for lws to report the
 * socket writable would cost a poll() round trip per step. The others
 * wait for WRITEABLE.
 */
static void jr_want_write(jr_conn *c)
{
	if (c->raw_frames && c->loop) {
		jr_mark_flush(c);
		if (!c->loop->flush_pending) {
			c->loop->flush_pending = 1;
			jr_loop_poke(c->loop);
		}
	} else {
		lws_callback_on_writable(c->wsi);
	}
}

/* Writes what c has queued, as far as it can without waiting; the rest
 * (a large message, a socket that is full) goes when lws says WRITEABLE. */
static void jr_conn_flush(jr_conn *c)
{
	int n;

	jr_unmark_flush(c);
	/* after the peer's close frame nothing more may follow ours: what is
	 * queued then never leaves (and is counted as unsent) */
	if (!c->wsi || !c->established || c->peer_closed || c->aborted)
		return;
	do
		n = lws_partial_buffered(c->wsi) ? 0 : jr_write_gathered(c->wsi, c);
	while (n > 0 && c->out_head);
	if (c->out_head || c->want_close)
		lws_callback_on_writable(c->wsi);
}

/* Called by step() before it services: see jr_want_write. */
void jr_conn_flush_all(jr_loop *loop)
{
	loop->flush_pending = 0;
	while (loop->to_flush)
		jr_conn_flush(loop->to_flush);
}

static int jr_write_next(struct lws *wsi, jr_conn *c)
{
	struct jr_out *o = c->out_head;
	size_t chunk = o->len - o->off;
	int flags;

	if (chunk > JR_FRAG)
		chunk = JR_FRAG;
	flags = lws_write_ws_flags(LWS_WRITE_TEXT,
				   o->off == 0, o->off + chunk == o->len);
	/* bytes before this fragment are headroom or already sent: lws may
	 * write the frame header there and masks the payload in place */
	if (lws_write(wsi, o->buf + LWS_PRE + o->off, chunk,
		      (enum lws_write_protocol)flags) < (int)chunk)
		return -1;
	o->off += chunk;
	if (o->off == o->len)
		jr_out_done(c);
	return 0;
}

int jr_writeable(struct lws *wsi, jr_conn *c)
{
	int burst = 0;

	if (jr_keepalive_write(wsi, c))
		return -1;
	while (c->out_head && !lws_partial_buffered(wsi) &&
	       burst++ < JR_WRITE_BURST) {
		int gathered = jr_write_gathered(wsi, c);
		if (gathered < 0 || (!gathered && jr_write_next(wsi, c)))
			return -1;
	}
	if (!c->out_head && c->want_close) {
		if (c->closing)
			return 0;
		c->closing = 1;
		jr_end_here(c, c->close_code, c->close_reason);
		lws_close_reason(wsi, (enum lws_close_status)c->close_code,
				 (unsigned char *)jr_text(c->close_reason),
				 strlen(jr_text(c->close_reason)));
		/* Not by returning -1 here: on a libuv loop Debian's lws (a
		 * _DEBUG build) then closes twice, and the second close kills
		 * the socket before the close frame is out. Returning -1
		 * from the timer callback closes the regular way. */
		lws_set_timer_usecs(wsi, 0);
		return 0;
	}
	if (c->out_head || c->ping_due)
		lws_callback_on_writable(wsi);
	return 0;
}

/* The requests still in our queue never (wholly) left: remember their ids,
 * so Lua can tell callers it is safe to send them again. */
void jr_note_unsent(jr_conn *c)
{
	struct jr_out *o;
	size_t n = 0;

	for (o = c->out_head; o; o = o->next)
		n += o->nids > 0;
	free(c->unsent);
	c->nunsent = 0;
	if (!n || !(c->unsent = malloc(2 * n * sizeof *c->unsent)))
		return;
	for (o = c->out_head; o; o = o->next)
		if (o->nids > 0) {
			c->unsent[2 * c->nunsent] = o->first_id;
			c->unsent[2 * c->nunsent++ + 1] = o->nids;
		}
}

/* The send queue has no room: false, why, "full". The sender waits for
 * the "drained" event; if none comes within out_timeout, jr_stalled. */
static int jr_queue_full(lua_State *L, jr_conn *c)
{
	if (!c->out_full) {
		c->out_full = 1;
		if (c->out_timeout && c->loop && c->loop->cx)
			lws_sul_schedule(c->loop->cx, 0, &c->stall, jr_stalled,
					 c->out_timeout);
		if (c->loop) /* scheduled outside a callback: see loop.c */
			jr_loop_changed(c->loop);
	}
	lua_pushboolean(L, 0);
	lua_pushfstring(L, "send queue full (%I messages, %I bytes waiting)",
			(lua_Integer)c->out_count, (lua_Integer)c->out_bytes);
	lua_pushliteral(L, "full");
	return 3;
}

/* Pushes false, why, kind and returns 3 when c cannot send a message of
 * len bytes; returns 0 when it can. */
static int jr_cannot_send(lua_State *L, jr_conn *c, size_t len)
{
	if (!c->wsi || !c->established || c->want_close) {
		lua_pushboolean(L, 0);
		lua_pushliteral(L, "connection is not open");
		lua_pushliteral(L, "not_open");
		return 3;
	}
	if (len > c->max_message) {
		lua_pushboolean(L, 0);
		lua_pushfstring(L, "outgoing message of %I bytes is larger than "
			"max_message_size (%I bytes), not sent",
			(lua_Integer)len, (lua_Integer)c->max_message);
		lua_pushliteral(L, "too_large");
		return 3;
	}
	if (c->out_head && (c->out_count >= c->max_out_count ||
			    len > c->max_out_bytes - c->out_bytes ||
			    c->out_bytes > c->max_out_bytes))
		return jr_queue_full(L, c);
	return 0;
}

/* A message of up to cap bytes, to be filled at o->buf + LWS_PRE. */
static struct jr_out *jr_out_new(lua_State *L, size_t cap,
				 lua_Integer first_id, lua_Integer nids)
{
	struct jr_out *o = malloc(sizeof *o + LWS_PRE + cap);

	if (!o)
		luaL_error(L, "jsonrpc_websocket: out of memory");
	o->next = NULL;
	o->len = cap;
	o->off = 0;
	o->first_id = first_id;
	o->nids = nids;
	return o;
}

/* Queues o. A request from the main thread is written at once: that is a
 * plain script, which blocks for the answer right after, so nothing else
 * would join the write, and the server can start on it while Lua gets
 * ready to wait. */
static int jr_queue(lua_State *L, jr_conn *c, struct jr_out *o)
{
	int main_thread;

	if (c->tracing)
		jr_trace(L, c, "out", o->buf + LWS_PRE, o->len);
	main_thread = lua_pushthread(L);
	lua_pop(L, 1);
	*c->out_tail = o;
	c->out_tail = &o->next;
	c->out_bytes += o->len;
	c->out_count++;
	jr_want_write(c);
	if (o->nids > 0 && main_thread && c->flush && !c->loop->in_service &&
	    !c->loop->in_hook)
		jr_conn_flush(c);
	lua_pushboolean(L, 1);
	return 1;
}

/* o was written up to end: queues it, or refuses it (and frees it) when it
 * came out larger than max_message_size. */
static int jr_queue_written(lua_State *L, jr_conn *c, struct jr_out *o,
			    const char *end)
{
	o->len = (size_t)(end - (const char *)o->buf - LWS_PRE);
	if (jr_cannot_send(L, c, o->len)) {
		free(o);
		return 3;
	}
	return jr_queue(L, c, o);
}

/* conn:send(data [, first_id [, count]]) -> true | false, why, kind
 * kind is "not_open" or "too_large" (over max_message_size: not sent).
 * first_id, count: the request ids the message carries; the closed event
 * lists those that never left (safe to send again). */
static int l_send(lua_State *L)
{
	jr_conn *c = jr_check_conn(L, 1);
	size_t len;
	const char *data = luaL_checklstring(L, 2, &len);
	lua_Integer first_id = luaL_optinteger(L, 3, 0);
	struct jr_out *o;

	if (jr_cannot_send(L, c, len))
		return 3;
	o = jr_out_new(L, len, first_id, luaL_optinteger(L, 4, first_id ? 1 : 0));
	memcpy(o->buf + LWS_PRE, data, len);
	return jr_queue(L, c, o);
}

/*
 * conn:send_call(prefix, id, ...) -> true | false, why, kind | nothing
 * The request for prefix (the message up to the method name, see
 * codec.method_prefix) with id, or with id nil the notification, whose
 * params are the values that follow, positional (none: no params).
 * Written here when every value is simple (encode.c) and the codec is
 * ours (builtin_codec); else returns nothing, and the Lua codec does it.
 */
static int l_send_call(lua_State *L)
{
	jr_conn *c = jr_check_conn(L, 1);
	size_t plen, cap;
	const char *prefix = luaL_checklstring(L, 2, &plen);
	int has_id = !lua_isnoneornil(L, 3);
	lua_Integer id = has_id ? luaL_checkinteger(L, 3) : 0;
	int n = lua_gettop(L) - 3;
	size_t params = n > 0 ? jr_simple_array_size(L, 4, n) : 0;
	struct jr_out *o;
	char *p;

	if (!c->builtin_codec || (n > 0 && !params))
		return 0;
	if (jr_cannot_send(L, c, 0))
		return 3;
	cap = plen + params + JR_MESSAGE_TAIL;
	o = jr_out_new(L, cap, id, has_id);
	p = (char *)o->buf + LWS_PRE;
	memcpy(p, prefix, plen);
	p += plen;
	if (n > 0)
		p = jr_write_simple_array(L, 4, n, jr_write_params_key(p));
	return jr_queue_written(L, c, o, jr_write_message_end(p, has_id, id));
}

#define JR_RESULT_HEAD "{\"jsonrpc\":\"2.0\",\"id\":"
#define JR_RESULT_KEY ",\"result\":"

/*
 * conn:send_result(id, value) -> true | false, why, kind | nothing
 * The success response {"jsonrpc":"2.0","id":id,"result":value} (id: the
 * request's id, an integer or its exact text), written here when value is
 * simple (encode.c) and the codec is ours (builtin_codec); else returns
 * nothing, and the Lua codec does it.
 */
static int l_send_result(lua_State *L)
{
	jr_conn *c = jr_check_conn(L, 1);
	int integer_id = lua_isinteger(L, 2);
	size_t idlen = JR_NUMBER_MAX, size;
	const char *raw_id = integer_id ? NULL : luaL_checklstring(L, 2, &idlen);
	struct jr_out *o;
	char *p;

	if (!c->builtin_codec || !(size = jr_simple_value_size(L, 3)))
		return 0;
	if (jr_cannot_send(L, c, 0))
		return 3;
	o = jr_out_new(L, sizeof JR_RESULT_HEAD + idlen + sizeof JR_RESULT_KEY
		       + size, 0, 0);
	p = (char *)o->buf + LWS_PRE;
	memcpy(p, JR_RESULT_HEAD, sizeof JR_RESULT_HEAD - 1);
	p += sizeof JR_RESULT_HEAD - 1;
	if (integer_id) {
		p = jr_json_write_integer(p, lua_tointeger(L, 2));
	} else {
		memcpy(p, raw_id, idlen);
		p += idlen;
	}
	memcpy(p, JR_RESULT_KEY, sizeof JR_RESULT_KEY - 1);
	p = jr_write_simple_value(L, 3, p + sizeof JR_RESULT_KEY - 1);
	*p++ = '}';
	return jr_queue_written(L, c, o, p);
}

/*
 * conn:send_batch(n, list, notify, first_id) -> true | false, why, kind:
 * the batch of n messages that list and notify describe (encode.c,
 * jr_batch_size), its requests numbered from first_id, written straight
 * into the send buffer.
 */
static int l_send_batch(lua_State *L)
{
	jr_conn *c = jr_check_conn(L, 1);
	lua_Integer n = luaL_checkinteger(L, 2);
	lua_Integer first_id = luaL_checkinteger(L, 5), nids;
	struct jr_out *o;
	char *end;

	luaL_checktype(L, 3, LUA_TTABLE);
	if (!lua_isnil(L, 4))
		luaL_checktype(L, 4, LUA_TTABLE);
	if (jr_cannot_send(L, c, 0))
		return 3;
	o = jr_out_new(L, jr_batch_size(L, 3, n), first_id, 0);
	end = jr_write_batch(L, 3, n, first_id, (char *)o->buf + LWS_PRE, &nids);
	o->nids = nids;
	return jr_queue_written(L, c, o, end);
}

/* conn:queue_limits(bytes, messages, timeout): the send queue's bound
 * (see jr_cannot_send) and how long it may stay full before the connection is
 * dropped (seconds; 0: never). Arguments left nil keep their value. */
static int l_queue_limits(lua_State *L)
{
	jr_conn *c = jr_check_conn(L, 1);
	lua_Integer bytes = luaL_optinteger(L, 2, (lua_Integer)c->max_out_bytes);
	lua_Integer count = luaL_optinteger(L, 3, (lua_Integer)c->max_out_count);
	lua_Number secs = luaL_optnumber(L, 4, (lua_Number)c->out_timeout / LWS_US_PER_SEC);

	luaL_argcheck(L, bytes > 0, 2, "must be positive");
	luaL_argcheck(L, count > 0, 3, "must be positive");
	luaL_argcheck(L, secs >= 0 && secs < 1e9, 4, "must be 0..1e9 seconds");
	c->max_out_bytes = (size_t)bytes;
	c->max_out_count = (size_t)count;
	c->out_timeout = (lws_usec_t)(secs * LWS_US_PER_SEC);
	return 0;
}

/* conn:queued() -> bytes, messages: what waits in the send queue. */
static int l_queued(lua_State *L)
{
	jr_conn *c = jr_check_conn(L, 1);
	lua_pushinteger(L, (lua_Integer)c->out_bytes);
	lua_pushinteger(L, (lua_Integer)c->out_count);
	return 2;
}

const luaL_Reg jr_send_methods[] = {
	{"send", l_send},
	{"send_call", l_send_call},
	{"send_result", l_send_result},
	{"send_batch", l_send_batch},
	{"queue_limits", l_queue_limits},
	{"queued", l_queued},
	{NULL, NULL}
};
