/*
 * A websocket connection: a client one (connect) or a session a listener
 * accepted (server.c; `listener` is set).
 *
 * Lifetime: struct jr_conn is malloc'ed; the Lua userdata holds a pointer.
 * Two things can still reach the struct: the userdata (until __gc) and the
 * wsi (until LWS_CALLBACK_WSI_DESTROY). It is freed when both are gone.
 * From connect() until Lua has popped the "closed" event, a registry ref
 * (self_ref) anchors the userdata so events always find their owner.
 */
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "jrws.h"

#define JR_FRAG (64 * 1024)      /* outbound fragment: one send() */
#define JR_WRITE_BURST 256       /* messages per WRITEABLE callback */
#define JR_DEFAULT_MAX_MESSAGE ((size_t)16 * 1024 * 1024)
#define JR_TOO_LARGE "message too large"
#define JR_KEEPALIVE_TIMEOUT "keepalive timeout"
/* the send queue's defaults (see README "Limits") */
#define JR_DEFAULT_QUEUE_BYTES ((size_t)1024 * 1024)
#define JR_DEFAULT_QUEUE_MESSAGES 16384
#define JR_DEFAULT_QUEUE_TIMEOUT 30 /* seconds full before the close */
#define JR_QUEUE_FULL "send queue full"

struct jr_out {
	struct jr_out *next;
	size_t len, off;
	lua_Integer first_id, ids; /* the request ids it carries (a batch: many) */
	unsigned char buf[]; /* LWS_PRE bytes of headroom, then the payload */
};

struct jr_conn {
	jr_loop *loop;               /* NULL once the loop is gone */
	jr_conn *next, **pprev;      /* in loop->conns */
	jr_conn *flush_next, **flush_pprev; /* in loop->to_flush while flush */
	struct lws *wsi;             /* NULL once lws destroyed it */
	void *listener;              /* server side: its jr_server, else NULL */
	int self_ref;
	int ud_alive;
	int established;
	int closed_queued;
	int builtin_codec;   /* the codec is the built-in one: see l_builtin_codec */
	int raw_frames;      /* no extension: writes may be gathered (frame.c) */
	int flush;           /* queued output to write at the next step */
	int peer_closed;     /* the peer's close frame came: write nothing */
	int aborted;         /* abort(): write nothing (lws frees it later) */
	int closing;         /* our close frame is lws's to send now */
	int tracing;         /* conn:trace(fn): fn is the userdata's 2nd value */

	char **headers; /* name with ':' then value, pairs */
	int nheaders;
	char *auth;     /* "Basic ..." or NULL */
	char subprotocol[64];

	char *rx;       /* the message being reassembled */
	size_t rx_len, rx_cap, max_message;
	int rx_binary;

	struct jr_out *out_head, **out_tail;
	/* the send queue's bound: whole messages not yet written (payload
	 * bytes and count); an empty queue takes any one message */
	size_t out_bytes, out_count, max_out_bytes, max_out_count;
	int out_full;                /* a send was refused: "drained" is due */
	lws_usec_t out_timeout;      /* full this long: closed 1008; 0: never */
	lws_sorted_usec_list_t stall; /* runs out when the queue stays full */
	int reading_paused;          /* conn:reading(false): rx flow off */
	lua_Integer *unsent; /* at the end: pairs (first id, count) never sent */
	size_t nunsent;

	/* keepalive: lws's validity policy (it keeps the pointer) and the
	 * last time lws counted the peer as alive, mirrored here so the close
	 * that lws's hangup causes can be told apart */
	lws_retry_bo_t policy;
	lws_usec_t last_valid;
	int secure;   /* wss:// */
	int insecure; /* tls.verify = false: accept any server certificate */

	int want_close, close_code;
	char close_reason[124];
	int closed_here; /* we sent the close (asked to, or message too large) */

	/* how it ended, reported with the closed event */
	int end_code;
	char end_reason[124];
	char failure[160];
	int http_status;
};

static jr_conn *jr_check_conn(lua_State *L, int idx)
{
	jr_conn **pc = luaL_checkudata(L, idx, JR_CONN_MT);
	if (!*pc)
		luaL_argerror(L, idx, "connection already collected");
	return *pc;
}

static void jr_set_text(char *dst, size_t size, const void *src, size_t len)
{
	if (len >= size)
		len = size - 1;
	if (src)
		memcpy(dst, src, len);
	else
		len = 0;
	dst[len] = '\0';
}

