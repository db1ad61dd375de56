/*
 * floor_client: the least a client can do on libwebsockets for the same
 * work as bench/lua_client.lua. It is the "floor" the Lua client is
 * measured against.
 *
 *   floor_client PORT inflight K [SECONDS]  add(i, 1), K calls in flight
 *   floor_client PORT batch B [SECONDS]     one batch of B add calls in flight
 *   floor_client PORT echo BYTES [SECONDS]  echo of a BYTES-long string, 1 in flight
 *   floor_client PORT mem K                 K sleep_echo calls held by the
 *                                           server; reports RSS idle/loaded
 *
 * Requests are pre-formatted up to their id; answers are matched by
 * scanning for `"id":` - no JSON parsing, no allocation per call. Each
 * message is one lws_write() (one send()), as libwebsockets is meant to
 * be used; with BENCH_GATHER=1 the small ones waiting are framed here and
 * sent together, one send() for many (see write_gathered()), as the Lua
 * client does.
 * Throughput modes warm up for WARM_SECONDS, then measure for SECONDS
 * (default 1), then stop asking and drain. Prints one line:
 *   RESULT calls=N secs=S cpu=S maxrss_kb=K [rss_idle_kb=I rss_loaded_kb=L]
 * calls/secs/cpu cover the measured window only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define WARM_SECONDS 0.1
#define MEM_DELAY_MS 2000 /* mem mode: the server holds each answer this long */

enum phase { WARM, MEASURE, DRAIN, DONE };

static struct {
	struct lws_context *cx;
	enum phase phase;
	double seconds;
	int mem_mode;

	/* the workload: per message, per_msg calls; at most window in flight */
	unsigned long window, per_msg, limit; /* limit: total calls, 0 = none */
	int batch;
	char *tmpl;          /* a request up to the digits of its id */
	size_t tmpl_len;

	unsigned char *tx;   /* LWS_PRE headroom + the message being sent */
	size_t tx_len, tx_off;
	size_t max_msg;      /* the longest message the workload makes */
	int gather_writes;   /* BENCH_GATHER=1: see write_gathered() */
	unsigned char gather[LWS_PRE + BENCH_FRAG]; /* see write_gathered() */

	unsigned char *pending; /* pending[id]: asked, not yet answered */
	unsigned long pending_cap, next_id, in_flight, done;
	struct bench_rx rx;

	lws_sorted_usec_list_t sul; /* phase changes */
	double t0, cpu0, t1, cpu1;
	unsigned long done0, done1;
	long rss_idle, rss_loaded;
	char failure[160];
} fl;

/* ---- requests ------------------------------------------------------------- */

static size_t put_ulong(unsigned char *p, unsigned long v)
{
	char tmp[24];
	size_t n = 0, i;

	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	for (i = 0; i < n; i++)
		p[i] = (unsigned char)tmp[n - 1 - i];
	return n;
}

/* Ids only grow, so one byte per id ever used (a few hundred KB in a run)
 * makes matching an answer a single index, and the array grows rarely. */
static int mark_pending(unsigned long id)
{
	if (id >= fl.pending_cap) {
		unsigned long cap = fl.pending_cap ? fl.pending_cap * 2 : 65536;
		unsigned char *np;
		while (cap <= id)
			cap *= 2;
		if (!(np = realloc(fl.pending, cap)))
			return -1;
		memset(np + fl.pending_cap, 0, cap - fl.pending_cap);
		fl.pending = np;
		fl.pending_cap = cap;
	}
	fl.pending[id] = 1;
	return 0;
}

/* The next message: per_msg requests, as an array in batch mode. */
static size_t build_message(unsigned char *p)
{
	size_t n = 0;
	unsigned long i;

	if (fl.batch)
		p[n++] = '[';
	for (i = 0; i < fl.per_msg; i++) {
		unsigned long id = fl.next_id++;
		if (i)
			p[n++] = ',';
		memcpy(p + n, fl.tmpl, fl.tmpl_len);
		n += fl.tmpl_len;
		n += put_ulong(p + n, id);
		p[n++] = '}';
		if (mark_pending(id))
			return 0;
	}
	if (fl.batch)
		p[n++] = ']';
	fl.in_flight += fl.per_msg;
	return n;
}

static int may_ask(void)
{
	if (fl.phase >= DRAIN || fl.in_flight + fl.per_msg > fl.window)
		return 0;
	return !fl.limit || fl.next_id - 1 + fl.per_msg <= fl.limit;
}

/* Whole messages, built in fl.tx, framed back to back in fl.gather and
 * sent with one raw write, as long as they fit (common.h). Returns the
 * messages written, 0 when they are too big to gather, -1 on error. */
