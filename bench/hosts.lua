--- Host loops (issue 11): what attaching to luv or cqueues costs.
--
--    lua5.4 hosts.lua PORT          every measurement below, then the table
--    lua5.4 hosts.lua PORT MODE     one of them, one RESULT line
--
-- Modes (each a process of its own: attach lasts for the process):
--    gap-inflight   worst gap of a 10 ms luv timer while 100 calls are in
--                   flight all the time (luv attached), SECONDS long
--    gap-1mb        the same while 1 MB answers arrive one after another
--    idle           CPU of a luv-attached program holding 10 idle
--                   connections for IDLE_SECONDS (default 10)
--    calls-run      calls/s, 100 in flight, jsonrpc.run and tasks
--    calls-luv      the same in luv coroutines, attached to luv
--    calls-cqueues  the same in cqueues coroutines, attached to a controller
-- Against bench/ref_server (run.sh starts it). Environment: SECONDS_PER_RUN
-- (default 2), IDLE_SECONDS (default 10), ROUNDS (default 3, medians).

local bench_dir = arg[0]:match("^(.*)/[^/]*$") or "."
local root = bench_dir .. "/.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath

local jsonrpc = require "jsonrpc_websocket"

local port, mode = math.tointeger(tonumber(arg[1])), arg[2]
if not port then
  io.stderr:write("usage: lua5.4 hosts.lua PORT [MODE]\n")
  os.exit(2)
end
local URL = ("ws://127.0.0.1:%d/"):format(port)
local SECONDS = tonumber(os.getenv("SECONDS_PER_RUN")) or 2
local IDLE = tonumber(os.getenv("IDLE_SECONDS")) or 10
local ROUNDS = math.tointeger(tonumber(os.getenv("ROUNDS"))) or 3
local K = 100

-- A luv timer every 10 ms; returns a function giving the worst gap (ms)
-- between ticks, less the 10 ms asked.
local function ticker(uv)
  local last, worst = uv.hrtime(), 0
  local t = uv.new_timer()
  t:start(10, 10, function()
    local at = uv.hrtime()
    local gap = (at - last) / 1e6
    last = at
    if gap > worst then worst = gap end
  end)
  return function() return worst - 10 end, t
end

-- K coroutines calling f in a loop until `stop()`; then done().
local function workers(spawn, f, stop, done)
  local left = K
  for i = 1, K do
    spawn(function()
      while not stop() do f(i) end
      left = left - 1
      if left == 0 then done() end
    end)
  end
end

local MODES = {}

-- A server of 1 MB answers: our own listener, in a process of its own
-- (bench/ref_server only echoes, and an echo would send 1 MB too).
function MODES.serve_big()
  jsonrpc.run(function()
    local srv = jsonrpc.listen { port = 0, max_message_size = 4 * 1024 * 1024 }
    local answer = string.rep("x", 1024 * 1024)
    srv.big = function(n) return answer:sub(1, n) end
    srv:on("disconnect", function() srv:close() end)
    io.stdout:write("PORT ", srv.port, "\n")
    io.stdout:flush()
    srv:run()
  end)
end

-- On the server's CPU when run.sh pins (BENCH_PIN): a child would
-- otherwise inherit the client's CPU, and the timer gaps would count the
-- server's turns on it.
local big_server
local function big_url()
  local pin = (os.getenv("BENCH_PIN") or "") ~= "" and "taskset -c 0 " or ""
  big_server = io.popen(("exec %s%s %s %d serve_big"):format(
    pin, os.getenv("LUA") or "lua5.4", arg[0], port), "r")
  local p = big_server:read("l"):match("^PORT (%d+)")
  return ("ws://127.0.0.1:%d/"):format(p)
end

-- The longest CPU time one of our steps kept the host loop (ms): what we
-- add to its latency, whatever else the machine runs (a wall-clock gap
-- also counts the time the kernel gave other processes).
local function step_meter()
  local sched = require "jsonrpc_websocket.scheduler"
  local step, longest, clock = sched.step, 0, os.clock
  sched.step = function(...)
    local t = clock()
    step(...)
    local d = (clock() - t) * 1000
    if d > longest then longest = d end
  end
  return function() return longest end