static void jr_free_out(jr_conn *c)
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

/*
 * The connections with output to flush at the next step are a list of
 * their own: a step costs what was written, not a walk over every
 * connection (15,000 idle ones made that walk 90% of a busy server's
 * time: issue 16).
 */
static void jr_mark_flush(jr_conn *c)
{
	c->flush = 1;
	if (c->flush_pprev || !c->loop)
		return;
	c->flush_next = c->loop->to_flush;
	if (c->flush_next)
		c->flush_next->flush_pprev = &c->flush_next;
	c->flush_pprev = &c->loop->to_flush;
	c->loop->to_flush = c;
}

static void jr_unmark_flush(jr_conn *c)
{
	c->flush = 0;
	if (!c->flush_pprev)
		return;
	*c->flush_pprev = c->flush_next;
	if (c->flush_next)
		c->flush_next->flush_pprev = c->flush_pprev;
	c->flush_pprev = NULL;
	c->flush_next = NULL;
}

static void jr_conn_free(jr_conn *c)
{
	int i;
	if (c->loop)
		jr_loop_forget_conn(c->loop, c);
	if (c->pprev) {
		*c->pprev = c->next;
		if (c->next)
			c->next->pprev = c->pprev;
	}
	jr_unmark_flush(c);
	jr_free_out(c);
	for (i = 0; i < 2 * c->nheaders; i++)
		free(c->headers[i]);
	free(c->headers);
	free(c->auth);
	free(c->rx);
	free(c->unsent);
	free(c);
}

/* The loop is going away: connections outlive it only as Lua garbage. */
void jr_conn_detach_all(jr_loop *loop)
{
	jr_conn *c;
	for (c = loop->conns; c; c = c->next) {
		c->loop = NULL;
		c->pprev = NULL;
		c->flush_pprev = NULL;
	}
	loop->conns = NULL;
	loop->to_flush = NULL;
}

/* ---- callback helpers: record state, never call Lua ------------------- */

static int jr_append_headers(struct lws *wsi, jr_conn *c, void *in, size_t len)
{
	unsigned char **p = in, *end = *p + len;
	int i;

	if (c->auth && lws_add_http_header_by_token(wsi,
			WSI_TOKEN_HTTP_AUTHORIZATION, (unsigned char *)c->auth,
			(int)strlen(c->auth), p, end))
		goto too_big;
	for (i = 0; i < c->nheaders; i++) {
		const char *v = c->headers[2 * i + 1];
		if (lws_add_http_header_by_name(wsi,
				(unsigned char *)c->headers[2 * i],
				(const unsigned char *)v, (int)strlen(v), p, end))
			goto too_big;
	}
	return 0;
too_big:
	jr_set_text(c->failure, sizeof c->failure,
		    "handshake headers too large", 27);
	return -1;
}

static int jr_rx_reserve(jr_conn *c, size_t need)
{
	char *nb;
	size_t cap = c->rx_cap ? c->rx_cap : 256;

	if (need > c->max_message + 1) /* a hostile frame length */
		need = c->max_message + 1;
	if (need <= c->rx_cap && c->rx)
		return 0;
	while (cap < need)
		cap *= 2;
	if (cap > c->max_message + 1)
		cap = c->max_message + 1;
	if (!(nb = realloc(c->rx, cap)))
		return -1;
	c->rx = nb;
	c->rx_cap = cap;
	return 0;
}

static void jr_request_close(jr_conn *c, int code, const char *reason)
{
	c->want_close = 1;
	c->close_code = code;
	jr_set_text(c->close_reason, sizeof c->close_reason, reason, strlen(reason));
}

/*
 * Adds one received chunk to the message being reassembled; on the final
 * chunk hands the whole message to the event queue (the buffer changes
 * owner, no copy). `remaining` is a hint: bytes still due in this frame.
 * Returns 0, or 1 when a close was requested (message too large: the rest
 * is discarded and the connection closes with 1009 from WRITEABLE, the
 * regular close path), or -1 when out of memory.
 * Kept free of lws calls so the fuzzer drives exactly this path.
 */
