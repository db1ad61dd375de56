-- Host loops (issue 11): the library driven by luv, by a cqueues
-- controller, and as a raw pollable by a hand-written poll loop. attach
-- lasts for the process, so each case is a program of its own against
-- real peers: the Python peer and our own listener, on 127.0.0.1.
local helper = require "helper"

-- Runs `code` (with PEER set to the Python peer's URL) as a program;
-- returns its output, failing with it when the program failed.
local function program(code)
  local ok, out = helper.run_lua(("local PEER = %q\n"):format(helper.peer().url())
    .. "local jsonrpc = require 'jsonrpc_websocket'\n" .. code)
  assert(ok, out)
  return out
end

-- program, with `prelude` before the code.
local function program_with(prelude)
  return function(code) return program(prelude .. code) end
end

-- Attached to luv (`uv` is the luv module); with `cqueues` loaded.
local luv_program = program_with('local uv = require "luv"\njsonrpc.attach(uv)\n')
local cqueues_program = program_with('local cqueues = require "cqueues"\n')
-- Attached to a cqueues controller, `cq`.
local cq_program = program_with('local cqueues = require "cqueues"\n'
  .. 'local cq = cqueues.new()\njsonrpc.attach(cq)\n')

describe("luv", function()
  it("ticks a 10 ms timer while 1,000 calls wait; serves and calls in one program", function()
    local out = luv_program [[
      local srv = jsonrpc.listen { port = 0 }
      srv.add = function(a, b) return a + b end
      local ticks = 0
      local tick = uv.new_timer()
      tick:start(10, 10, function() ticks = ticks + 1 end)
      coroutine.wrap(function()
        local own = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port))
        own:ws_connect()                         -- yields to luv
        local peer = jsonrpc.Server(PEER, { timeout = 20 })
        peer:ws_connect()
        local n, done, ticks0 = 1000, 0, ticks
        for i = 1, n do
          coroutine.wrap(function()
            -- the peer answers each after 50 ms: the calls wait together
            assert(peer.sleep(0.05, i) == i)
            assert(own.add(i, 1) == i + 1)
            done = done + 1
            if done == n then
              print("done", done, "ticks while waiting", ticks - ticks0 > 0)
              own:close(); peer:close(); srv:close(); tick:close()
            end
          end)()
        end
        print("all sent before any answer", done == 0)
      end)()
      uv.run()
      print("uv.run returned", jsonrpc.loop:busy())
    ]]
    assert.equal("all sent before any answer\ttrue\ndone\t1000\tticks while waiting\ttrue\n"
      .. "uv.run returned\tfalse\n", out)
  end)

  it("runs handlers, timeouts, batches, reconnects and keepalive attached", function()
    local out = luv_program [[
      coroutine.wrap(function()
        local s = jsonrpc.Server(PEER, { reconnect = { initial = 0.05, max = 0.1 },
          on_error = function() end })
        s:ws_connect()
        -- the peer calls us; the handler calls the peer back
        s.twice = function(x)
          local y = s.add(x, x)
          return y
        end
        print("handler", math.tointeger(s.call_client("twice", { 21 }).result))
        local ok, err = pcall(s.call, s, "never", nil, { timeout = 0.1 })
        print("timeout", ok, jsonrpc.TimeoutError.is(err))
        local r = s:batch(function(b) b.add(1, 2); b.echo("x") end)
        print("batch", r[1].result, r[2].result[1])
        pcall(s.drop)                            -- the peer drops us
        local t0 = jsonrpc.now()
        while not s.connected and jsonrpc.now() - t0 < 10 do
          local timer = uv.new_timer()           -- a luv way to wait
          local co = coroutine.running()
          timer:start(20, 0, function() timer:close() coroutine.resume(co) end)
          coroutine.yield()
        end
        print("reconnected", s.add(2, 3))
        s:close()
        -- keepalive: our pings and deadlines run on a timer luv drives
        local frozen = jsonrpc.Server(PEER, { keepalive = 1 })
        frozen:ws_connect()
        local ok2, err2 = pcall(frozen.freeze, 10)
        print("keepalive", ok2, err2.cause)
      end)()
      uv.run()
      print("returned")
    ]]
    assert.equal("handler\t42\ntimeout\tfalse\ttrue\nbatch\t3\tx\nreconnected\t5\n"
      .. "keepalive\tfalse\tkeepalive timeout\nreturned\n", out)
  end)

  it("leaves events over a step's budget to the next step, losing none", function()
    -- budget 0: each step hands over a few events and leaves the rest
    local out = luv_program [[
      print(pcall(jsonrpc.loop.set_step_budget, jsonrpc.loop, -1))
      jsonrpc.loop:set_step_budget(0)
      local srv = jsonrpc.listen { port = 0 }
      srv.add = function(a, b) return a + b end
      coroutine.wrap(function()
        local s = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port))
        s:ws_connect()
        local n, done = 1000, 0
        for i = 1, n do
          coroutine.wrap(function()
            assert(s.add(i, 1) == i + 1)
            assert(s.add(i, 2) == i + 2)
            done = done + 1
            if done == n then s:close(); srv:close() end
          end)()
        end
      end)()
      uv.run()
      print("uv.run returned", jsonrpc.loop:busy())
    ]]
    assert.matches("^false\t.*bad argument #1 to 'set_step_budget' %(non%-negative", out)
    assert.matches("\nuv.run returned\tfalse\n$", out)
  end)

  it("raises a clear error for a call that cannot yield, and for bad attach", function()
    local out = program [[
      local uv = require "luv"
      print(select(2, pcall(jsonrpc.attach, 42)))
      print(select(2, pcall(jsonrpc.attach, {})))
      jsonrpc.attach(uv)
      jsonrpc.attach(uv)                         -- the same again: fine
      local cqueues = require "cqueues"
      print(select(2, pcall(jsonrpc.attach, cqueues.new())))
      local s = jsonrpc.Server(PEER)
      s:ws_connect()                             -- plain code before uv.run: blocks
      local t = uv.new_timer()
      t:start(1, 0, function()                   -- plain code inside uv.run
        local ok, err = pcall(s.add, 1, 2)
        print(ok, err)
        t:close()
        s:close()
      end)
      uv.run()
    ]]
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.matches("bad argument #1 to 'attach' %(the luv module or a cqueues "
      .. "controller expected, got number%)", lines[1])
    assert.matches("got a table that is neither", lines[2], 1, true)
    assert.matches("already attached to luv", lines[3], 1, true)
    assert.matches("^false\t.*cannot wait here.*uv%.run%(%) runs.*inside a coroutine", lines[4])
    assert.equal(4, #lines)
  end)
end)


