#!/bin/sh
# make demo: start the example server, run examples/hello.lua against it.
set -e
cd "$(dirname "$0")/.."
export LUA_PATH="./lua/?.lua;./lua/?/init.lua;;"
export LUA_CPATH="./build/?.so;;"
fifo=$(mktemp -u) && mkfifo "$fifo"
/usr/bin/python3 examples/server.py > "$fifo" &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$fifo"' EXIT
read -r _ port < "$fifo"
echo "example server listening on 127.0.0.1:$port"
lua5.4 examples/hello.lua "ws://127.0.0.1:$port/"
