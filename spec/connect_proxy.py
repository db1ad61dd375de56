#!/usr/bin/python3
"""A small HTTP CONNECT proxy used as a test fixture.

    /usr/bin/python3 spec/connect_proxy.py --log FILE [--deny] [--port N]

Listens on 127.0.0.1 (port N, default an ephemeral one), prints ``PORT <port> PID <pid>``,
and tunnels each ``CONNECT host:port`` to its target, appending one line
``CONNECT host:port`` to FILE per tunnel (flushed at once), so a spec can
tell that it was used. With ``--deny`` it answers every CONNECT with 403.
It exits when its parent goes away or on SIGTERM.
"""

import argparse
import asyncio
import os
import signal

PARENT_POLL_INTERVAL = 0.5


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def handle(reader, writer, args):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        writer.close()
        return
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
    if len(parts) < 2 or parts[0] != "CONNECT":
        writer.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
        writer.close()
        return
    target = parts[1]
    with open(args.log, "a") as log:
        log.write(f"CONNECT {target}\n")
    if args.deny:
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()
        return
    host, _, port = target.rpartition(":")
    try:
        up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
    except OSError:
        writer.write(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
        writer.close()
        return
    writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", required=True)
    parser.add_argument("--deny", action="store_true")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    parent = os.getppid()
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, args), "127.0.0.1", args.port)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port} PID {os.getpid()}", flush=True)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(None))
    while os.getppid() == parent and not stop.done():
        await asyncio.wait([stop], timeout=PARENT_POLL_INTERVAL)
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
