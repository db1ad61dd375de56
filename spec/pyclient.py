#!/usr/bin/python3
"""An independent websocket client (Python websockets 10.4) for the specs.

    /usr/bin/python3 spec/pyclient.py URL [--header NAME:VALUE]...
        [--subprotocol P]... [--expect N] [--wait S] [--binary-hex HEX]...
        [FRAME]...

Connects, sends each FRAME as a text message, then prints every message it
receives as ``RECV <text>`` until N messages that are not requests have
arrived (or --wait seconds passed), and closes with 1000. Requests from the
server (objects with "method" and "id") are answered at once with
``{"result": {"py": [method, params]}}`` and printed as ``ASKED <text>``.
Prints ``SUBPROTOCOL <p>`` after the handshake, ``STATUS <code>`` if the
server refused it, ``CLOSED <code>`` if the server closed first.
wss:// URLs are accepted without verifying the certificate.
"""
import argparse
import asyncio
import json
import ssl
import sys

import websockets


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("frames", nargs="*")
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--subprotocol", action="append", default=None)
    ap.add_argument("--expect", type=int, default=0)
    ap.add_argument("--wait", type=float, default=5.0)
    ap.add_argument("--binary-hex", action="append", default=[],
                    help="a binary message (hex), sent before the FRAMEs")
    args = ap.parse_intermixed_args()
    headers = [tuple(h.split(":", 1)) for h in args.header]
    tls = None
    if args.url.startswith("wss:"):  # the specs' self-signed certificate
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    try:
        ws = await websockets.connect(args.url, extra_headers=headers, ssl=tls,
                                      subprotocols=args.subprotocol,
                                      max_size=None)
    except websockets.exceptions.InvalidStatusCode as exc:
        print("STATUS", exc.status_code, flush=True)
        return
    print("SUBPROTOCOL", ws.subprotocol, flush=True)
    for frame in args.binary_hex:
        await ws.send(bytes.fromhex(frame))
    for frame in args.frames:
        await ws.send(frame)
    got = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.wait
    try:
        while got < args.expect:
            left = deadline - loop.time()
            if left <= 0:
                break
            text = await asyncio.wait_for(ws.recv(), left)
            try:
                msg = json.loads(text)
            except ValueError:
                msg = None
            if isinstance(msg, dict) and "method" in msg and "id" in msg:
                print("ASKED", text, flush=True)
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": msg["id"],
                    "result": {"py": [msg["method"], msg.get("params")]}}))
                continue
            print("RECV", text, flush=True)
            got += 1
    except asyncio.TimeoutError:
        pass
    except websockets.exceptions.ConnectionClosed as exc:
        print("CLOSED", exc.code, flush=True)
        return
    await ws.close(1000)


asyncio.run(main())
