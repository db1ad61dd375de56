-- Pressure and abuse: memory stays bounded by configuration, not by what a
-- peer does; the process and the other peers carry on. Hostile peers are
-- spec/hostile.py (raw sockets where the websockets library would not
-- misbehave for us).
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"
local sched = require "jsonrpc_websocket.scheduler"

local function lua_heap_kb()
  collectgarbage("collect")
  collectgarbage("collect")
  return collectgarbage("count")
end

describe("cancelled timers", function()
  it("are freed at once, while an earlier timer is live", function()
    local srv = jsonrpc.listen {}
    srv.echo = function(x) return x end
    local c = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port))
    c:ws_connect()
    local live = sched.timer(500, function() end) -- due before every call's deadline
    local before_count = sched.timer_count()
    for i = 1, 500 do c:call("echo", { i }, { timeout = 600 }) end
    local before = lua_heap_kb()
    for i = 1, 5000 do c:call("echo", { i }, { timeout = 600 }) end
    local after = lua_heap_kb()
    assert.equal(before_count, sched.timer_count())
    -- each call's timer used to stay until its deadline: ~140 B a call
    assert.is_true(after - before < 150, ("Lua heap grew %.0f KB"):format(after - before))
    sched.cancel(live)
    assert.equal(before_count - 1, sched.timer_count())
    c:close()
    srv:close()
  end)

  it("keep their order when taken from the middle of the heap", function()
    local fired = {}
    local timers = {}
    for i = 1, 40 do
      timers[i] = sched.timer(0.001 * ((i * 7) % 40), function(n) fired[#fired + 1] = n end, i)
    end
    for i = 1, 40, 3 do sched.cancel(timers[i]) end
    jsonrpc.sleep(0.08)
    local expect = {}
    for i = 1, 40 do
      if (i - 1) % 3 ~= 0 then expect[#expect + 1] = i end
    end
    table.sort(expect, function(a, b) return (a * 7) % 40 < (b * 7) % 40 end)
    assert.same(expect, fired)
  end)
end)

---------------------------------------------------------------------------
-- Hostile peers (spec/hostile.py), run in the background while our loop
-- serves: their output goes to a file we poll.
---------------------------------------------------------------------------
local PYTHON = "/usr/bin/python3"
local LINK = require("jsonrpc_websocket.client").LINK

local function my_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("a"):match("^(%d+)")
  f:close()
  return pid
end

local function hostile(args)
  local out = os.tmpname()
  assert(os.execute(("%s spec/hostile.py %s --watch %s > %s 2>&1 &")
    :format(PYTHON, args, my_pid(), out)))
  local h = {}
  function h.text()
    local f = io.open(out)
    local text = f and f:read("a") or ""
    if f then f:close() end
    return text
  end
  --- Serves our loop until the output matches `pattern`; returns the capture.
  function h.wait_for(pattern, timeout)
    local deadline = jsonrpc.now() + (timeout or 10)
    repeat
      local found = h.text():match(pattern)
      if found then return found end
      jsonrpc.sleep(0.02)
    until jsonrpc.now() > deadline
    error(("hostile.py %s: no %q in:\n%s"):format(args, pattern, h.text():sub(1, 400)))
  end
  function h.stop()
    local pid = h.text():match("PID (%d+)")
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    os.remove(out)
  end
  return h
end

--- Serves the loop until fn() holds (or fails after `timeout` s).
local function eventually(fn, timeout, what)
  local deadline = jsonrpc.now() + (timeout or 10)
  while not fn() do
    if jsonrpc.now() > deadline then error("timed out waiting for " .. (what or "a condition")) end
    jsonrpc.sleep(0.02)
  end
end

local function conn_of(peer_or_server) return rawget(peer_or_server, LINK).conn end

describe("a bounded send queue", function()
  local KB = 1024
  local payload = ("x"):rep(8 * KB)

  it("notify_all skips a peer that never reads, closes it after send_queue_timeout, serves the others", function()
    local srv = jsonrpc.listen { max_send_queue = 64 * KB, send_queue_timeout = 1 }
    srv.add = function(a, b) return a + b end
    local events, reports = {}, {}
    srv:on("queue_full", function(peer) events[#events + 1] = "full " .. peer.id end)
    srv:on("disconnect", function(peer, code) events[#events + 1] = ("gone %d %d"):format(peer.id, code) end)
    srv:on("error", function(err) reports[#reports + 1] = tostring(err) end)
    local bad = hostile(("client %d --rcvbuf 4096"):format(srv.port))
    bad.wait_for("STATUS 101")
    local good = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port))
    local got = 0
    good.push = function() got = got + 1 end
    good:ws_connect()
    eventually(function() return srv.count == 2 end)
    local hostile_peer
    for _, p in ipairs(srv:peers()) do if p.id == 1 then hostile_peer = p end end
    local skipped_total, most_queued = 0, 0
    for _ = 1, 400 do -- 3.2 MB offered to each peer
      local _, skipped = srv:notify_all("push", payload)
      skipped_total = skipped_total + skipped
      if hostile_peer.connected then
        most_queued = math.max(most_queued, (conn_of(hostile_peer):queued()))
      end
      jsonrpc.sleep(0.001)
    end
    assert.is_true(skipped_total > 0)
    assert.is_true(hostile_peer.skipped == skipped_total)
    assert.is_true(most_queued <= 64 * KB, "queued " .. most_queued)
    eventually(function() return got == 400 end, 10, "the good client's notifications")
    eventually(function() return not hostile_peer.connected end, 10, "the hostile peer's close")
    assert.equal(3, good.add(1, 2))
    assert.same({ "full 1", "gone 1 1008" }, events)
    assert.matches("send queue full", table.concat(reports, "\n"), 1, true)
    good:close()
    srv:close()
    bad.stop()
  end)

  it("a client's calls and notifications wait for room, bounded by their timeout", function()
    local bad = helper.start_peer("server --rcvbuf 4096", "spec/hostile.py")
    local c = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(bad.port),
      { max_send_queue = 64 * KB, timeout = 0.5, send_queue_timeout = 3 })
    local reports = {}
    c:on("error", function(e) reports[#reports + 1] = tostring(e) end)
    c:ws_connect()
    local err
    local sent = 0
    local ok = pcall(function()
      for _ = 1, 10000 do -- 80 MB if nothing held it back
        c:notify("push", payload)
        sent = sent + 1
      end
    end)
    assert.is_false(ok)
    assert.is_true(sent < 10000)
    local queued = conn_of(c):queued()
    assert.is_true(queued <= 64 * KB, "queued " .. queued)
    -- a call from a task waits too, and times out with the same cause
    jsonrpc.run(function()
      ok, err = pcall(c.call, c, "echo", { payload })
    end)
    assert.is_false(ok)
    assert.is_true(jsonrpc.TimeoutError.is(err), tostring(err))
    assert.matches("send queue full", tostring(err), 1, true)
    -- the queue stays full: after send_queue_timeout the connection goes
    local t0 = jsonrpc.now()
    ok, err = pcall(c.call, c, "echo", { payload }, { timeout = 10 })
    assert.is_false(ok)
    assert.is_true(jsonrpc.TransportError.is(err) and not jsonrpc.TimeoutError.is(err), tostring(err))
    assert.is_true(jsonrpc.now() - t0 < 9)
    eventually(function() return not c.connected end)
    assert.matches("send queue full", tostring(err), 1, true)
    assert.matches("send queue full for longer than send_queue_timeout", reports[1], 1, true)
    bad.stop()
  end)
end)
