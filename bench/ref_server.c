/*
 * ref_server: the benchmark's reference JSON-RPC 2.0 websocket server.
 *
 *   ref_server PORT        (0: an ephemeral port; prints "PORT n")
 *
 * Listens on 127.0.0.1 only. Methods:
 *   add(a, b)          a + b (integers stay integers)
 *   echo(x)            x, byte for byte
 *   sleep_echo(ms, x)  x, answered ms milliseconds later (an lws_sul timer),
 *                      so a client can hold many calls in flight
 * Batches (a JSON array of requests) get an array of answers; a batch
 * that holds sleep_echo calls is answered when the longest delay is over.
 *
 * It is written to be cheap per call, so that it is not what limits the
 * clients: no JSON library, values are copied as raw bytes, one reused
 * reply buffer, queued answers gathered into one send() (write_gathered).
 * Runs until SIGINT or SIGTERM.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

struct session {
	struct lws *wsi;
	struct bench_rx rx;
	struct bench_outq out;
};

/* An answer held back by sleep_echo, in a list sorted by due time. */
struct delayed {
	struct delayed *next;
	struct session *s;
	lws_usec_t due;
	size_t len;
	char data[];
};

/* The reply to one inbound message, built while its requests are read. */
struct reply {
	struct bench_buf text;
	int answers;   /* requests answered (notifications are not) */
	long delay_ms; /* the longest sleep_echo delay among them */
};

static struct {
	struct lws_context *cx;
	lws_sorted_usec_list_t sul; /* fires when the first delayed is due */
	struct delayed *head, *tail;
	struct bench_buf scratch;   /* reused reply buffer */
	unsigned char gather[LWS_PRE + BENCH_FRAG]; /* see write_gathered() */
} srv;

/* ---- the outbound queue (bench_outq) ---------------------------------------- */

/*
 * Frames as many whole queued answers as fit in srv.gather and sends them
 * with one raw write (LWS_WRITE_RAW bypasses lws's framing): one send()
 * per burst instead of one per answer. On loopback each send() also runs
 * the receiver's TCP path, so this is what keeps the reference server
 * from being the bottleneck the clients are measured against.
 * Returns bytes written, 0 when the head answer is too big to gather.
 */
static int write_gathered(struct lws *wsi, struct bench_outq *q)
{
	unsigned char *p = srv.gather + LWS_PRE;
	size_t n = 0, room = BENCH_FRAG;
	struct bench_msg *m;

	while ((m = q->head) && m->off == 0 &&
	       m->len + BENCH_FRAME_HEADER_MAX <= room - n) {
		n = (size_t)(bench_frame_append(NULL, p + n, m->buf + LWS_PRE,
						m->len, 0) - p);
		bench_outq_drop_head(q);
	}
	if (n && lws_write(wsi, p, n, LWS_WRITE_RAW) < (int)n)
		return -1;
	return (int)n;
}

/* From SERVER_WRITEABLE: small answers gathered, big ones in fragments. */
static int outq_write(struct lws *wsi, struct bench_outq *q)
{
	int burst = 0, n;

	while (q->head && !lws_partial_buffered(wsi) &&
	       burst++ < BENCH_WRITE_BURST) {
		if ((n = write_gathered(wsi, q)) < 0)
			return -1;
		if (n > 0)
			continue;
		if (bench_write_fragment(wsi, q->head->buf + LWS_PRE,
					 q->head->len, &q->head->off))
			return -1;
		if (q->head->off == q->head->len)
			bench_outq_drop_head(q);
	}
	if (q->head)
		lws_callback_on_writable(wsi);
	return 0;
}

/* ---- delayed answers ------------------------------------------------------ */

static void delayed_fire(lws_sorted_usec_list_t *sul);

static void delayed_arm(void)
{
	lws_usec_t in;

	if (!srv.head) {
		lws_sul_cancel(&srv.sul);
		return;
	}
	/* at least 1 us: a delay of exactly -1 means "cancel" to lws */
	in = srv.head->due - lws_now_usecs();
	lws_sul_schedule(srv.cx, 0, &srv.sul, delayed_fire, in > 0 ? in : 1);
}

/* Equal delays arrive in order, so the tail is checked first: appending
 * stays O(1) with ten thousand answers waiting. */
static void delayed_insert(struct delayed *d)
{
	struct delayed **pp = &srv.head;

	if (srv.tail && srv.tail->due <= d->due) {
		pp = &srv.tail->next;
	} else {
		while (*pp && (*pp)->due <= d->due)
			pp = &(*pp)->next;
	}
	d->next = *pp;
	*pp = d;
	if (!d->next)
		srv.tail = d;
}

