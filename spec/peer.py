#!/usr/bin/python3
"""Scripted JSON-RPC 2.0 websocket peer used as a test fixture.

Run with the system interpreter (it needs python3-websockets 10.4):

    /usr/bin/python3 spec/peer.py [--port N] [--host H] [--lifetime S] [--compress]
                                  [--tls CERT KEY [--client-ca CA]]

``--tls`` serves wss:// with that certificate chain and key; ``--client-ca``
also requires a client certificate signed by CA.

It listens (default 127.0.0.1, ephemeral port), prints exactly one line
``PORT <port> PID <pid>`` to stdout and then stays silent.  It exits when its
parent process goes away, after ``--lifetime`` seconds (default 600), on
SIGTERM/SIGINT, or when a client calls ``die``.

Handshake paths (any other path is accepted as a plain websocket):

    /status/NNN       reject the upgrade with HTTP status NNN
    /auth             require "Authorization: Basic dXNlcjpwYXNz" (user:pass), else 401
    /hang-handshake   accept TCP, never answer the HTTP upgrade request

Subprotocols "jsonrpc" and "jsonrpc2" are supported: the first one offered by
the client that matches is selected; otherwise no subprotocol is negotiated.

Every message (text or binary) is recorded per connection before being
processed.  Requests run concurrently, each in its own task, so answers go out
as soon as each one finishes.  Notifications are only recorded, never run.
Responses (objects with "result"/"error" and an "id") complete pending
``call_client`` requests.  See the ``rpc_*`` functions for the methods.
"""

import argparse
import asyncio
import http
import inspect
import json
import os
import signal
import ssl
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import websockets
from websockets.frames import Opcode
from websockets.legacy.server import WebSocketServerProtocol

SUBPROTOCOLS = ["jsonrpc", "jsonrpc2"]
AUTHORIZATION = "Basic dXNlcjpwYXNz"  # user:pass
CALL_CLIENT_TIMEOUT = 30.0
PARENT_POLL_INTERVAL = 0.5
FIRST_PEER_ID = 1000

PARSE_ERROR = {"code": -32700, "message": "Parse error"}
INVALID_REQUEST = {"code": -32600, "message": "Invalid Request"}
METHOD_NOT_FOUND = {"code": -32601, "message": "Method not found"}
INVALID_PARAMS = {"code": -32602, "message": "Invalid params"}
INTERNAL_ERROR = {"code": -32603, "message": "Internal error"}

UNSET = object()  # marks an absent optional member
NO_ANSWER = object()  # returned by methods that must not be answered


# --------------------------------------------------------------------------
# JSON helpers


def reject_constant(name):
    """Refuse the non-standard NaN/Infinity literals Python would accept."""
    raise ValueError(f"invalid JSON constant {name}")


def parse_json(text):
    return json.loads(text, parse_constant=reject_constant)


