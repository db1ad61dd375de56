/* Shared by the bench's C programs on libwebsockets; see common.h. */
#define _GNU_SOURCE /* memmem */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

#define JSON_MAX_DEPTH 64

void bench_quiet_logs(void)
{
	lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
}

/* ---- a server ------------------------------------------------------------ */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1; /* poll() returns EINTR, the loop sees the flag */
}

struct lws_context *bench_server_start(struct lws_context_creation_info *ci,
				       const char *name)
{
	struct lws_context *cx;
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	bench_quiet_logs();
	ci->iface = "127.0.0.1";
	/* with IPv6 on, an IPv4 iface would silently listen everywhere */
	ci->options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	if (!(cx = lws_create_context(ci))) {
		fprintf(stderr, "%s: cannot listen on 127.0.0.1:%d\n", name,
			ci->port);
		return NULL;
	}
	printf("PORT %d\n", lws_get_vhost_listen_port(
		       lws_get_vhost_by_name(cx, "default")));
	fflush(stdout);
	return cx;
}

void bench_server_run(struct lws_context *cx)
{
	while (!interrupted && lws_service(cx, 0) >= 0)
		;
	lws_context_destroy(cx); /* CLOSED for each session frees it */
}

/* ---- inbound ------------------------------------------------------------- */

static int rx_reserve(struct bench_rx *rx, size_t need)
{
	size_t cap = rx->cap ? rx->cap : 4096;
	char *nb;

	if (need <= rx->cap)
		return 0;
	while (cap < need)
		cap *= 2;
	if (!(nb = realloc(rx->buf, cap)))
		return -1;
	rx->buf = nb;
	rx->cap = cap;
	return 0;
}

int bench_rx_add(struct bench_rx *rx, struct lws *wsi, const void *in,
		 size_t len)
{
	if (lws_is_first_fragment(wsi))
		rx->len = 0;
	if (rx->len + len > BENCH_MAX_MESSAGE)
		return -1;
	/* +1 for the NUL that lets callers use string functions safely */
	if (rx_reserve(rx, rx->len + len + lws_remaining_packet_payload(wsi) + 1))
		return -1;
	memcpy(rx->buf + rx->len, in, len);
	rx->len += len;
	rx->buf[rx->len] = '\0';
	return lws_is_final_fragment(wsi) ? 1 : 0;
}

void bench_rx_free(struct bench_rx *rx)
{
	free(rx->buf);
	memset(rx, 0, sizeof *rx);
}

/* ---- outbound ------------------------------------------------------------ */

void bench_outq_init(struct bench_outq *q)
{
	q->head = NULL;
	q->tail = &q->head;
}

int bench_outq_push(struct bench_outq *q, const void *data, size_t len)
{
	struct bench_msg *m = malloc(sizeof *m + LWS_PRE + len);

	if (!m)
		return -1;
	m->next = NULL;
	m->len = len;
	m->off = 0;
	memcpy(m->buf + LWS_PRE, data, len);
	*q->tail = m;
	q->tail = &m->next;
	return 0;
}

void bench_outq_drop_head(struct bench_outq *q)
{
	struct bench_msg *m = q->head;

	q->head = m->next;
	if (!q->head)
		q->tail = &q->head;
	free(m);
}

void bench_outq_free(struct bench_outq *q)
{
	while (q->head)
		bench_outq_drop_head(q);
}

int bench_write_fragment(struct lws *wsi, unsigned char *msg, size_t len,
			 size_t *off)
{
	size_t chunk = len - *off;
	int flags;

	if (chunk > BENCH_FRAG)
		chunk = BENCH_FRAG;
	flags = lws_write_ws_flags(LWS_WRITE_TEXT, *off == 0,
				   *off + chunk == len);
	/* the bytes before this fragment are headroom or already sent: lws
	 * writes the frame header there (and a client masks in place) */
	if (lws_write(wsi, msg + *off, chunk, (enum lws_write_protocol)flags) <
	    (int)chunk)
		return -1;
	*off += chunk;
	return 0;
}

/* ---- gathered frames ------------------------------------------------------ */

/* Mask keys, read from the kernel a kilobyte at a time (lws reads four
 * bytes per frame). */
static struct {
	unsigned char keys[1024];
	size_t left;
} pool;

static int mask_key(struct lws_context *cx, unsigned char *key)
{
	if (pool.left < 4) {
		if (lws_get_random(cx, pool.keys, sizeof pool.keys) != sizeof pool.keys)
			return -1;
		pool.left = sizeof pool.keys;
	}
	pool.left -= 4;
	memcpy(key, pool.keys + pool.left, 4);
	return 0;
}

unsigned char *bench_frame_append(struct lws_context *cx, unsigned char *p,
				  const unsigned char *msg, size_t len, int masked)
{
	unsigned char key[4], mask_bit = masked ? 0x80 : 0;
	size_t i;

	*p++ = 0x81; /* FIN, text */
	if (len < 126) {
		*p++ = (unsigned char)(mask_bit | len);
	} else if (len < 65536) {
		*p++ = mask_bit | 126;
		*p++ = (unsigned char)(len >> 8);
		*p++ = (unsigned char)len;
	} else {
		*p++ = mask_bit | 127;
		for (i = 0; i < 8; i++)
			*p++ = (unsigned char)((unsigned long long)len >> (56 - 8 * i));
	}
	if (!masked) {
		memcpy(p, msg, len);
		return p + len;
	}
	if (mask_key(cx, key))
		return NULL;
	memcpy(p, key, 4);
	p += 4;
	for (i = 0; i < len; i++)
		p[i] = msg[i] ^ key[i & 3];
	return p + len;
}

