--- The benchmark's Lua client: the same work as floor_client.c, done
-- through the public API of jsonrpc_websocket.
--
--    lua5.4 lua_client.lua PORT inflight K [SECONDS]  add(i, 1), K in flight
--                                                    (K = 1: a plain script,
--                                                    else K tasks)
--    lua5.4 lua_client.lua PORT batch B [SECONDS]     batches of B add calls
--    lua5.4 lua_client.lua PORT echo BYTES [SECONDS]  echo of a BYTES string
--    lua5.4 lua_client.lua PORT mem K                 K sleep_echo calls held
--                                                    by the server; RSS
--
-- Warms up for WARM seconds, measures for SECONDS (default 1), then stops
-- asking and lets calls in flight finish. Prints the same line as the floor:
--    RESULT calls=N secs=S cpu=S maxrss_kb=K [rss_idle_kb=I rss_loaded_kb=L]
-- or "SKIP why" when the API for a mode is not there (batches, for now).

-- Load the module from this checkout, wherever it is.
local bench_dir = arg[0]:match("^(.*)/[^/]*$") or "."
local root = bench_dir .. "/.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath

local jsonrpc = require "jsonrpc_websocket"

local WARM = 0.1
local MEM_DELAY_MS = 2000 -- mem mode: the server holds each answer this long

local now, clock = jsonrpc.now, os.clock

local function usage()
  io.stderr:write("usage: lua5.4 lua_client.lua PORT inflight|batch|echo|mem N [SECONDS]\n")
  os.exit(2)
end

local port, mode, n = tonumber(arg[1]), arg[2], math.tointeger(tonumber(arg[3]))
local seconds = tonumber(arg[4]) or 1.0
if not (port and mode and n) then usage() end

--- A field of /proc/self/status in kB ("VmRSS", "VmHWM").
local function rss_kb(field)
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("a")
  f:close()
  return tonumber(text:match(field .. ":%s*(%d+)"))
end

local function report(calls, secs, cpu, extra)
  io.write(("RESULT calls=%d secs=%.6f cpu=%.6f maxrss_kb=%d%s\n")
    :format(calls, secs, cpu, rss_kb("VmHWM"), extra or ""))
end

local function check(got, want, what)
  if got ~= want then
    error(("%s: expected %s, got %s"):format(what, tostring(want), tostring(got)), 2)
  end
end

--- Runs `step` (which returns how many calls it made) in a plain loop:
-- WARM seconds unmeasured, then `seconds` measured.
local function timed_loop(step)
  local warm_end = now() + WARM
  while now() < warm_end do step() end
  local t0, cpu0, calls = now(), clock(), 0
  local stop_at, t = t0 + seconds
  repeat
    calls = calls + step()
    t = now()
  until t >= stop_at
  return calls, t - t0, clock() - cpu0
end

-- Every call gets the usual per-call timeout; BENCH_TIMEOUT=none drops it
-- (to see what the timers cost).
local timeout = os.getenv("BENCH_TIMEOUT") or "30"
local server = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(port),
  { timeout = tonumber(timeout) })
server:ws_connect()

local modes = {}

--- One call at a time, in a plain script: each call blocks.
local function sequential()
  local i = 0
  return timed_loop(function()
    i = i + 1
    check(server.add(i, 1), i + 1, "add")
    return 1
  end)
end

--- K tasks, each calling in a loop: K calls in flight on one connection.
local function concurrent(k)
  local stop, done = false, 0
  local t0, cpu0, done0, t1, cpu1, done1
  local function worker(i)
    while not stop do
      check(server.add(i, 1), i + 1, "add")
      done = done + 1
    end
  end
  jsonrpc.run(function()
    for i = 1, k do jsonrpc.spawn(worker, i) end
    jsonrpc.sleep(WARM)
    t0, cpu0, done0 = now(), clock(), done
    jsonrpc.sleep(seconds)
    t1, cpu1, done1 = now(), clock(), done
    stop = true
  end)
  return done1 - done0, t1 - t0, cpu1 - cpu0
end

function modes.inflight(k)
  if k == 1 then return sequential() end
  return concurrent(k)
end

--- A batch of b add calls; errors (as when batches do not exist yet)
-- propagate to the caller.
local function one_batch(b)
  local answers = server:batch(function(batch)
    for i = 1, b do batch.add(i, 1) end
  end)
  check(type(answers), "table", "batch answer")
  for i = 1, b do check(answers[i].result, i + 1, "batch add") end
  return b
end

function modes.batch(b)
  local ok, why = pcall(one_batch, 1)
  if not ok then
    print(("SKIP server:batch is not available (%s)"):format(tostring(why)))
    return nil
  end
  return timed_loop(function() return one_batch(b) end)
end

function modes.echo(bytes)
  local payload = ("x"):rep(bytes)
  local params = { payload }
  return timed_loop(function()
    check(#server:call("echo", params), bytes, "echo length")
    return 1
  end)
end

--- RSS with k calls waiting on the server, against RSS when connected and
-- idle. The sample is taken halfway through the server's delay, when
-- every call has long been sent.
function modes.mem(k)
  check(server.add(1, 1), 2, "add")
  collectgarbage()
  collectgarbage()
  local idle, idle_heap = rss_kb("VmRSS"), collectgarbage("count")
  local loaded, heap, live
  local t0, cpu0 = now(), clock()
  jsonrpc.run(function()
    for i = 1, k do
      jsonrpc.spawn(function() check(server.sleep_echo(MEM_DELAY_MS, i), i, "sleep_echo") end)
    end
    jsonrpc.sleep(MEM_DELAY_MS / 2000)
    loaded, heap = rss_kb("VmRSS"), collectgarbage("count")
    collectgarbage() -- after the RSS sample: what of the heap is live
    live = collectgarbage("count")
  end)
  return k, now() - t0, clock() - cpu0,
    (" rss_idle_kb=%d rss_loaded_kb=%d lua_idle_kb=%.0f lua_heap_kb=%.0f lua_live_kb=%.0f")
      :format(idle, loaded, idle_heap, heap, live)
end

local run = modes[mode] or usage()
local calls, secs, cpu, extra = run(n)
server:close()
if calls then report(calls, secs, cpu, extra) end
