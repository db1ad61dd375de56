/*
 * Keepalive: pings on idle connections, dead peers dropped. Ours, not
 * libwebsockets' validity policy (docs/design.md, "Keepalive is ours"):
 * lws keeps each connection's validity deadline in one sorted list per
 * thread and re-inserts it, walking that list, on every pong and every
 * lws_validity_confirmed(): O(connections) per event, 80% of a listener's
 * time with 15,000 idle peers (issue 16). Every wsi of ours carries a
 * retry policy whose hangup is 0, so lws schedules no validity timer.
 *
 * Instead, per connection: the loop time of the last proof of life (any
 * frame received, a pong: a plain store, jr_keepalive_alive in conn.h)
 * and whether the ping for this idle spell went out. One libuv timer per
 * engine (loop->sweep) walks the connections that have a keepalive
 * (loop->keepalive, their own list) when the earliest of them is due, at
 * most once a second (four times per ping period when that is shorter):
 * idle for `ping` seconds, a ping is queued (written by jr_writeable:
 * jr_keepalive_write); silent for `hangup` seconds, the connection is
 * dropped with the failure "keepalive timeout". Under many connections
 * that is one walk a second, O(1) per connection per second; a few idle
 * ones wake the program once per ping period. The timer runs only while
 * that list is not empty: a program with no keepalive wakes for nothing.
 * It lives on the engine's uv loop, so a host loop sees it in the
 * engine's timeout (uv_backend_timeout).
 */
#include <string.h>

#include "conn.h"

#define JR_KEEPALIVE_TIMEOUT "keepalive timeout"
#define JR_SWEEP_GAP_MS 1000 /* sweeps are this far apart at least, */
#define JR_SWEEPS_PER_PING 4 /* or a quarter of the shortest ping period */
#define JR_PING_PAYLOAD "keepalive"

/* What every wsi of ours is given as its retry and idle policy: no
 * validity checks (hangup 0), so not lws's default (300 s / 310 s) either. */
const lws_retry_bo_t jr_no_validity = { .secs_since_valid_hangup = 0 };

/* The shortest gap between sweeps for a ping period of `ping` seconds:
 * a ping or a hangup is then late by at most a quarter of it, or a second. */
static unsigned int jr_sweep_ms(unsigned int ping)
{
	unsigned int ms = ping * 1000 / JR_SWEEPS_PER_PING;

	return ms < JR_SWEEP_GAP_MS ? ms : JR_SWEEP_GAP_MS;
}

/* The peer was silent for the hangup time: dropped now, no close frame
 * (a dead peer would not read it), told as "keepalive timeout". As with
 * conn:abort(), lws is poked at the next step (loop.c, jr_loop_changed). */
static void jr_keepalive_expired(jr_conn *c)
{
	jr_loop *loop = c->loop;

	jr_keepalive_stop(c);
	jr_set_text(&c->failure, JR_FAILURE_SIZE, JR_KEEPALIVE_TIMEOUT,
		    sizeof JR_KEEPALIVE_TIMEOUT - 1);
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
	jr_loop_changed(loop); /* c may be gone now */
}

/* Idle for the ping time: one ping per idle spell, written at WRITEABLE. */
static void jr_keepalive_ping(jr_conn *c)
{
	c->ping_sent = 1;
	c->ping_due = 1;
	lws_callback_on_writable(c->wsi);
}

/*
 * One connection at loop time `now`: pinged or dropped when due. Returns
 * when it is next due (its ping, or its hangup once the ping is out), or
 * UINT64_MAX when it left the sweep. A later proof of life only moves
 * that later, so the sweep may sleep until the earliest of them.
 */
static uint64_t jr_sweep_one(jr_conn *c, uint64_t now)
{
	uint64_t ping = (uint64_t)c->ka_ping * 1000;
	uint64_t hangup = (uint64_t)c->ka_hangup * 1000;

	if (c->closing || c->peer_closed || c->aborted) {
		jr_keepalive_stop(c); /* lws times its close out */
		return UINT64_MAX;
	}
	if (now - c->alive_ms >= hangup) {
		jr_keepalive_expired(c);
		return UINT64_MAX;
	}
	if (now - c->alive_ms >= ping && !c->ping_sent)
		jr_keepalive_ping(c);
	return c->alive_ms + (c->ping_sent ? hangup : ping);
}

