/*
 * Listening: a vhost on the loop's shared context per listener, the
 * sessions it accepts, and the authorize hook.
 *
 * Sessions are ordinary jr_conns (conn.c): the same send queue,
 * reassembly, close and WSI_DESTROY handling serve both roles. This file
 * only adds what is server-only: HTTP_CONFIRM_UPGRADE (path check and the
 * authorize hook), ESTABLISHED (a new session, queued as an accept event
 * for Lua), and the listener's own lifetime.
 *
 * Lifetime of struct jr_listener: malloc'ed, the Lua userdata holds a
 * pointer. lws references its protocol names until the
 * vhost is freed, which it may defer until the last session has gone; the
 * vhost's finalize callback tells us (PROTOCOL_DESTROY does not come for a
 * vhost destroyed before lws initialised its protocols). The struct is
 * freed when both the userdata and the vhost are gone. While the listener
 * is open, self_ref anchors the userdata.
 *
 * lws 4.1.6 keeps a destroyed vhost in its list, listening port and all,
 * until it is freed, and routes each new request by port: a vhost left
 * lingering would steal the connections of a later listener that gets the
 * same port. So close() first closes the listening socket itself (lws
 * would only do it in a periodic check, if ever), which lets the
 * vhost be freed at once when no session is left; Lua asks gone() before
 * it lets another listener have that port.
 *
 * Why one file of ~700 lines: a listener's vhost, its lws callback, its
 * sessions' count and the authorize hook all turn on struct jr_listener
 * and the order lws calls them in; the hook is its own section below.
 *
 * The authorize hook breaks the rule that callbacks never call Lua: lws
 * 4.1 cannot pause an upgrade, so the answer (101 or a real HTTP status)
 * must be decided inside HTTP_CONFIRM_UPGRADE. It runs on the thread that
 * called step(), under lua_pcall, with loop->in_hook set: step() raises
 * (so the hook cannot wait or re-enter lws_service), and so does closing a
 * listener. Lua wraps the user's function so it cannot raise or yield.
 */
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <netinet/in.h>

#include "jrws.h"

#define JR_LISTENER_MT "jsonrpc_websocket.listener"
#define JR_MAX_PROTOCOLS 8
/*
 * lws gives every session an rx buffer of the protocol's rx_buffer_size,
 * malloc'ed at the upgrade and kept for the session's life; one page of
 * it is resident even when idle. A small one costs an idle session ~1 KB
 * instead of ~4 KB (issue 16); larger messages arrive in more pieces,
 * which conn.c reassembles anyway. (lws 4.1.6 leaves the session's
 * SO_SNDBUF alone: the kernel still sizes it.)
 */
#define JR_SESSION_RX 1024
#define JR_HDR_MAX 4096 /* lws's max_http_header_data: no value is longer */

typedef struct jr_listener {
	jr_loop *loop;
	struct lws_vhost *vh;
	int self_ref;       /* anchors the userdata while open */
	jr_owners owners;   /* the userdata and the vhost (jrws.h) */
	int closed;         /* close() ran: no new sessions, accepts dropped */
	int port;
	int listen_fd;      /* the vhost's listening socket, or -1 */
	jr_shared *shared;  /* reuse_port: our listening socket (workers.c) */
	int has_hook;       /* uservalue 2 holds the authorize function */
	int proxy_headers;  /* trusted_proxies: accept events carry them */
	size_t max_message;
	lua_Integer max_sessions; /* max_connections: more get 503; 0: any */
	lua_Integer sessions;     /* accepted and not yet destroyed */
	char *path;         /* only this request path upgrades; NULL: any */
	char *names[JR_MAX_PROTOCOLS];
	struct lws *hook_wsi; /* the request the hook is looking at */
	unsigned int keepalive; /* seconds idle before a ping; 0: none */
	struct lws_protocols protocols[JR_MAX_PROTOCOLS + 2];
} jr_listener;

static void jr_listener_free(jr_listener *s)
{
	int i;
	for (i = 0; i < JR_MAX_PROTOCOLS; i++)
		free(s->names[i]);
	free(s->path);
	free(s);
}

static jr_listener *jr_listener_of(struct lws *wsi)
{
	const struct lws_protocols *p = wsi ? lws_get_protocol(wsi) : NULL;
	return p ? p->user : NULL;
}

