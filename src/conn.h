/*
 * A websocket connection, private to the five files that make it (the
 * rest of the core sees only the opaque jr_conn of jrws.h):
 *   conn.c     the object: allocation, the two-owner lifetime, its Lua
 *              userdata and methods (close, abort, reading, trace, ...),
 *              the events it hands to pop(); accepted sessions; fuzzing
 *   connect.c  connect(): options, handshake headers, TLS verdicts, and
 *              how a connect that failed is told
 *   send.c     the send queue: send/send_call/send_batch, its bound,
 *              gathered writes, fragments, WRITEABLE, what never left
 *   receive.c  the lws callback, message reassembly, the end
 *   keepalive.c pings on idle connections, dead peers dropped (the sweep)
 * Lifetime: struct jr_conn is malloc'ed; the Lua userdata holds a pointer.
 * Two things can still reach the struct: the userdata (until __gc) and the
 * wsi (until LWS_CALLBACK_WSI_DESTROY). It is freed when both are gone
 * (owners, jr_let_go in jrws.h: the listener lives the same way).
 * From connect() until Lua has popped the "closed" event, a registry ref
 * (self_ref) anchors the userdata so events always find their owner.
 */
#ifndef JRWS_CONN_H
#define JRWS_CONN_H

#include "jrws.h"

#define JR_DEFAULT_MAX_MESSAGE ((size_t)16 * 1024 * 1024)
/* the send queue's defaults (see README "Limits") */
#define JR_DEFAULT_QUEUE_BYTES ((size_t)1024 * 1024)
#define JR_DEFAULT_QUEUE_MESSAGES 16384
#define JR_DEFAULT_QUEUE_TIMEOUT 30 /* seconds full before the close */

/* A connection's place in one of the loop's lists (every connection,
 * the flush list, the keepalive list): intrusive, so joining and leaving
 * cost O(1) and no allocation (jr_list_push, jr_list_leave). */
typedef struct jr_links {
	jr_conn *next;
	jr_conn **pprev; /* NULL: not in the list */
} jr_links;

struct jr_out {
	struct jr_out *next;
	size_t len, off;
	lua_Integer first_id, nids; /* the request ids it carries: first_id and
				     * nids after it (a batch: many; 0: none) */
	unsigned char buf[]; /* LWS_PRE bytes of headroom, then the payload */
};

struct jr_conn {
	jr_loop *loop;               /* NULL once the loop is gone */
	jr_links all;                /* in loop->conns */
	jr_links flush_links;        /* in loop->to_flush while flush */
	struct lws *wsi;             /* NULL once lws destroyed it */
	void *listener;              /* server side: its jr_listener, else NULL */
	int self_ref;
	jr_owners owners;            /* the userdata and the wsi: conn.c */
	int established;
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
	/* texts a connection seldom has: malloc'ed when set (jr_set_text),
	 * NULL while empty, freed with it (issue 16: idle memory) */
	char *subprotocol; /* at most JR_SUBPROTOCOL_SIZE - 1 bytes */

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

	/* keepalive (keepalive.c): in loop->keepalive while it has one */
	jr_links ka;
	uint64_t alive_ms;           /* loop time of the last proof of life */
	unsigned short ka_ping;      /* seconds idle before a ping; 0: none */
	unsigned short ka_hangup;    /* seconds silent before the drop */
	unsigned char ping_sent;     /* this idle spell's ping is queued/out */
	unsigned char ping_due;      /* jr_writeable writes a ping */
	int secure;   /* wss:// */
	int insecure; /* tls.verify = false: accept any server certificate */

	int want_close, close_code;
	char *close_reason; /* at most JR_REASON_SIZE - 1 bytes */
	int closed_here; /* we sent the close (asked to, or message too large) */

	/* how it ended, reported with the closed event */
	int end_code;
	char *end_reason;   /* at most JR_REASON_SIZE - 1 bytes */
	char *failure;      /* at most JR_FAILURE_SIZE - 1 bytes */
	int http_status;
};

/* conn.c */
/* The conn at idx (every method, the send path too: inline). */
static inline jr_conn *jr_check_conn(lua_State *L, int idx)
{
	jr_conn **pc = luaL_checkudata(L, idx, JR_CONN_MT);
	if (!*pc)
		luaL_argerror(L, idx, "connection already collected");
	return *pc;
}

/* the bounds of a conn's texts, terminator included (a close reason fits
 * a control frame: 125 bytes after the code) */
#define JR_SUBPROTOCOL_SIZE 64
#define JR_REASON_SIZE 124
#define JR_FAILURE_SIZE 160

void jr_set_text(char **dst, size_t size, const void *src, size_t len);
void jr_end_here(jr_conn *c, int code, const char *reason);
void jr_set_textf(char **dst, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A conn's text, "" while it has none. */
static inline const char *jr_text(const char *s)
{
	return s ? s : "";
}
jr_conn *jr_conn_alloc(jr_loop *loop);
jr_conn *jr_new_conn(lua_State *L, jr_loop *loop);
void jr_conn_free(jr_conn *c);
void jr_request_close(jr_conn *c, int code, const char *reason);
void jr_trace(lua_State *L, jr_conn *c, const char *direction,
	      const void *text, size_t len);

/* connect.c */
int jr_append_headers(struct lws *wsi, jr_conn *c, void *in, size_t len);
int jr_cert_verify(jr_conn *c, void *x509_store_ctx, int preverify_ok);
void jr_tls_dropped(jr_conn *c);
void jr_connection_error(struct lws *wsi, jr_conn *c, const char *in,
			 size_t len);

/* keepalive.c */
void jr_keepalive_stop(jr_conn *c);
int jr_keepalive_write(struct lws *wsi, jr_conn *c);

/* The peer is alive (a frame or a pong came): a plain store, no list
 * operation, so a busy connection costs nothing and is never pinged. */
static inline void jr_keepalive_alive(jr_conn *c)
{
	if (c->ka.pprev) {
		c->alive_ms = uv_now(&c->loop->uv);
		c->ping_sent = 0;
	}
}

/* send.c */
extern const luaL_Reg jr_send_methods[];
int jr_writeable(struct lws *wsi, jr_conn *c);
void jr_note_unsent(jr_conn *c);
void jr_free_out(jr_conn *c);
void jr_unmark_flush(jr_conn *c);

/* The links of c at `links`, the offsetof of one of its jr_links. */
static inline jr_links *jr_links_of(jr_conn *c, size_t links)
{
	return (jr_links *)(void *)((char *)c + links);
}

/* c joins the list *head (at its head), through its links at `links`. */
static inline void jr_list_push(jr_conn **head, jr_conn *c, size_t links)
{
	jr_links *l = jr_links_of(c, links);

	l->next = *head;
	if (l->next)
		jr_links_of(l->next, links)->pprev = &l->next;
	l->pprev = head;
	*head = c;
}

/* c leaves the list it is in through its links at `links` (if any). */
static inline void jr_list_leave(jr_conn *c, size_t links)
{
	jr_links *l = jr_links_of(c, links);

	if (!l->pprev)
		return;
	*l->pprev = l->next;
	if (l->next)
		jr_links_of(l->next, links)->pprev = l->pprev;
	l->pprev = NULL;
	l->next = NULL;
}

#endif