static void jr_sweep(uv_timer_t *t);

/* The next sweep at loop time `at`, and not sooner than `gap` ms from
 * now: under many connections, each sweep deals with a batch of them. */
static void jr_sweep_at(jr_loop *loop, uint64_t at, unsigned int gap)
{
	uint64_t now = uv_now(&loop->uv);

	if (at < now + gap)
		at = now + gap;
	loop->sweep_at = at;
	uv_timer_start(&loop->sweep, jr_sweep, at - now, 0);
}

/*
 * The sweep: every connection with a keepalive. Closing one may free it
 * (WSI_DESTROY), so the next is taken first; it frees no other. It sleeps
 * until the earliest connection is due, at least the shortest gap its
 * connections' ping periods allow (jr_sweep_ms).
 */
static void jr_sweep(uv_timer_t *t)
{
	jr_loop *loop = t->data;
	uint64_t now = uv_now(&loop->uv), due = UINT64_MAX;
	unsigned int gap = JR_SWEEP_GAP_MS;
	jr_conn *c, *next;

	for (c = loop->keepalive; c; c = next) {
		uint64_t at;

		next = c->ka.next;
		if ((at = jr_sweep_one(c, now)) == UINT64_MAX)
			continue;
		if (at < due)
			due = at;
		if (jr_sweep_ms(c->ka_ping) < gap)
			gap = jr_sweep_ms(c->ka_ping);
	}
	if (loop->keepalive)
		jr_sweep_at(loop, due, gap);
}

/*
 * c is open: ping it after `ping` idle seconds, drop it after `hangup`
 * silent ones (0: no keepalive). The sweep starts with the first such
 * connection, and comes sooner when this one is due before it.
 */
void jr_keepalive_start(jr_conn *c, unsigned int ping, unsigned int hangup)
{
	jr_loop *loop = c->loop;

	if (!ping || !loop || c->ka.pprev)
		return;
	c->ka_ping = (unsigned short)ping;
	c->ka_hangup = (unsigned short)hangup;
	c->alive_ms = uv_now(&loop->uv);
	c->ping_sent = c->ping_due = 0;
	jr_list_push(&loop->keepalive, c, offsetof(jr_conn, ka));
	if (!uv_is_active((uv_handle_t *)&loop->sweep) ||
	    c->alive_ms + ping * 1000 < loop->sweep_at)
		jr_sweep_at(loop, c->alive_ms + ping * 1000, 0);
}

/* c is closing or gone: out of the sweep, which stops with the last. */
void jr_keepalive_stop(jr_conn *c)
{
	jr_loop *loop = c->loop;

	c->ping_due = 0;
	if (!c->ka.pprev)
		return;
	jr_list_leave(c, offsetof(jr_conn, ka));
	if (loop && !loop->keepalive)
		uv_timer_stop(&loop->sweep);
}

/*
 * From jr_writeable: the ping the sweep asked for, unless the socket
 * still holds part of an earlier write (then at the next WRITEABLE) or
 * the connection is closing. -1 when the write failed. The ping carries a
 * payload: lws 4.1.6 tells a server of an empty pong not at all.
 */
int jr_keepalive_write(struct lws *wsi, jr_conn *c)
{
	unsigned char frame[LWS_PRE + sizeof JR_PING_PAYLOAD];

	if (!c->ping_due || lws_partial_buffered(wsi))
		return 0;
	c->ping_due = 0;
	if (c->want_close || c->peer_closed || c->aborted)
		return 0;
	memcpy(frame + LWS_PRE, JR_PING_PAYLOAD, sizeof JR_PING_PAYLOAD - 1);
	return lws_write(wsi, frame + LWS_PRE, sizeof JR_PING_PAYLOAD - 1,
			 LWS_WRITE_PING) < 0 ? -1 : 0;
}
