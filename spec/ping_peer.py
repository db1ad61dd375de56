#!/usr/bin/python3
"""A raw-socket websocket peer that counts the pings it gets (keepalive specs).

    ping_peer.py client HOST PORT MODE SECONDS   connects to a listener
    ping_peer.py server MODE SECONDS             prints "PORT n PID p", serves one client

MODE says what it does for SECONDS after the handshake:
    answer   reads everything, answers each ping with a pong
    mute     reads everything, never answers a ping (a dead peer that reads)
    busy     answers pings and sends a notification every 0.2 s
It prints "OPEN" after the handshake, "PING" for each ping, "CLOSE code" or
"EOF" when the other side ends, and last "PINGS n". Plain sockets, no
websocket library: nothing here answers a ping unless MODE says so.
"""
import base64
import hashlib
import os
import select
import socket
import struct
import sys
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
NOTE = b'{"jsonrpc":"2.0","method":"tick"}'


def frame(opcode, payload, masked):
    head = bytes([0x80 | opcode])
    n = len(payload)
    mbit = 0x80 if masked else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def parse(buf):
    """One whole frame from buf: (opcode, payload, rest) or None."""
    if len(buf) < 2:
        return None
    opcode, n, masked, at = buf[0] & 0x0F, buf[1] & 0x7F, buf[1] & 0x80, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, at = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, at = struct.unpack("!Q", buf[2:10])[0], 10
    key = buf[at:at + 4] if masked else None
    at += 4 if masked else 0
    if len(buf) < at + n:
        return None
    payload = buf[at:at + n]
    if key:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return opcode, payload, buf[at + n:]


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            sys.exit("EOF before the handshake")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head.decode(errors="replace"), rest


def connect(host, port):
    sock = socket.create_connection((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head, rest = read_head(sock)
    if " 101 " not in head.split("\r\n")[0]:
        sys.exit("refused: " + head.split("\r\n")[0])
    return sock, rest


def accept():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    print("PORT", srv.getsockname()[1], "PID", os.getpid(), flush=True)
    sock, _ = srv.accept()
    head, rest = read_head(sock)
    fields = {}
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    accept_key = base64.b64encode(hashlib.sha1(
        (fields["sec-websocket-key"] + GUID).encode()).digest()).decode()
    reply = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
             f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept_key}\r\n")
    if fields.get("sec-websocket-protocol"):
        reply += "Sec-WebSocket-Protocol: %s\r\n" % \
            fields["sec-websocket-protocol"].split(",")[0].strip()
    sock.sendall((reply + "\r\n").encode())
    return sock, rest


def serve(sock, buf, mode, seconds, masked):
    pings = 0
    deadline = time.monotonic() + seconds
    next_note = time.monotonic()
    print("OPEN", flush=True)
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        if mode == "busy" and now >= next_note:
            sock.sendall(frame(0x1, NOTE, masked))
            next_note = now + 0.2
        wait = deadline - now
        if mode == "busy":
            wait = min(wait, max(0.0, next_note - now))
        readable, _, _ = select.select([sock], [], [], wait)
        if not readable:
            continue
        chunk = sock.recv(65536)
        if not chunk:
            print("EOF", flush=True)
            break
        buf += chunk
        while (f := parse(buf)):
            opcode, payload, buf = f
            if opcode == 0x9:
                pings += 1
                print("PING", flush=True)
                if mode != "mute":
                    sock.sendall(frame(0xA, payload, masked))
            elif opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                print("CLOSE", code, flush=True)
                deadline = now
    print("PINGS", pings, flush=True)


def main():
    if sys.argv[1] == "client":
        host, port, mode, seconds = sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
        sock, rest = connect(host, port)
        serve(sock, rest, mode, seconds, True)
    else:
        mode, seconds = sys.argv[2], float(sys.argv[3])
        sock, rest = accept()
        serve(sock, rest, mode, seconds, False)


main()
