#!/usr/bin/python3
"""A websocket client that completes the handshake and then goes silent:
it never reads again, so it never answers a ping (a dead peer, as far as
the server can tell). Usage: silent_client.py HOST PORT SECONDS"""
import base64
import os
import socket
import sys
import time

host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
key = base64.b64encode(os.urandom(16)).decode()
sock = socket.create_connection((host, port))
sock.sendall((f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
              f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
              "Sec-WebSocket-Version: 13\r\n\r\n").encode())
reply = sock.recv(4096).decode(errors="replace")
print(reply.split("\r\n")[0], flush=True)
time.sleep(seconds)  # silent: no reads, no pongs
