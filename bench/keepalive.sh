#!/bin/bash
# Idle connections under keepalive pings (issue 16, "what stopped a run"):
# one out/loadgen holds N idle connections (it answers every ping at once:
# plain sockets, epoll) on one server process with keepalive K seconds,
# for S seconds. Prints, per server and N, the connections that opened,
# those the server closed, and the server's CPU over the run (opening and
# holding).
#   ./keepalive.sh [K [S [N...]]]        default: 2 30 2000 4000 8000
# Servers: our listener (scale_server.lua, keepalive = K) and the C floor
# (floor_server, the same ping and hangup times through FLOOR_KEEPALIVE).
# Loopback only; each run is bounded by S (and loadgen's own timeouts).
set -eu
cd "$(dirname "$0")"
mkdir -p out
K=${1:-2}
S=${2:-30}
shift 2 2>/dev/null || shift $#
LEVELS=${*:-"2000 4000 8000"}
LUA=${LUA:-lua5.4}
ulimit -n "$(ulimit -Hn)"

pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true' EXIT

cpu_s() { awk '{ printf "%.2f", ($14 + $15) / 100 }' /proc/"$1"/stat; }

echo "| server | idle connections | keepalive | opened | closed by the server in ${S} s | server CPU, s (share of one core) over the run |"
echo "|---|---:|---:|---:|---:|---:|"
for n in $LEVELS; do
	for server in ours floor; do
		log=out/keepalive-$server.log
		: > "$log"
		if [ "$server" = ours ]; then
			SCALE_KEEPALIVE=$K "$LUA" scale_server.lua 0 > "$log" 2>&1 &
		else
			FLOOR_KEEPALIVE=$K out/floor_server 0 > "$log" 2>&1 &
		fi
		pid=$!
		port=
		for _ in $(seq 100); do
			port=$(awk '/^PORT /{print $2}' "$log" || true)
			[ -n "$port" ] && break
			sleep 0.1
		done
		c0=$(cpu_s "$pid") t0=$(date +%s.%N)
		out=$(out/loadgen "$port" idle "$n" "$S" || true)
		c1=$(cpu_s "$pid") t1=$(date +%s.%N)
		kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
		echo "$out" | awk -v s="$server" -v n="$n" -v k="$K" -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" '
			/^OPEN/ { opened = $2 }
			/^END/ { split($2, a, "="); still = a[2] }
			END { printf "| %s | %d | %d s | %d | %d | %.1f (%.0f%%) |\n", s, n, k,
				opened, opened - still, c1 - c0, 100 * (c1 - c0) / (t1 - t0) }'
	done
done