int jr_conn_rx(jr_conn *c, const void *in, size_t len, int first, int final,
	       int binary, size_t remaining)
{
	if (c->want_close)
		return 0; /* closing: nothing more is delivered */
	if (first) {
		c->rx_len = 0;
		c->rx_binary = binary;
	}
	/* what the frame's header declares counts at once: a peer that
	 * announces a gigabyte is refused before it sends one */
	if (len > c->max_message - c->rx_len ||
	    remaining > c->max_message - c->rx_len - len) {
		free(c->rx);
		c->rx = NULL;
		c->rx_cap = c->rx_len = 0;
		jr_request_close(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, JR_TOO_LARGE);
		return 1;
	}
	if (jr_rx_reserve(c, c->rx_len + len + remaining))
		return -1;
	if (len)
		memcpy(c->rx + c->rx_len, in, len);
	c->rx_len += len;
	if (!final)
		return 0;
	if (jr_loop_push(c->loop, c, JR_EV_MESSAGE, c->rx, c->rx_len,
			 c->rx_binary))
		return -1;
	c->rx = NULL;
	c->rx_cap = c->rx_len = 0;
	return 0;
}

/* Data from the peer proves it alive as well as a pong would: no ping on
 * a busy connection. */
static void jr_alive(struct lws *wsi, jr_conn *c)
{
	if (!c->policy.secs_since_valid_hangup)
		return;
	c->last_valid = lws_now_usecs();
	lws_validity_confirmed(wsi);
}

/* Returning -1 from RECEIVE with more data buffered crashes lws 4.1.6
 * (seen with a 100 MB message), so a close always goes via WRITEABLE. */
static int jr_receive(struct lws *wsi, jr_conn *c, const void *in, size_t len)
{
	int rc;

	jr_alive(wsi, c);
	rc = jr_conn_rx(c, in, len, lws_is_first_fragment(wsi),
			lws_is_final_fragment(wsi), lws_frame_is_binary(wsi),
			lws_remaining_packet_payload(wsi));
	if (rc > 0)
		lws_callback_on_writable(wsi);
	return rc < 0 ? -1 : 0;
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
	c->end_code = LWS_CLOSE_STATUS_POLICY_VIOLATION;
	c->closed_here = 1;
	snprintf(c->end_reason, sizeof c->end_reason, JR_QUEUE_FULL);
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

static int jr_writeable(struct lws *wsi, jr_conn *c)
{
	int burst = 0;

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
		c->end_code = c->close_code;
		c->closed_here = 1;
		strcpy(c->end_reason, c->close_reason);
		lws_close_reason(wsi, (enum lws_close_status)c->close_code,
				 (unsigned char *)c->close_reason,
				 strlen(c->close_reason));
		/* Not by returning -1 here: on a libuv loop Debian's lws (a
		 * _DEBUG build) then closes twice, and the second close kills
		 * the socket before the close frame is out. Returning -1
		 * from the timer callback closes the regular way. */
		lws_set_timer_usecs(wsi, 0);
		return 0;
	}
	if (c->out_head)
		lws_callback_on_writable(wsi);
	return 0;
}

static void jr_peer_closed(jr_conn *c, const unsigned char *in, size_t len)
{
	c->peer_closed = 1;
	if (len >= 2) {
		c->end_code = (in[0] << 8) | in[1];
		jr_set_text(c->end_reason, sizeof c->end_reason, in + 2, len - 2);
	} else {
		c->end_code = LWS_CLOSE_STATUS_NO_STATUS;
	}
}

/* On a libuv loop lws learns that a connect failed only as a dead socket
 * ("closed before established"): the socket itself still says why. */
static void jr_connect_errno(struct lws *wsi, jr_conn *c)
{
	int err = 0, fd = lws_get_socket_fd(wsi);
	socklen_t n = sizeof err;

	if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &n))
		return;
	/* only what ends a connect: a reset comes after one (a TLS drop) */
	if (err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH ||
	    err == ETIMEDOUT)
		snprintf(c->failure, sizeof c->failure,
			 "Unable to connect: %s", strerror(err));
}

/* A TLS server that wants a client certificate accepts the TLS 1.3
 * handshake, then drops the connection without a word. */
static void jr_tls_dropped(jr_conn *c)
{
	snprintf(c->failure, sizeof c->failure, "the server closed the TLS "
		 "connection (does it require a client certificate?)");
}

/* Whether lws's failure text `in` (len bytes, maybe unterminated) is s. */
static int jr_failure_is(const char *in, size_t len, const char *s)
{
	return in && strnlen(in, len) == strlen(s) && !memcmp(in, s, strlen(s));
}

