/*
 * Client vhosts: one per distinct transport configuration.
 *
 * libwebsockets keeps the client TLS settings (CA file, client certificate),
 * the websocket extensions and the HTTP proxy on the vhost, not on the
 * connection. So the loop keeps a small cache: a key string that spells out
 * the configuration, and the vhost made for it on first use. Vhosts live as
 * long as the context (lws frees them in lws_context_destroy).
 *
 * Cost: only a vhost with TLS builds an OpenSSL client SSL_CTX and loads
 * the system CA store (~20 ms, ~1 MB); plain ws:// vhosts never do.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jrws.h"

struct jr_vhost {
	jr_vhost *next;
	struct lws_vhost *vh;
	char name[24]; /* lws keeps a pointer to the vhost name */
	char key[];    /* the configuration, spelled out */
};

static const struct lws_extension jr_extensions[] = {
	{ "permessage-deflate", lws_extension_callback_pm_deflate,
	  "permessage-deflate; client_max_window_bits" },
	{ NULL, NULL, NULL }
};

static int jr_flag(lua_State *L, int opts, const char *key)
{
	int b;
	lua_getfield(L, opts, key);
	b = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return b;
}

static struct lws_vhost *jr_vhost_create(lua_State *L, jr_loop *loop,
					 jr_vhost *v, int opts,
					 const struct lws_protocols *protocols)
{
	struct lws_context_creation_info ci;
	int secure = jr_flag(L, opts, "secure");

	memset(&ci, 0, sizeof ci);
	ci.port = CONTEXT_PORT_NO_LISTEN;
	ci.vhost_name = v->name;
	ci.protocols = protocols;
	ci.options = LWS_SERVER_OPTION_JUST_USE_RAW_ORIGIN;
	ci.timeout_secs = JR_HANDSHAKE_TIMEOUT;
	ci.connect_timeout_secs = JR_HANDSHAKE_TIMEOUT;
	if (secure) {
		/* only now: this builds the client SSL_CTX (system CA store) */
		ci.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		ci.client_ssl_ca_filepath = jr_opt_string(L, opts, "ca_file");
		ci.client_ssl_cert_filepath = jr_opt_string(L, opts, "cert_file");
		ci.client_ssl_private_key_filepath = jr_opt_string(L, opts, "key_file");
	}
	if (jr_flag(L, opts, "compress"))
		ci.extensions = jr_extensions;
	/* Without an address lws falls back to $http_proxy, for every host
	 * ($no_proxy is ignored): only the proxy option may route through a
	 * proxy. An empty address (lws logs "needs to be ads:port") does. */
	ci.http_proxy_address = jr_opt_string(L, opts, "proxy");
	if (!ci.http_proxy_address && getenv("http_proxy"))
		ci.http_proxy_address = "";
	return lws_create_vhost(jr_loop_context(L, loop), &ci);
}

/* The configuration as one string: equal strings share a vhost. */
static void jr_vhost_key(lua_State *L, int opts, luaL_Buffer *b)
{
	static const char *const fields[] = {
		"ca_file", "cert_file", "key_file", "proxy", NULL
	};
	int i;

	luaL_buffinit(L, b);
	luaL_addstring(b, jr_flag(L, opts, "secure") ? "wss" : "ws");
	luaL_addstring(b, jr_flag(L, opts, "compress") ? " deflate" : " plain");
	for (i = 0; fields[i]; i++) {
		const char *s = jr_opt_string(L, opts, fields[i]);
		luaL_addchar(b, '\n');
		if (s) {
			luaL_addstring(b, fields[i]);
			luaL_addchar(b, '=');
			luaL_addstring(b, s);
		}
	}
	luaL_pushresult(b);
}

/*
 * The client vhost for the connect options at index opts, created on first
 * use, serving `protocols` (conn.c's, a list that ends with a zeroed entry
 * and lives as long as the process). Raises a Lua error when lws cannot make it (unreadable CA or
 * certificate files, mostly: lws has already loaded them by then).
 */
struct lws_vhost *jr_vhost_for(lua_State *L, jr_loop *loop, int opts,
			      const struct lws_protocols *protocols)
{
	luaL_Buffer b;
	const char *key;
	size_t klen;
	jr_vhost *v;

	opts = lua_absindex(L, opts);
	jr_vhost_key(L, opts, &b);
	key = lua_tolstring(L, -1, &klen);
	for (v = loop->vhosts; v; v = v->next)
		if (!strcmp(v->key, key)) {
			lua_pop(L, 1);
			return v->vh;
		}
	if (!(v = calloc(1, sizeof *v + klen + 1)))
		luaL_error(L, "jsonrpc_websocket: out of memory");
	memcpy(v->key, key, klen + 1);
	lua_pop(L, 1);
	snprintf(v->name, sizeof v->name, "jr-client-%u", ++loop->nvhosts);
	v->vh = jr_vhost_create(L, loop, v, opts, protocols);
	if (!v->vh) {
		free(v);
		return (struct lws_vhost *)(void *)(size_t)luaL_error(L,
			"cannot set up the client transport (%s): check the "
			"tls files and the proxy address",
			jr_flag(L, opts, "secure") ? "TLS" : "plain");
	}
	v->next = loop->vhosts;
	loop->vhosts = v;
	return v->vh;
}

/* After lws_context_destroy: the vhosts are gone, drop the cache. */
void jr_vhost_forget_all(jr_loop *loop)
{
	jr_vhost *v, *next;
	for (v = loop->vhosts; v; v = next) {
		next = v->next;
		free(v);
	}
	loop->vhosts = NULL;
}