/* ---- buffer -------------------------------------------------------------- */

void bench_buf_add(struct bench_buf *b, const void *data, size_t len)
{
	if (b->failed)
		return;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *np;
		while (cap < b->len + len)
			cap *= 2;
		if (!(np = realloc(b->p, cap))) {
			b->failed = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
}

void bench_buf_str(struct bench_buf *b, const char *s)
{
	bench_buf_add(b, s, strlen(s));
}

void bench_buf_free(struct bench_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

/* ---- JSON scanning ------------------------------------------------------- */

const char *bench_json_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static const char *json_string_end(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\') {
			if (++p == end)
				return NULL;
		} else if (*p == '"') {
			return p + 1;
		} else if ((unsigned char)*p < 0x20) {
			return NULL;
		}
	}
	return NULL;
}

/* Numbers and the literals true/false/null: a run of the bytes they use.
 * Loose on purpose: the server echoes them, it does not interpret them. */
static const char *json_atom_end(const char *p, const char *end)
{
	const char *start = p;

	while (p < end && (strchr("+-.0123456789eE", *p) ||
			   (*p >= 'a' && *p <= 'z')))
		p++;
	return p == start ? NULL : p;
}

static const char *json_value_end(const char *p, const char *end, int depth);

/* Arrays and objects: elements separated by ',' and, in objects, a key
 * string and ':' before each value. */
static const char *json_container_end(const char *p, const char *end,
				      int depth)
{
	char close = *p == '[' ? ']' : '}';
	int object = close == '}';

	if (depth > JSON_MAX_DEPTH)
		return NULL;
	p = bench_json_ws(p + 1, end);
	if (p < end && *p == close)
		return p + 1;
	while (p < end) {
		if (object) {
			if (*p != '"' || !(p = json_string_end(p, end)))
				return NULL;
			p = bench_json_ws(p, end);
			if (p == end || *p++ != ':')
				return NULL;
		}
		if (!(p = json_value_end(p, end, depth + 1)))
			return NULL;
		p = bench_json_ws(p, end);
		if (p == end)
			return NULL;
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
		p = bench_json_ws(p, end);
	}
	return NULL;
}

static const char *json_value_end(const char *p, const char *end, int depth)
{
	p = bench_json_ws(p, end);
	if (p == end)
		return NULL;
	if (*p == '"')
		return json_string_end(p, end);
	if (*p == '[' || *p == '{')
		return json_container_end(p, end, depth);
	return json_atom_end(p, end);
}

int bench_json_valid(const char *p, const char *end)
{
	const char *v = json_value_end(p, end, 0);
	return v && bench_json_ws(v, end) == end;
}

int bench_json_each(const char *p, const char *end,
		    void (*fn)(struct bench_span, void *), void *arg)
{
	struct bench_span v;
	int n = 0;

	p = bench_json_ws(p, end);
	if (p == end || *p != '[')
		return -1;
	p = bench_json_ws(p + 1, end);
	if (p < end && *p == ']')
		return 0;
	for (;;) {
		v.p = bench_json_ws(p, end);
		if (!(v.end = json_value_end(v.p, end, 1)))
			return -1;
		fn(v, arg);
		n++;
		p = bench_json_ws(v.end, end);
		if (p == end)
			return -1;
		if (*p == ']')
			return n;
		if (*p++ != ',')
			return -1;
	}
}

/* Does the key string [k, kend) (quotes included) spell `key`? */
static int json_key_is(const char *k, const char *kend, const char *key)
{
	size_t klen = strlen(key);
	return (size_t)(kend - k) == klen + 2 && !memcmp(k + 1, key, klen);
}

int bench_json_members(const char *p, const char *end,
		       const char *const keys[], struct bench_span out[], int n)
{
	int i;

	for (i = 0; i < n; i++)
		out[i].p = out[i].end = NULL;
	p = bench_json_ws(p, end);
	if (p == end || *p != '{')
		return -1;
	p = bench_json_ws(p + 1, end);
	if (p < end && *p == '}')
		return 0;
	for (;;) {
		const char *k = p, *kend, *v, *vend;
		if (p == end || *p != '"' || !(kend = json_string_end(p, end)))
			return -1;
		p = bench_json_ws(kend, end);
		if (p == end || *p != ':')
			return -1;
		v = bench_json_ws(p + 1, end);
		if (!(vend = json_value_end(v, end, 1)))
			return -1;
		for (i = 0; i < n; i++)
			if (json_key_is(k, kend, keys[i])) {
				out[i].p = v;
				out[i].end = vend;
			}
		p = bench_json_ws(vend, end);
		if (p == end)
			return -1;
		if (*p == '}')
			return 0;
		if (*p++ != ',')
			return -1;
		p = bench_json_ws(p, end);
	}
}

const char *bench_next_id(const char *p, const char *end, unsigned long *id)
{
	static const char pat[] = "\"id\":";
	unsigned long v = 0;
	const char *q;

	while ((q = memmem(p, (size_t)(end - p), pat, sizeof pat - 1))) {
		q += sizeof pat - 1;
		if (q < end && *q >= '0' && *q <= '9') {
			while (q < end && *q >= '0' && *q <= '9')
				v = v * 10 + (unsigned long)(*q++ - '0');
			*id = v;
			return q;
		}
		p = q;
	}
	return NULL;
}

/* ---- clocks -------------------------------------------------------------- */

double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The same clock Lua's os.clock() reads, so floor and Lua CPU times are
 * measured alike. */
double bench_cpu(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

long bench_rss_kb(const char *field)
{
	char line[256];
	size_t flen = strlen(field);
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, field, flen) && line[flen] == ':') {
			kb = strtol(line + flen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}
