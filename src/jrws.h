/*
 * jsonrpc_websocket.core: the C transport under the Lua face.
 *
 * Layers, bottom-up (a file calls only files listed before it):
 *   json.c, scan.c, frame.c, encode.c, opts.c  the leaves, calling none
 *            of the layers: the built-in JSON codec (decodes straight
 *            into Lua values, encodes any of them, exact both ways); raw
 *            JSON scanning (exact ids, batch elements, the responses pop()
 *            hands over already read); gathered writes (many small
 *            messages framed into one send()); JSON writing of simple
 *            params straight into the send buffer; reading option tables.
 *            scan.c and encode.c use json.c's grammar and writers.
 *   loop.c   the engine: one libuv loop and one libwebsockets context on
 *            it per Lua state, the service step, the queue of events
 *            that callbacks leave for Lua, the clock.
 *   vhost.c  client vhosts, one per transport configuration (TLS files,
 *            compression, proxy), created on first use and cached.
 *   conn.c, connect.c, send.c, receive.c, keepalive.c (private header
 *            conn.h) a websocket, client or server side: the object and
 *            its lifetime; connect and its options; the send queue and its
 *            writes; the lws callback and the receive path; pings and the
 *            sweep that drops dead peers.
 *   server.c listening vhosts, accepted sessions (they are jr_conns too),
 *            the authorize hook.
 *   drive.c  the engine's Lua face: step, pop (which knows every event
 *            kind and owner), the pollable (pollfd, timeout), teardown.
 *   core.c   luaopen_jsonrpc_websocket_core.
 *
 * The rule that shapes everything: libwebsockets callbacks never call Lua.
 * They record what happened as a jr_event; Lua pops events after
 * lws_service() has returned and resumes its coroutines from there.
 * The one exception is server.c's authorize hook: the upgrade must be
 * answered inside HTTP_CONFIRM_UPGRADE, so it runs there, guarded (see
 * server.c).
 */
#ifndef JRWS_H
#define JRWS_H

#include <stddef.h>

#include <uv.h>
#include <libwebsockets.h>
#include <lua.h>
#include <lauxlib.h>

#define JR_LOOP_KEY "jsonrpc_websocket.loop"
#define JR_FRAG (64 * 1024) /* an outbound fragment, and lws's rx buffer */
#define JR_HANDSHAKE_TIMEOUT 30 /* seconds, lws's per handshake step */
#define JR_CONN_MT "jsonrpc_websocket.conn"

typedef struct jr_loop jr_loop;
typedef struct jr_conn jr_conn;
typedef struct jr_event jr_event;
typedef struct jr_vhost jr_vhost;
typedef struct jr_frames jr_frames;

/*
 * The two-owner lifetime of a connection (conn.c) and a listener
 * (server.c): the struct is reached from its Lua userdata (until __gc) and
 * from an lws object, a wsi or a vhost (until lws destroys it), and is
 * freed by whichever of the two lets go last.
 */
typedef struct jr_owners {
	int lua; /* the userdata still points to the struct */
	int lws; /* the wsi or vhost still does */
} jr_owners;

/* For __gc: the struct the userdata at idx (a box holding a pointer)
 * points to, and the box emptied; NULL when it was empty already. */
static inline void *jr_take_pointer(lua_State *L, int idx, const char *mt)
{
	void **box = luaL_checkudata(L, idx, mt);
	void *p = *box;

	*box = NULL;
	return p;
}

/* One owner (side: &o->lua or &o->lws) lets go. Returns 1 when the other
 * has let go too: the caller frees the struct now. */
static inline int jr_let_go(jr_owners *o, int *side)
{
	*side = 0;
	return !o->lua && !o->lws;
}

enum jr_event_kind {
	JR_EV_OPEN,    /* handshake done, messages may flow */
	JR_EV_MESSAGE, /* one whole inbound message */
	JR_EV_CLOSED,  /* the connection is gone (or never came up) */
	JR_EV_ACCEPT,  /* a listener accepted it (server side); data: address */
	JR_EV_DRAINED  /* its send queue was full and has room again */
};