static int write_gathered(struct lws *wsi)
{
	unsigned char *start = fl.gather + LWS_PRE, *p = start;
	size_t len;
	int n = 0;

	if (!fl.gather_writes || fl.tx_off < fl.tx_len ||
	    fl.max_msg + BENCH_FRAME_HEADER_MAX > BENCH_FRAG)
		return 0;
	while ((size_t)(p - start) + fl.max_msg + BENCH_FRAME_HEADER_MAX <= BENCH_FRAG &&
	       may_ask()) {
		if (!(len = build_message(fl.tx + LWS_PRE)) ||
		    !(p = bench_frame_append(fl.cx, p, fl.tx + LWS_PRE, len, 1)))
			return -1;
		n++;
	}
	if (p > start && lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_RAW) <
	    (int)(p - start))
		return -1;
	return n;
}

/* Messages go out one lws_write() each (gathered with BENCH_GATHER=1,
 * when small) straight from one reused buffer: the client masks it in
 * place, so it is rebuilt from the template for every message. */
static int write_some(struct lws *wsi)
{
	int burst = 0, n;

	while (!lws_partial_buffered(wsi) && burst++ < BENCH_WRITE_BURST) {
		if ((n = write_gathered(wsi)) < 0)
			return -1;
		if (n > 0)
			continue;
		if (fl.tx_off == fl.tx_len) {
			if (!may_ask())
				break;
			if (!(fl.tx_len = build_message(fl.tx + LWS_PRE)))
				return -1;
			fl.tx_off = 0;
		}
		if (bench_write_fragment(wsi, fl.tx + LWS_PRE, fl.tx_len,
					 &fl.tx_off))
			return -1;
	}
	if (fl.tx_off < fl.tx_len || may_ask())
		lws_callback_on_writable(wsi);
	return 0;
}

/* ---- answers --------------------------------------------------------------- */

static void finish_if_drained(void)
{
	if (fl.phase == DRAIN && fl.in_flight == 0) {
		fl.phase = DONE;
		lws_cancel_service(fl.cx);
	}
}

static void on_message(struct lws *wsi, const char *p, size_t len)
{
	const char *end = p + len;
	unsigned long id;

	while ((p = bench_next_id(p, end, &id)))
		if (id < fl.pending_cap && fl.pending[id]) {
			fl.pending[id] = 0;
			fl.in_flight--;
			fl.done++;
		}
	if (fl.mem_mode && fl.done == fl.limit)
		fl.phase = DRAIN;
	finish_if_drained();
	if (may_ask())
		lws_callback_on_writable(wsi);
}

/* ---- phases ---------------------------------------------------------------- */

static void phase_next(lws_sorted_usec_list_t *sul);

static void schedule(double seconds)
{
	lws_sul_schedule(fl.cx, 0, &fl.sul, phase_next,
			 (lws_usec_t)(seconds * LWS_US_PER_SEC));
}

static void measure_start(void)
{
	fl.t0 = bench_now();
	fl.cpu0 = bench_cpu();
	fl.done0 = fl.done;
}

static void measure_stop(void)
{
	fl.t1 = bench_now();
	fl.cpu1 = bench_cpu();
	fl.done1 = fl.done;
}

/* Throughput: WARM -> MEASURE -> DRAIN. Mem: the timer only samples RSS
 * while every call waits; the last answer ends the run. */
static void phase_next(lws_sorted_usec_list_t *sul)
{
	(void)sul;
	if (fl.mem_mode) {
		fl.rss_loaded = bench_rss_kb("VmRSS");
		return;
	}
	if (fl.phase == WARM) {
		fl.phase = MEASURE;
		measure_start();
		schedule(fl.seconds);
	} else if (fl.phase == MEASURE) {
		measure_stop();
		fl.phase = DRAIN;
		finish_if_drained();
	}
}

static void on_established(struct lws *wsi)
{
	if (fl.mem_mode) {
		fl.rss_idle = bench_rss_kb("VmRSS");
		fl.phase = MEASURE;
		measure_start();
		schedule(MEM_DELAY_MS / 2000.0);
	} else {
		schedule(WARM_SECONDS);
	}
	lws_callback_on_writable(wsi);
}

/* ---- libwebsockets ---------------------------------------------------------- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
		    void *user, void *in, size_t len)
{
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		on_established(wsi);
		return 0;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return write_some(wsi);
	case LWS_CALLBACK_CLIENT_RECEIVE:
		switch (bench_rx_add(&fl.rx, wsi, in, len)) {
		case 1:
			on_message(wsi, fl.rx.buf, fl.rx.len);
			return 0;
		case 0:
			return 0;
		default:
			return -1;
		}
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		snprintf(fl.failure, sizeof fl.failure, "connect failed: %.*s",
			 in ? (int)len : 0, in ? (const char *)in : "");
		fl.phase = DONE;
		return 0;
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (fl.phase != DONE)
			snprintf(fl.failure, sizeof fl.failure,
				 "connection closed by the server");
		fl.phase = DONE;
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

static const struct lws_protocols protocols[] = {
	{ "bench-floor", callback, 0, BENCH_FRAG, 0, NULL, BENCH_FRAG },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

/* ---- setup ------------------------------------------------------------------ */