/* ---- the authorize hook ------------------------------------------------ */

/* headers["x-custom"] for headers lws has no token for: readable only
 * while the hook runs (the request's header space is freed afterwards). */
static int l_custom_header(lua_State *L)
{
	jr_listener *s = lua_touserdata(L, lua_upvalueindex(1));
	char name[128], value[JR_HDR_MAX];
	size_t len, i;
	const char *key = lua_tolstring(L, 2, &len);
	int n;

	if (!key || !s->hook_wsi || len == 0 || len + 2 > sizeof name)
		return 0;
	for (i = 0; i < len; i++)
		name[i] = (char)tolower((unsigned char)key[i]);
	name[len] = ':';
	name[len + 1] = '\0';
	n = lws_hdr_custom_copy(s->hook_wsi, value, sizeof value, name,
				(int)len + 1);
	if (n < 0)
		return 0;
	lua_pushlstring(L, value, (size_t)n);
	return 1;
}

/* The request's headers by lower-case name, without the colon. */
static void jr_push_headers(lua_State *L, jr_listener *s)
{
	char value[JR_HDR_MAX];
	int t;

	lua_newtable(L);
	for (t = 0; t < WSI_TOKEN_COUNT; t++) {
		const char *name = (const char *)lws_token_to_string(
				(enum lws_token_indexes)t);
		size_t nlen = name ? strlen(name) : 0;
		int n;
		if (nlen < 2 || name[0] == ':' || name[nlen - 1] != ':' ||
		    lws_hdr_total_length(s->hook_wsi, (enum lws_token_indexes)t) <= 0)
			continue;
		n = lws_hdr_copy(s->hook_wsi, value, sizeof value,
				 (enum lws_token_indexes)t);
		if (n < 0)
			continue;
		lua_pushlstring(L, name, nlen - 1);
		lua_pushlstring(L, value, (size_t)n);
		lua_rawset(L, -3);
	}
	lua_newtable(L);
	lua_pushlightuserdata(L, s);
	lua_pushcclosure(L, l_custom_header, 1);
	lua_setfield(L, -2, "__index");
	lua_setmetatable(L, -2);
}

/* Under lua_pcall: (hook, s, path) -> allow, status */
static int jr_hook_call(lua_State *L)
{
	jr_listener *s = lua_touserdata(L, 2);
	jr_push_headers(L, s);
	lua_pushvalue(L, 1);
	lua_pushvalue(L, 4);
	lua_pushvalue(L, 3);
	lua_call(L, 2, 2);
	return 2;
}

/* Runs the Lua hook; returns 0 to accept or the HTTP status to refuse. */
static int jr_run_hook(struct lws *wsi, jr_listener *s, const char *path)
{
	jr_loop *loop = s->loop;
	lua_State *L = loop->L;
	int top, status = HTTP_STATUS_SERVICE_UNAVAILABLE;

	if (!L || loop->in_hook || s->self_ref == LUA_NOREF ||
	    !lua_checkstack(L, 10))
		return status;
	top = lua_gettop(L);
	lua_pushcfunction(L, jr_hook_call);
	lua_rawgeti(L, LUA_REGISTRYINDEX, s->self_ref);
	lua_getiuservalue(L, -1, 2);
	lua_replace(L, -2);
	lua_pushlightuserdata(L, s);
	lua_pushstring(L, path);
	loop->in_hook = 1;
	s->hook_wsi = wsi;
	if (lua_pcall(L, 3, 2, 0) != LUA_OK) {
		status = HTTP_STATUS_INTERNAL_SERVER_ERROR;
	} else if (lua_toboolean(L, -2)) {
		status = 0;
	} else {
		status = (int)lua_tointeger(L, -1);
		if (status < 400 || status > 599)
			status = HTTP_STATUS_FORBIDDEN;
	}
	s->hook_wsi = NULL;
	loop->in_hook = 0;
	lua_settop(L, top);
	return status;
}

static const char *jr_reason_phrase(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return status < 500 ? "Client Error" : "Server Error";
	}
}

/*
 * The refusal, written whole. Not lws_return_http_status(): this early
 * (before lws has read the request's HTTP version) it answers "HTTP/1.0",
 * which strict websocket clients (Python websockets) reject as not a
 * valid response to their HTTP/1.1 upgrade.
 */
