#!/bin/bash
# Where the Lua client's time goes, next to the floor (make profile).
# For the sequential and 100-in-flight workloads, writes to out/profile/:
#   summary.txt                 counts per call, side by side
#   callgrind-<client>-<w>.txt  instructions by C function, inclusive and
#                               self (lua_host: a Lua with symbols)
#   strace-<client>-<w>.txt     system calls by name
#   vm-<w>.txt                  Lua VM instructions by Lua function
# Each count is taken over a short and a long run and the difference is
# divided by the difference in calls, so start-up, warm-up and drain
# cancel out. valgrind and strace slow the clients: rates mean nothing
# here, counts per call do. Takes one to two minutes.
set -eu
cd "$(dirname "$0")"
P=out/profile
mkdir -p $P
LUA=${LUA:-lua5.4}
SHORT=1
LONG=3

out/ref_server 0 > $P/server.log 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q '^PORT ' $P/server.log && break; sleep 0.1; done
port=$(awk '/^PORT /{print $2}' $P/server.log)

calls_of() { sed -n 's/.*RESULT calls=\([0-9]*\).*/\1/p' "$1"; }
# (count_long - count_short) / (calls_long - calls_short)
per_call() {
	awk -v a="$1" -v b="$2" -v c="$3" -v d="$4" \
		'BEGIN { if (d == c) print "?"; else printf "%.0f", (b - a) / (d - c) }'
}

# cg NAME CLIENT-COMMAND...: user-space instructions per call
cg() {
	local name=$1 s ir=() calls=()
	shift
	for s in $SHORT $LONG; do
		valgrind --tool=callgrind --callgrind-out-file=$P/$name-$s.cg "$@" $s \
			> $P/$name-$s.out 2> $P/$name-$s.vg
		ir+=("$(sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' $P/$name-$s.vg | tr -d ,)")
		calls+=("$(calls_of $P/$name-$s.out)")
	done
	{
		echo "== inclusive ($LONG s run)"
		callgrind_annotate --inclusive=yes $P/$name-$LONG.cg | sed -n '/file:function/,$p' | grep -v "'2" | head -70
		echo "== self"
		callgrind_annotate $P/$name-$LONG.cg | sed -n '/file:function/,$p' | head -40
	} > $P/callgrind-$name.txt 2>/dev/null
	echo "$name: $(per_call "${ir[0]}" "${ir[1]}" "${calls[0]}" "${calls[1]}") instructions per call (user space)"
}

# st NAME CLIENT-COMMAND...: system calls per call, by name
st() {
	local name=$1 s calls=()
	shift
	for s in $SHORT $LONG; do
		strace -f -c -o $P/strace-$name-$s.txt "$@" $s > $P/$name-$s.st.out
		calls+=("$(calls_of $P/$name-$s.st.out)")
	done
	# columns: %time seconds usecs/call calls [errors] syscall
	awk -v c1="${calls[0]}" -v c2="${calls[1]}" '
		FNR <= 2 || $NF == "total" || $1 ~ /^-/ { next }
		{ n[$NF] += (FILENAME ~ /-'$LONG'\.txt$/ ? $4 : -$4) }
		END {
			for (k in n) { v = n[k] / (c2 - c1); if (v >= 0.001) { t += v; s = s sprintf(" %s %.3f", k, v) } }
			printf "%s: %.3f system calls per call:%s\n", "'"$name"'", t, s
		}' $P/strace-$name-$SHORT.txt $P/strace-$name-$LONG.txt
	cp $P/strace-$name-$LONG.txt $P/strace-$name.txt
}

# vm ID CLIENT-ARGS...: Lua VM instructions per call, by function
vm() {
	local id=$1 s ins=() calls=()
	shift
	for s in $SHORT $LONG; do
		"$LUA" vmprof.lua lua_client.lua "$@" $s > $P/vm-$id-$s.out 2> $P/vm-$id-$s.txt
		ins+=("$(sed -n 's/^VMPROF instructions=//p' $P/vm-$id-$s.txt)")
		calls+=("$(calls_of $P/vm-$id-$s.out)")
	done
	cp $P/vm-$id-$LONG.txt $P/vm-$id.txt
	echo "lua-$id: $(per_call "${ins[0]}" "${ins[1]}" "${calls[0]}" "${calls[1]}") Lua VM instructions per call; share by function ($LONG s run):"
	sed -n '/by function/,/by line/p' $P/vm-$id.txt | sed '1d;$d' | head -12
}

make -s out/lua_host
{
	echo "# profile $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(git -C .. describe --always --dirty 2>/dev/null)"
	for w in "seq inflight 1" "k100 inflight 100"; do
		read -r id mode n <<< "$w"
		echo "## $id ($mode $n)"
		cg "floor-$id" out/floor_client "$port" "$mode" "$n"
		cg "lua-$id" out/lua_host lua_client.lua "$port" "$mode" "$n"
		st "floor-$id" out/floor_client "$port" "$mode" "$n"
		st "lua-$id" "$LUA" lua_client.lua "$port" "$mode" "$n"
		vm "$id" "$port" "$mode" "$n"
	done
} | tee $P/summary.txt
echo "(details in bench/out/profile/)"
