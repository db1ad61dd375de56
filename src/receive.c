/*
 * The receive side of a connection and the lws callback for every wsi of
 * ours (client connections and sessions): messages reassembled into
 * "message" events, proof of life for keepalive.c, the peer's close, the
 * end ("closed").
 * Callbacks record state and queue events; they never call Lua.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"

#define JR_TOO_LARGE "message too large"

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

/* Returning -1 from RECEIVE with more data buffered crashes lws 4.1.6
 * (seen with a 100 MB message), so a close always goes via WRITEABLE. */
static int jr_receive(struct lws *wsi, jr_conn *c, const void *in, size_t len)
{
	int rc;

	/* data proves the peer alive as well as a pong: no ping when busy */
	jr_keepalive_alive(c);
	rc = jr_conn_rx(c, in, len, lws_is_first_fragment(wsi),
			lws_is_final_fragment(wsi), lws_frame_is_binary(wsi),
			lws_remaining_packet_payload(wsi));
	if (rc > 0)
		lws_callback_on_writable(wsi);
	return rc < 0 ? -1 : 0;
}

static void jr_peer_closed(jr_conn *c, const unsigned char *in, size_t len)
{
	c->peer_closed = 1;
	if (len >= 2) {
		c->end_code = (in[0] << 8) | in[1];
		jr_set_text(&c->end_reason, JR_REASON_SIZE, in + 2, len - 2);
	} else {
		c->end_code = LWS_CLOSE_STATUS_NO_STATUS;
	}
}

static void jr_destroyed(struct lws *wsi, jr_conn *c)
{
	lws_set_opaque_user_data(wsi, NULL);
	c->wsi = NULL;
	jr_keepalive_stop(c);
	lws_sul_cancel(&c->stall);
	jr_note_unsent(c);
	jr_free_out(c);
	/* no userdata: the Lua state is closing, or Lua never saw the session */
	if (jr_let_go(&c->owners, &c->owners.lws)) {
		jr_conn_free(c);
		return;
	}
	if (c->loop && !jr_loop_push(c->loop, c, JR_EV_CLOSED, NULL, 0, 0))
		jr_loop_closed(c->loop);
}

/* The subprotocol the server chose, if any. */
static void jr_client_subprotocol(struct lws *wsi, jr_conn *c)
{
	char name[JR_SUBPROTOCOL_SIZE];
	int n = lws_hdr_copy(wsi, name, sizeof name, WSI_TOKEN_PROTOCOL);

	jr_set_text(&c->subprotocol, sizeof name, name, n > 0 ? (size_t)n : 0);
}

static void jr_established(struct lws *wsi, jr_conn *c)
{
	c->established = 1;
	jr_keepalive_start(c, c->ka_ping, c->ka_hangup);
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
		jr_client_subprotocol(wsi, c);
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
	case LWS_CALLBACK_RECEIVE_PONG: /* server side */
		jr_keepalive_alive(c);
		return 0;
	case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
		return jr_cert_verify(c, user, (int)len);
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
		if (!c->established && !c->failure && c->secure)
			jr_tls_dropped(c); /* how it shows on a libuv loop */
		if (!c->established && !c->failure)
			jr_set_text(&c->failure, JR_FAILURE_SIZE,
				    "no handshake response", 21);
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		jr_destroyed(wsi, c);
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}