static int delayed_add(struct session *s, const char *data, size_t len,
		       long ms)
{
	struct delayed *d = malloc(sizeof *d + len);

	if (!d)
		return -1;
	d->s = s;
	d->due = lws_now_usecs() + (lws_usec_t)ms * LWS_US_PER_MS;
	d->len = len;
	memcpy(d->data, data, len);
	delayed_insert(d);
	if (srv.head == d)
		delayed_arm();
	return 0;
}

static void delayed_fire(lws_sorted_usec_list_t *sul)
{
	lws_usec_t now = lws_now_usecs();
	struct delayed *d;

	(void)sul;
	while ((d = srv.head) && d->due <= now) {
		srv.head = d->next;
		if (!srv.head)
			srv.tail = NULL;
		if (bench_outq_push(&d->s->out, d->data, d->len) == 0)
			lws_callback_on_writable(d->s->wsi);
		free(d);
	}
	delayed_arm();
}

/* A closed session's answers can never be sent. */
static void delayed_drop(struct session *s)
{
	struct delayed **pp = &srv.head, *d;

	srv.tail = NULL;
	while ((d = *pp)) {
		if (d->s == s) {
			*pp = d->next;
			free(d);
		} else {
			srv.tail = d;
			pp = &d->next;
		}
	}
	delayed_arm();
}

/* ---- methods --------------------------------------------------------------- */

static void put_span(struct bench_buf *b, struct bench_span v)
{
	bench_buf_add(b, v.p, (size_t)(v.end - v.p));
}

/* The first two elements of a params array, and how many it holds. */
struct params {
	struct bench_span v[2];
	int n;
};

static void params_collect(struct bench_span v, void *arg)
{
	struct params *ps = arg;
	if (ps->n < 2)
		ps->v[ps->n] = v;
	ps->n++;
}

/* 0 when params is an array of at least `want` elements, else -1. */
static int params_get(struct bench_span params, int want, struct params *ps)
{
	ps->n = 0;
	if (!params.p || bench_json_each(params.p, params.end, params_collect,
					 ps) < want)
		return -1;
	return 0;
}

/* A JSON number as integer (*is_int) or double. */
static int number_parse(struct bench_span v, long long *i, double *d,
			int *is_int)
{
	char tmp[64], *end;
	size_t len = (size_t)(v.end - v.p);

	if (len == 0 || len >= sizeof tmp)
		return -1;
	memcpy(tmp, v.p, len);
	tmp[len] = '\0';
	*is_int = !strpbrk(tmp, ".eE");
	if (*is_int) {
		*i = strtoll(tmp, &end, 10);
		*d = (double)*i;
	} else {
		*d = strtod(tmp, &end);
	}
	return *end ? -1 : 0;
}

/* add(a, b): writes the result, or returns -1 for invalid params. */
static int method_add(struct bench_buf *b, struct bench_span params)
{
	struct params ps;
	long long x, y, sum;
	double dx, dy;
	int ix, iy;
	char num[40];

	if (params_get(params, 2, &ps) || number_parse(ps.v[0], &x, &dx, &ix) ||
	    number_parse(ps.v[1], &y, &dy, &iy))
		return -1;
	if (ix && iy && !__builtin_add_overflow(x, y, &sum))
		snprintf(num, sizeof num, "%lld", sum);
	else if (isfinite(dx + dy)) /* JSON has no inf or nan */
		snprintf(num, sizeof num, "%.17g", dx + dy);
	else
		return -1;
	bench_buf_str(b, num);
	return 0;
}

static int method_echo(struct bench_buf *b, struct bench_span params)
{
	struct params ps;

	if (params_get(params, 1, &ps))
		return -1;
	put_span(b, ps.v[0]);
	return 0;
}

static int method_sleep_echo(struct bench_buf *b, struct bench_span params,
			     long *delay_ms)
{
	struct params ps;
	long long ms;
	double dms;
	int is_int;

	if (params_get(params, 2, &ps) ||
	    number_parse(ps.v[0], &ms, &dms, &is_int) || dms < 0 || dms > 3.6e6)
		return -1;
	if ((long)dms > *delay_ms)
		*delay_ms = (long)dms;
	put_span(b, ps.v[1]);
	return 0;
}

/* ---- requests -------------------------------------------------------------- */

static int method_is(struct bench_span m, const char *name)
{
	size_t n = strlen(name);
	return (size_t)(m.end - m.p) == n + 2 && !memcmp(m.p + 1, name, n);
}

static void answer_error(struct bench_buf *b, struct bench_span id, int code,
			 const char *message)
{
	char head[96];

	snprintf(head, sizeof head,
		 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":%d,\"message\":\"%s\"},"
		 "\"id\":", code, message);
	bench_buf_str(b, head);
	if (id.p)
		put_span(b, id);
	else
		bench_buf_str(b, "null");
	bench_buf_str(b, "}");
}

