-- Pressure and abuse: memory stays bounded by configuration, not by what a
-- peer does; the process and the other peers carry on. Hostile peers are
-- spec/hostile.py (raw sockets where the websockets library would not
-- misbehave for us).
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