static void jr_refuse_upgrade(struct lws *wsi, int status)
{
	unsigned char buf[LWS_PRE + 256];
	char body[64];
	int blen = snprintf(body, sizeof body, "%d %s\n", status,
			    jr_reason_phrase(status));
	int n = snprintf((char *)buf + LWS_PRE, sizeof buf - LWS_PRE,
			 "HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\n"
			 "content-length: %d\r\nconnection: close\r\n\r\n%s",
			 status, jr_reason_phrase(status), blen, body);
	lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_HEADERS);
}

/* Before the 101: the path must match, then the hook must agree. */
static int jr_confirm_upgrade(struct lws *wsi, jr_listener *s, const char *in)
{
	char path[512];
	int status = 0;

	if (!s || !in || strcmp(in, "websocket"))
		return 0;
	if (lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) < 0)
		path[0] = '\0';
	if (s->closed || (s->max_sessions && s->sessions >= s->max_sessions))
		status = HTTP_STATUS_SERVICE_UNAVAILABLE;
	else if (s->path && strcmp(path, s->path))
		status = HTTP_STATUS_NOT_FOUND;
	else if (s->has_hook)
		status = jr_run_hook(wsi, s, path);
	if (!status)
		return 0;
	jr_refuse_upgrade(wsi, status);
	return 1;
}

/* ---- sessions ----------------------------------------------------------- */

/* The value of request header `name` (lower case, with the colon), known
 * to lws as a token or not; "" when absent. */
static void jr_header_value(struct lws *wsi, const char *name, char *buf,
			    int size)
{
	int t, n = -1;

	for (t = 0; t < WSI_TOKEN_COUNT; t++) {
		const char *tn = (const char *)lws_token_to_string(
				(enum lws_token_indexes)t);
		if (tn && !strcmp(tn, name)) {
			n = lws_hdr_copy(wsi, buf, size, (enum lws_token_indexes)t);
			break;
		}
	}
	if (t == WSI_TOKEN_COUNT)
		n = lws_hdr_custom_copy(wsi, buf, size, name, (int)strlen(name));
	if (n < 0)
		n = 0;
	buf[n] = '\0';
}

/*
 * The accept event's address: the socket's peer, and with trusted_proxies
 * the headers a proxy adds after it, "addr\nx-forwarded-for\nx-real-ip"
 * (HTTP header values hold no newline); proxies.lua decides which counts.
 */
static int jr_accept_address(struct lws *wsi, jr_listener *s, char *addr,
			     size_t size)
{
	char xff[1024], xri[128];

	if (!lws_get_peer_simple(wsi, addr, size))
		strcpy(addr, "?");
	if (!s->proxy_headers)
		return 0;
	jr_header_value(wsi, "x-forwarded-for:", xff, (int)sizeof xff);
	jr_header_value(wsi, "x-real-ip:", xri, (int)sizeof xri);
	return snprintf(addr + strlen(addr), size - strlen(addr), "\n%s\n%s",
			xff, xri) < 0;
}

static int jr_accept(struct lws *wsi, jr_listener *s)
{
	const struct lws_protocols *p = lws_get_protocol(wsi);
	char addr[1280], *data;
	size_t len;
	jr_conn *c;

	if (!s || s->closed)
		return -1;
	c = jr_conn_accepted(s->loop, wsi, s->max_message, s,
			     p && p->name && strcmp(p->name, s->protocols[0].name)
			     ? p->name : NULL);
	if (!c)
		return -1;
	s->sessions++; /* until jr_session_ended */
	if (s->keepalive) /* dropped 2N + 1 s after the last sign of life */
		jr_keepalive_start(c, s->keepalive, 2 * s->keepalive + 1);
	jr_accept_address(wsi, s, addr, sizeof addr);
	len = strlen(addr);
	if (!(data = malloc(len + 1)))
		return -1; /* WSI_DESTROY frees c */
	memcpy(data, addr, len + 1);
	if (jr_loop_push(s->loop, c, JR_EV_ACCEPT, data, len, 0)) {
		free(data);
		return -1;
	}
	return 0;
}

/* A wsi of ours is about to go: if it is an accepted session (a conn is
 * still attached), its listener has one fewer. lws frees the vhost, and
 * with it s, only after its last session. */
