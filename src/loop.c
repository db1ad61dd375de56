/*
 * The engine: the bottom layer every other file stands on. One libuv loop
 * and one libwebsockets context on it per Lua state, created on first use;
 * the FIFO of events that lws callbacks leave for Lua; the clock.
 *
 * It knows nothing of connections, listeners or Lua's event handlers:
 * drive.c, the layer on top, runs it (step, pollable, teardown) and hands
 * its events to Lua.
 *
 * Why libuv under lws (docs/design.md, "The loop"): the whole engine is
 * then one epoll descriptor (uv_backend_fd) and one timeout
 * (uv_backend_timeout), which is what a host loop (luv, cqueues, any
 * poll()) needs to drive us, and epoll costs O(1) per event where lws's
 * own poll() loop walks every descriptor on every wakeup.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include "jrws.h"

/* Bytes per recv() (and handshake space). lws's client parser reads a
 * frame byte by byte, ~7 ns each here: 16 KB is ~0.1 ms of one step, so a
 * host loop gets its turn while a large message arrives; 64 KB made each
 * step ~0.45 ms for no measurable gain in CPU per MB received. */
#define JR_SERV_BUF (16 * 1024)

/* lws sizes its fd tables by RLIMIT_NOFILE (16 B each); cap huge limits. */
static unsigned int jr_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur > 65536)
		return 65536;
	return 0;
}

/* Whether lws's own lines go to stderr: JSONRPC_WS_DEBUG set and not "0",
 * read when the engine starts (jr_log_levels). lws reports failures
 * through our events; its lines are noise for users unless they ask for
 * them (as trace.lua reads it). */
static int jr_log_shown;

static void jr_log_emit(int level, const char *line)
{
	if (jr_log_shown)
		fprintf(stderr, "libwebsockets[%d]: %s", level, line);
}

/* JSONRPC_WS_DEBUG=n with n > 1: lws's log levels (a mask of LLL_*). */
static int jr_log_levels(void)
{
	const char *s = getenv("JSONRPC_WS_DEBUG");
	int n = s ? atoi(s) : 0;

	jr_log_shown = s && *s && strcmp(s, "0");
	return n > 1 ? n : LLL_ERR | LLL_WARN;
}

/*
 * One context for every connection of this Lua state, TLS or not: OpenSSL's
 * global init is done once here (lws takes process-global ex-data indices
 * per TLS context, so several contexts would leak), while the costly part,
 * a client SSL_CTX with the system CA store, waits for the first wss://
 * vhost (vhost.c). The context itself has no vhost: each transport
 * configuration gets its own. It runs on our own uv loop (a "foreign" loop
 * to lws: then lws installs no signal handlers of its own).
 */
static struct lws_context *jr_create_context(jr_loop *loop)
{
	struct lws_context_creation_info ci;

	memset(&ci, 0, sizeof ci);
	ci.port = CONTEXT_PORT_NO_LISTEN;
	ci.options = LWS_SERVER_OPTION_JUST_USE_RAW_ORIGIN
		   | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT
		   | LWS_SERVER_OPTION_EXPLICIT_VHOSTS
		   | LWS_SERVER_OPTION_LIBUV;
	loop->foreign[0] = &loop->uv;
	ci.foreign_loops = loop->foreign;
	ci.pcontext = &loop->cx_alive; /* lws sets it NULL when it is gone */
	ci.pt_serv_buf_size = JR_SERV_BUF;
	ci.fd_limit_per_thread = jr_fd_limit();
	ci.timeout_secs = JR_HANDSHAKE_TIMEOUT;
	ci.connect_timeout_secs = JR_HANDSHAKE_TIMEOUT;
	lws_set_log_level(jr_log_levels(), jr_log_emit);
	return lws_create_context(&ci);
}

/* The step's time is up: the uv_run in progress returns without waiting
 * (uv_stop makes its poll non-blocking). */
static void jr_time_up(uv_timer_t *t)
{
	jr_loop *loop = t->data;

	loop->time_up = 1;
	uv_stop(&loop->uv);
}

/* A zeroed loop: the engine itself starts on first use. NULL: no memory. */
jr_loop *jr_loop_new(void)
{
	jr_loop *loop = calloc(1, sizeof *loop);

	if (loop)
		loop->tail = &loop->head;
	return loop;
}

jr_loop *jr_loop_get(lua_State *L)
{
	jr_loop *loop;
	lua_getfield(L, LUA_REGISTRYINDEX, JR_LOOP_KEY);
	loop = *(jr_loop **)lua_touserdata(L, -1);
	lua_pop(L, 1);
	return loop;
}