static void jr_connection_error(struct lws *wsi, jr_conn *c, const char *in,
				size_t len)
{
	if (!c->failure[0] && !c->established)
		jr_connect_errno(wsi, c);
	/* lws says "read failed" ("closed before established" on a libuv
	 * loop) when a TLS server drops us (jr_tls_dropped) */
	if (!c->failure[0] && c->secure &&
	    (jr_failure_is(in, len, "read failed") ||
	     jr_failure_is(in, len, "closed before established")))
		jr_tls_dropped(c);
	if (!c->failure[0])
		jr_set_text(c->failure, sizeof c->failure,
			    in ? in : "connection failed",
			    in ? strnlen(in, len) : 17);
	c->http_status = (int)lws_http_client_http_response(wsi);
}

/* The requests still in our queue never (wholly) left: remember their ids,
 * so Lua can tell callers it is safe to send them again. */
static void jr_note_unsent(jr_conn *c)
{
	struct jr_out *o;
	size_t n = 0;

	for (o = c->out_head; o; o = o->next)
		n += o->ids > 0;
	free(c->unsent);
	c->nunsent = 0;
	if (!n || !(c->unsent = malloc(2 * n * sizeof *c->unsent)))
		return;
	for (o = c->out_head; o; o = o->next)
		if (o->ids > 0) {
			c->unsent[2 * c->nunsent] = o->first_id;
			c->unsent[2 * c->nunsent++ + 1] = o->ids;
		}
}

static void jr_destroyed(struct lws *wsi, jr_conn *c)
{
	lws_set_opaque_user_data(wsi, NULL);
	c->wsi = NULL;
	lws_sul_cancel(&c->stall);
	jr_note_unsent(c);
	jr_free_out(c);
	if (!c->ud_alive) { /* the Lua state is closing */
		jr_conn_free(c);
		return;
	}
	if (c->loop && !jr_loop_push(c->loop, c, JR_EV_CLOSED, NULL, 0, 0)) {
		c->closed_queued = 1;
		jr_loop_wake(c->loop);
	}
}

/*
 * lws hangs up on a peer that did not answer its ping in time without
 * saying so; we know it was that when the connection dies silently just
 * as the hangup deadline (counted from the last proof of life) is due.
 */
static void jr_client_closed(jr_conn *c)
{
	lws_usec_t hangup = (lws_usec_t)c->policy.secs_since_valid_hangup
			    * LWS_US_PER_SEC;

	if (hangup && !c->closed_here && !c->end_code && !c->failure[0] &&
	    lws_now_usecs() - c->last_valid >= hangup - 200 * LWS_US_PER_MS)
		jr_set_text(c->failure, sizeof c->failure, JR_KEEPALIVE_TIMEOUT,
			    sizeof JR_KEEPALIVE_TIMEOUT - 1);
}

/*
 * OpenSSL's verdict on each certificate of the server's chain. lws turns
 * a rejection into an unreadable CONNECTION_ERROR string, so the reason is
 * recorded here, in words. With tls.verify = false every error is
 * cleared (lws's ALLOW_* flags cover only some of them). Returns 0: lws
 * then keeps OpenSSL's verdict, or accepts when the error was cleared.
 */
static int jr_cert_verify(jr_conn *c, X509_STORE_CTX *x, int preverify_ok)
{
	int err = X509_STORE_CTX_get_error(x);

	if (preverify_ok || err == X509_V_OK)
		return 0;
	if (c->insecure) {
		X509_STORE_CTX_set_error(x, X509_V_OK);
		return 0;
	}
	if (!c->failure[0])
		snprintf(c->failure, sizeof c->failure,
			 "certificate verify failed: %s",
			 X509_verify_cert_error_string(err));
	return 0;
}

static void jr_established(struct lws *wsi, jr_conn *c)
{
	c->established = 1;
	c->last_valid = lws_now_usecs();
	jr_loop_push(c->loop, c, JR_EV_OPEN, NULL, 0, 0);
	if (c->out_head || c->want_close)
		lws_callback_on_writable(wsi);
}

