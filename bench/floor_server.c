/*
 * floor_server: the server bench's C floor (issue 16), libwebsockets and
 * jansson used the ordinary way.
 *
 *   floor_server PORT      (0: an ephemeral port; prints "PORT n")
 *   FLOOR_KEEPALIVE=K      ping a connection K s after its last pong, hang
 *                          up after 2K + 1 s, as our listener's keepalive
 *                          does (default: libwebsockets' 300 / 310 s)
 *
 * Listens on 127.0.0.1 only and answers JSON-RPC 2.0:
 *   add(a, b)   a + b, positional params (integers stay integers; an
 *               integer sum that overflows, or any real, is a real)
 * Each message is parsed with json_loadb and checked to be a request; each
 * answer is built with json_pack and serialised with json_dumpb. Bad input
 * gets the JSON-RPC errors (-32700 Parse error, -32600 Invalid Request,
 * -32601 Method not found, -32602 Invalid params; the id echoed when
 * there is a valid one), notifications get no answer, and a batch gets
 * an array of answers in one message.
 *
 * Sending is what a C programmer writes from the libwebsockets manual: a
 * per-session FIFO of answers, and from SERVER_WRITEABLE one
 * lws_write(LWS_WRITE_TEXT) for the answer at its head, asking for the
 * next WRITEABLE while the FIFO is not empty. So one send() per answer,
 * where ref_server.c (the hand-tuned program, no JSON library) gathers
 * the waiting answers into one send(). Runs until SIGINT or SIGTERM.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common.h"

struct session {
	struct lws *wsi;
	struct bench_rx rx;
	struct bench_outq answers; /* serialised, waiting to be written */
};

static struct {
	char *text; /* json_dumpb's output, reused from answer to answer */
	size_t cap;
} scratch;

/* ---- the FIFO of answers ------------------------------------------------- */

/* SERVER_WRITEABLE: one answer, one lws_write. */
static int write_next_answer(struct session *s)
{
	struct bench_msg *a = s->answers.head;

	if (!a)
		return 0;
	if (lws_write(s->wsi, a->buf + LWS_PRE, a->len, LWS_WRITE_TEXT) <
	    (int)a->len)
		return -1;
	bench_outq_drop_head(&s->answers);
	if (s->answers.head)
		lws_callback_on_writable(s->wsi);
	return 0;
}

/* Serialises the answer (and drops it) onto the session's FIFO. */
static void send_answer(struct session *s, json_t *answer)
{
	size_t n = json_dumpb(answer, scratch.text, scratch.cap, JSON_COMPACT);

	if (n > scratch.cap) { /* too big for the scratch buffer: grow it */
		char *grown = realloc(scratch.text, n);
		if (grown) {
			scratch.text = grown;
			scratch.cap = n;
			n = json_dumpb(answer, scratch.text, scratch.cap,
				       JSON_COMPACT);
		} else {
			n = 0;
		}
	}
	json_decref(answer);
	if (n && n <= scratch.cap &&
	    bench_outq_push(&s->answers, scratch.text, n) == 0)
		lws_callback_on_writable(s->wsi);
}

/* ---- JSON-RPC ------------------------------------------------------------- */

/* An id as the spec allows it: a string, a number or null. */
static int id_valid(const json_t *id)
{
	return json_is_string(id) || json_is_number(id) || json_is_null(id);
}

static json_t *error_answer(const json_t *id, int code, const char *message)
{
	return json_pack("{s:s, s:{s:i, s:s}, s:O}", "jsonrpc", "2.0", "error",
			 "code", code, "message", message, "id",
			 id && id_valid(id) ? id : json_null());
}

/* add(a, b): the sum, or NULL for invalid params. */
static json_t *method_add(const json_t *params)
{
	json_t *a = json_array_get(params, 0), *b = json_array_get(params, 1);
	json_int_t sum;
	double real;

	if (!json_is_array(params) || json_array_size(params) != 2 ||
	    !json_is_number(a) || !json_is_number(b))
		return NULL;
	if (json_is_integer(a) && json_is_integer(b) &&
	    !__builtin_add_overflow(json_integer_value(a),
				    json_integer_value(b), &sum))
		return json_integer(sum);
	real = json_number_value(a) + json_number_value(b);
	return isfinite(real) ? json_real(real) : NULL; /* JSON has no inf */
}