end

function MODES.gap(kind)
  local uv = require "luv"
  jsonrpc.attach(uv)
  local longest = step_meter()
  local worst, tick
  coroutine.wrap(function()
    local big = kind == "1mb"
    local s = jsonrpc.Server(big and big_url() or URL,
      { timeout = 30, max_message_size = 4 * 1024 * 1024 })
    s:ws_connect()
    local t0 = uv.hrtime()
    worst, tick = ticker(uv)
    local function stop() return (uv.hrtime() - t0) / 1e9 > SECONDS end
    local calls = 0
    local function finish()
      print(("RESULT worst_gap_ms=%.3f longest_step_ms=%.3f calls=%d")
        :format(worst(), longest(), calls))
      tick:close()
      s:close()
      if big_server then big_server:close() end -- it ends with our connection
    end
    if big then -- one 1 MB answer after another, to a small request
      while not stop() do
        assert(#s.big(1024 * 1024) == 1024 * 1024)
        calls = calls + 1
      end
      finish()
    else
      workers(function(f) coroutine.wrap(f)() end,
        function(i) s.add(i, 1); calls = calls + 1 end, stop, finish)
    end
  end)()
  uv.run()
end
MODES["gap-inflight"] = function() MODES.gap("inflight") end
MODES["gap-1mb"] = function() MODES.gap("1mb") end

function MODES.idle()
  local uv = require "luv"
  jsonrpc.attach(uv)
  local conns = {}
  coroutine.wrap(function()
    for i = 1, 10 do
      conns[i] = jsonrpc.Server(URL)
      conns[i]:ws_connect()
      conns[i].add(1, 2)
    end
    local cpu0, t0 = os.clock(), jsonrpc.now()
    local t = uv.new_timer()
    t:start(math.floor(IDLE * 1000), 0, function()
      local cpu, wall = os.clock() - cpu0, jsonrpc.now() - t0
      print(("RESULT cpu_percent=%.4f secs=%.2f"):format(100 * cpu / wall, wall))
      t:close()
      coroutine.wrap(function() for _, c in ipairs(conns) do c:close() end end)()
    end)
  end)()
  uv.run()
end

-- calls/s with K in flight, however the coroutines are made and driven
local function calls(spawn, drive, now)
  local s, count, t0, t1
  local function stop() return now() - t0 > SECONDS end
  spawn(function()
    s = jsonrpc.Server(URL, { timeout = 30 })
    s:ws_connect()
    for i = 1, 200 do s.add(i, 1) end -- warm up
    local cpu0 = os.clock()
    t0, count = now(), 0
    workers(spawn, function(i) s.add(i, 1); count = count + 1 end, stop, function()
      t1 = now()
      print(("RESULT calls_per_s=%.0f cpu_us_per_call=%.2f")
        :format(count / (t1 - t0), (os.clock() - cpu0) * 1e6 / count))
      s:close()
    end)
  end)
  drive()
end

MODES["calls-run"] = function()
  jsonrpc.run(function() calls(jsonrpc.spawn, function() end, jsonrpc.now) end)
end

MODES["calls-luv"] = function()
  local uv = require "luv"
  jsonrpc.attach(uv)
  calls(function(f) coroutine.wrap(f)() end, function() uv.run() end, jsonrpc.now)
end

MODES["calls-cqueues"] = function()
  local cqueues = require "cqueues"
  local cq = cqueues.new()
  jsonrpc.attach(cq)
  calls(function(f) cq:wrap(f) end, function() assert(cq:loop()) end, jsonrpc.now)
end

if mode then
  local run = MODES[mode] or error("unknown mode " .. mode)
  run()
  os.exit(0)
end

---------------------------------------------------------------------------
-- The driver: each mode ROUNDS times, medians, one table.
---------------------------------------------------------------------------

local LUA = os.getenv("LUA") or "lua5.4"
local PIN = os.getenv("BENCH_PIN") or ""

local function run_mode(m)
  local h = io.popen(("%s %s %s %d %s 2>&1"):format(PIN, LUA, arg[0], port, m))
  local out = h:read("a")
  h:close()
  local line = out:match("RESULT[^\n]*")
  if not line then error(("hosts.lua %s failed:\n%s"):format(m, out)) end
  local r = {}
  for k, v in line:gmatch("(%S+)=(%S+)") do r[k] = tonumber(v) end
  return r
end

-- Each mode ROUNDS times, interleaved; medians of each key.
local function medians(modes)
  local got = {}
  for _ = 1, ROUNDS do
    for _, m in ipairs(modes) do
      got[m] = got[m] or {}
      for k, v in pairs(run_mode(m)) do
        got[m][k] = got[m][k] or {}
        table.insert(got[m][k], v)
      end
    end
  end
  local med = {}
  for m, keys in pairs(got) do
    med[m] = {}
    for k, xs in pairs(keys) do
      table.sort(xs)
      med[m][k] = xs[(#xs + 1) // 2]
    end
  end
  return med
end

local gaps = medians { "gap-inflight", "gap-1mb" }
local gap_k, gap_1mb = gaps["gap-inflight"].worst_gap_ms, gaps["gap-1mb"].worst_gap_ms
local step_k, step_1mb = gaps["gap-inflight"].longest_step_ms, gaps["gap-1mb"].longest_step_ms
local idle = run_mode("idle").cpu_percent
local rates = medians { "calls-run", "calls-luv", "calls-cqueues" }
local c_run, c_luv, c_cq = rates["calls-run"], rates["calls-luv"], rates["calls-cqueues"]

local function met(ok) return ok and "met" or "**missed**" end
local out = {
  "",
  "### Host loops (issue 11)",
  "",
  ("Method: `make -C bench hosts` (bench/hosts.lua against bench/ref_server; "
    .. "1 MB answers from our own listener in another process); medians of %d "
    .. "interleaved runs of %g s, idle over %g s. A timer gap is wall-clock "
    .. "time: it also counts what the kernel gave other processes; the "
    .. "longest step is our own CPU time."):format(ROUNDS, SECONDS, IDLE),
  "",
  "| measurement | result | target | |",
  "|---|--:|--:|---|",
  ("| worst extra gap of a 10 ms luv timer, 100 calls in flight | %.2f ms | < 2 ms | %s |")
    :format(gap_k, met(gap_k < 2)),
  ("| worst extra gap of a 10 ms luv timer, 1 MB answers arriving | %.2f ms | < 2 ms | %s |")
    :format(gap_1mb, met(gap_1mb < 2)),
  ("| longest CPU time of one of our steps, 100 calls in flight | %.2f ms | | |"):format(step_k),
  ("| longest CPU time of one of our steps, 1 MB answers arriving | %.2f ms | | |"):format(step_1mb),
  ("| CPU of a luv program holding 10 idle connections | %.3f %% of a core | < 0.1 %% | %s |")
    :format(idle, met(idle < 0.1)),
  ("| calls/s, 100 in flight, jsonrpc.run | %.0f (%.2f µs CPU/call) | | |")
    :format(c_run.calls_per_s, c_run.cpu_us_per_call),
  ("| calls/s, 100 in flight, attached to luv | %.0f (%.2f×; %.2f µs CPU/call) | ≥ 0.9× | %s |")
    :format(c_luv.calls_per_s, c_luv.calls_per_s / c_run.calls_per_s, c_luv.cpu_us_per_call,
      met(c_luv.calls_per_s / c_run.calls_per_s >= 0.9)),
  ("| calls/s, 100 in flight, attached to cqueues | %.0f (%.2f×; %.2f µs CPU/call) | ≥ 0.9× | %s |")
    :format(c_cq.calls_per_s, c_cq.calls_per_s / c_run.calls_per_s, c_cq.cpu_us_per_call,
      met(c_cq.calls_per_s / c_run.calls_per_s >= 0.9)),
  "",
}
local text = table.concat(out, "\n")
print(text)
local f = io.open(bench_dir .. "/out/results.txt", "a")
if f then f:write(text, "\n") f:close() end
