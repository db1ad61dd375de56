#!/usr/bin/python3
"""Hostile websocket peers for spec/abuse_spec.lua, on raw sockets (the
websockets library would not misbehave for us).

    hostile.py server [--rcvbuf N]
        Listens on 127.0.0.1 (ephemeral port), prints "PORT <p> PID <pid>",
        answers one websocket handshake per connection with 101 and then
        never reads again (the kernel buffer, made small with --rcvbuf,
        fills and TCP stops the sender).

    hostile.py client PORT [--rcvbuf N] [--send FILE] [--read] [--path P]
        Prints "PID <pid>", connects to our listener on 127.0.0.1:PORT,
        prints the handshake's status line ("STATUS 101"), then sends
        each line of FILE as one masked text frame, all at once (pipelined
        requests, a giant batch...), and prints "SENT <n>". Then, without
        --read, it never reads again; with --read it prints each text
        frame it receives as "RECV <text>" (with --lengths: "RECV_LEN
        <bytes>") and a close frame as "CLOSE <code>", until the
        connection ends ("END").

    hostile.py clients PORT N [--rcvbuf N]
        Prints "PID <pid>", opens N websocket connections, prints "OPEN <n>"
        once all have their 101, and never reads from any of them.

    hostile.py liar PORT DECLARED
        Connects, sends a text frame header declaring DECLARED bytes of
        payload followed by a few bytes, then reads: prints "CLOSE <code>"
        for the close frame it gets and "END" when the connection ends.

Every mode exits when its parent process (or the one --watch PID names)
goes away, or after --lifetime seconds (default 60).
"""
import base64
import hashlib
import os
import socket
import struct
import sys
import threading
import time

LIFETIME = 60.0


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def watch_parent():
    """Exits when the parent (or the process --watch names) is gone."""
    watched = int(option("--watch", "0"))
    parent = os.getppid()
    deadline = time.time() + float(option("--lifetime", LIFETIME))
    while time.time() < deadline and (
            alive(watched) if watched else os.getppid() == parent):
        time.sleep(0.2)
    os._exit(0)


def say(*words):
    print(*words, flush=True)


def option(name, default=None):
    if name in sys.argv:
        return sys.argv[sys.argv.index(name) + 1]
    return default


def frame(payload, opcode=1, declared=None):
    """A masked client frame (FIN set); `declared` overrides the length."""
    n = len(payload) if declared is None else declared
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    key = os.urandom(4)
    n = len(payload)
    keys = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(keys, "big")).to_bytes(n, "big")
    return head + key + masked


def connect(port, rcvbuf=None, path="/", quiet=False):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                 .encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: nothing after the headers is taken
        if not chunk:
            break
        head += chunk
    status = head.split(b" ", 2)[1].decode() if b" " in head else "none"
    if not quiet:
        say("STATUS", status)
    return sock


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def read_frames(sock):
    """Prints what the server sends until the connection ends."""
    try:
        message = b""
        while True:
            b0, b1 = read_exact(sock, 2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", read_exact(sock, 2))[0]
            elif n == 127:
                n = struct.unpack("!Q", read_exact(sock, 8))[0]
            payload = read_exact(sock, n)
            opcode = b0 & 0x0F
            if opcode == 8:
                code = struct.unpack("!H", payload[:2])[0] if n >= 2 else 1005
                say("CLOSE", code)
                break
            if opcode in (0, 1, 2):
                message += payload
                if b0 & 0x80:
                    if "--lengths" in sys.argv:
                        say("RECV_LEN", len(message))
                    else:
                        say("RECV", message.decode(errors="replace"))
                    message = b""
    except (EOFError, ConnectionError):
        pass
    say("END")


def serve(rcvbuf):
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if rcvbuf:
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    say("PORT", lsock.getsockname()[1], "PID", os.getpid())
    held = []
    while True:
        conn, _ = lsock.accept()
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(1)
            if not chunk:
                break
            request += chunk
        key = b""
        for line in request.split(b"\r\n"):
            if line.lower().startswith(b"sec-websocket-key:"):
                key = line.split(b":", 1)[1].strip()
        accept = base64.b64encode(hashlib.sha1(
            key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()).decode()
        conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n")
                     .encode())
        held.append(conn)  # never read again


def main():
    threading.Thread(target=watch_parent, daemon=True).start()
    mode = sys.argv[1]
    rcvbuf = int(option("--rcvbuf", "0"))
    if mode == "server":
        serve(rcvbuf)
        return
    say("PID", os.getpid())
    port = int(sys.argv[2])
    if mode == "clients":
        held = [connect(port, rcvbuf, quiet=True) for _ in range(int(sys.argv[3]))]
        say("OPEN", len(held))
        time.sleep(1e9)  # until watch_parent ends it
        return
    if mode == "liar":
        sock = connect(port)
        sock.sendall(frame(b'{"jsonrpc":"2.0"', declared=int(sys.argv[3])))
        read_frames(sock)
        return
    sock = connect(port, rcvbuf, option("--path", "/"))
    sent = 0
    source = option("--send")
    if source:
        with open(source, "rb") as f:
            lines = [line.rstrip(b"\n") for line in f if line.strip()]
        sock.sendall(b"".join(frame(line) for line in lines))
        sent = len(lines)
    say("SENT", sent)
    if "--read" in sys.argv:
        read_frames(sock)
        return
    time.sleep(1e9)


if __name__ == "__main__":
    main()