describe("cqueues", function()
  it("shares a controller with cqueues sockets, and handlers that use cqueues", function()
    local out = cqueues_program [[
      local socket = require "cqueues.socket"
      local cq = cqueues.new()
      jsonrpc.attach(cq)
      local srv = jsonrpc.listen { port = 0 }
      srv.add = function(a, b) cqueues.sleep(0.01) return a + b end
      -- a plain TCP echo, cqueues' own sockets, in the same controller
      local echo = socket.listen("127.0.0.1", 0)
      local _, _, echo_port = echo:localname()
      cq:wrap(function()
        local c = echo:accept()
        for line in c:lines() do c:write(line, "\n") end
        c:close()
      end)
      cq:wrap(function()
        local s = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port))
        s:ws_connect()
        local peer = jsonrpc.Server(PEER)
        peer:ws_connect()
        local tcp = socket.connect("127.0.0.1", echo_port)
        local n, done = 100, 0
        local cond = require("cqueues.condition").new()
        for i = 1, n do
          cq:wrap(function()
            assert(s.add(i, 1) == i + 1)
            assert(peer.sleep(0.02, i) == i)
            tcp:write("line " .. i .. "\n")
            done = done + 1
            if done == n then cond:signal() end
          end)
        end
        while done < n do cond:wait() end
        local echoed = 0
        for _ = 1, n do if tcp:read("*l") then echoed = echoed + 1 end end
        print("calls", done, "echoed", echoed)
        tcp:close(); echo:close()
        s:close(); peer:close(); srv:close()
      end)
      assert(cq:loop())
      print("cq:loop returned", jsonrpc.loop:busy())
    ]]
    assert.equal("calls\t100\techoed\t100\ncq:loop returned\tfalse\n", out)
  end)

  it("runs handlers, timeouts, batches and sleeps in controller coroutines", function()
    -- each coroutine waits again and again, for answers, timeouts, sleeps
    local out = cq_program [[
      cq:wrap(function()
        local s = jsonrpc.Server(PEER)
        s:ws_connect()
        s.twice = function(x) return s.add(x, x) end -- the peer calls us back
        print("handler", math.tointeger(s.call_client("twice", { 21 }).result))
        local ok, err = pcall(s.call, s, "never", nil, { timeout = 0.1 })
        print("timeout", ok, jsonrpc.TimeoutError.is(err))
        print("after timeout", s.add(1, 1))
        local r = s:batch(function(b) b.add(1, 2); b.echo("x") end)
        print("batch", r[1].result, r[2].result[1])
        jsonrpc.sleep(0.01)
        local sum, left = 0, 4
        for k = 1, 4 do
          cq:wrap(function()
            local mine = 0
            for i = 1, 50 do
              mine = mine + s.add(i, k)
              if i % 10 == 0 then cqueues.sleep(0) end -- cqueues' own wait too
            end
            sum, left = sum + mine, left - 1
            if left == 0 then s:close() end
          end)
        end
        while left > 0 do cqueues.sleep(0.01) end
        print("sum", sum)
      end)
      assert(cq:loop())
      print("cq:loop returned", jsonrpc.loop:busy())
    ]]
    assert.equal("handler\t42\ntimeout\tfalse\ttrue\nafter timeout\t2\nbatch\t3\tx\n"
      .. "sum\t5600\ncq:loop returned\tfalse\n", out)
  end)

  it("leaves events over a step's budget to the next step, losing none", function()
    local out = cq_program [[
      jsonrpc.loop:set_step_budget(0)
      local srv = jsonrpc.listen { port = 0 }
      srv.add = function(a, b) return a + b end
      cq:wrap(function()
        local s = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port))
        s:ws_connect()
        local n, done = 1000, 0
        for i = 1, n do
          cq:wrap(function()
            assert(s.add(i, 1) == i + 1)
            assert(s.add(i, 2) == i + 2)
            done = done + 1
            if done == n then print("done", done); s:close(); srv:close() end
          end)
        end
      end)
      assert(cq:loop())
      print("cq:loop returned", jsonrpc.loop:busy())
    ]]
    assert.equal("done\t1000\ncq:loop returned\tfalse\n", out)
  end)

  it("raises a clear error where a call cannot yield", function()
    local out = cq_program [[
      cq:wrap(function()
        local s = jsonrpc.Server(PEER)
        s:ws_connect()
        local ok, err = pcall(string.gsub, "x", "x", function() return s.add(1, 2) end)
        print(ok, err)
        print("still works", s.add(1, 2))
        s:close()
      end)
      assert(cq:loop())
    ]]
    assert.matches("^false\t.*cannot wait here.*cq:wrap", out)
    assert.matches("still works\t3\n$", out)
  end)