static void jr_session_ended(struct lws *wsi)
{
	jr_conn *c = lws_get_opaque_user_data(wsi);
	jr_listener *s = c ? jr_conn_listener(c) : NULL;

	if (s)
		s->sessions--;
}

/* lws is about to free the vhost: nothing of ours is referenced after */
static void jr_vhost_finalized(struct lws_vhost *vh, void *arg)
{
	jr_listener *s = arg;

	(void)vh;
	s->vh = NULL;
	if (jr_let_go(&s->owners, &s->owners.lws))
		jr_listener_free(s);
}

/* Every server-side wsi comes here; what is common with client
 * connections (receive, write, close, destroy) is conn.c's. */
static int jr_listener_callback(struct lws *wsi, enum lws_callback_reasons reason,
		       void *user, void *in, size_t len)
{
	switch (reason) {
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		return jr_confirm_upgrade(wsi, jr_listener_of(wsi), in);
	case LWS_CALLBACK_ESTABLISHED:
		return jr_accept(wsi, jr_listener_of(wsi));
	case LWS_CALLBACK_WSI_DESTROY: /* conn.c frees the session */
		jr_session_ended(wsi);
		return jr_callback(wsi, reason, user, in, len);
	default:
		return jr_callback(wsi, reason, user, in, len);
	}
}

/* owner, "on_accept", conn, address -- or nothing if the listener closed
 * meanwhile (lws closes that session itself). */
int jr_listener_push_accept(lua_State *L, jr_event *e)
{
	jr_listener *s = jr_conn_listener(e->conn);

	if (!s || s->closed || s->self_ref == LUA_NOREF)
		return 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, s->self_ref);
	lua_getiuservalue(L, -1, 1);
	lua_remove(L, -2);
	lua_pushliteral(L, "on_accept");
	jr_conn_push_new(L, e->conn);
	lua_pushlstring(L, e->data, e->len);
	return 4;
}

/*
 * The vhost's listening socket (see the top of this file for why close()
 * needs it), found once, right after creating the vhost: lws has no call
 * that gives it, but it is the one listening socket of ours on that port.
 */
static int jr_is_listener_on(int fd, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	int listening = 0;
	socklen_t olen = sizeof listening;

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &olen) ||
	    !listening || getsockname(fd, (struct sockaddr *)&ss, &len))
		return 0;
	return (ss.ss_family == AF_INET &&
		ntohs(((struct sockaddr_in *)&ss)->sin_port) == port) ||
	       (ss.ss_family == AF_INET6 &&
		ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) == port);
}

/* The process's open descriptors are listed in /proc/self/fd; without it
 * (or without a descriptor to read it with), every number is tried. */
static int jr_find_listen_fd(int port)
{
	DIR *dir = opendir("/proc/self/fd");
	struct rlimit rl;
	int fd = -1;

	if (dir) {
		struct dirent *d;
		while (fd < 0 && (d = readdir(dir))) {
			int n = atoi(d->d_name);
			if (d->d_name[0] != '.' && n != dirfd(dir) &&
			    jr_is_listener_on(n, port))
				fd = n;
		}
		closedir(dir);
		return fd;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur > 1 << 20)
		rl.rlim_cur = 1 << 20;
	for (fd = (int)rl.rlim_cur - 1; fd >= 0; fd--)
		if (jr_is_listener_on(fd, port))
			return fd;
	return -1;
}

/* ---- Lua side ----------------------------------------------------------- */

static jr_listener *jr_check_listener(lua_State *L, int idx)
{
	jr_listener **ps = luaL_checkudata(L, idx, JR_LISTENER_MT);
	if (!*ps)
		luaL_argerror(L, idx, "listener already collected");
	return *ps;
}

/* protocols[0] takes sessions that offer no subprotocol (and plain HTTP,
 * answered 404); the listed subprotocols follow. */
