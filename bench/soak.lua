--- make soak: the figures of issue 10 (memory and fairness under abuse).
-- Not part of make test (it takes about two minutes). Each part runs in a
-- child process of its own, so its peak RSS is its own:
--   broadcast  a listener with 100 clients that never read, broadcasting
--              64 KB notifications for 30 s: peak RSS (VmHWM)
--   fairness   another client's call latency while a neighbour sends
--              max-size batches (1,000 entries, 16 MB)
--   heap       Lua heap growth over 1,000,000 calls with timeout = 600
--              while a periodic task runs
--   keepalive  how long a listener with default options keeps a client
--              that froze (never reads, never answers a ping)
-- Usage: lua5.4 bench/soak.lua [part]   (run from the repository root,
-- with the module built: make build/jsonrpc_websocket/core.so)
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath

local jsonrpc = require "jsonrpc_websocket"


local function say(fmt, ...) io.write(fmt:format(...), "\n") io.flush() end

-- kB of a memory field of /proc/self/status ("VmRSS", "VmHWM").
local function status_kb(field)
  for line in io.lines("/proc/self/status") do
    local name, kb = line:match("^(%w+):%s*(%d+) kB")
    if name == field then return tonumber(kb) end
  end
end

local shared = require "hostile_helper" -- spec/hostile_helper.lua
local background, hostile = shared.background, shared.hostile
local PYTHON = shared.PYTHON

local parts = {}

function parts.broadcast()
  local SECONDS, PEERS = 30, 100
  local srv = jsonrpc.listen { send_queue_timeout = 120 } -- keep them all 30 s
  local clients = hostile(("clients %d %d --rcvbuf 4096"):format(srv.port, PEERS), 300)
  clients.wait_for("OPEN")
  while srv.count < PEERS do jsonrpc.sleep(0.01) end
  local idle_kb = status_kb("VmRSS")
  local payload = ("p"):rep(64 * 1024)
  local sent, skipped, t0 = 0, 0, jsonrpc.now()
  while jsonrpc.now() - t0 < SECONDS do
    local n, s = srv:notify_all("push", payload)
    sent, skipped = sent + n, skipped + s
    jsonrpc.sleep(0)
  end
  say("RESULT broadcast_peers %d", srv.count)
  say("RESULT broadcast_rss_idle_mb %.1f", idle_kb / 1024)
  say("RESULT broadcast_peak_rss_mb %.1f", status_kb("VmHWM") / 1024)
  say("RESULT broadcast_sent %d", sent)
  say("RESULT broadcast_skipped %d", skipped)
  say("RESULT broadcast_queues_mb %.1f", PEERS * 1) -- the default 1 MiB each
  clients.stop()
  srv:close()
end

-- The server for the fairness part, in a process of its own.
function parts.fairness_server()
  local srv = jsonrpc.listen {}
  srv.echo = function(x) return x end
  srv.add = function(a, b) return a + b end
  say("PORT %d", srv.port)
  srv:run()
end

