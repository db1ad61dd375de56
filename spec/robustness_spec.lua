-- Nothing a peer sends can hurt us: each case leaves the connection open,
-- the next call working, and is reported through the "error" hook.
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"

describe("a hostile or buggy peer", function()
  local s, reported
  before_each(function()
    reported = {}
    s = jsonrpc.Server(helper.peer().url())
    s:on("error", function(e) reported[#reported + 1] = tostring(e) end)
    s:ws_connect()
  end)
  after_each(function() s:close() end)

  -- The peer sends `text` first, then answers; we then check we are fine.
  local function survives(text, binary, expect_report)
    assert.is_true(s.send_raw(text, binary or false))
    jsonrpc.sleep(0.02)
    assert.is_true(s.connected)
    assert.equal(3, s.add(1, 2))
    if expect_report ~= false then
      assert.is_true(#reported > 0, "nothing was reported for " .. text:sub(1, 40))
      if type(expect_report) == "string" then
        assert.matches(expect_report, reported[1], 1, true)
      end
    end
  end

  it("a text frame that is not JSON", function()
    survives("this is not json", false, "received a message that is not JSON")
  end)

  it("a binary frame that is not UTF-8 or not JSON", function()
    assert.is_true(s.send_hex("000102ff"))
    jsonrpc.sleep(0.02)
    assert.equal(3, s.add(1, 2))
    assert.matches("not JSON", reported[1], 1, true)
    survives("not json either", true, "not JSON")
  end)

  it("invalid UTF-8 in a text frame", function()
    assert.is_true(s.send_hex("22fffe22", true)) -- "\xff\xfe" as JSON text
    assert.is_true(s.send_hex("fffe", true))
    jsonrpc.sleep(0.02)
    assert.is_true(s.connected)
    assert.equal(3, s.add(1, 2))
    assert.is_true(#reported >= 1)
  end)

  it("a response with an unknown id", function()
    survives('{"jsonrpc":"2.0","id":987654,"result":1}', false,
      "received a response with unknown id 987654")
  end)

  it("an answer to a waiting call whose result is not JSON settles that call", function()
    local id = tonumber(s.raw_request():match('"id":(%d+)')) + 1 -- the next call's
    local bad = ('{"jsonrpc":"2.0","result":[tru],"id":%d}'):format(id)
    local ok, err = pcall(s.send_raw_then_answer, bad, 7) -- a second answer follows
    assert.is_false(ok)
    assert.is_true(jsonrpc.ProtocolError.is(err), tostring(err))
    assert.equal(-32700, err.code)
    assert.matches("received a message that is not JSON", reported[1], 1, true)
    assert.equal(3, s.add(1, 2))
    assert.matches("unknown id " .. id, reported[2], 1, true) -- the second answer
  end)

  it("a duplicate response", function()
    s.reply_with_id(1, "dup") -- id 1 was answered already
    jsonrpc.sleep(0.02)
    assert.matches("unknown id 1", reported[1], 1, true)
    assert.equal(3, s.add(1, 2))
  end)

  it("a response with id null, reported with the peer's error", function()
    survives('{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}',
      false, "id null")
    assert.matches("Parse error", reported[1], 1, true)
  end)

  it("a response without an id", function()
    survives('{"jsonrpc":"2.0","result":5}', false, "received a response without an id")
  end)

  it("a JSON array that is not a batch of responses", function()
    survives("[1, 2, 3]", false, "not a JSON-RPC message")
  end)

  it("an empty array", function()
    survives("[]", false, "empty batch")
  end)

  it("a bare number or string", function()
    survives("42", false, "not a JSON-RPC message")
    survives('"hello"', false, "not a JSON-RPC message")
    survives("null", false)
  end)

  it("an error member that is not an object", function()
    local ok, e = pcall(s.error_string, "plain")
    assert.is_false(ok)
    assert.is_true(jsonrpc.ProtocolError.is(e))
    assert.equal(3, s.add(1, 2))
  end)

  it("both result and error: error wins", function()
    -- s is a fresh Server: the first call below has id 1
    local ok, err
    jsonrpc.run(function()
      jsonrpc.spawn(function() ok, err = pcall(s.call, s, "never", nil, { timeout = 2 }) end)
      jsonrpc.spawn(function()
        s.send_raw('{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":-1,"message":"both"}}')
      end)
    end)
    assert.is_false(ok)
    assert.is_true(jsonrpc.ProtocolError.is(err))
    assert.equal("both", err.message)
  end)

  it("JSON nested 100,000 levels deep", function()
    survives(("["):rep(100000) .. ("]"):rep(100000), false)
    survives(('{"a":'):rep(100000) .. "1" .. ("}"):rep(100000), false)
  end)

  it("a request while we are closing", function()
    s.slow = function() jsonrpc.sleep(0.1) return 1 end
    jsonrpc.run(function()
      jsonrpc.spawn(function() pcall(s.call_client, "slow") end)
      jsonrpc.sleep(0.02)
      s:close()
    end)
    assert.is_false(s.connected)
    s:ws_connect()
    assert.equal(3, s.add(1, 2))
  end)

  it("a 100 MB message over max_message_size closes with 1009, callers fail", function()
    local small = jsonrpc.Server(helper.peer().url(), { max_message_size = 1024 * 1024 })
    small:ws_connect()
    local t0 = jsonrpc.now()
    local ok, e = pcall(small.big, 100 * 1024 * 1024)
    assert.is_false(ok)
    assert.is_true(jsonrpc.TransportError.is(e))
    assert.matches("max_message_size", e.cause)
    assert.is_false(small.connected)
    assert.is_true(jsonrpc.now() - t0 < 10)
    small:ws_connect()
    assert.equal(3, small.add(1, 2))
    small:close()
  end)
end)

describe("lifetime", function()
  it("close() from inside a handler", function()
    local s = jsonrpc.Server(helper.peer().url())
    s:ws_connect()
    s.bye = function() s:close() return "closed" end
    local ok = pcall(s.call_client, "bye")
    assert.is_false(ok) -- our close failed the peer's pending call_client
    assert.is_false(s.connected)
  end)

  it("close() from a task while other tasks wait, and twice", function()
    local s = jsonrpc.Server(helper.peer().url())
    s:ws_connect()
    local failures = 0
    jsonrpc.run(function()
      for _ = 1, 5 do
        jsonrpc.spawn(function()
          local ok, e = pcall(s.never)
          if not ok and jsonrpc.TransportError.is(e) then failures = failures + 1 end
        end)
      end
      jsonrpc.sleep(0.05)
      jsonrpc.spawn(function() s:close() end)
      s:close()
      s:close()
    end)
    assert.equal(5, failures)
    assert.is_false(s.connected)
  end)

  it("a Server collected with calls in flight and handlers registered", function()
    local failures, proxy = 0
    do
      local s = jsonrpc.Server(helper.peer().url())
      s:ws_connect()
      s.handler = function() return 1 end
      proxy = s.never -- keeps the link, not the Server
    end
    jsonrpc.run(function()
      for _ = 1, 3 do
        jsonrpc.spawn(function()
          local ok, e = pcall(proxy)
          if not ok and jsonrpc.TransportError.is(e) then failures = failures + 1 end
        end)
      end
      jsonrpc.sleep(0.05)
      collectgarbage()
      collectgarbage()
    end)
    assert.equal(3, failures)
  end)

  it("a handler that errors or never returns does not crash anything", function()
    local s = jsonrpc.Server(helper.peer().url(), { on_error = function() end })
    s:ws_connect()
    s.boom = function() error("boom") end
    s.forever = function() jsonrpc.sleep(1e9) end
    assert.equal(-32000, s.call_client("boom").error.code)
    local ok = pcall(s.call, s, "call_client", { "forever" }, { timeout = 0.1 })
    assert.is_false(ok)
    assert.equal(3, s.add(1, 2))
    s:close()
  end)
end)
