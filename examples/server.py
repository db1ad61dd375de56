#!/usr/bin/python3
"""A tiny JSON-RPC 2.0 websocket server for `make demo` (Python websockets).

    /usr/bin/python3 examples/server.py [port]

Answers add(a, b), greet{name=...}, app.users.getUsers() and slow(seconds, x);
prints "PORT <n>" once listening, and exits when its parent does.
"""
import asyncio
import json
import os
import sys

import websockets

USERS = [{"id": 1, "name": "ada"}, {"id": 2, "name": "grace"}]


async def slow(seconds, x):
    await asyncio.sleep(seconds)
    return x


METHODS = {
    "add": lambda a, b: a + b,
    "greet": lambda name: f"hello, {name}",
    "app.users.getUsers": lambda: USERS,
    "slow": slow,
}


async def answer(ws, request):
    fn = METHODS.get(request.get("method"))
    if fn is None:
        reply = {"error": {"code": -32601, "message": "Method not found"}}
    else:
        params = request.get("params", [])
        try:
            result = fn(**params) if isinstance(params, dict) else fn(*params)
            if asyncio.iscoroutine(result):
                result = await result
            reply = {"result": result}
        except TypeError as exc:
            reply = {"error": {"code": -32602, "message": "Invalid params", "data": str(exc)}}
    if "id" in request:
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], **reply}))


async def serve(ws, path=None):
    async for message in ws:
        asyncio.create_task(answer(ws, json.loads(message)))


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    parent = os.getppid()
    async with websockets.serve(serve, "127.0.0.1", port) as server:
        print("PORT", server.sockets[0].getsockname()[1], flush=True)
        while os.getppid() == parent:
            await asyncio.sleep(0.5)


asyncio.run(main())
