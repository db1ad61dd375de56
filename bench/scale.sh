#!/bin/bash
# The server bench (issue 16): `make scale` here, or `make bench` at the top.
#
#   1. throughput: out/loadgen against our listener (scale_server.lua),
#      the issue's C floor (floor_server.c: libwebsockets + jansson, one
#      lws_write per answer) and, for reference, the hand-tuned C server
#      (ref_server.c: no JSON library, gathered writes); rows 1 x 1,
#      1 x 100 and 50 x 10 in flight; calls/s and the server's CPU per
#      call (from /proc).
#   2. the idle curve: 0 / 1k / 5k / 10k / 15k idle connections on one
#      process: its memory per connection and one client's sequential
#      calls/s (the O(1) check: >= 0.8x the rate with none open).
#   3. 100k idle over WORKERS processes (listen{ workers = N }), held by
#      several loadgen processes from several 127.0.0.x source addresses.
#
# Results: out/scale.txt (markdown), out/scale.dat, out/scale.png (gnuplot).
#   ROUNDS=n SECONDS_PER_RUN=s LEVELS="0 1000 ..." BIG=n WORKERS=n ./scale.sh
#   PARTS="throughput idle" (default: all three; "big" is the 100k run)
#   PIN=1: server on CPU 0, clients on CPU 1 (off by default: on a shared
#   2-core machine other benches pin to CPU 0 too, and the rates collapse)
# Loopback only; each run is bounded (timeouts below). The soft `ulimit -n`
# is raised here (to the hard limit), never in the library.
set -eu
cd "$(dirname "$0")"
mkdir -p out

ROUNDS=${ROUNDS:-3}
SECS=${SECONDS_PER_RUN:-1}
LEVELS=${LEVELS:-"0 1000 5000 10000 15000"}
BIG=${BIG:-100000}
PARTS=${PARTS:-"throughput idle big"}
IDLE_ROUNDS=${IDLE_ROUNDS:-7}
WORKERS=${WORKERS:-6}
LUA=${LUA:-lua5.4}
HARD=$(ulimit -Hn)
ulimit -n "$HARD"
PER_HOLDER=$(( HARD - 500 ))  # descriptors one loadgen may use for sockets
export LOADGEN_SRCS=${LOADGEN_SRCS:-8}
# The listeners' keepalive (scale_server.lua): the library's default
# (30 s) unless SCALE_KEEPALIVE says otherwise ("off": none). Before
# keepalive was the library's own (src/keepalive.c), libwebsockets' timers
# made each ping and pong cost O(connections): the 100k run lost 58-197
# connections once ~75k were open, and this ran at 300 s (keepalive.sh
# shows the old cost small).
export SCALE_KEEPALIVE=${SCALE_KEEPALIVE:-}

server_pin= client_pin=
if [ "${PIN:-0}" = 1 ] && command -v taskset > /dev/null && [ "$(nproc)" -ge 2 ]; then
	server_pin="taskset -c 0" client_pin="taskset -c 1"
fi

pids=() holders=()
cleanup() {
	for h in "${holders[@]}"; do kill "$h" 2>/dev/null || true; done
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT

# start_server NAME CMD...: starts it, sets $port and $spid (and remembers it)
start_server() {
	local log=out/scale-$1.log
	shift
	# made here, not by the background job's redirection: awk could look
	# for it first, fail, and set -e would end the script (no log written)
	: > "$log"
	$server_pin "$@" > "$log" 2>&1 &
	spid=$!
	pids+=("$spid")
	port=
	for _ in $(seq 100); do
		port=$(awk '/^PORT /{print $2}' "$log" || true)
		[ -n "$port" ] && return 0
		sleep 0.1
	done
	echo "scale.sh: server did not start: $*" >&2
	cat "$log" >&2
	exit 1
}

stop_servers() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	pids=()
}

# the pids of a server and its workers
family() { echo "$1" $(pgrep -P "$1" || true); }

rss_kb() {
	local sum=0 p
	for p in $(family "$1"); do
		sum=$(( sum + $(awk '/^VmRSS/{print $2}' /proc/"$p"/status) ))
	done
	echo $sum
}

