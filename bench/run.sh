#!/bin/bash
# Starts the reference server on an ephemeral port, runs the benchmark
# driver (run.lua) against it, and stops the server however the run ends.
#   ROUNDS=n SECONDS_PER_RUN=s ./run.sh     (defaults: 5 rounds, 0.5 s)
# With two CPUs or more, the server is pinned to CPU 0 and every client to
# CPU 1: runs then neither share a core nor migrate, which roughly halves
# the spread between rounds on a small VM.
set -eu
cd "$(dirname "$0")"
mkdir -p out

server_pin=
export BENCH_PIN=
if command -v taskset > /dev/null && [ "$(nproc)" -ge 2 ]; then
	server_pin="taskset -c 0"
	BENCH_PIN="taskset -c 1"
fi

rm -f out/server.log # not a port from an earlier run, read before the new one writes
$server_pin out/ref_server 0 > out/server.log 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT

port=
for _ in $(seq 50); do
	port=$(awk '/^PORT /{print $2}' out/server.log)
	[ -n "$port" ] && break
	sleep 0.1
done
if [ -z "$port" ]; then
	echo "run.sh: ref_server did not start:" >&2
	cat out/server.log >&2
	exit 1
fi

# `./run.sh hosts`: only the host-loop figures (hosts.lua, issue 11)
if [ "${1:-}" != hosts ]; then
	BENCH_SERVER_PID=$server "${LUA:-lua5.4}" run.lua "$port"
fi
"${LUA:-lua5.4}" hosts.lua "$port"