/* Writes the success answer for `method`; on a bad method or bad params
 * rewinds and writes the error answer instead. */
static void answer_call(struct reply *r, struct bench_span method,
			struct bench_span params, struct bench_span id)
{
	struct bench_buf *b = &r->text;
	size_t start = b->len;
	int rc;

	bench_buf_str(b, "{\"jsonrpc\":\"2.0\",\"result\":");
	if (method_is(method, "add"))
		rc = method_add(b, params);
	else if (method_is(method, "echo"))
		rc = method_echo(b, params);
	else if (method_is(method, "sleep_echo"))
		rc = method_sleep_echo(b, params, &r->delay_ms);
	else
		rc = -32601;
	if (rc) {
		b->len = start;
		answer_error(b, id, rc == -32601 ? rc : -32602,
			     rc == -32601 ? "Method not found" : "Invalid params");
		return;
	}
	bench_buf_str(b, ",\"id\":");
	put_span(b, id);
	bench_buf_str(b, "}");
}

/* One request object (alone or inside a batch); a bench_json_each
 * callback. Notifications (no id) are run for nothing and not answered. */
static void handle_request(struct bench_span req, void *arg)
{
	static const char *const keys[] = { "method", "params", "id" };
	struct bench_span v[3];
	struct reply *r = arg;
	int ok = bench_json_members(req.p, req.end, keys, v, 3) == 0 &&
		 v[0].p && *v[0].p == '"';

	if (ok && !v[2].p)
		return;
	if (r->answers++)
		bench_buf_str(&r->text, ",");
	if (!ok)
		answer_error(&r->text, v[2], -32600, "Invalid Request");
	else
		answer_call(r, v[0], v[1], v[2]);
}

/* A well-formed array of requests: an array of answers, none for
 * notifications, one Invalid Request for an empty batch. */
static void handle_batch(struct reply *r, const char *p, const char *end)
{
	struct bench_span none = { NULL, NULL };

	bench_buf_str(&r->text, "[");
	if (bench_json_each(p, end, handle_request, r) == 0) {
		r->text.len = 0;
		r->answers = 1;
		answer_error(&r->text, none, -32600, "Invalid Request");
		return;
	}
	bench_buf_str(&r->text, "]");
}

static void handle_message(struct session *s, const char *p, size_t len)
{
	const char *end = p + len;
	struct reply r = { srv.scratch, 0, 0 };

	r.text.len = 0;
	r.text.failed = 0;
	p = bench_json_ws(p, end);
	if (!bench_json_valid(p, end)) {
		struct bench_span none = { NULL, NULL };
		r.answers = 1;
		answer_error(&r.text, none, -32700, "Parse error");
	} else if (*p == '[') {
		handle_batch(&r, p, end);
	} else {
		struct bench_span whole = { p, end };
		handle_request(whole, &r);
	}
	srv.scratch = r.text; /* keep the grown buffer for the next message */
	if (!r.answers || r.text.failed)
		return;
	if (r.delay_ms > 0) {
		delayed_add(s, r.text.p, r.text.len, r.delay_ms);
	} else if (bench_outq_push(&s->out, r.text.p, r.text.len) == 0) {
		lws_callback_on_writable(s->wsi);
	}
}

/* ---- libwebsockets ---------------------------------------------------------- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
		    void *user, void *in, size_t len)
{
	struct session *s = user;

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		memset(s, 0, sizeof *s);
		s->wsi = wsi;
		bench_outq_init(&s->out);
		return 0;
	case LWS_CALLBACK_RECEIVE:
		switch (bench_rx_add(&s->rx, wsi, in, len)) {
		case 1:
			handle_message(s, s->rx.buf, s->rx.len);
			return 0;
		case 0:
			return 0;
		default:
			return -1;
		}
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return outq_write(wsi, &s->out);
	case LWS_CALLBACK_CLOSED:
		delayed_drop(s);
		bench_outq_free(&s->out);
		bench_rx_free(&s->rx);
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

/* protocols[0]: clients that ask for no subprotocol are bound to it. */
static const struct lws_protocols protocols[] = {
	{ "bench-jsonrpc", callback, sizeof(struct session), BENCH_FRAG, 0,
	  NULL, BENCH_FRAG },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

int main(int argc, char **argv)
{
	struct lws_context_creation_info ci;

	memset(&ci, 0, sizeof ci);
	ci.port = argc > 1 ? atoi(argv[1]) : 0;
	ci.protocols = protocols;
	ci.pt_serv_buf_size = BENCH_FRAG;
	ci.fd_limit_per_thread = 1024;
	if (!(srv.cx = bench_server_start(&ci, "ref_server")))
		return 1;
	bench_server_run(srv.cx);
	bench_buf_free(&srv.scratch);
	return 0;
}