# one_run PORT PID CONNS INFLIGHT -> "calls/s cpu_us_per_call", or nothing
one_run() {
	local line
	line=$(timeout 120 $client_pin out/loadgen "$1" calls "$3" "$4" "$SECS" $(family "$2") || true)
	echo "$1 $line" >> out/scale-raw.txt
	echo "$line" | awk '/^RESULT/{
		for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		if (v["calls"] > 0) printf "%.0f %.2f\n", v["calls"] / v["secs"], 1e6 * v["server_cpu"] / v["calls"] }'
}

median() { sort -n | awk '{ a[NR] = $0 } END { if (NR) print a[int((NR + 1) / 2)]; else print "0 0" }'; }

# compare PORT PID: one client's sequential calls/s on this server and on
# the base server (none open), runs interleaved so that the machine's other
# work weighs on both alike -> "rate base_rate"
compare() {
	local r a=out/scale-cmp-a b=out/scale-cmp-b
	: > $a; : > $b
	for r in $(seq "$IDLE_ROUNDS"); do
		one_run "$1" "$2" 1 1 >> $a
		one_run "$bport" "$bpid" 1 1 >> $b
	done
	echo "$(median < $a | cut -d' ' -f1) $(median < $b | cut -d' ' -f1)"
}

# hold N: N more idle connections, by as many loadgen processes as the
# descriptor limit needs; sets $held_why when not all of them opened
held_why=
hold() {
	local n=$1 k chunk fifo
	while [ "$n" -gt 0 ]; do
		chunk=$(( n < PER_HOLDER ? n : PER_HOLDER ))
		n=$(( n - chunk ))
		k=${#holders[@]}
		fifo=out/scale-hold-$k
		rm -f "$fifo" "$fifo.log"
		mkfifo "$fifo"
		timeout 900 out/loadgen "$port" idle "$chunk" < "$fifo" > "$fifo.log" 2>&1 &
		holders+=($!)
		eval "exec {fd_$k}>$fifo"
		for _ in $(seq 1200); do
			grep -q '^OPEN' "$fifo.log" 2>/dev/null && break
			sleep 0.1
		done
		if ! grep -q "^OPEN $chunk failed=0" "$fifo.log"; then
			held_why="$(cat "$fifo.log")"
			return 1
		fi
	done
}

release_all() {
	for h in "${holders[@]}"; do kill "$h" 2>/dev/null || true; wait "$h" 2>/dev/null || true; done
	holders=()
	rm -f out/scale-hold-*
}

held() { grep -h '^OPEN' out/scale-hold-*.log 2>/dev/null | awk '{ s += $2 } END { print s + 0 }'; }

: > out/scale-raw.txt
report=out/scale.txt
: > "$report"
part() { case " $PARTS " in *" $1 "*) return 0;; esac; return 1; }

# throughput_row CONNS INFLIGHT: ROUNDS rounds, each one run on the floor,
# on our listener and on the hand-tuned server in turn (so the machine's
# other work weighs on all three alike); medians -> one table row
throughput_row() {
	local r f=out/scale-tp-floor l=out/scale-tp-lua h=out/scale-tp-ref
	: > $f; : > $l; : > $h
	for r in $(seq "$ROUNDS"); do
		one_run "$fport" "$fpid" "$1" "$2" >> $f
		one_run "$lport" "$lpid" "$1" "$2" >> $l
		one_run "$rport" "$rpid" "$1" "$2" >> $h
	done
	read -r f_rate f_cpu < <(median < $f)
	read -r l_rate l_cpu < <(median < $l)
	read -r r_rate r_cpu < <(median < $h)
	awk -v w="$1 × $2 in flight" -v fr="$f_rate" -v lr="$l_rate" -v fc="$f_cpu" \
		-v lc="$l_cpu" -v rr="$r_rate" -v rc="$r_cpu" 'BEGIN {
		printf "| %s | %d | %d | %.2f× | %.1f | %.1f | %.2f× | %d | %.1f |\n",
			w, fr, lr, (fr ? lr / fr : 0), fc, lc, (fc > 0 ? lc / fc : 0), rr, rc }'
}