struct jr_event {
	jr_event *next;
	jr_conn *conn;
	enum jr_event_kind kind;
	int binary;  /* MESSAGE: arrived as a binary frame */
	char *data;  /* MESSAGE payload, malloc'ed, owned by the event */
	size_t len;
};

struct jr_loop {
	struct lws_context *cx;
	struct lws_context *cx_alive; /* NULL once lws has freed it */
	uv_loop_t uv;                /* the loop lws runs on (ours) */
	void *foreign[1];            /* lws's foreign_loops: &uv */
	uv_timer_t wake;             /* bounds one service step */
	int uv_open;                 /* uv and wake are initialised */
	int changed;                 /* lws must re-arm its timer (loop.c) */
	int closed;                  /* a connection closed in this step */
	int hosted;                  /* a host loop drives us (attach) */
	int in_service;              /* inside a blocking step right now */
	int time_up;                 /* the step's timeout has passed */
	int destroying;              /* context teardown: queue nothing */
	jr_event *head, **tail;      /* events waiting for Lua, FIFO */
	jr_conn *conns;              /* every connection not yet freed */
	jr_vhost *vhosts;            /* client vhosts by configuration */
	unsigned int nvhosts;        /* vhosts made so far (for names) */
	lua_State *L;                /* the thread inside step(), for hooks */
	int in_hook;                 /* an authorize hook runs: no service */
	jr_frames *frames;           /* gathered writes (frame.c), on demand */
	int flush_pending;           /* a conn has output to flush (conn.c) */
	jr_conn *to_flush;           /* the conns that have (send.c) */
	uv_timer_t sweep;            /* keepalive's sweep (keepalive.c) */
	uint64_t sweep_at;           /* when it runs next (uv_now time) */
	jr_conn *keepalive;          /* the conns that have a keepalive */
};

LUALIB_API int luaopen_jsonrpc_websocket_core(lua_State *L);

/* loop.c */
jr_loop *jr_loop_new(void);
jr_loop *jr_loop_get(lua_State *L);
struct lws_context *jr_loop_context(lua_State *L, jr_loop *loop);
int jr_loop_push(jr_loop *loop, jr_conn *c, enum jr_event_kind kind,
		 char *data, size_t len, int binary);
jr_event *jr_loop_take(jr_loop *loop);
void jr_event_free(jr_event *e);
void jr_loop_forget_conn(jr_loop *loop, jr_conn *c);
void jr_loop_wake(jr_loop *loop);
void jr_loop_closed(jr_loop *loop);
void jr_loop_changed(jr_loop *loop);
void jr_loop_poke(jr_loop *loop);
void jr_loop_settle(jr_loop *loop);
void jr_loop_service(jr_loop *loop, long timeout_ms);
int jr_loop_pollfd(jr_loop *loop);
long jr_loop_timeout_ms(jr_loop *loop);
double jr_loop_now(void);
void jr_loop_close_engine(jr_loop *loop);

/* drive.c */
void jr_loop_open(lua_State *L);
extern const luaL_Reg jr_loop_functions[];

/* vhost.c */
struct lws_vhost *jr_vhost_for(lua_State *L, jr_loop *loop, int opts,
			      const struct lws_protocols *protocols);
void jr_vhost_forget_all(jr_loop *loop);

/* opts.c */
const char *jr_opt_string(lua_State *L, int opts, const char *key);
char *jr_dup(lua_State *L, const char *s);
void jr_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
		  const luaL_Reg *more, lua_CFunction gc, lua_CFunction tostring);

/* conn.c, connect.c, send.c, receive.c (conn.h) */
int jr_callback(struct lws *wsi, enum lws_callback_reasons reason,
		void *user, void *in, size_t len);
void jr_conn_open(lua_State *L);
int jr_conn_push_closed(lua_State *L, jr_conn *c);
void jr_conn_push_owner(lua_State *L, jr_conn *c);
void jr_conn_detach_all(jr_loop *loop);
void jr_conn_flush_all(jr_loop *loop);
int jr_conn_rx(jr_conn *c, const void *in, size_t len, int first, int final,
	       int binary, size_t remaining);
