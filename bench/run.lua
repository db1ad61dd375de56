--- The benchmark driver. Runs floor_client (twice: one write per message,
-- and gathered writes) and lua_client.lua in interleaved rounds against a
-- running ref_server, then writes
--    out/results.txt   markdown tables, ready to paste into README.md
--    out/raw.txt       every run's output line
--    out/inflight.png  calls/s against calls in flight (gnuplot)
-- and prints the tables.
--
--    lua5.4 run.lua PORT        (run.sh starts the server and calls this)
-- Environment: ROUNDS (default 5), SECONDS_PER_RUN (default 0.5), LUA.

local PORT = math.tointeger(tonumber(arg[1]))
if not PORT then
  io.stderr:write("usage: lua5.4 run.lua PORT (or ./run.sh)\n")
  os.exit(2)
end
local ROUNDS = math.tointeger(tonumber(os.getenv("ROUNDS"))) or 5
local SECONDS = tonumber(os.getenv("SECONDS_PER_RUN")) or 0.5
local MEM_ROUNDS = math.min(ROUNDS, 3) -- each memory run lasts ~2 s
local RUN_TIMEOUT = 120                 -- seconds before a stuck run is killed
local LUA = os.getenv("LUA") or "lua5.4"

local PIN = os.getenv("BENCH_PIN") or "" -- run.sh: "taskset -c 1"

-- floor: one lws_write() per message, as lws is meant to be used; gather:
-- the same client sending the small messages that wait together, one
-- send() for many, as the Lua client does (floor_client.c).
local CLIENTS = { "floor", "gather", "lua" }
local COMMAND = {
  floor = PIN .. " out/floor_client",
  gather = PIN .. " env BENCH_GATHER=1 out/floor_client",
  lua = PIN .. " " .. LUA .. " lua_client.lua",
}

-- What both clients run. `plot` rows feed the in-flight plot; rows
-- without `table = false` appear in the main table.
local THROUGHPUT = {
  { id = "seq", what = "sequential (1 in flight)", mode = "inflight", n = 1, plot = true },
  { id = "k10", what = "10 in flight", mode = "inflight", n = 10, plot = true, table = false },
  { id = "k100", what = "100 in flight (100 tasks)", mode = "inflight", n = 100, plot = true },
  { id = "k1000", what = "1,000 in flight", mode = "inflight", n = 1000, plot = true, table = false },
  { id = "k10000", what = "10,000 in flight (10,000 tasks)", mode = "inflight", n = 10000, plot = true },
  { id = "batch", what = "batches of 100 (1 batch in flight)", mode = "batch", n = 100 },
}
local SIZES = {
  { id = "e1k", what = "1 KB", mode = "echo", n = 1024 },
  { id = "e64k", what = "64 KB", mode = "echo", n = 64 * 1024 },
  { id = "e1m", what = "1 MB", mode = "echo", n = 1024 * 1024 },
}
local MEM = { id = "mem", what = "10,000 calls waiting", mode = "mem", n = 10000 }

---------------------------------------------------------------------------
-- Running clients
---------------------------------------------------------------------------

local raw = {} -- every output line, for out/raw.txt

--- Parses a client's output: RESULT key=value..., SKIP why, or an error.
local function parse(output, ok)
  local line = output:match("RESULT[^\n]*")
  if line and ok then
    local r = {}
    for k, v in line:gmatch("([%w_]+)=(%S+)") do r[k] = tonumber(v) end
    return r
  end
  local skip = output:match("SKIP ([^\n]*)")
  if skip then return { skip = skip } end
  return { error = output:gsub("%s+$", "") }
end

local function run_client(client, row, seconds)
  local cmd = ("timeout %d %s %d %s %d %s 2>&1"):format(RUN_TIMEOUT,
    COMMAND[client], PORT, row.mode, row.n, seconds or "")
  local p = assert(io.popen(cmd))
  local output = p:read("a")
  local ok = p:close()
  raw[#raw + 1] = ("%-6s %-7s %s"):format(client, row.id,
    (output:gsub("\n+$", ""):gsub("\n", " | ")))
  return parse(output, ok)