if part throughput; then
	{
	echo "### Server throughput: our listener against the C floor"
	echo
	echo "out/loadgen, $ROUNDS rounds of ${SECS} s (the three servers in turn within a round), medians; server CPU per call from /proc (user + system)."
	echo
	echo "- **floor**: \`bench/floor_server.c\`, the issue's floor: libwebsockets 4.1.6 (its default \`poll()\` loop) and jansson, one \`lws_write()\` per answer."
	echo "- **ours**: \`bench/scale_server.lua\` (\`jsonrpc.listen\`)."
	echo "- **hand-tuned C**: \`bench/ref_server.c\`: libwebsockets, no JSON library (raw byte copies), answers gathered into one \`send()\`; for reference, not the target."
	echo
	echo "| workload | floor calls/s | ours calls/s | ours/floor | floor CPU µs/call | ours CPU µs/call | CPU ours/floor | hand-tuned C calls/s | hand-tuned C CPU µs/call |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	} >> "$report"
	start_server floor out/floor_server 0
	fport=$port fpid=$spid
	start_server lua "$LUA" scale_server.lua 0
	lport=$port lpid=$spid
	start_server ref out/ref_server 0
	rport=$port rpid=$spid
	for row in "1 1" "1 100" "50 10"; do
		throughput_row $row >> "$report"
	done
	stop_servers
fi

if part idle || part big; then
	: > out/scale.dat
	{
	[ -s "$report" ] && echo
	echo "### Idle connections: memory and one client's sequential calls/s"
	echo
	echo "One client's sequential calls (1 × 1) on the server holding the idle connections and, interleaved, on a second server with none open; $IDLE_ROUNDS rounds of ${SECS} s each, medians."
	echo
	echo "| idle connections | processes | server RSS MB | KB per idle connection | calls/s (1 × 1) | none open, same time | ratio |"
	echo "|---:|---:|---:|---:|---:|---:|---:|"
	} >> "$report"
	start_server base "$LUA" scale_server.lua 0
	bport=$port bpid=$spid
fi

if part idle; then
	start_server lua "$LUA" scale_server.lua 0
	rss0=$(rss_kb "$spid")
	for level in $LEVELS; do
		if ! hold $(( level - $(held) )); then
			echo "| $level | 1 | stopped: $held_why | | | | |" >> "$report"
			break
		fi
		sleep 1
		rss=$(rss_kb "$spid")
		read -r rate base < <(compare "$port" "$spid")
		awk -v n="$level" -v r="$rss" -v r0="$rss0" -v c="$rate" -v b="$base" 'BEGIN {
			printf "| %d | 1 | %.1f | %s | %d | %d | %.2f× |\n", n, r / 1024,
				n ? sprintf("%.2f", (r - r0) / n) : "-", c, b, c / b }' >> "$report"
		echo "$level $rss $rate $base" >> out/scale.dat
	done
	release_all
fi

if part big && [ "$BIG" -gt 0 ]; then
	start_server workers "$LUA" scale_server.lua 0 "$WORKERS"
	sleep 0.5
	rss0=$(rss_kb "$spid")
	if hold "$BIG"; then
		sleep 2
		rss=$(rss_kb "$spid")
		read -r rate base < <(compare "$port" "$spid")
		awk -v n="$BIG" -v w="$WORKERS" -v r="$rss" -v r0="$rss0" -v c="$rate" -v b="$base" 'BEGIN {
			printf "| %d | %d | %.1f | %.2f | %d | %d | %.2f× |\n", n, w, r / 1024, (r - r0) / n, c, b, c / b }' >> "$report"
		echo "$BIG $rss $rate $base" >> out/scale.dat
	else
		echo "| $BIG | $WORKERS | stopped after $(held): $held_why | | | | |" >> "$report"
	fi
	release_all
fi
stop_servers

cat > out/scale.gp <<'EOF'
set terminal pngcairo size 800,440 font ",10"
set output "out/scale.png"
set title "Idle connections held by the server (last point: over workers)"
set xlabel "idle websocket connections"
set ylabel "server RSS (MB)"
set y2label "one client's sequential calls/s"
set y2tics
set ytics nomirror
set key at graph 0.62, graph 0.5 center box opaque
set grid
set yrange [0:*]
set y2range [0:*]
plot "out/scale.dat" using 1:($2/1024) with linespoints lw 2 title "server memory (MB)", \
     "out/scale.dat" using 1:3 axes x1y2 with linespoints lw 2 title "calls/s, 1 x 1", \
     "out/scale.dat" using 1:4 axes x1y2 with linespoints lw 1 dt 2 title "calls/s, 1 x 1, a server with none open (same time)"
EOF
{ part idle || part big; } && { gnuplot out/scale.gp || echo "scale.sh: gnuplot failed; data in out/scale.dat" >&2; }
cat "$report"
