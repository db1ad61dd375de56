#!/usr/bin/python3
"""Sends every document of a JSONTestSuite checkout to our server, each as
one binary websocket message (so that bytes which are not UTF-8 arrive as
they are), and classifies what the server did with it.

    json_conformance.py URL SUITE_DIR

A document is *rejected* when the server answers it with a -32700 parse
error, else *accepted* (it was read as JSON; what JSON-RPC then makes of
it does not matter here). After each document a request with id "mark"
(a method nobody serves) comes back as -32601: then every answer to the
document has arrived. Prints the counts, the documents that went the wrong
way, and the outcome of each implementation-defined one.
"""
import asyncio
import json
import os
import sys

import websockets

MARK = json.dumps({"jsonrpc": "2.0", "id": "mark", "method": "conformance.mark"})


async def outcome(ws, data):
    await ws.send(data)
    await ws.send(MARK)
    rejected = False
    while True:
        reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if isinstance(reply, dict):
            if reply.get("id") == "mark":
                return "rejected" if rejected else "accepted"
            if (reply.get("error") or {}).get("code") == -32700:
                rejected = True


async def main():
    url, suite = sys.argv[1], sys.argv[2]
    folder = os.path.join(suite, "test_parsing")
    names = sorted(n for n in os.listdir(folder) if n.endswith(".json"))
    results = {}
    ws = await websockets.connect(url, max_size=None)
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            data = f.read()
        try:
            results[name] = await outcome(ws, data)
        except (websockets.exceptions.ConnectionClosed, asyncio.TimeoutError) as exc:
            results[name] = "connection lost: %r" % exc
            ws = await websockets.connect(url, max_size=None)
    await ws.close()

    def count(prefix, what):
        return sum(1 for n, r in results.items() if n.startswith(prefix) and r == what)

    def total(prefix):
        return sum(1 for n in results if n.startswith(prefix))

    print("y_ (must accept): %d of %d accepted" % (count("y_", "accepted"), total("y_")))
    print("n_ (must reject): %d of %d rejected" % (count("n_", "rejected"), total("n_")))
    print("i_ (either):      %d accepted, %d rejected" % (count("i_", "accepted"), count("i_", "rejected")))
    lost = [n for n, r in results.items() if r.startswith("connection")]
    print("connections lost: %d" % len(lost))
    for n in sorted(results):
        r = results[n]
        wrong = (n.startswith("y_") and r != "accepted") or (n.startswith("n_") and r != "rejected")
        if wrong or r.startswith("connection"):
            print("WRONG %s: %s" % (n, r))
    for n in sorted(results):
        if n.startswith("i_"):
            print("  %-50s %s" % (n, results[n]))
    bad = any(
        (n.startswith("y_") and r != "accepted") or (n.startswith("n_") and r != "rejected")
        or r.startswith("connection") for n, r in results.items())
    sys.exit(1 if bad else 0)


asyncio.run(main())