/* One request (alone or in a batch): its answer, or NULL for a
 * notification. */
static json_t *handle_request(const json_t *req)
{
	const json_t *id = json_object_get(req, "id");
	const json_t *method = json_object_get(req, "method");
	const json_t *params = json_object_get(req, "params");
	const char *version = json_string_value(json_object_get(req, "jsonrpc"));
	json_t *result;

	if (!json_is_object(req) || !version || strcmp(version, "2.0") ||
	    !json_is_string(method) || (id && !id_valid(id)) ||
	    (params && !json_is_array(params) && !json_is_object(params)))
		return error_answer(id, -32600, "Invalid Request");
	if (strcmp(json_string_value(method), "add"))
		return id ? error_answer(id, -32601, "Method not found") : NULL;
	result = method_add(params);
	if (!id) {
		json_decref(result);
		return NULL;
	}
	if (!result)
		return error_answer(id, -32602, "Invalid params");
	return json_pack("{s:s, s:o, s:O}", "jsonrpc", "2.0", "result", result,
			 "id", id);
}

/* A batch: the answers of its requests in one array, none when all were
 * notifications; an empty batch is an Invalid Request. */
static json_t *handle_batch(const json_t *batch)
{
	json_t *answers, *req, *a;
	size_t i;

	if (!json_array_size(batch))
		return error_answer(NULL, -32600, "Invalid Request");
	if (!(answers = json_array()))
		return NULL;
	json_array_foreach(batch, i, req) {
		if ((a = handle_request(req)))
			json_array_append_new(answers, a);
	}
	if (!json_array_size(answers)) {
		json_decref(answers);
		return NULL;
	}
	return answers;
}

static void handle_message(struct session *s, const char *text, size_t len)
{
	json_error_t err;
	json_t *msg = json_loadb(text, len, JSON_DECODE_ANY, &err), *answer;

	if (!msg)
		answer = error_answer(NULL, -32700, "Parse error");
	else if (json_is_array(msg))
		answer = handle_batch(msg);
	else
		answer = handle_request(msg);
	json_decref(msg);
	if (answer)
		send_answer(s, answer);
}

/* ---- libwebsockets ---------------------------------------------------------- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
		    void *user, void *in, size_t len)
{
	struct session *s = user;
	int whole;

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		memset(s, 0, sizeof *s);
		s->wsi = wsi;
		bench_outq_init(&s->answers);
		return 0;
	case LWS_CALLBACK_RECEIVE:
		if ((whole = bench_rx_add(&s->rx, wsi, in, len)) > 0)
			handle_message(s, s->rx.buf, s->rx.len);
		return whole < 0 ? -1 : 0;
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return write_next_answer(s);
	case LWS_CALLBACK_CLOSED:
		bench_outq_free(&s->answers);
		bench_rx_free(&s->rx);
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

/* protocols[0]: clients that ask for no subprotocol are bound to it.
 * Buffer sizes are libwebsockets' defaults. */
static const struct lws_protocols protocols[] = {
	{ "floor-jsonrpc", callback, sizeof(struct session), 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

/* The keepalive of our listener (src/server.c), for comparisons. */
static lws_retry_bo_t keepalive;

int main(int argc, char **argv)
{
	const char *ka = getenv("FLOOR_KEEPALIVE");
	struct lws_context_creation_info ci;
	struct lws_context *cx;

	memset(&ci, 0, sizeof ci);
	ci.port = argc > 1 ? atoi(argv[1]) : 0;
	ci.protocols = protocols;
	if (ka && atoi(ka) > 0 && atoi(ka) <= 30000) {
		keepalive.secs_since_valid_ping = (uint16_t)atoi(ka);
		keepalive.secs_since_valid_hangup = (uint16_t)(2 * atoi(ka) + 1);
		ci.retry_and_idle_policy = &keepalive;
	}
	if (!(cx = bench_server_start(&ci, "floor_server")))
		return 1;
	bench_server_run(cx);
	free(scratch.text);
	return 0;
}
