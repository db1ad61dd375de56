--- Streams benchmark (issue 14): items/s through a subscription iterator
-- against the same notifications through a plain handler, and the memory
-- of 10,000 queued items. Starts bench/stream_server.lua (pinned to CPU 0
-- when there are two, the client to CPU 1 by the caller).
--    lua5.4 streams.lua            (make streams)
-- Environment: ROUNDS (default 5), ITEMS (per run, default 100000).
-- Prints markdown tables and writes them to out/streams.txt.

local bench_dir = arg[0]:match("^(.*)/[^/]*$") or "."
local root = bench_dir .. "/.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath

local jsonrpc = require "jsonrpc_websocket"

local ROUNDS = math.tointeger(tonumber(os.getenv("ROUNDS"))) or 5
local N = math.tointeger(tonumber(os.getenv("ITEMS"))) or 100000
local QUEUED = 10000
local pin = os.getenv("SERVER_PIN") or ""

local server_proc = assert(io.popen(("exec %s %s %s/stream_server.lua")
  :format(pin, os.getenv("LUA") or "lua5.4", bench_dir), "r"))
local port, server_pid = (server_proc:read("l") or ""):match("^PORT (%d+) PID (%d+)")
assert(port, "stream_server did not start")

local s = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(port), { timeout = 60 })
s:ws_connect()

-- Times fn (wall and this process's CPU); returns items/s, CPU µs per item.
local function measure(fn)
  collectgarbage()
  local c0, t0 = os.clock(), jsonrpc.now()
  jsonrpc.run(fn)
  local cpu, wall = os.clock() - c0, jsonrpc.now() - t0
  return N / wall, cpu / N * 1e6
end

local function through_stream()
  local st = s:subscribe("eth_subscribe", { "bench" }, { max_queue = N })
  local rate, cpu = measure(function()
    s.flood("eth_subscription", st.id, N)
    local count = 0
    for _ in st do
      count = count + 1
      if count == N then break end
    end
  end)
  assert(st.dropped == 0)
  st:close()
  return rate, cpu
end

local function through_handler()
  local id = s:call("eth_subscribe", { "bench" })
  local count, done = 0, jsonrpc.event()
  s.eth_subscription = function()
    count = count + 1
    if count == N then done:set() end
  end
  local rate, cpu = measure(function()
    s.flood("eth_subscription", id, N)
    done:wait()
  end)
  s.eth_subscription = nil
  s.eth_unsubscribe(id)
  return rate, cpu
end

local function median(list)
  table.sort(list)
  local n = #list
  if n % 2 == 1 then return list[(n + 1) // 2] end
  return (list[n // 2] + list[n // 2 + 1]) / 2
end

local runs = { stream = { rate = {}, cpu = {} }, handler = { rate = {}, cpu = {} } }
through_stream() -- warm up both paths
through_handler()
for _ = 1, ROUNDS do
  for _, which in ipairs { "stream", "handler" } do
    local rate, cpu = (which == "stream" and through_stream or through_handler)()
    table.insert(runs[which].rate, rate)
    table.insert(runs[which].cpu, cpu)
  end
end

-- Memory: 10,000 items queued in a stream that nobody reads.
local function queued_memory()
  collectgarbage()
  collectgarbage()
  local before = collectgarbage("count")
  local st = s:subscribe("eth_subscribe", { "bench" }, { max_queue = QUEUED })
  local item_bytes = s.flood("eth_subscription", st.id, QUEUED)
  while #st < QUEUED do jsonrpc.sleep(0.01) end
  collectgarbage()
  collectgarbage()
  local after = collectgarbage("count")
  st:close()
  return (after - before) * 1024, item_bytes
end
local mem, message_bytes = queued_memory()

local stream_rate, handler_rate = median(runs.stream.rate), median(runs.handler.rate)
local lines = {
  ("### Streams (issue 14): %d notifications per run, median of %d rounds"):format(N, ROUNDS),
  "",
  "| path | items/s | client CPU per item |",
  "|---|---:|---:|",
  ("| `for item in stream` (server:subscribe) | %.0f | %.2f µs |")
    :format(stream_rate, median(runs.stream.cpu)),
  ("| handler `server.eth_subscription = fn` | %.0f | %.2f µs |")
    :format(handler_rate, median(runs.handler.cpu)),
  ("| ratio stream / handler | %.2f× | |"):format(stream_rate / handler_rate),
  "",
  ("%d items queued in a stream nobody reads: %.0f KiB, %.0f bytes per item "
    .. "(each a %d-byte notification, decoded to a table of 5 strings)")
    :format(QUEUED, mem / 1024, mem / QUEUED, message_bytes),
}
local text = table.concat(lines, "\n") .. "\n"
io.write(text)
os.execute("mkdir -p " .. bench_dir .. "/out")
local f = io.open(bench_dir .. "/out/streams.txt", "w")
if f then
  f:write(text)
  f:close()
end

s:close()
os.execute("kill " .. server_pid)
server_proc:close()