static void jr_fill_protocols(lua_State *L, jr_listener *s, int opts)
{
	static const char default_name[] = "jsonrpc-websocket-server";
	struct lws_protocols proto = {
		default_name, jr_listener_callback, 0, JR_SESSION_RX, 0, NULL,
		JR_FRAG
	};
	int i, n = 0;

	proto.user = s;
	s->protocols[n++] = proto;
	if (lua_getfield(L, opts, "protocols") == LUA_TTABLE) {
		int count = (int)luaL_len(L, -1);
		if (count > JR_MAX_PROTOCOLS)
			luaL_error(L, "listen: at most %d protocols",
				   JR_MAX_PROTOCOLS);
		for (i = 1; i <= count; i++) {
			lua_rawgeti(L, -1, i);
			if (!lua_isstring(L, -1))
				luaL_error(L, "listen: protocols must be strings");
			s->names[i - 1] = jr_dup(L, lua_tostring(L, -1));
			lua_pop(L, 1);
			proto.name = s->names[i - 1];
			s->protocols[n++] = proto;
		}
	}
	lua_pop(L, 1);
}

static void jr_fill_tls(lua_State *L, struct lws_context_creation_info *vi,
			int opts)
{
	if (lua_getfield(L, opts, "tls") == LUA_TTABLE) {
		int t = lua_gettop(L);
		vi->ssl_cert_filepath = jr_opt_string(L, t, "cert_file");
		vi->ssl_private_key_filepath = jr_opt_string(L, t, "key_file");
		vi->ssl_ca_filepath = jr_opt_string(L, t, "ca_file");
		if (!vi->ssl_cert_filepath || !vi->ssl_private_key_filepath)
			luaL_error(L, "listen: tls needs cert_file and key_file");
		/* verify_client: a client without a certificate that ca_file
		 * vouches for fails the TLS handshake */
		lua_getfield(L, t, "verify_client");
		if (lua_toboolean(L, -1)) {
			if (!vi->ssl_ca_filepath)
				luaL_error(L, "listen: tls.verify_client needs tls.ca_file");
			vi->options |= LWS_SERVER_OPTION_REQUIRE_VALID_OPENSSL_CLIENT_CERT;
		}
		lua_pop(L, 1);
		vi->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	}
	lua_pop(L, 1); /* the strings stay alive in opts.tls until create */
}

/* The vhost for opts; the host decides the address family: an IPv4
 * address binds exactly that address (lws would otherwise listen on every
 * interface when IPv6 is on). */
static void jr_fill_vhost(lua_State *L, jr_listener *s,
			  struct lws_context_creation_info *vi, int opts)
{
	const char *host = jr_opt_string(L, opts, "host");
	lua_Integer keepalive;

	memset(vi, 0, sizeof *vi);
	lua_getfield(L, opts, "port");
	vi->port = (int)luaL_optinteger(L, -1, 0);
	lua_pop(L, 1);
	if (vi->port < 0 || vi->port > 65535)
		luaL_error(L, "listen: port must be 0..65535");
	if (host && !strcmp(host, "*"))
		host = NULL;                    /* every interface, both families */
	if (host && !strcmp(host, "0.0.0.0"))
		host = NULL, vi->options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	else if (host && !strchr(host, ':'))
		vi->options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	vi->iface = host;
	vi->protocols = s->protocols;
	vi->vhost_name = "jsonrpc-websocket-server";
	lua_getfield(L, opts, "keepalive");
	keepalive = luaL_optinteger(L, -1, 0);
	lua_pop(L, 1);
	/* 0 or not given: no pings, no hangup; keepalive.c does both, and
	 * lws's validity checks (300/310 s by default) stay off */
	s->keepalive = (unsigned int)(keepalive < 0 ? 0
				      : keepalive > 32767 ? 32767 : keepalive);
	vi->retry_and_idle_policy = &jr_no_validity;
	jr_fill_tls(L, vi, opts);
}

/* Reads opts into a new jr_listener owned by the userdata at the top. */
static jr_listener *jr_new_listener(lua_State *L, jr_loop *loop)
{
	jr_listener **ps = lua_newuserdatauv(L, sizeof *ps, 2);
	*ps = calloc(1, sizeof **ps);
	if (!*ps)
		luaL_error(L, "jsonrpc_websocket: out of memory");
	luaL_setmetatable(L, JR_LISTENER_MT);
	(*ps)->loop = loop;
	(*ps)->owners.lua = 1; /* owners.lws: 0 until a vhost exists */
	(*ps)->self_ref = LUA_NOREF;
	(*ps)->listen_fd = -1;
	return *ps;
}

/* Closes the listening socket, then destroys the vhost (lws closes any
 * session still open). The vhost may be finalized before this returns. */