end)

describe("the raw pollable", function()
  -- three calls in one of our tasks, for a hand-written loop to drive
  local THREE_CALLS = [[
      local s = jsonrpc.Server(PEER)
      local results = {}
      jsonrpc.spawn(function()
        s:ws_connect()
        for i = 1, 3 do results[#results + 1] = s.sleep(0.05, i) end
        s:close()
      end)
]]

  it("is driven by a hand-written poll loop", function()
    local out = cqueues_program([[
      local loop = jsonrpc.loop
      print(type(loop:pollfd()), loop:events())
      local t0 = jsonrpc.now()
      loop:step(0)                               -- nothing to do: no wait
      print("step(0) returns at once", jsonrpc.now() - t0 < 0.5)
]] .. THREE_CALLS .. [[
      -- cqueues.poll outside a controller: one poll(2) on our descriptor
      local polls = 0
      while loop:busy() do
        cqueues.poll(loop, loop:timeout())
        polls = polls + 1
        loop:step(0)
      end
      print(table.concat(results, ","), polls > 3)
    ]])
    assert.equal("number\tr\nstep(0) returns at once\ttrue\n1,2,3\ttrue\n", out)
  end)

  it("is driven by luv by hand, without attach: a uv poll and a uv timer", function()
    local out = program([[
      local uv = require "luv"
      local loop = jsonrpc.loop
]] .. THREE_CALLS .. [[
      local poll, timer = uv.new_poll(loop:pollfd()), uv.new_timer()
      local function step()
        loop:step(0)
        if not loop:busy() then poll:close(); timer:close(); return end
        local t = loop:timeout()
        if t then timer:start(math.ceil(t * 1000), 0, step) else timer:stop() end
      end
      poll:start("r", step)
      step()
      uv.run()
      print(table.concat(results, ","))
    ]])
    assert.equal("1,2,3\n", out)
  end)
end)
