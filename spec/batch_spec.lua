-- Batches: several calls in one websocket message.
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"

describe("batch", function()
  local s
  before_each(function() s = helper.connected() end)
  after_each(function() s:close() end)

  it("sends one message and returns entries in call order", function()
    local results = s:batch(function(b)
      b.add(1, 2)
      b.app.users.get { id = 7 }
      b:notify("log", "hi")
      b:call("echo", { { a = 1 } })
      b.sleep(0.1, "slow") -- answered last, still the fourth entry
      b.link() -- a remote method whose name the builder must not shadow
    end)
    assert.equal(5, #results)
    assert.equal(-32601, results[5].error.code)
    assert.equal("link", results[5].error.method)
    assert.same({ result = 3 }, results[1])
    assert.is_true(jsonrpc.ProtocolError.is(results[2].error))
    assert.equal(-32601, results[2].error.code)
    assert.equal("app.users.get", results[2].error.method)
    assert.same({ result = { { a = 1 } } }, results[3])
    assert.same({ result = "slow" }, results[4])
    local got = s.received()
    local sent = helper.decode(got[#got].data)
    assert.equal(6, #sent) -- one message with all six
    assert.is_nil(sent[3].id)
    assert.equal("log", sent[3].method)
  end)

  it("matches answers by id whatever their order", function()
    local results = s:batch(function(b)
      b.sleep(0.15, "a")
      b.sleep(0.05, "b")
      b.sleep(0.1, "c")
    end)
    assert.same({ { result = "a" }, { result = "b" }, { result = "c" } }, results)
  end)

  it("matches answers by id in a batch answer in reverse order", function()
    assert.is_true(s.reverse_batches())
    local function run(with_error)
      return s:batch(function(b)
        b.add(1, 2)
        b.echo { a = 1 } -- an object: decoded
        b.null_result()
        b.echo("x")
        if with_error then b.nope() end
      end)
    end
    for _, with_error in ipairs { false, true } do -- all plain answers, or not
      local results = run(with_error)
      assert.same({ result = 3 }, results[1])
      assert.same({ result = { a = 1 } }, results[2])
      assert.same({}, results[3]) -- a null result
      assert.same({ result = { "x" } }, results[4])
      if with_error then assert.equal(-32601, results[5].error.code) end
    end
    assert.equal(3, s.add(1, 2))
  end)

  it("returns an empty table for only notifications, or nothing at all", function()
    assert.same({}, s:batch(function(b) b:notify("x") b:notify("y", 1) end))
    assert.same({}, s:batch(function() end))
    local got = s.received()
    assert.equal(2, #helper.decode(got[#got].data))
  end)

  it("fails every entry when the peer answers with one error object", function()
    s.refuse_batches()
    local results = s:batch(function(b) b.add(1, 2) b.add(3, 4) end)
    assert.equal(2, #results)
    for i = 1, 2 do
      assert.is_true(jsonrpc.ProtocolError.is(results[i].error))
      assert.equal(-32600, results[i].error.code)
    end
    assert.equal(3, s.add(1, 2))
  end)

  it("times out entries still waiting", function()
    -- the peer answers a batch as a whole, so never() holds back add() too
    local t0 = jsonrpc.now()
    local results = s:batch(function(b) b.add(1, 1) b.never() end, { timeout = 0.2 })
    assert.is_true(jsonrpc.now() - t0 < 1)
    assert.is_true(jsonrpc.TimeoutError.is(results[1].error))
    assert.is_true(jsonrpc.TimeoutError.is(results[2].error))
    assert.equal("never", results[2].error.method)
    assert.equal(3, s.add(1, 2)) -- the late answer (if any) does no harm
  end)

  it("fails entries with TransportError when the connection drops", function()
    local results = s:batch(function(b) b.never() b.drop() end)
    assert.is_true(jsonrpc.TransportError.is(results[1].error))
    assert.is_true(results[1].error.sent)
  end)

  it("runs batches from many tasks at once", function()
    local sums = {}
    jsonrpc.run(function()
      for t = 1, 20 do
        jsonrpc.spawn(function()
          local r = s:batch(function(b) for i = 1, 10 do b.add(t, i) end end)
          local sum = 0
          for i = 1, 10 do sum = sum + r[i].result end
          sums[t] = sum
        end)
      end
    end)
    for t = 1, 20 do assert.equal(10 * t + 55, sums[t]) end
  end)

  it("refuses a batch over max_message_size, sends nothing, stays open", function()
    local small = helper.connected(nil, { max_message_size = 1000 })
    local before = #small.received()
    local ok, err = pcall(small.batch, small, function(b)
      for _ = 1, 20 do b.echo(("x"):rep(100)) end
    end)
    assert.is_false(ok)
    assert.equal("Message too large.", err.message)
    assert.equal("batch", err.method)
    assert.equal(before + 1, #small.received(), "nothing of the batch was sent")
    local results = small:batch(function(b) b.add(1, 2) b.add(3, 4) end)
    assert.same({ { result = 3 }, { result = 7 } }, results)
    small:close()
  end)

  it("counts a batch's calls against max_in_flight", function()
    local bounded = helper.connected(nil, { max_in_flight = 2 })
    for round = 1, 3 do -- every answer frees its slot again
      local results = bounded:batch(function(b) for i = 1, 5 do b.add(round, i) end end)
      for i = 1, 5 do assert.same({ result = round + i }, results[i]) end
    end
    local order = {}
    jsonrpc.run(function()
      jsonrpc.spawn(function()
        bounded:batch(function(b) b.sleep(0.1) b.sleep(0.1) end)
        order[#order + 1] = "batch"
      end)
      jsonrpc.spawn(function() bounded.add(1, 1) order[#order + 1] = "call" end)
    end)
    assert.same({ "batch", "call" }, order, "the call waited for a slot")
    bounded:close()
  end)

  it("raises TransportError when not connected", function()
    s:close()
    assert.has_error(function() s:batch(function(b) b.add(1, 2) end) end)
  end)
end)
