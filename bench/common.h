/*
 * Pieces shared by the benchmark's C programs on libwebsockets
 * (ref_server.c, floor_server.c, floor_client.c): quiet lws logging,
 * starting and running a server, message reassembly, a queue of outbound
 * messages, fragmented writes, a minimal JSON scanner (just enough for
 * the shapes we send), and the clocks the results are measured with.
 *
 * Nothing here is a general JSON library: the scanner only finds where
 * values start and end, so both programs can work on the raw bytes.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stddef.h>

#include <libwebsockets.h>

/* One send() / one rx chunk. Matches the module's own fragment size, so
 * client and floor see the same framing. */
#define BENCH_FRAG (64 * 1024)

/* Messages written per WRITEABLE callback before yielding to poll(). */
#define BENCH_WRITE_BURST 256

/* Largest message either program accepts: 1 MB echo plus framing. */
#define BENCH_MAX_MESSAGE ((size_t)8 * 1024 * 1024)

/* ---- lws ----------------------------------------------------------------- */

/* Errors and warnings only: the default level prints NOTICE lines. */
void bench_quiet_logs(void);

/* ---- a server ------------------------------------------------------------ */

/* Creates a server context on 127.0.0.1:ci->port (0: ephemeral) with the
 * rest of ci as given, after installing the SIGINT/SIGTERM handlers that
 * end bench_server_run; prints "PORT n". NULL (and a message naming
 * `name`) when it cannot listen. */
struct lws_context *bench_server_start(struct lws_context_creation_info *ci,
				       const char *name);
/* Services cx until SIGINT or SIGTERM, then destroys it. */
void bench_server_run(struct lws_context *cx);

/* ---- inbound: reassembling chunks into whole messages ------------------ */

struct bench_rx {
	char *buf;
	size_t len, cap;
};

/* Adds one RECEIVE chunk. Returns 1 when rx->buf now holds a whole message
 * (NUL-terminated, length rx->len), 0 when more is to come, -1 on error. */
int bench_rx_add(struct bench_rx *rx, struct lws *wsi, const void *in,
		 size_t len);
void bench_rx_free(struct bench_rx *rx);

/* ---- outbound ------------------------------------------------------------ */

/* A FIFO of whole messages to write, each with LWS_PRE bytes of headroom
 * before buf + LWS_PRE; off: how much of it is written (fragments). */
struct bench_msg {
	struct bench_msg *next;
	size_t len, off;
	unsigned char buf[];
};

struct bench_outq {
	struct bench_msg *head, **tail;
};

void bench_outq_init(struct bench_outq *q);
/* Copies len bytes at data to the tail; -1 when out of memory. */
int bench_outq_push(struct bench_outq *q, const void *data, size_t len);
void bench_outq_drop_head(struct bench_outq *q);
void bench_outq_free(struct bench_outq *q);

/*
 * Gathered writes: appends at p the frame (FIN, text) of the len bytes at
 * msg, masked for a client with a fresh key from the kernel. Frames
 * appended back to back go out with one lws_write(LWS_WRITE_RAW): one
 * send() for many messages, where lws_write(LWS_WRITE_TEXT) makes one per
 * message (and reads /dev/urandom for each client frame's key). p needs
 * len + BENCH_FRAME_HEADER_MAX bytes. Returns the end, or NULL when no
 * key could be had.
 */
#define BENCH_FRAME_HEADER_MAX 14
unsigned char *bench_frame_append(struct lws_context *cx, unsigned char *p,
				  const unsigned char *msg, size_t len, int masked);

/* Writes the next piece of the text message msg[0..len) from *off, at most
 * BENCH_FRAG bytes, as a websocket fragment, and advances *off. msg must
 * have LWS_PRE bytes of headroom. Large messages go out in pieces so lws
 * never copies a big remainder onto its heap buflist. -1: connection lost. */
int bench_write_fragment(struct lws *wsi, unsigned char *msg, size_t len,
			 size_t *off);

/* ---- a growable byte buffer ---------------------------------------------- */

struct bench_buf {
	char *p;
	size_t len, cap;
	int failed; /* an append ran out of memory; contents are incomplete */
};

void bench_buf_add(struct bench_buf *b, const void *data, size_t len);
void bench_buf_str(struct bench_buf *b, const char *s);
void bench_buf_free(struct bench_buf *b);

/* ---- JSON scanning ------------------------------------------------------- */

/* A value's bytes inside a message: [p, end). p == NULL means absent. */
struct bench_span {
	const char *p, *end;
};

const char *bench_json_ws(const char *p, const char *end);
/* Is [p, end) exactly one well-formed JSON value (with whitespace)? The
 * scanner is loose inside numbers and literals; nesting is limited. */
int bench_json_valid(const char *p, const char *end);
/* Calls fn(span, arg) for each element of the array at p; returns the
 * number of elements, or -1 when p is not a well-formed array (fn may then
 * have run for the elements before the fault). */
int bench_json_each(const char *p, const char *end,
		    void (*fn)(struct bench_span, void *), void *arg);
/* One pass over the object at p: out[i] receives the value of member
 * keys[i] (keys compared as raw bytes), span.p NULL when absent. Returns
 * -1 when p is not a well-formed object. */
int bench_json_members(const char *p, const char *end,
		       const char *const keys[], struct bench_span out[], int n);

/* The next `"id":<unsigned integer>` at or after p, as the floor client
 * matches answers: no parsing, a byte search. Returns the position after
 * the number, or NULL when there is none; *id receives the value. */
const char *bench_next_id(const char *p, const char *end, unsigned long *id);

/* ---- clocks -------------------------------------------------------------- */

double bench_now(void);       /* monotonic seconds */
double bench_cpu(void);       /* process CPU seconds, user + system */
long bench_rss_kb(const char *field); /* "VmRSS" or "VmHWM" of this process */

#endif