static char *make_template(const char *method, const char *params)
{
	static const char fmt[] =
		"{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"params\":%s,\"id\":";
	size_t n = sizeof fmt + strlen(method) + strlen(params);
	char *t = malloc(n);

	if (t)
		fl.tmpl_len = (size_t)snprintf(t, n, fmt, method, params);
	return t;
}

static char *echo_params(unsigned long bytes)
{
	char *p = malloc(bytes + 5);

	if (p) {
		memcpy(p, "[\"", 2);
		memset(p + 2, 'x', bytes);
		memcpy(p + 2 + bytes, "\"]", 3);
	}
	return p;
}

/* Sets the workload from the command line; 0 if it is not understood. */
static int setup(const char *mode, unsigned long arg)
{
	char mem_params[64];
	char *params = NULL;

	fl.window = fl.per_msg = 1;
	if (!strcmp(mode, "inflight") && arg > 0) {
		fl.window = arg;
		fl.tmpl = make_template("add", "[1,2]");
	} else if (!strcmp(mode, "batch") && arg > 0) {
		fl.batch = 1;
		fl.window = fl.per_msg = arg;
		fl.tmpl = make_template("add", "[1,2]");
	} else if (!strcmp(mode, "echo")) {
		if ((params = echo_params(arg)))
			fl.tmpl = make_template("echo", params);
		free(params);
	} else if (!strcmp(mode, "mem") && arg > 0) {
		fl.mem_mode = 1;
		fl.window = fl.limit = arg;
		snprintf(mem_params, sizeof mem_params, "[%d,1]", MEM_DELAY_MS);
		fl.tmpl = make_template("sleep_echo", mem_params);
	} else {
		return 0;
	}
	/* room for per_msg requests with 20-digit ids, commas, brackets */
	fl.max_msg = fl.per_msg * (fl.tmpl_len + 22) + 2;
	fl.tx = fl.tmpl ? malloc(LWS_PRE + fl.max_msg) : NULL;
	fl.next_id = 1;
	return fl.tx != NULL;
}

static struct lws_context *connect_to(int port)
{
	struct lws_context_creation_info ci;
	struct lws_client_connect_info ic;
	struct lws_context *cx;

	memset(&ci, 0, sizeof ci);
	ci.port = CONTEXT_PORT_NO_LISTEN;
	ci.protocols = protocols;
	ci.pt_serv_buf_size = BENCH_FRAG;
	ci.fd_limit_per_thread = 64;
	if (!(cx = lws_create_context(&ci)))
		return NULL;
	memset(&ic, 0, sizeof ic);
	ic.context = cx;
	ic.address = "127.0.0.1";
	ic.host = "127.0.0.1";
	ic.port = port;
	ic.path = "/";
	ic.local_protocol_name = protocols[0].name;
	if (!lws_client_connect_via_info(&ic)) {
		lws_context_destroy(cx);
		return NULL;
	}
	return cx;
}

static void report(void)
{
	printf("RESULT calls=%lu secs=%.6f cpu=%.6f maxrss_kb=%ld",
	       fl.done1 - fl.done0, fl.t1 - fl.t0, fl.cpu1 - fl.cpu0,
	       bench_rss_kb("VmHWM"));
	if (fl.mem_mode)
		printf(" rss_idle_kb=%ld rss_loaded_kb=%ld", fl.rss_idle,
		       fl.rss_loaded);
	printf("\n");
}

int main(int argc, char **argv)
{
	if (argc < 4 || !setup(argv[2], strtoul(argv[3], NULL, 10))) {
		fprintf(stderr, "usage: floor_client PORT inflight|batch|echo|mem "
				"N [SECONDS]\n");
		return 2;
	}
	fl.seconds = argc > 4 ? atof(argv[4]) : 1.0;
	bench_quiet_logs();
	fl.gather_writes = getenv("BENCH_GATHER") && !strcmp(getenv("BENCH_GATHER"), "1");
	if (!(fl.cx = connect_to(atoi(argv[1])))) {
		fprintf(stderr, "floor_client: cannot connect\n");
		return 1;
	}
	while (fl.phase != DONE && lws_service(fl.cx, 0) >= 0)
		;
	if (fl.mem_mode)
		measure_stop();
	lws_context_destroy(fl.cx);
	free(fl.tmpl);
	free(fl.tx);
	free(fl.pending);
	bench_rx_free(&fl.rx);
	if (fl.failure[0]) {
		fprintf(stderr, "floor_client: %s\n", fl.failure);
		return 1;
	}
	report();
	return 0;
}
