-- Waiting that is not a call: a bare coroutine.yield() in a task, and the
-- primitives jsonrpc.queue() and jsonrpc.event().
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"

describe("a bare coroutine.yield() in a task", function()
  -- In a child process: before the fix, these spun at 100 % CPU forever
  -- (the yielded task went straight back on the queue of the same pass).
  it("lets timers run while it spins", function()
    local ok, out = helper.run_lua([[
      local jsonrpc = require "jsonrpc_websocket"
      local done, spins = false, 0
      jsonrpc.run(function()
        jsonrpc.spawn(function() jsonrpc.sleep(0.05) done = true end)
        while not done do spins = spins + 1 coroutine.yield() end
      end)
      print("finished after spins:", spins > 0)
    ]])
    assert.is_true(ok, out)
    assert.matches("finished after spins:%s+true", out)
  end)

  it("lets I/O run while it spins: a call in another task is answered", function()
    local ok, out = helper.run_lua(([[
      local jsonrpc = require "jsonrpc_websocket"
      local s = jsonrpc.Server(%q)
      s:ws_connect()
      local sum
      jsonrpc.run(function()
        jsonrpc.spawn(function() sum = s.add(20, 22) end)
        while not sum do coroutine.yield() end
      end)
      print("sum", sum)
      s:close()
    ]]):format(helper.peer().url()))
    assert.is_true(ok, out)
    assert.matches("sum%s+42", out)
  end)

  it("still lets the other ready tasks run first", function()
    local log = {}
    jsonrpc.run(function()
      jsonrpc.spawn(function() log[#log + 1] = "b" end)
      coroutine.yield()
      log[#log + 1] = "a"
    end)
    assert.same({ "b", "a" }, log)
  end)
end)
