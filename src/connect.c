/*
 * connect(owner, opts): a client websocket. Reads the options (address,
 * handshake headers, auth, TLS, keepalive), starts the connection on the
 * client vhost for its transport (vhost.c), and in the callback writes
 * the handshake headers, judges the server's certificate and tells, in
 * words, why a connect failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "conn.h"

int jr_append_headers(struct lws *wsi, jr_conn *c, void *in, size_t len)
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
	jr_set_text(&c->failure, JR_FAILURE_SIZE,
		    "handshake headers too large", 27);
	return -1;
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
		jr_set_textf(&c->failure, JR_FAILURE_SIZE,
			     "Unable to connect: %s", strerror(err));
}

/* A TLS server that wants a client certificate accepts the TLS 1.3
 * handshake, then drops the connection without a word. */
void jr_tls_dropped(jr_conn *c)
{
	jr_set_textf(&c->failure, JR_FAILURE_SIZE, "the server closed the TLS "
		     "connection (does it require a client certificate?)");
}

/* Whether lws's failure text `in` (len bytes, maybe unterminated) is s. */
static int jr_failure_is(const char *in, size_t len, const char *s)
{
	return in && strnlen(in, len) == strlen(s) && !memcmp(in, s, strlen(s));
}

void jr_connection_error(struct lws *wsi, jr_conn *c, const char *in,
				size_t len)
{
	if (!c->failure && !c->established)
		jr_connect_errno(wsi, c);
	/* lws says "read failed" ("closed before established" on a libuv
	 * loop) when a TLS server drops us (jr_tls_dropped) */
	if (!c->failure && c->secure &&
	    (jr_failure_is(in, len, "read failed") ||
	     jr_failure_is(in, len, "closed before established")))
		jr_tls_dropped(c);
	if (!c->failure)
		jr_set_text(&c->failure, JR_FAILURE_SIZE,
			    in ? in : "connection failed",
			    in ? strnlen(in, len) : 17);
	c->http_status = (int)lws_http_client_http_response(wsi);
}

/*
 * OpenSSL's verdict on each certificate of the server's chain. lws turns
 * a rejection into an unreadable CONNECTION_ERROR string, so the reason is
 * recorded here, in words. With tls.verify = false every error is
 * cleared (lws's ALLOW_* flags cover only some of them). Returns 0: lws
 * then keeps OpenSSL's verdict, or accepts when the error was cleared.
 */
int jr_cert_verify(jr_conn *c, void *x509_store_ctx, int preverify_ok)
{
	X509_STORE_CTX *x = x509_store_ctx;
	int err = X509_STORE_CTX_get_error(x);

	if (preverify_ok || err == X509_V_OK)
		return 0;
	if (c->insecure) {
		X509_STORE_CTX_set_error(x, X509_V_OK);
		return 0;
	}
	if (!c->failure)
		jr_set_textf(&c->failure, JR_FAILURE_SIZE,
			     "certificate verify failed: %s",
			     X509_verify_cert_error_string(err));
	return 0;
}

/* The client vhosts' protocol list (vhost.c makes them with it). */
static const struct lws_protocols jr_client_protocols[] = {
	{ "jsonrpc-websocket-client", jr_callback, 0, JR_FRAG, 0, NULL, JR_FRAG },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

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
		c->headers[2 * i - 1] = jr_dup(L, value);
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
 * without an answer (keepalive.c, from the handshake on); 0: never.
 * lws's own validity checks stay off (jr_no_validity).
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
	c->ka_ping = (unsigned short)ka;
	c->ka_hangup = (unsigned short)(2 * ka);
	ic->retry_and_idle_policy = &jr_no_validity;
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
	c->owners.lws = 1; /* lws sets c->wsi in the call (pwsi) */
	errno = 0;
	if (!lws_client_connect_via_info(&ic)) {
		/* lws reports a failed socket() as a failed lookup */
		int err = jr_out_of_descriptors();
		if (!c->failure && err)
			jr_set_textf(&c->failure, JR_FAILURE_SIZE,
				     "%s (raise ulimit -n)", strerror(err));
		/* lws may have destroyed the wsi already, queueing a closed
		 * event; the failure is told here instead, and the event
		 * must not outlive the owner reference dropped below */
		jr_loop_forget_conn(loop, c);
		luaL_unref(L, LUA_REGISTRYINDEX, c->self_ref);
		c->self_ref = LUA_NOREF;
		c->wsi = NULL;
		c->owners.lws = 0;
		luaL_pushfail(L);
		lua_pushstring(L, c->failure ? c->failure : "connect failed");
		return 2;
	}
	jr_loop_changed(loop);
	return 1;
}

const luaL_Reg jr_conn_functions[] = {
	{"connect", l_connect},
	{NULL, NULL}
};