#ifdef JR_FUZZING
jr_conn *jr_conn_new_detached(lua_State *L, int owner_idx, size_t max_message);
void jr_conn_end_detached(jr_conn *c, int code, const char *reason);
#endif
extern const luaL_Reg jr_conn_functions[];
jr_conn *jr_conn_accepted(jr_loop *loop, struct lws *wsi, size_t max_message,
			  void *listener, const char *subprotocol);
void *jr_conn_listener(const jr_conn *c);
int jr_conn_builtin_codec(const jr_conn *c);
void jr_conn_trace_in(lua_State *L, jr_conn *c, const char *text, size_t len);
void jr_conn_push_new(lua_State *L, jr_conn *c);

/* keepalive.c */
extern const lws_retry_bo_t jr_no_validity;
void jr_keepalive_start(jr_conn *c, unsigned int ping, unsigned int hangup);

/* server.c */
int jr_listener_push_accept(lua_State *L, jr_event *e);
void jr_listener_open(lua_State *L);
extern const luaL_Reg jr_listener_functions[];

/* workers.c */
typedef struct jr_shared jr_shared;
int jr_bind_shared(lua_State *L, const char *host, lua_Integer port,
		   int listening);
jr_shared *jr_shared_listen(jr_loop *loop, struct lws_vhost *vh, int fd);
void jr_shared_close(jr_shared *sh);
extern const luaL_Reg jr_workers_functions[];

/* frame.c */
#define JR_GATHER (64 * 1024)    /* bytes of frames per gathered write */
#define JR_FRAME_HEADER_MAX 14   /* 2 + 8 bytes of length + 4 of mask key */
jr_frames *jr_frames_new(void);
void jr_frames_free(jr_frames *f);
unsigned char *jr_frames_start(jr_frames *f);
unsigned char *jr_frame_append(jr_frames *f, struct lws_context *cx,
			       unsigned char *p, const unsigned char *msg,
			       size_t len, int masked);

/* encode.c */
char *jr_write_params_key(char *p);
char *jr_write_message_end(char *p, int has_id, lua_Integer id);
/* bytes a message needs beyond its prefix and params: ,"params": ,"id":
 * and a 64-bit id, } */
#define JR_MESSAGE_TAIL 40
size_t jr_batch_size(lua_State *L, int list, lua_Integer n);
char *jr_write_batch(lua_State *L, int list, lua_Integer n,
		     lua_Integer first_id, char *p, lua_Integer *nids);
size_t jr_simple_value_size(lua_State *L, int idx);
char *jr_write_simple_value(lua_State *L, int idx, char *p);
size_t jr_simple_array_size(lua_State *L, int first, int n);
char *jr_write_simple_array(lua_State *L, int first, int n, char *p);
extern const luaL_Reg jr_encode_functions[];

/* json.c */
#define JR_STR_(x) #x
#define JR_STR(x) JR_STR_(x)
#define JR_JSON_MAX_DEPTH 1000 /* nesting of arrays and objects, both ways */
#define JR_NUMBER_MAX 32 /* bytes of a written number, at most */
typedef struct jr_scratch jr_scratch;
void jr_json_open(lua_State *L);
int jr_json_decode(lua_State *L, const char *text, size_t len, jr_scratch *s);
const char *jr_json_skip(const char *p, const char *end);
const char *jr_json_decode_at(lua_State *L, const char *p, const char *end,
			      int depth);
size_t jr_json_string_size(const char *s, size_t len);
char *jr_json_write_string(char *p, const char *s, size_t len);
char *jr_json_write_float(char *p, double x);
char *jr_json_write_integer(char *p, lua_Integer v);

/* scan.c */
/* Arguments a request event carries itself (pop returns at most 9
 * values: owner, handler, method, id, count and these); core.INLINE_ARGS */
#define JR_INLINE_ARGS 4
int jr_push_response(lua_State *L, const char *text, size_t len);
int jr_push_responses(lua_State *L, const char *text, size_t len);
int jr_push_request(lua_State *L, const char *text, size_t len);
extern const luaL_Reg jr_scan_functions[];

#endif
