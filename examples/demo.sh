#!/bin/sh
# make demo: start our example server, run examples/hello.lua against it.
set -e
cd "$(dirname "$0")/.."
export LUA_PATH="./lua/?.lua;./lua/?/init.lua;;"
export LUA_CPATH="./build/?.so;;"
fifo=$(mktemp -u) && mkfifo "$fifo"
lua5.4 examples/server.lua > "$fifo" &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$fifo"' EXIT
exec 3< "$fifo"
read -r _ port <&3
cat <&3 &   # the server's own lines, as they come
echo "example server (examples/server.lua) listening on 127.0.0.1:$port"
lua5.4 examples/hello.lua "ws://127.0.0.1:$port/"
sleep 0.2