/* One callback for every wsi: WSI_DESTROY always arrives at protocols[0]. */
int jr_callback(struct lws *wsi, enum lws_callback_reasons reason,
		void *user, void *in, size_t len)
{
	jr_conn *c = wsi ? lws_get_opaque_user_data(wsi) : NULL;

	/* a listener's check of a client certificate (tls.verify_client),
	 * asked of the context's first protocol, whichever that is: 0
	 * accepts, so OpenSSL's verdict (len) must be passed on, or any
	 * certificate would do */
	if (reason == LWS_CALLBACK_OPENSSL_PERFORM_CLIENT_CERT_VERIFICATION)
		return !len;
	if (!c)
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		return jr_append_headers(wsi, c, in, len);
	case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH:
		if (lws_hdr_copy(wsi, c->subprotocol, sizeof c->subprotocol,
				 WSI_TOKEN_PROTOCOL) < 0)
			c->subprotocol[0] = '\0';
		/* a negotiated extension (compression) frames its own way */
		c->raw_frames = !lws_hdr_total_length(wsi, WSI_TOKEN_EXTENSIONS);
		return 0;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		jr_established(wsi, c);
		return 0;
	case LWS_CALLBACK_CLIENT_RECEIVE:
	case LWS_CALLBACK_RECEIVE: /* server side (server.c) */
		return jr_receive(wsi, c, in, len);
	case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
		if (c->policy.secs_since_valid_hangup)
			c->last_valid = lws_now_usecs();
		return 0;
	case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
		return jr_cert_verify(c, user, (int)len);
	case LWS_CALLBACK_CLIENT_CLOSED:
		jr_client_closed(c);
		return 0;
	case LWS_CALLBACK_CLIENT_WRITEABLE:
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return jr_writeable(wsi, c);
	case LWS_CALLBACK_TIMER: /* the close that jr_writeable started */
		return c->closing ? -1 : 0;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		jr_peer_closed(c, in, len);
		return 0;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		jr_connection_error(wsi, c, in, len);
		return 0;
	case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
		if (!c->established && !c->failure[0] && c->secure)
			jr_tls_dropped(c); /* how it shows on a libuv loop */
		if (!c->established && !c->failure[0])
			jr_set_text(c->failure, sizeof c->failure,
				    "no handshake response", 21);
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		jr_destroyed(wsi, c);
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

/* The client vhosts' protocol list (vhost.c makes them with it). */
static const struct lws_protocols jr_client_protocols[] = {
	{ "jsonrpc-websocket-client", jr_callback, 0, JR_FRAG, 0, NULL, JR_FRAG },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

/* ---- Lua side ----------------------------------------------------------- */

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
static void jr_trace(lua_State *L, jr_conn *c, const char *direction,
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

/* owner, "closed", code, reason, failure, http_status, was_open,
 * closed_here, unsent (a set of request ids that never left, or nil); and
 * the userdata is no longer anchored. */
int jr_conn_push_closed(lua_State *L, jr_conn *c)
{
	jr_conn_push_owner(L, c);
	lua_pushliteral(L, "closed");
	lua_pushinteger(L, c->end_code ? c->end_code
				       : LWS_CLOSE_STATUS_ABNORMAL_CLOSE);
	lua_pushstring(L, c->end_reason);
	if (c->failure[0])
		lua_pushstring(L, c->failure);
	else
		lua_pushnil(L);
	lua_pushinteger(L, c->http_status);
	lua_pushboolean(L, c->established);
	lua_pushboolean(L, c->closed_here);
	jr_push_unsent(L, c);
	luaL_unref(L, LUA_REGISTRYINDEX, c->self_ref);
	c->self_ref = LUA_NOREF;
	c->closed_queued = 0;
	return 9;
}

static char *jr_strdup(lua_State *L, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);
	if (!d)
		luaL_error(L, "jsonrpc_websocket: out of memory");
	return memcpy(d, s, n);
}

/* A header name or value must not smuggle in CR/LF (header injection). */
static const char *jr_check_header_text(lua_State *L, int idx, const char *what)
{
	size_t len;
	const char *s = lua_tolstring(L, idx, &len);
	if (!s)
		luaL_error(L, "handshake header %s must be a string", what);
	if (strpbrk(s, "\r\n") || strlen(s) != len)
		luaL_error(L, "handshake header %s contains CR, LF or NUL", what);
	return s;
}

/* opts.headers is a sequence of { name, value } pairs. */
static void jr_read_headers(lua_State *L, jr_conn *c, int opts)
{
	int i, n;

	if (lua_getfield(L, opts, "headers") != LUA_TTABLE) {
		lua_pop(L, 1);
		return;
	}
	n = (int)luaL_len(L, -1);
	c->headers = calloc((size_t)(2 * n + 1), sizeof *c->headers);
	if (!c->headers)
		luaL_error(L, "jsonrpc_websocket: out of memory");
	for (i = 1; i <= n; i++, c->nheaders++) {
		const char *name, *value;
		size_t nlen;
		lua_rawgeti(L, -1, i);
		lua_rawgeti(L, -1, 1);
		lua_rawgeti(L, -2, 2);
		name = jr_check_header_text(L, -2, "name");
		value = jr_check_header_text(L, -1, "value");
		nlen = strlen(name);
		if (nlen == 0 || strchr(name, ':') || strchr(name, ' '))
			luaL_error(L, "invalid handshake header name '%s'", name);
		c->headers[2 * i - 2] = malloc(nlen + 2);
		if (!c->headers[2 * i - 2])
			luaL_error(L, "jsonrpc_websocket: out of memory");
		memcpy(c->headers[2 * i - 2], name, nlen);
		memcpy(c->headers[2 * i - 2] + nlen, ":", 2);
		c->headers[2 * i - 1] = jr_strdup(L, value);
		lua_pop(L, 3);
	}
	lua_pop(L, 1);
}

static void jr_read_auth(lua_State *L, jr_conn *c, int opts)
{
	const char *user, *pass;
	size_t len;

	if (lua_getfield(L, opts, "auth") != LUA_TTABLE) {
		lua_pop(L, 1);
		return;
	}
	lua_rawgeti(L, -1, 1);
	lua_rawgeti(L, -2, 2);
	user = jr_check_header_text(L, -2, "auth user");
	pass = jr_check_header_text(L, -1, "auth password");
	if (strchr(user, ':'))
		luaL_error(L, "auth user name must not contain ':'");
	len = (strlen(user) + strlen(pass) + 3) / 3 * 4 + 16;
	if (!(c->auth = malloc(len)))
		luaL_error(L, "jsonrpc_websocket: out of memory");
	if (lws_http_basic_auth_gen(user, pass, c->auth, len))
		luaL_error(L, "cannot encode auth credentials");
	lua_pop(L, 3);
}

static const char *jr_opt_string(lua_State *L, int opts, const char *key)
{
	const char *s;
	lua_getfield(L, opts, key);
	s = lua_tostring(L, -1);
	lua_pop(L, 1); /* the string stays alive in opts */
	return s;
}

static void jr_fill_connect_info(lua_State *L, struct lws_client_connect_info *ic,
				 int opts)
{
	memset(ic, 0, sizeof *ic);
	ic->address = jr_opt_string(L, opts, "address");
	ic->host = jr_opt_string(L, opts, "host");
	ic->path = jr_opt_string(L, opts, "path");
	ic->origin = jr_opt_string(L, opts, "origin");
	ic->protocol = jr_opt_string(L, opts, "protocols");
	lua_getfield(L, opts, "port");
	ic->port = (int)luaL_checkinteger(L, -1);
	lua_pop(L, 1);
	if (!ic->address || !ic->host || !ic->path)
		luaL_error(L, "connect: address, host and path are required");
	ic->local_protocol_name = jr_client_protocols[0].name;
}

/*
 * TLS flags and the keepalive policy. verify = false needs all four of
 * lws's relaxing flags (self-signed, untrusted chain, expired, name).
 * keepalive = N: ping after N idle seconds, hang up N seconds later
 * without an answer; 0 turns lws's validity checks off.
 */
static void jr_read_transport(lua_State *L, jr_conn *c,
			      struct lws_client_connect_info *ic, int opts)
{
	lua_Integer ka;

	lua_getfield(L, opts, "secure");
	if ((c->secure = lua_toboolean(L, -1)))
		ic->ssl_connection = LCCSCF_USE_SSL;
	lua_getfield(L, opts, "verify");
	if (ic->ssl_connection && lua_isboolean(L, -1) && !lua_toboolean(L, -1)) {
		c->insecure = 1;
		ic->ssl_connection |= LCCSCF_ALLOW_SELFSIGNED |
			LCCSCF_ALLOW_INSECURE | LCCSCF_ALLOW_EXPIRED |
			LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK;
	}
	lua_getfield(L, opts, "keepalive");
	ka = luaL_optinteger(L, -1, 0);
	lua_pop(L, 3);
	if (ka < 0 || ka > 32767)
		luaL_error(L, "connect: keepalive must be 0..32767 seconds");
	c->policy.secs_since_valid_ping = (uint16_t)ka;
	c->policy.secs_since_valid_hangup = (uint16_t)(2 * ka);
	ic->retry_and_idle_policy = &c->policy;
}

/* A zeroed connection, linked into loop->conns; NULL when out of memory. */
static jr_conn *jr_conn_alloc(jr_loop *loop)
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
	c->next = loop->conns;
	if (loop->conns)
		loop->conns->pprev = &c->next;
	c->pprev = &loop->conns;
	loop->conns = c;
	return c;
}

static jr_conn *jr_new_conn(lua_State *L, jr_loop *loop)
{
	jr_conn **pc = lua_newuserdatauv(L, sizeof *pc, 2);
	*pc = jr_conn_alloc(loop);
	if (!*pc)
		luaL_error(L, "jsonrpc_websocket: out of memory");
	luaL_setmetatable(L, JR_CONN_MT);
	(*pc)->ud_alive = 1;
	return *pc;
}

/* EMFILE or ENFILE when a socket cannot be made for want of descriptors,
 * else 0. errno may say it, but lws's cleanup on a libuv loop can
 * overwrite it: a trial socket tells. */
static int jr_out_of_descriptors(void)
{
	int err = errno, fd;

	if (err == EMFILE || err == ENFILE)
		return err;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno == EMFILE || errno == ENFILE ? errno : 0;
	close(fd);
	return 0;
}

/*
 * connect(owner, opts) -> conn | nil, failure
 * Starts the connection; its outcome arrives as an "open" or "closed" event
 * carrying `owner`. opts: address, port, host, path, origin, protocols
 * ("a,b"), headers ({{name, value}, ...}), auth ({user, pass}),
 * max_message_size (both ways), keepalive (seconds, 0 = off); secure,
 * verify, ca_file, cert_file, key_file (TLS); compress; proxy
 * ("host:port").
 */
static int l_connect(lua_State *L)
{
	jr_loop *loop = jr_loop_get(L);
	struct lws_client_connect_info ic;
	jr_conn *c;

	luaL_checkany(L, 1);
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_settop(L, 2);
	c = jr_new_conn(L, loop);
	lua_pushvalue(L, 1);
	lua_setiuservalue(L, 3, 1);
	jr_read_headers(L, c, 2);
	jr_read_auth(L, c, 2);
	lua_getfield(L, 2, "max_message_size");
	c->max_message = (size_t)luaL_optinteger(L, -1, JR_DEFAULT_MAX_MESSAGE);
	lua_pop(L, 1);
	jr_fill_connect_info(L, &ic, 2);
	jr_read_transport(L, c, &ic, 2);
	ic.context = jr_loop_context(L, loop);
	ic.vhost = jr_vhost_for(L, loop, 2, jr_client_protocols);
	ic.opaque_user_data = c;
	ic.pwsi = &c->wsi;
	lua_pushvalue(L, 3);
	c->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	errno = 0;
	if (!lws_client_connect_via_info(&ic)) {
		/* lws reports a failed socket() as a failed lookup */
		int err = jr_out_of_descriptors();
		if (!c->failure[0] && err)
			snprintf(c->failure, sizeof c->failure,
				 "%s (raise ulimit -n)", strerror(err));
		/* lws may have destroyed the wsi already, queueing a closed
		 * event; the failure is told here instead, and the event
		 * must not outlive the owner reference dropped below */
		jr_loop_forget_conn(loop, c);
		c->closed_queued = 0;
		luaL_unref(L, LUA_REGISTRYINDEX, c->self_ref);
		c->self_ref = LUA_NOREF;
		c->wsi = NULL;
		lua_pushnil(L);
		lua_pushstring(L, c->failure[0] ? c->failure : "connect failed");
		return 2;
	}
	jr_loop_changed(loop);
	return 1;
}

/* The send queue has no room: false, why, "full". The sender waits for
 * the "drained" event; if none comes within out_timeout, jr_stalled. */
static int jr_refuse_full(lua_State *L, jr_conn *c)
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
static int jr_refuse(lua_State *L, jr_conn *c, size_t len)
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
		return jr_refuse_full(L, c);
	return 0;
}