static void jr_listener_stop(jr_listener *s)
{
	struct lws *lw = NULL;
	int pass;

	s->closed = 1;
	jr_shared_close(s->shared);
	s->shared = NULL;
	/* still our listening socket (not a number reused since) */
	if (s->listen_fd >= 0 && jr_is_listener_on(s->listen_fd, s->port))
		lw = wsi_from_fd(s->loop->cx, s->listen_fd);
	if (lw)
		lws_close_free_wsi(lw, LWS_CLOSE_STATUS_NOSTATUS, "listener closed");
	/* On a libuv loop lws frees a wsi (and closes its socket) only in
	 * the loop's next pass, and a vhost destroyed with wsis still bound
	 * lingers for seconds: let the listener and the sessions go first,
	 * so the port is free when close() returns. */
	for (pass = 0; pass < 8 && ((lw && jr_is_listener_on(s->listen_fd,
			s->port)) || s->sessions > 0); pass++)
		jr_loop_settle(s->loop);
	s->listen_fd = -1;
	lws_vhost_destroy(s->vh);
}

/* nil, why: running out of descriptors is the one cause lws lets us tell */
static int jr_listen_failed(lua_State *L, int err)
{
	luaL_pushfail(L);
	if (err == EMFILE || err == ENFILE)
		lua_pushfstring(L, "cannot listen: %s (raise ulimit -n)",
				strerror(err));
	else
		lua_pushliteral(L, "cannot listen (address in use, or not "
				   "an address of this host?)");
	return 2;
}

/*
 * reuse_port: the listening socket is ours, with SO_REUSEPORT (lws 4.1.6
 * sets it on none of its own), so that several processes may listen on
 * one port; the vhost only serves what we accept (workers.c).
 */
static int jr_listen_shared(lua_State *L, jr_listener *s,
			    struct lws_context_creation_info *vi)
{
	const char *host = jr_opt_string(L, 2, "host");
	int fd, err;

	if (!jr_bind_shared(L, host ? host : "*", vi->port, 1) ||
	    lua_isnil(L, -2))
		return 2; /* nil, why */
	fd = (int)lua_tointeger(L, -2);
	vi->port = CONTEXT_PORT_NO_LISTEN_SERVER;
	vi->finalize = jr_vhost_finalized;
	vi->finalize_arg = s;
	s->owners.lws = 1;
	errno = 0; /* as l_listen: what lws_create_vhost leaves, not older */
	s->vh = lws_create_vhost(jr_loop_context(L, s->loop), vi);
	err = errno;
	if (!s->vh) {
		close(fd);
		s->closed = 1;
		return jr_listen_failed(L, err);
	}
	s->port = (int)lua_tointeger(L, -1);
	if (!(s->shared = jr_shared_listen(s->loop, s->vh, fd))) {
		close(fd);
		jr_listener_stop(s);
		return jr_listen_failed(L, ENOMEM);
	}
	lua_settop(L, 3);
	lua_pushvalue(L, 3);
	s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	jr_loop_changed(s->loop);
	return 1;
}

/*
 * listen(owner, opts) -> listener | nil, why
 * opts: host, port (0: any free), path, protocols {names}, max_message_size,
 * max_connections (sessions at once; more are refused with 503),
 * keepalive (seconds), tls {cert_file, key_file, ca_file}, authorize
 * (function(headers, path) -> allow, status; must not raise or yield).
 * Sessions arrive as owner:accept(conn, address) events.
 */
