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
      local jsonrpc, sum = require "jsonrpc_websocket", nil
      local s = jsonrpc.Server(%q):ws_connect()
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
end)

describe("jsonrpc.queue()", function()
  it("hands values over in order, to tasks that wait and to plain code", function()
    local q = jsonrpc.queue()
    local got = {}
    jsonrpc.run(function()
      jsonrpc.spawn(function()
        for item in q do got[#got + 1] = item end
        got[#got + 1] = "end"
      end)
      for i = 1, 3 do
        q:put(i)
        jsonrpc.sleep(0.01)
      end
      q:put(4)
      q:put(false) -- any value but nil
      q:finish()
    end)
    assert.same({ 1, 2, 3, 4, false, "end" }, got)
    -- plain code: waits by driving the loop
    local p = jsonrpc.queue()
    jsonrpc.spawn(function() jsonrpc.sleep(0.02) p:put("later") end)
    assert.equal("later", p:next(5))
  end)

  it("times out with nil + TimeoutError, and the late value still arrives", function()
    local q = jsonrpc.queue()
    local item, err = q:next(0.05)
    assert.is_nil(item)
    assert.is_true(jsonrpc.TimeoutError.is(err))
    assert.equal("nothing arrived within 0.05 s", err.message)
    q:put("x")
    assert.equal("x", q:next(0))
  end)

  it("bounds what it holds: drop_oldest counts, error ends it", function()
    local q = jsonrpc.queue { max = 3 }
    for i = 1, 10 do assert.is_true(q:put(i)) end
    assert.equal(3, #q)
    assert.equal(7, q.dropped)
    assert.same({ 8, 9, 10 }, { q:next(), q:next(), q:next() })
    local strict = jsonrpc.queue { max = 2, overflow = "error" }
    assert.is_true(strict:put("a"))
    assert.is_true(strict:put("b"))
    assert.is_false(strict:put("c"))
    assert.equal("a", strict:next())
    assert.equal("b", strict:next())
    local item, err = strict:next()
    assert.is_nil(item)
    assert.is_true(jsonrpc.OverflowError.is(err))
    assert.equal(2, err.limit)
  end)

  it("wakes its waiters when closed, and refuses bad use", function()
    local q = jsonrpc.queue()
    local ended = {}
    jsonrpc.run(function()
      for i = 1, 2 do
        jsonrpc.spawn(function() ended[i] = { q:next() } end)
      end
      jsonrpc.sleep(0.01)
      q:close()
    end)
    assert.same({ {}, {} }, ended)
    assert.is_false(q:put(1))
    assert.has_error(function() q:put(nil) end, "bad argument #1 to 'put' (a value expected, got nil)")
    assert.has_error(function() jsonrpc.queue { max = 0 } end, "option 'max' must be a positive integer")
    assert.has_error(function() jsonrpc.queue { overflow = "block" } end,
      "option 'overflow' must be \"drop_oldest\" or \"error\"")
    assert.has_error(function() jsonrpc.queue():next(-1) end,
      "bad argument #1 to 'next' (non-negative number of seconds expected)")
  end)
end)

describe("jsonrpc.event()", function()
  it("wakes every waiter when set, and times out while not set", function()
    local ev = jsonrpc.event()
    local woke = 0
    jsonrpc.run(function()
      for _ = 1, 3 do
        jsonrpc.spawn(function() assert(ev:wait()) woke = woke + 1 end)
      end
      jsonrpc.sleep(0.01)
      assert.equal(0, woke)
      ev:set()
    end)
    assert.equal(3, woke)
    assert.is_true(ev:wait(0))
    ev:clear()
    local ok, err = ev:wait(0.02)
    assert.is_nil(ok)
    assert.equal("not set within 0.02 s", err.message)
  end)
end)