/* A message of up to cap bytes, to be filled at o->buf + LWS_PRE. */
static struct jr_out *jr_out_new(lua_State *L, size_t cap,
				 lua_Integer first_id, lua_Integer ids)
{
	struct jr_out *o = malloc(sizeof *o + LWS_PRE + cap);

	if (!o)
		luaL_error(L, "jsonrpc_websocket: out of memory");
	o->next = NULL;
	o->len = cap;
	o->off = 0;
	o->first_id = first_id;
	o->ids = ids;
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
	if (o->ids > 0 && main_thread && c->flush && !c->loop->in_service &&
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
	if (jr_refuse(L, c, o->len)) {
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

	if (jr_refuse(L, c, len))
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
	if (jr_refuse(L, c, 0))
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
	lua_Integer first_id = luaL_checkinteger(L, 5), ids;
	struct jr_out *o;
	char *end;

	luaL_checktype(L, 3, LUA_TTABLE);
	if (!lua_isnil(L, 4))
		luaL_checktype(L, 4, LUA_TTABLE);
	if (jr_refuse(L, c, 0))
		return 3;
	o = jr_out_new(L, jr_batch_size(L, 3, n), first_id, 0);
	end = jr_write_batch(L, 3, n, first_id, (char *)o->buf + LWS_PRE, &ids);
	o->ids = ids;
	return jr_queue_written(L, c, o, end);
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

/* conn:queue_limits(bytes, messages, timeout): the send queue's bound
 * (see jr_refuse) and how long it may stay full before the connection is
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
	if (!c->subprotocol[0])
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

/* __gc and __close. Normally the wsi is gone by now (the anchor saw to it);
 * only while the Lua state closes can a live wsi remain: lws frees it
 * when the loop destroys the context, and WSI_DESTROY frees the struct. */
static int l_gc(lua_State *L)
{
	jr_conn **pc = luaL_checkudata(L, 1, JR_CONN_MT);
	jr_conn *c = *pc;

	if (!c)
		return 0;
	*pc = NULL;
	c->ud_alive = 0;
	if (c->wsi) {
		if (c->loop)
			jr_loop_forget_conn(c->loop, c);
		return 0;
	}
	jr_conn_free(c);
	return 0;
}

const luaL_Reg jr_conn_functions[] = {
	{"connect", l_connect},
	{NULL, NULL}
};

static const luaL_Reg jr_conn_methods[] = {
	{"send", l_send},
	{"send_call", l_send_call},
	{"send_batch", l_send_batch},
	{"close", l_close},
	{"abort", l_abort},
	{"subprotocol", l_subprotocol},
	{"builtin_codec", l_builtin_codec},
	{"queue_limits", l_queue_limits},
	{"queued", l_queued},
	{"reading", l_reading},
	{"trace", l_trace},
	{NULL, NULL}
};

void jr_conn_open(lua_State *L)
{
	if (luaL_newmetatable(L, JR_CONN_MT)) {
		luaL_newlib(L, jr_conn_methods);
		lua_setfield(L, -2, "__index");
		lua_pushcfunction(L, l_gc);
		lua_setfield(L, -2, "__gc");
		lua_pushcfunction(L, l_tostring);
		lua_setfield(L, -2, "__tostring");
	}
	lua_pop(L, 1);
}

/* ---- server sessions (server.c) ---------------------------------------- */

/*
 * A listener accepted `wsi` (called in LWS_CALLBACK_ESTABLISHED). The
 * connection has no Lua userdata yet: jr_conn_push_new makes it when Lua
 * pops the accept event. Until then ud_alive is 0, so a session that dies
 * first is simply freed, its queued events with it.
 */
jr_conn *jr_conn_accepted(jr_loop *loop, struct lws *wsi, size_t max_message,
			  void *listener, const char *subprotocol)
{
	jr_conn *c = jr_conn_alloc(loop);
	if (!c)
		return NULL;
	c->wsi = wsi;
	c->listener = listener;
	c->established = 1;
	c->raw_frames = 1; /* listeners offer no extensions */
	c->max_message = max_message ? max_message : JR_DEFAULT_MAX_MESSAGE;
	if (subprotocol)
		jr_set_text(c->subprotocol, sizeof c->subprotocol, subprotocol,
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
	c->ud_alive = 1;
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
		c->end_code = c->close_code;
		c->closed_here = 1;
		strcpy(c->end_reason, c->close_reason);
	} else if (!c->end_code) {
		c->end_code = code;
		jr_set_text(c->end_reason, sizeof c->end_reason, reason,
			    strlen(reason));
	}
	if (c->loop && !jr_loop_push(c->loop, c, JR_EV_CLOSED, NULL, 0, 0))
		c->closed_queued = 1;
}
#endif