end

local function shell_out(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  local s = p and p:read("a") or ""
  if p then p:close() end
  return (s:gsub("%s+$", ""))
end

--- Busy and total jiffies of the whole machine (idle and iowait are the
-- 4th and 5th numbers of /proc/stat's first line).
local function cpu_jiffies()
  local f = assert(io.open("/proc/stat"))
  local line = f:read("l")
  f:close()
  local v, total = {}, 0
  for n in line:gmatch("%d+") do v[#v + 1] = tonumber(n); total = total + tonumber(n) end
  return total - v[4] - (v[5] or 0), total
end

--- Sum of fields first..last (1-based, as in proc(5)) of /proc/<pid>/stat.
local function stat_fields(pid, first, last)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return 0 end
  local rest = f:read("a"):match("%) (.*)") or "" -- after "pid (comm) "
  f:close()
  local i, sum = 3, 0
  for v in rest:gmatch("%S+") do
    if i >= first and i <= last then sum = sum + tonumber(v) end
    i = i + 1
  end
  return sum
end

local SERVER_PID = os.getenv("BENCH_SERVER_PID") -- run.sh sets it
local CPUS = tonumber(shell_out("nproc")) or 1

--- A reading for other_load(): the machine's CPU time and ours (this
-- driver, its reaped children, the server).
local function load_mark()
  local busy, all = cpu_jiffies()
  local ours = stat_fields("self", 14, 17)
  if SERVER_PID then ours = ours + stat_fields(SERVER_PID, 14, 15) end
  return { busy = busy, all = all, ours = ours }
end

--- CPUs kept busy by other processes between two marks (1.0 = a whole
-- core): on a small shared VM, the first suspect when rounds disagree.
local function other_load(a, b)
  if b.all == a.all then return 0 end
  return math.max(0, (b.busy - a.busy) - (b.ours - a.ours)) / (b.all - a.all) * CPUS
end

-- results[row.id][client] = list of parsed runs
local results = {}

local function record(row, client, r)
  results[row.id] = results[row.id] or { floor = {}, gather = {}, lua = {} }
  local list = results[row.id][client]
  list[#list + 1] = r
end

local function progress(round, rounds, row, clients)
  local parts = {}
  for _, client in ipairs(clients) do
    local list = results[row.id][client]
    local r = list[#list]
    if r.rss_loaded_kb then
      parts[#parts + 1] = ("%s %6.1f MB RSS loaded"):format(client, r.rss_loaded_kb / 1024)
    elseif r.calls then
      parts[#parts + 1] = ("%s %9.0f calls/s"):format(client, r.calls / r.secs)
    else
      parts[#parts + 1] = ("%s %s"):format(client, r.skip and "skipped" or "FAILED")
    end
  end
  print(("round %d/%d  %-7s %s"):format(round, rounds, row.id, table.concat(parts, "  ")))
  io.stdout:flush()
end

--- Each round runs every row once per client; which client goes first
-- rotates, so none always meets a warmer server or cache.
local loads = {} -- other_load() of each round

local function run_rounds(rows, rounds, seconds, clients)
  for round = 1, rounds do
    local mark = load_mark()
    for _, row in ipairs(rows) do
      for k = 0, #clients - 1 do
        local client = clients[(round + k - 1) % #clients + 1]
        record(row, client, run_client(client, row, seconds))
      end
      progress(round, rounds, row, clients)
    end
    local load = other_load(mark, load_mark())
    loads[#loads + 1] = load
    print(("round %d/%d  other processes kept %.2f CPUs busy%s"):format(round, rounds,
      load, load > 0.2 and "  (noisy)" or ""))
  end
end

---------------------------------------------------------------------------
-- Statistics
---------------------------------------------------------------------------

local function median(values)
  if #values == 0 then return nil end
  table.sort(values)
  local mid = (#values + 1) // 2
  if #values % 2 == 1 then return values[mid] end
  return (values[mid] + values[mid + 1]) / 2
end

--- Medians over a row's successful runs for one client, or the reason
-- there are none.
local function summary(row, client)
  local rate, cpu, rss, idle, loaded, live = {}, {}, {}, {}, {}, {}
  local why
  for _, r in ipairs(results[row.id][client]) do
    if r.calls and r.calls > 0 then
      rate[#rate + 1] = r.calls / r.secs
      cpu[#cpu + 1] = r.cpu / r.calls * 1e6
      rss[#rss + 1] = r.maxrss_kb
      idle[#idle + 1] = r.rss_idle_kb
      loaded[#loaded + 1] = r.rss_loaded_kb
      if r.lua_live_kb then live[#live + 1] = r.lua_live_kb - r.lua_idle_kb end
    else
      -- the full reason is in out/raw.txt; a table cell wants it short
      why = r.skip and ("skipped: " .. r.skip:gsub(" %(.*", "")) or "failed"
    end
  end
  if #rate == 0 then return { missing = why or "no runs" } end
  return { rate = median(rate), cpu = median(cpu), rss = median(rss),
    idle = median(idle), loaded = median(loaded), live = median(live), runs = #rate }
end

---------------------------------------------------------------------------
-- Formatting
---------------------------------------------------------------------------

local function commas(n)
  local sign, digits = ("%.0f"):format(n):match("^(-?)(%d+)$")
  digits = digits:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return sign .. (digits:gsub("^,", ""))
end

local function us(v) return v >= 100 and ("%.0f"):format(v) or ("%.1f"):format(v) end
local function mb(kb) return ("%.1f MB"):format(kb / 1024) end
local function ratio(a, b) return ("%.2f×"):format(a / b) end

--- A table row comparing the Lua client with a floor ("floor" or
-- "gather"): cells(f, l) gives the `n` cells after the row's name from
-- the two summaries; a missing run leaves its reason and empty cells.
local function compare_row(row, floor, n, cells)
  local f, l = summary(row, floor), summary(row, "lua")
  if f.missing or l.missing then
    return ("| %s | %s |"):format(row.what, l.missing or f.missing) .. (" |"):rep(n - 1)
  end
  return ("| %s | %s |"):format(row.what, table.concat(cells(f, l), " | "))
end

local function throughput_row(row)
  return compare_row(row, "floor", 8, function(f, l)
    return { commas(f.rate), commas(l.rate), ratio(l.rate, f.rate),
      us(f.cpu), us(l.cpu), ratio(l.cpu, f.cpu), mb(f.rss), mb(l.rss) }
  end)
end

local function size_row(row)
  return compare_row(row, "floor", 6, function(f, l)
    return { commas(f.rate), commas(l.rate), ratio(l.rate, f.rate),
      us(f.cpu), us(l.cpu), ratio(l.cpu, f.cpu) }
  end)
end

--- A row of the table against the gathering floor.
local function gather_row(row)
  return compare_row(row, "gather", 5, function(g, l)
    return { commas(g.rate), ratio(l.rate, g.rate), us(g.cpu), ratio(l.cpu, g.cpu), mb(g.rss) }
  end)
end

local MEM_CLIENTS = { "floor", "lua" } -- gathering changes nothing here

local function mem_rows()
  local lines = {}
  for _, client in ipairs(MEM_CLIENTS) do
    local s = summary(MEM, client)
    if s.missing then
      lines[#lines + 1] = ("| %s | %s | | | | |"):format(client, s.missing)
    else
      lines[#lines + 1] = ("| %s | %s | %s | %s | %.0f B | %s |"):format(client,
        mb(s.idle), mb(s.loaded), mb(s.rss), (s.loaded - s.idle) * 1024 / MEM.n,
        s.live and ("%.0f B"):format(s.live * 1024 / MEM.n) or "–")
    end
  end
  return lines
end

local function verdict(ok) return ok and "met" or "**missed**" end

--- The issue's targets, measured (not asserted): against the floor, and
-- the ratios against the gathering floor beside them.
local function target_rows()
  local rows = {}
  local function add(what, measured, ok, gathered)
    rows[#rows + 1] = ("| %s | %s | %s | %s |"):format(what, measured,
      ok == nil and "n/a" or verdict(ok), gathered or "")
  end
  local function lua_vs(floor, id, field)
    local f, l = summary({ id = id }, floor), summary({ id = id }, "lua")
    if f.missing or l.missing then return nil end
    return l[field] / f[field]
  end
  local function times(r) return r and ("%.2f × floor"):format(r) or "n/a" end
  local function ratio_row(what, id, field, ok)
    local r, g = lua_vs("floor", id, field), lua_vs("gather", id, field)
    add(what, times(r), r and ok(r), g and ("%.2f×"):format(g))
  end
  ratio_row("sequential calls/s ≥ 0.95 × floor", "seq", "rate", function(r) return r >= 0.95 end)
  ratio_row("100 in flight calls/s ≥ 0.9 × floor", "k100", "rate", function(r) return r >= 0.9 end)
  for _, id in ipairs({ "seq", "k100", "k10000" }) do
    ratio_row(("client CPU per call ≤ 1.3 × floor (%s)"):format(id), id, "cpu",
      function(r) return r <= 1.3 end)
  end
  local k = summary({ id = "k10000" }, "lua")
  add("10,000 calls in flight < 32 MB RSS (10,000 tasks looping)",
    k.rss and ("%s peak"):format(mb(k.rss)) or "n/a", k.rss and k.rss < 32 * 1024)
  local m = summary(MEM, "lua")
  add("10,000 calls in flight < 32 MB RSS (10,000 waiting, mem test)",
    m.loaded and mb(m.loaded) or "n/a", m.loaded and m.loaded < 32 * 1024)
  local b = summary({ id = "batch" }, "lua")
  add("batches of 100 > 300,000 calls/s",
    b.rate and (commas(b.rate) .. " calls/s") or (b.missing or "n/a"),
    b.rate and b.rate > 300000)
  return rows
end


local function machine()
  local model = shell_out("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-"):gsub("^%s+", "")
  return ("%s × %s, Linux %s, libwebsockets %s, %s"):format(shell_out("nproc"), model,
    shell_out("uname -r"), shell_out("pkg-config --modversion libwebsockets"),
    shell_out(LUA .. " -v"):match("Lua %S+") or LUA)
end

local function report()
  local out = {}
  local function put(s) out[#out + 1] = s end
  put("## Benchmark results")
  put("")
  put(("Machine: %s. Run %s."):format(machine(), os.date("!%Y-%m-%d %H:%M UTC")))
  local worst, sum = 0, 0
  for _, l in ipairs(loads) do worst, sum = math.max(worst, l), sum + l end
  put(("Other processes kept %.2f CPUs busy on average during the rounds (worst round %.2f).%s")
    :format(sum / math.max(#loads, 1), worst,
      worst > 0.2 and " **Other work was running: expect noisy numbers.**" or ""))
  put(("Method: `make bench`. One connection to `bench/ref_server` (C, on 127.0.0.1). "
    .. "Each row ran %d round(s), floor (`bench/floor_client`, C, one `lws_write` per "
    .. "message), gathering floor (the same with `BENCH_GATHER=1`) and Lua client "
    .. "(`bench/lua_client.lua`, public API, `timeout = 30`) interleaved; each run "
    .. "warms up 0.1 s and measures %.1f s; medians shown. CPU is the client "
    .. "process's user + system time per call; peak RSS is the client's VmHWM.%s")
    :format(ROUNDS, SECONDS, PIN ~= "" and " Server pinned to CPU 0, clients to CPU 1." or ""))
  put("")
  -- a titled markdown table: its header row, alignment row, then lines
  local function section(title, header, align, lines)
    put("### " .. title)
    put("")
    put(header)
    put(align)
    for _, line in ipairs(lines) do put(line) end
    put("")
  end
  local function rows_of(rows, format_row)
    local lines = {}
    for _, row in ipairs(rows) do
      if row.table ~= false then lines[#lines + 1] = format_row(row) end
    end
    return lines
  end
  section("Throughput and client cost",
    "| workload | floor calls/s | Lua calls/s | Lua/floor | floor CPU µs/call "
      .. "| Lua CPU µs/call | Lua/floor | floor peak RSS | Lua peak RSS |",
    "|---|--:|--:|--:|--:|--:|--:|--:|--:|", rows_of(THROUGHPUT, throughput_row))
  section(("Memory per in-flight call (%s `sleep_echo` calls held by the server, %d round(s))")
      :format(commas(MEM.n), MEM_ROUNDS),
    "| client | RSS idle | RSS, calls waiting | peak RSS | RSS per call | live Lua heap per call |",
    "|---|--:|--:|--:|--:|--:|", mem_rows())
  section("Cost growth with message size (`echo`, 1 in flight)",
    "| params | floor calls/s | Lua calls/s | Lua/floor | floor CPU µs/call "
      .. "| Lua CPU µs/call | Lua/floor |",
    "|---|--:|--:|--:|--:|--:|--:|", rows_of(SIZES, size_row))
  local gathered = rows_of(THROUGHPUT, gather_row)
  for _, line in ipairs(rows_of(SIZES, gather_row)) do gathered[#gathered + 1] = line end
  section("Against a floor that gathers its writes too",
    "| workload | gathering floor calls/s | Lua/floor | floor CPU µs/call "
      .. "| Lua/floor CPU | floor peak RSS |",
    "|---|--:|--:|--:|--:|--:|", gathered)
  section("Targets (issue 6)", "| target | measured | | against the gathering floor |",
    "|---|--:|---|--:|", target_rows())
  put("Calls/s against calls in flight: `bench/out/inflight.png`.")
  return table.concat(out, "\n") .. "\n"
end

---------------------------------------------------------------------------
-- The plot
---------------------------------------------------------------------------

local function write_file(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function plot()
  local lines = { "# in_flight floor_calls_per_s lua_calls_per_s gather_calls_per_s" }
  for _, row in ipairs(THROUGHPUT) do
    if row.plot then
      local f, l, g = summary(row, "floor"), summary(row, "lua"), summary(row, "gather")
      lines[#lines + 1] = ("%d %s %s %s"):format(row.n, f.rate or "NaN", l.rate or "NaN",
        g.rate or "NaN")
    end
  end
  write_file("out/inflight.dat", table.concat(lines, "\n") .. "\n")
  write_file("out/inflight.gp", [[
set terminal pngcairo size 900,560 font "sans,11"
set output "out/inflight.png"
set title "JSON-RPC add() calls/s on one websocket, by calls in flight"
set xlabel "calls in flight (Lua: 1 = plain script, more = that many tasks)"
set ylabel "thousand calls/s (median)"
set logscale x
set xtics ("1" 1, "10" 10, "100" 100, "1,000" 1000, "10,000" 10000)
set format y "%g"
set yrange [0:*]
set key top left
set grid
plot "out/inflight.dat" using 1:($2/1000) with linespoints lw 2 pt 7 title "floor (C, a write per message)", \
     "" using 1:($4/1000) with linespoints lw 2 pt 9 dt 2 title "floor (C, gathered writes)", \
     "" using 1:($3/1000) with linespoints lw 2 pt 5 title "Lua client"
]])
  local ok = os.execute("gnuplot out/inflight.gp")
  if not ok then io.stderr:write("run.lua: gnuplot failed; data in out/inflight.dat\n") end
end

---------------------------------------------------------------------------

local t0 = os.time()
run_rounds(THROUGHPUT, ROUNDS, SECONDS, CLIENTS)
run_rounds(SIZES, ROUNDS, SECONDS, CLIENTS)
run_rounds({ MEM }, MEM_ROUNDS, nil, MEM_CLIENTS)

write_file("out/raw.txt", table.concat(raw, "\n") .. "\n")
local text = report()
write_file("out/results.txt", text)
plot()
print()
io.write(text)
print(("(%d s; written to bench/out/results.txt, raw.txt, inflight.png)"):format(os.time() - t0))

local failed = false
for _, by_client in pairs(results) do
  for _, list in pairs(by_client) do
    for _, r in ipairs(list) do
      if r.error then failed = true end
    end
  end
end
if failed then
  io.stderr:write("run.lua: some runs failed, see bench/out/raw.txt\n")
  os.exit(1)
end