def dump_json(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def id_key(value):
    """Hashable key for a JSON-RPC id (1000 and 1000.0 are the same id)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return dump_json(value)


def error_object(code, message, data=UNSET):
    error = {"code": code, "message": message}
    if data is not UNSET:
        error["data"] = data
    return error


def is_response(message):
    return (
        isinstance(message, dict)
        and "id" in message
        and "method" not in message
        and ("result" in message or "error" in message)
    )


def is_call(message):
    return isinstance(message, dict) and isinstance(message.get("method"), str)


def split_params(request):
    """Positional args for an array, keyword args for an object."""
    params = request.get("params")
    if params is None:
        return [], {}
    if isinstance(params, list):
        return params, {}
    if isinstance(params, dict):
        return [], params
    return [params], {}  # non-standard scalar params: one positional arg


# --------------------------------------------------------------------------
# Method outcomes


@dataclass
class Answer:
    """How to answer a request: a result or an error, and how to frame it."""

    result: Any = None
    error: Any = UNSET
    binary: bool = False
    chunk: int = 0  # > 0: send as a fragmented message, chunk chars per frame

    def body(self, request_id):
        body = {"jsonrpc": "2.0", "id": request_id}
        if self.error is UNSET:
            body["result"] = self.result
        else:
            body["error"] = self.error
        return body


@dataclass
class Context:
    """What a method can see: its connection, request and raw message."""

    conn: "Connection"
    raw: str  # exact text of the message (the whole batch for batch items)
    index: int  # position of that message in conn.records
    request: dict


# --------------------------------------------------------------------------
# Methods: rpc_<name>(ctx, *params).  Return a plain value (the result), an
# Answer, or NO_ANSWER.


async def rpc_add(ctx, a, b):
    return a + b


async def rpc_echo(ctx, *args, **kwargs):
    return ctx.request.get("params", "<no params>")


async def rpc_raw_request(ctx):
    return ctx.raw


async def rpc_received(ctx):
    return ctx.conn.records[: ctx.index]


async def rpc_count(ctx):
    return ctx.index + 1


async def rpc_headers(ctx):
    ws = ctx.conn.ws
    headers = {}
    for name, value in ws.request_headers.raw_items():
        name = name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return {"headers": headers, "path": ws.path, "subprotocol": ws.subprotocol}


async def rpc_sleep(ctx, seconds, value=None):
    await asyncio.sleep(seconds)
    return value


async def rpc_never(ctx):
    await asyncio.get_running_loop().create_future()


async def rpc_close(ctx, code=1000, reason=""):
    await ctx.conn.ws.close(code, reason)
    return NO_ANSWER


async def rpc_drop(ctx):
    ctx.conn.ws.transport.abort()
    return NO_ANSWER


async def rpc_die(ctx):
    os._exit(3)


async def rpc_big(ctx, n):
    return "x" * n


async def rpc_fragmented(ctx, value, chunk):
    return Answer(value, chunk=max(1, int(chunk)))


async def rpc_binary(ctx, value):
    return Answer(value, binary=True)


async def rpc_error(ctx, code, message, data=UNSET):
    return Answer(error=error_object(code, message, data))


async def rpc_error_string(ctx, s):
    return Answer(error=s)


async def rpc_null_result(ctx):
    return None


async def rpc_notify(ctx, method, params=None):
    notification = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        notification["params"] = params
    await ctx.conn.send_json(notification)
    return True


async def rpc_send_raw(ctx, text, binary=False):
    await ctx.conn.send_text(text, binary=binary)
    return True


async def rpc_send_raw_then_answer(ctx, text, value):
    await ctx.conn.send_text(text)
    return value


async def rpc_call_client(ctx, method, params=None, id=None):
    return await ctx.conn.call_client(method, params, id)


async def rpc_freeze(ctx, seconds):
    """Stop reading this connection (pings go unanswered) for a while."""
    transport = ctx.conn.ws.transport
    transport.pause_reading()
    await asyncio.sleep(seconds)
    transport.resume_reading()
    return True


async def rpc_wire_bytes(ctx):
    """Bytes received on this connection's socket so far (after TLS)."""
    return ctx.conn.ws.bytes_in


async def rpc_len(ctx, s):
    return len(s)


async def rpc_reply_with_id(ctx, id, value):
    await ctx.conn.send_json({"jsonrpc": "2.0", "id": id, "result": value})
    return True


async def rpc_send_hex(ctx, hex_bytes, text=False):
    """Send raw bytes (hex) as a binary frame, or as a TEXT frame even when
    they are not valid UTF-8 (to test how the client copes)."""
    data = bytes.fromhex(hex_bytes)
    if text:
        await ctx.conn.ws.write_frame(True, Opcode.TEXT, data)
    else:
        await ctx.conn.ws.send(data)
    return True


async def rpc_power(ctx, base, exp):
    """base ** exp as an exact integer (to test integer fidelity)."""
    return int(base) ** int(exp)


async def rpc_reverse_batches(ctx):
    """From now on, answer every batch with its answers in reverse order."""
    ctx.conn.reverse_batches = True
    return True


async def rpc_refuse_batches(ctx):
    """From now on, answer every batch with one error object (id null)."""
    ctx.conn.refuse_batches = True
    return True


# How earlier connections ended, oldest first: [code, reason] as the peer
# saw them (1006 when no close frame arrived).
CLOSED_CONNECTIONS = []


async def rpc_closes(ctx):
    return CLOSED_CONNECTIONS


METHODS = {
    name[len("rpc_"):]: fn for name, fn in globals().items() if name.startswith("rpc_")
}


async def run_method(ctx):
    """Run the method named by ctx.request; return an Answer or NO_ANSWER."""
    fn = METHODS.get(ctx.request["method"])
    if fn is None:
        return Answer(error=METHOD_NOT_FOUND)
    args, kwargs = split_params(ctx.request)
    try:
        inspect.signature(fn).bind(ctx, *args, **kwargs)
    except TypeError as exc:
        return Answer(error={**INVALID_PARAMS, "data": str(exc)})
    try:
        outcome = await fn(ctx, *args, **kwargs)
    except websockets.ConnectionClosed:
        return NO_ANSWER
    except Exception as exc:  # a bad argument type, typically
        return Answer(error={**INTERNAL_ERROR, "data": repr(exc)})
    if outcome is NO_ANSWER or isinstance(outcome, Answer):
        return outcome
    return Answer(outcome)


# --------------------------------------------------------------------------
# Connections


class Connection:
    """State of one websocket connection: records, tasks, pending calls."""

    def __init__(self, ws):
        self.ws = ws
        self.records = []
        self.tasks = set()
        self.waiters = {}  # id_key -> Future for call_client
        self.next_id = FIRST_PEER_ID
        self.refuse_batches = False  # answer batches with one error object
        self.reverse_batches = False  # answer batches last answer first

    async def serve(self):
        try:
            async for message in self.ws:
                self.record(message)
                self.spawn(self.handle(message, len(self.records) - 1))
        except websockets.ConnectionClosed:
            pass
        finally:
            for task in list(self.tasks):
                task.cancel()

    def record(self, message):
        if isinstance(message, bytes):
            entry = {"type": "binary", "data": message.decode("utf-8", "replace")}
        else:
            entry = {"type": "text", "data": message}
        self.records.append(entry)

    def spawn(self, coro):
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def handle(self, message, index):
        text = self.records[index]["data"]
        try:
            data = parse_json(text)
        except ValueError:
            await self.send_json(Answer(error=PARSE_ERROR).body(None))
            return
        if isinstance(data, list):
            await self.handle_batch(text, index, data)
            return
        answer = await self.process(text, index, data)
        if answer is not None:
            await self.send_answer(*answer)

    async def handle_batch(self, text, index, items):
        if self.refuse_batches:
            await self.send_json(Answer(error=INVALID_REQUEST).body(None))
            return
        answers = await asyncio.gather(*(self.process(text, index, i) for i in items))
        bodies = [answer.body(request_id) for answer, request_id in filter(None, answers)]
        if self.reverse_batches:
            bodies.reverse()
        if bodies:
            await self.send_json(bodies)

    async def process(self, text, index, message):
        """Handle one message; return (Answer, id) to send, or None."""
        if is_response(message):
            self.deliver(message)
            return None
        if not is_call(message):
            return Answer(error=INVALID_REQUEST), None
        if "id" not in message:
            return None  # notification: recorded only
        answer = await run_method(Context(self, text, index, message))
        if answer is NO_ANSWER:
            return None
        return answer, message["id"]

    def deliver(self, response):
        waiter = self.waiters.pop(id_key(response["id"]), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    async def call_client(self, method, params, request_id):
        if request_id is None:
            request_id = self.next_id
            self.next_id += 1
        request = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            request["params"] = params
        key = id_key(request_id)
        waiter = self.waiters[key] = asyncio.get_running_loop().create_future()
        try:
            await self.send_json(request)
            return await asyncio.wait_for(waiter, CALL_CLIENT_TIMEOUT)
        except asyncio.TimeoutError:
            return Answer(error=error_object(-32000, "no reply"))
        finally:
            if self.waiters.get(key) is waiter:
                del self.waiters[key]

    async def send_answer(self, answer, request_id):
        text = dump_json(answer.body(request_id))
        await self.send_text(text, binary=answer.binary, chunk=answer.chunk)

    async def send_json(self, value):
        await self.send_text(dump_json(value))

    async def send_text(self, text, binary=False, chunk=0):
        if binary:
            payload = text.encode("utf-8")
        elif chunk > 0:
            payload = [text[i : i + chunk] for i in range(0, len(text), chunk)]
        else:
            payload = text
        try:
            await self.ws.send(payload)
        except websockets.ConnectionClosed:
            pass


async def handle_connection(ws):
    try:
        await Connection(ws).serve()
    finally:
        await ws.wait_closed()
        CLOSED_CONNECTIONS.append([ws.close_code, ws.close_reason])


# --------------------------------------------------------------------------
# Handshake


class CustomStatus(int):
    """Stand-in for http.HTTPStatus for codes the enum does not know."""

    phrase = "Custom Status"

    @property
    def value(self):
        return int(self)


def http_status(code):
    try:
        return http.HTTPStatus(code)
    except ValueError:
        return CustomStatus(code)


def http_response(code, headers=()):
    status = http_status(code)
    return status, list(headers), f"{int(status)} {status.phrase}\n".encode()


class PeerProtocol(WebSocketServerProtocol):
    """Server protocol with the special paths and subprotocol selection."""

    bytes_in = 0

    def data_received(self, data):
        self.bytes_in += len(data)
        super().data_received(data)

    async def process_request(self, path, request_headers):
        route = urlsplit(path).path
        if route == "/hang-handshake":
            await self.wait_closed()  # never answer; give up when the client does
            return None
        if route.startswith("/status/"):
            code = route[len("/status/"):]
            return http_response(int(code)) if code.isdigit() else http_response(400)
        if route == "/auth" and request_headers.get("Authorization") != AUTHORIZATION:
            return http_response(401, [("WWW-Authenticate", 'Basic realm="peer"')])
        return None

    def select_subprotocol(self, client_subprotocols, server_subprotocols):
        matches = (p for p in client_subprotocols if p in server_subprotocols)
        return next(matches, None)


# --------------------------------------------------------------------------
# Process lifetime


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--lifetime", type=float, default=600.0)
    parser.add_argument("--compress", action="store_true")
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--client-ca", metavar="CA")
    return parser.parse_args(argv)


def tls_context(args):
    if not args.tls:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*args.tls)
    if args.client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(args.client_ca)
    return context


async def watch_parent(parent, lifetime):
    """Return once the parent is gone or the lifetime is over."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + lifetime
    while os.getppid() == parent and loop.time() < deadline:
        await asyncio.sleep(PARENT_POLL_INTERVAL)


async def main(argv=None):
    parent = os.getppid()
    args = parse_args(argv)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: stop.done() or stop.set_result(None))

    server = await websockets.serve(
        handle_connection,
        args.host,
        args.port,
        create_protocol=PeerProtocol,
        subprotocols=SUBPROTOCOLS,
        compression="deflate" if args.compress else None,
        max_size=None,
        ping_interval=None,
        ssl=tls_context(args),
    )
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port} PID {os.getpid()}", flush=True)

    watchdog = asyncio.create_task(watch_parent(parent, args.lifetime))
    await asyncio.wait([stop, watchdog], return_when=asyncio.FIRST_COMPLETED)
    sys.stderr.flush()
    os._exit(0)  # exit at once: never linger on open connections


if __name__ == "__main__":
    asyncio.run(main())
