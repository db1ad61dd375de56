-- Tasks, the loop, and calls from every kind of caller.
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"

describe("tasks", function()
  local s
  before_each(function() s = helper.connected() end)
  after_each(function() s:close() end)

  it("run() drives the loop until every task finished", function()
    local order = {}
    jsonrpc.run(function(a, b)
      order[#order + 1] = a + b
      jsonrpc.spawn(function() jsonrpc.sleep(0.05) order[#order + 1] = "late" end)
      jsonrpc.spawn(function(x) order[#order + 1] = x end, "early")
    end, 1, 2)
    assert.same({ 3, "early", "late" }, order)
  end)

  it("answers 1,000 concurrent calls from tasks, out of order", function()
    local results, finished = {}, {}
    jsonrpc.run(function()
      for i = 1, 1000 do
        jsonrpc.spawn(function()
          results[i] = s.sleep(((i * 7919) % 100) / 2000, i)
          finished[#finished + 1] = i
        end)
      end
    end)
    local in_order = true
    for i = 1, 1000 do
      assert.equal(i, results[i])
      if finished[i] ~= i then in_order = false end
    end
    assert.equal(1000, #finished)
    assert.is_false(in_order) -- answers really came back out of order
  end)

  it("keeps calls in flight at once", function()
    local t0 = jsonrpc.now()
    jsonrpc.run(function()
      for _ = 1, 50 do jsonrpc.spawn(function() s.sleep(0.2) end) end
    end)
    assert.is_true(jsonrpc.now() - t0 < 1.5)
  end)

  it("lets tasks progress while a plain call blocks", function()
    local ticks = 0
    jsonrpc.spawn(function()
      for _ = 1, 3 do jsonrpc.sleep(0.02) ticks = ticks + 1 end
    end)
    assert.equal("done", s.sleep(0.2, "done"))
    assert.equal(3, ticks)
  end)

  it("works from a coroutine that is not ours (it blocks)", function()
    local co = coroutine.wrap(function() return s.add(2, 3) end)
    assert.equal(5, co())
  end)

  it("never hands our values to someone else's resume", function()
    local got
    jsonrpc.run(function()
      local gen = coroutine.wrap(function()
        coroutine.yield(s.add(1, 1))
        coroutine.yield(s.add(2, 2))
      end)
      got = { gen(), gen() }
    end)
    assert.same({ 2, 4 }, got)
  end)

  it("a bare coroutine.yield() in a task lets others run", function()
    local log = {}
    jsonrpc.run(function()
      jsonrpc.spawn(function() log[#log + 1] = "b" end)
      coroutine.yield()
      log[#log + 1] = "a"
    end)
    assert.same({ "b", "a" }, log)
  end)

  it("sleep() blocks outside a task", function()
    local t0 = jsonrpc.now()
    jsonrpc.sleep(0.1)
    local dt = jsonrpc.now() - t0
    assert.is_true(dt >= 0.095 and dt < 0.5, tostring(dt))
  end)

  it("run() re-raises a task's error", function()
    assert.has_error(function()
      jsonrpc.run(function() error("task failed") end)
    end)
    local ok, err = pcall(jsonrpc.run, function()
      jsonrpc.spawn(function() error({ code = 7 }) end)
      jsonrpc.sleep(0.01)
    end)
    assert.is_false(ok)
    assert.matches("traceback", tostring(err))
  end)

  it("run() refuses to wait forever for nothing", function()
    -- in a fresh process: here other specs' connections may still be open
    local ok, out = helper.run_lua([[
      local jsonrpc = require "jsonrpc_websocket"
      local sched = require "jsonrpc_websocket.scheduler"
      print(select(2, pcall(jsonrpc.run, function() sched.wait(sched.waiter()) end)))
      jsonrpc.run(function() end) -- the stuck task no longer counts
      print("after")
    ]])
    assert.is_true(ok, out)
    assert.equal("jsonrpc_websocket.run: 1 task(s) wait for something that can never "
      .. "happen (no connection, no timer)\nafter\n", out)
  end)

  it("run() cannot be called from inside a task", function()
    local ok, err
    jsonrpc.run(function() ok, err = pcall(jsonrpc.run, function() end) end)
    assert.is_false(ok)
    assert.matches("from inside a task", err)
  end)

  it("checks its arguments", function()
    assert.has_error(function() jsonrpc.run(1) end, "bad argument #1 to 'run' (function expected)")
    assert.has_error(function() jsonrpc.spawn() end, "bad argument #1 to 'spawn' (function expected)")
    assert.has_error(function() jsonrpc.sleep("x") end, "bad argument #1 to 'sleep' (number expected)")
  end)

  it("connects and closes from inside tasks", function()
    local url = helper.peer().url()
    local got = {}
    jsonrpc.run(function()
      for i = 1, 5 do
        jsonrpc.spawn(function()
          local c = jsonrpc.Server(url)
          c:ws_connect()
          got[i] = c.add(i, i)
          c:close()
        end)
      end
    end)
    assert.same({ 2, 4, 6, 8, 10 }, got)
  end)
end)