/* The context (and the uv loop under it), made on first use. */
struct lws_context *jr_loop_context(lua_State *L, jr_loop *loop)
{
	if (loop->cx)
		return loop->cx;
	if (!loop->uv_open) {
		if (uv_loop_init(&loop->uv))
			luaL_error(L, "jsonrpc_websocket: cannot create the "
				      "event loop (libuv)");
		uv_timer_init(&loop->uv, &loop->wake);
		loop->wake.data = loop;
		uv_timer_init(&loop->uv, &loop->sweep); /* keepalive.c */
		loop->sweep.data = loop;
		loop->uv_open = 1;
	}
	loop->cx = jr_create_context(loop);
	if (!loop->cx)
		luaL_error(L, "jsonrpc_websocket: cannot create the "
			      "libwebsockets context (is the package "
			      "libwebsockets-evlib-uv installed?)");
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

/* The oldest event, taken off the queue (the caller frees it), or NULL. */
jr_event *jr_loop_take(jr_loop *loop)
{
	jr_event *e = loop->head;

	if (e) {
		loop->head = e->next;
		if (!loop->head)
			loop->tail = &loop->head;
	}
	return e;
}

void jr_event_free(jr_event *e)
{
	free(e->data);
	free(e);
}

/* Drop queued events of a connection whose memory is about to go. */
void jr_loop_forget_conn(jr_loop *loop, jr_conn *c)
{
	jr_event **pe = &loop->head, *e;

	while ((e = *pe)) {
		if (e->conn == c) {
			*pe = e->next;
			jr_event_free(e);
		} else {
			pe = &e->next;
		}
	}
	loop->tail = &loop->head;
	while (*loop->tail)
		loop->tail = &(*loop->tail)->next;
}

/*
 * An event was queued that may have come outside lws's I/O phase (in its
 * timer phase: a handshake or close timeout, the send queue's stall): the
 * uv_run in progress must not then go on to wait in epoll. Outside a step
 * there is nothing to cut short.
 */
void jr_loop_wake(jr_loop *loop)
{
	if (loop->in_service)
		uv_stop(&loop->uv);
}

/* A connection closed: the step wakes, and looks once more for I/O before
 * it ends (see jr_loop_service). */
void jr_loop_closed(jr_loop *loop)
{
	jr_loop_wake(loop);
	loop->closed = 1;
}

/*
 * Lua started or ended something (a connection, a close, a listener)
 * outside lws's callbacks. lws arms its uv timer for what that scheduled
 * only when its own service runs, so the next step pokes it: see
 * libwebsockets-4.1 notes, 6.5.
 */
void jr_loop_changed(jr_loop *loop)
{
	loop->changed = 1;
	jr_loop_poke(loop);
}

/*
 * Work for the next step appeared outside one (output to flush, a
 * change for lws). Our own scheduler steps after every turn anyway; a
 * host loop steps only when pollfd() is readable, so then the engine
 * makes it readable (lws's event pipe is in the uv loop).
 */
void jr_loop_poke(jr_loop *loop)
{
	if (loop->hosted && !loop->in_service && loop->cx)
		lws_cancel_service(loop->cx);
}

/*
 * Lets lws finish what it started outside a step: on a libuv loop it
 * closes a socket only in the loop's next pass (uv_close), and a closed
 * listener must give its port back before close() returns.
 */
void jr_loop_settle(jr_loop *loop)
{
	if (loop->uv_open && !loop->in_service)
		uv_run(&loop->uv, UV_RUN_NOWAIT);
}

/*
 * Runs the engine once. timeout_ms < 0 waits for I/O only, 0 does not
 * wait, > 0 waits at most that long. It keeps servicing until there is an
 * event for Lua or the time is up: a pass that only wrote (a request
 * going out) would otherwise cost Lua a turn.
 */
void jr_loop_service(jr_loop *loop, long timeout_ms)
{
	if (loop->changed) {
		loop->changed = 0;
		lws_cancel_service(loop->cx);
	}
	if (loop->head)
		timeout_ms = 0;
	if (timeout_ms == 0) {
		uv_run(&loop->uv, UV_RUN_NOWAIT);
		return;
	}
	loop->time_up = 0;
	if (timeout_ms > 0)
		uv_timer_start(&loop->wake, jr_time_up, (uint64_t)timeout_ms, 0);
	loop->in_service = 1;
	do
		uv_run(&loop->uv, UV_RUN_ONCE);
	while (!loop->head && !loop->time_up);
	loop->in_service = 0;
	if (timeout_ms > 0)
		uv_timer_stop(&loop->wake);
	/* A close often ends another in this process (our own client and
	 * server): its last frame is ready now, let it land in this step. */
	if (loop->closed) {
		loop->closed = 0;
		uv_run(&loop->uv, UV_RUN_NOWAIT);
	}
}

/* The engine as one pollable descriptor (epoll): readable when there is
 * I/O to service. */
int jr_loop_pollfd(jr_loop *loop)
{
	return uv_backend_fd(&loop->uv);
}

/* Milliseconds until the engine needs a step without I/O (its timers);
 * -1: none. 0 when events or writes wait already. */
long jr_loop_timeout_ms(jr_loop *loop)
{
	if (loop->head || loop->flush_pending || loop->changed)
		return 0;
	uv_update_time(&loop->uv);
	return uv_backend_timeout(&loop->uv);
}

double jr_loop_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/*
 * Tears the engine down: drops queued events, destroys the context and
 * runs the uv loop until lws has closed its handles (on a loop of ours,
 * lws_context_destroy only starts that), then closes the loop. The
 * connections' memory is the caller's business (drive.c).
 */
void jr_loop_close_engine(jr_loop *loop)
{
	jr_event *e;
	int rounds;

	while ((e = jr_loop_take(loop)))
		jr_event_free(e);
	loop->destroying = 1;
	if (loop->cx)
		lws_context_destroy(loop->cx);
	if (!loop->uv_open)
		return;
	uv_close((uv_handle_t *)&loop->wake, NULL);
	uv_close((uv_handle_t *)&loop->sweep, NULL);
	for (rounds = 0; uv_loop_alive(&loop->uv) && rounds < 1000; rounds++)
		uv_run(&loop->uv, UV_RUN_NOWAIT);
	/* its handles closed, lws has let go of the context (pcontext is
	 * NULL) but frees it only when destroyed once more: the last stage
	 * of its destroy on a foreign loop */
	if (loop->cx && !loop->cx_alive)
		lws_context_destroy(loop->cx);
	loop->cx = NULL;
	uv_loop_close(&loop->uv);
	loop->uv_open = 0;
}