static int l_listen(lua_State *L)
{
	jr_loop *loop = jr_loop_get(L);
	struct lws_context_creation_info vi;
	const char *path;
	jr_listener *s;
	int err;

	luaL_checkany(L, 1);
	luaL_checktype(L, 2, LUA_TTABLE);
	lua_settop(L, 2);
	if (loop->in_hook)
		return luaL_error(L, "listen: not inside an authorize hook");
	s = jr_new_listener(L, loop);                 /* 3 */
	lua_pushvalue(L, 1);
	lua_setiuservalue(L, 3, 1);
	lua_getfield(L, 2, "proxy_headers");
	s->proxy_headers = lua_toboolean(L, -1);
	lua_pop(L, 1);
	s->has_hook = lua_getfield(L, 2, "authorize") != LUA_TNIL;
	lua_setiuservalue(L, 3, 2);
	lua_getfield(L, 2, "max_message_size");
	s->max_message = (size_t)luaL_optinteger(L, -1, 0);
	lua_getfield(L, 2, "max_connections");
	s->max_sessions = luaL_optinteger(L, -1, 0);
	lua_pop(L, 2);
	path = jr_opt_string(L, 2, "path");
	if (path && path[0] != '/')
		return luaL_error(L, "listen: path must start with '/'");
	if (path)
		s->path = jr_dup(L, path);
	jr_fill_protocols(L, s, 2);
	jr_fill_vhost(L, s, &vi, 2);
	if (lua_getfield(L, 2, "reuse_port"), lua_toboolean(L, -1))
		return jr_listen_shared(L, s, &vi);
	lua_pop(L, 1);
	vi.finalize = jr_vhost_finalized;
	vi.finalize_arg = s;
	s->owners.lws = 1;
	errno = 0;
	s->vh = lws_create_vhost(jr_loop_context(L, loop), &vi);
	err = errno;
	if (!s->vh) {
		/* lws destroyed what it made: finalize has run, or will */
		s->closed = 1;
		return jr_listen_failed(L, err);
	}
	s->port = lws_get_vhost_listen_port(s->vh);
	s->listen_fd = jr_find_listen_fd(s->port);
	if (s->listen_fd < 0) {
		/* lws keeps a vhost whose socket could not be made */
		jr_listener_stop(s);
		return jr_listen_failed(L, err);
	}
	lua_pushvalue(L, 3);
	s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	jr_loop_changed(loop);
	return 1;
}

static int l_port(lua_State *L)
{
	lua_pushinteger(L, jr_check_listener(L, 1)->port);
	return 1;
}

/* listener:close(): stop listening; lws closes sessions still open. The
 * Lua side closes its sessions politely first. */
static int l_listener_close(lua_State *L)
{
	jr_listener *s = jr_check_listener(L, 1);

	if (s->loop->in_hook)
		return luaL_error(L, "close: not inside an authorize hook");
	if (s->closed)
		return 0;
	luaL_unref(L, LUA_REGISTRYINDEX, s->self_ref);
	s->self_ref = LUA_NOREF;
	if (s->vh)
		jr_listener_stop(s);
	s->closed = 1;
	return 0;
}

/* listener:gone(): lws has let go of the port (no vhost left on it) */
static int l_gone(lua_State *L)
{
	lua_pushboolean(L, !jr_check_listener(L, 1)->owners.lws);
	return 1;
}

/* adopt(conn, owner): events of an accepted session go to owner now. */
static int l_adopt(lua_State *L)
{
	luaL_checkudata(L, 1, JR_CONN_MT);
	luaL_checkany(L, 2);
	lua_settop(L, 2);
	lua_setiuservalue(L, 1, 1);
	return 0;
}

static int l_listener_gc(lua_State *L)
{
	jr_listener *s = jr_take_pointer(L, 1, JR_LISTENER_MT);

	if (!s)
		return 0;
	if (!s->closed && s->vh && s->loop && !s->loop->destroying &&
	    !s->loop->in_hook)
		jr_listener_stop(s);
	/* Only now: while the userdata holds s, finalize leaves s to us. */
	if (jr_let_go(&s->owners, &s->owners.lua))
		jr_listener_free(s);
	return 0;
}

static int l_listener_tostring(lua_State *L)
{
	jr_listener **ps = luaL_checkudata(L, 1, JR_LISTENER_MT);
	jr_listener *s = *ps;
	lua_pushfstring(L, "jsonrpc_websocket.listener (%s, port %d)",
			!s ? "collected" : s->closed ? "closed" : "listening",
			s ? s->port : 0);
	return 1;
}

const luaL_Reg jr_listener_functions[] = {
	{"listen", l_listen},
	{"adopt", l_adopt},
	{NULL, NULL}
};

static const luaL_Reg jr_listener_methods[] = {
	{"port", l_port},
	{"gone", l_gone},
	{"close", l_listener_close},
	{NULL, NULL}
};

void jr_listener_open(lua_State *L)
{
	jr_new_class(L, JR_LISTENER_MT, jr_listener_methods, NULL,
		     l_listener_gc, l_listener_tostring);
}