local function percentile(sorted, p)
  return sorted[math.max(1, math.ceil(#sorted * p))]
end

-- Sequential calls for `seconds` (or until done()); sorted latencies in ms.
local function latencies(client, seconds, done)
  local list, t_end = {}, jsonrpc.now() + seconds
  while jsonrpc.now() < t_end and not (done and done()) do
    local t = jsonrpc.now()
    client.add(1, 2)
    list[#list + 1] = (jsonrpc.now() - t) * 1000
  end
  table.sort(list)
  return list
end

function parts.fairness()
  local server = background(("lua5.4 bench/soak.lua fairness_server"))
  local port = tonumber(server.wait_for("PORT (%d+)"))
  local client = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(port))
  client:ws_connect()
  local quiet = latencies(client, 2)
  -- max-size batches: 1,000 entries (max_batch) of 16,000 bytes, 16 MB
  local BATCHES = 5
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  local arg = ("b"):rep(16000)
  for _ = 1, BATCHES do
    local list = {}
    for i = 1, 1000 do
      list[i] = ('{"jsonrpc":"2.0","method":"echo","params":["%s"],"id":%d}'):format(arg, i)
    end
    f:write("[", table.concat(list, ","), "]\n")
  end
  f:close()
  local neighbour = hostile(("client %d --read --lengths --send %s"):format(port, file), 300)
  neighbour.wait_for("STATUS 101")
  local function answered()
    local n = 0
    for _ in neighbour.text():gmatch("RECV_LEN") do n = n + 1 end
    return n >= BATCHES
  end
  local t0 = jsonrpc.now()
  local busy = latencies(client, 120, answered)
  local took = jsonrpc.now() - t0
  local batches = 0
  for len in neighbour.text():gmatch("RECV_LEN (%d+)") do
    if tonumber(len) > 16000000 then batches = batches + 1 end
  end
  say("RESULT fairness_quiet_p50_ms %.2f", percentile(quiet, 0.5))
  say("RESULT fairness_quiet_p99_ms %.2f", percentile(quiet, 0.99))
  say("RESULT fairness_batches_answered %d (of %d, 16 MB each)", batches, BATCHES)
  say("RESULT fairness_batches_seconds %.1f", took)
  say("RESULT fairness_calls_meanwhile %d", #busy)
  say("RESULT fairness_busy_p50_ms %.2f", percentile(busy, 0.5))
  say("RESULT fairness_busy_p99_ms %.2f", percentile(busy, 0.99))
  say("RESULT fairness_busy_max_ms %.2f", busy[#busy])
  client:close()
  neighbour.stop()
  server.stop()
  os.remove(file)
end

function parts.heap()
  local CALLS, TASKS = 1000000, 100
  local srv = jsonrpc.listen {}
  srv.echo = function(x) return x end
  local client = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port))
  client:ws_connect()
  local ticks, stop = 0, false
  local heap_start, heap_end
  local t0 = jsonrpc.now()
  jsonrpc.run(function()
    jsonrpc.spawn(function() -- the live periodic task
      while not stop do jsonrpc.sleep(0.05) ticks = ticks + 1 end
    end)
    local function caller(n)
      for i = 1, n do client:call("echo", { i }, { timeout = 600 }) end
    end
    caller(20000) -- warm up: tables reach their working size
    collectgarbage("collect")
    heap_start = collectgarbage("count")
    local left = TASKS
    for _ = 1, TASKS do
      jsonrpc.spawn(function() caller((CALLS - 20000) // TASKS) left = left - 1 end)
    end
    while left > 0 do jsonrpc.sleep(0.05) end
    collectgarbage("collect")
    heap_end = collectgarbage("count")
    stop = true
  end)
  say("RESULT heap_calls %d", CALLS)
  say("RESULT heap_seconds %.1f", jsonrpc.now() - t0)
  say("RESULT heap_periodic_ticks %d", ticks)
  say("RESULT heap_start_kb %.0f", heap_start)
  say("RESULT heap_growth_kb %.1f", heap_end - heap_start)
  client:close()
  srv:close()
end

function parts.keepalive()
  local srv = jsonrpc.listen {} -- default keepalive
  local gone
  srv:on("disconnect", function() gone = jsonrpc.now() end)
  local t0 = jsonrpc.now()
  local frozen = background(("%s spec/silent_client.py 127.0.0.1 %d 90"):format(PYTHON, srv.port))
  frozen.wait_for("101")
  while not gone and jsonrpc.now() - t0 < 80 do jsonrpc.sleep(0.2) end
  if gone then say("RESULT keepalive_frozen_dropped_after_s %.1f", gone - t0)
  else say("RESULT keepalive_frozen_dropped_after_s never (80 s)") end
  frozen.stop()
  srv:close()
end

local part = arg[1]
if part then
  assert(parts[part], "unknown part " .. part)()
  os.exit(0)
end

-- The driver: every part in a child process; keepalive runs alongside.
local ka = io.popen("lua5.4 bench/soak.lua keepalive 2>&1")
local lines = {}
for _, name in ipairs { "broadcast", "fairness", "heap" } do
  local h = io.popen("lua5.4 bench/soak.lua " .. name .. " 2>&1")
  for line in h:lines() do
    print(line)
    lines[#lines + 1] = line
  end
  h:close()
end
for line in ka:lines() do
  print(line)
  lines[#lines + 1] = line
end
ka:close()
os.execute("mkdir -p bench/out")
local f = assert(io.open("bench/out/soak.txt", "w"))
f:write(table.concat(lines, "\n"), "\n")
f:close()
