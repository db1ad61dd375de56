-- Handlers for the server's requests and notifications.
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"

describe("handlers", function()
  local s, reported
  before_each(function()
    reported = {}
    s = jsonrpc.Server(helper.peer().url())
    s:on("error", function(e) reported[#reported + 1] = e end)
    s:ws_connect()
  end)
  after_each(function() s:close() end)

  -- The peer sends a request to us and returns our whole response.
  local function ask(method, params, id)
    return s.call_client(method, params, id)
  end

  it("answer requests with positional params as arguments", function()
    s.namespace.client_method = function(a, b) return a + b end
    local r = ask("namespace.client_method", { 1, 2 })
    assert.equal(3, r.result)
    assert.equal(1000, r.id)
  end)

  it("get named params as one table", function()
    local got
    s.named = function(...) got = table.pack(...) return true end
    ask("named", { a = 1, b = jsonrpc.null })
    assert.equal(1, got.n)
    assert.same({ a = 1, b = jsonrpc.null }, got[1])
  end)

  it("get no arguments for no params, and nil for null", function()
    local got
    s.args = function(...) got = table.pack(...) end
    ask("args")
    assert.equal(0, got.n)
    ask("args", { 1, jsonrpc.null, 3 })
    assert.equal(3, got.n)
    assert.is_nil(got[2])
    s.send_raw('{"jsonrpc":"2.0","method":"args","params":[]}')
    jsonrpc.sleep(0.05)
    assert.equal(0, got.n)
    s.send_raw('{"jsonrpc":"2.0","method":"args","params":{}}')
    jsonrpc.sleep(0.05)
    assert.equal(1, got.n)
    assert.same({}, got[1])
  end)

  it("answer null when the handler returns nothing", function()
    s.nothing = function() end
    local r = ask("nothing")
    assert.equal(jsonrpc.null, r.result)
  end)

  it("run notifications without answering", function()
    local got
    s.aria2.onDownloadComplete = function(event) got = event end
    assert.is_true(s:call("notify", { "aria2.onDownloadComplete", { { gid = "x" } } }))
    jsonrpc.sleep(0.05)
    assert.same({ gid = "x" }, got)
    local count = s.count()
    jsonrpc.sleep(0.05)
    assert.equal(count + 1, s.count()) -- nothing but our call went out
  end)

  it("unregister with nil", function()
    s.ns.method = function() return 1 end
    assert.equal(1, ask("ns.method").result)
    s.ns.method = nil
    assert.equal(-32601, ask("ns.method").error.code)
  end)

  it("leave reading the name as a remote-call proxy", function()
    s.echo = function() return "local" end
    assert.same({ "remote" }, s.echo("remote"))
    assert.equal("local", ask("echo").result)
  end)

  it("reach taken names through register", function()
    s:register("close", function() return "remote close" end)
    assert.equal("remote close", ask("close").result)
    assert.is_true(s.connected)
    assert.has_error(function() s.close = function() end end,
      'server.close is taken; use server:register("close", fn)')
    assert.has_error(function() s:register("x", 5) end,
      "handler for 'x' must be a function or nil")
  end)

  it("stay registered across close and ws_connect", function()
    s.kept = function() return "still here" end
    s:close()
    s:ws_connect()
    assert.equal("still here", ask("kept").result)
  end)

  it("answer -32601 for an unknown method", function()
    local r = ask("missing")
    assert.same({ code = -32601, message = "Method not found" }, r.error)
  end)

  it("answer -32000 and report when a handler raises", function()
    s.fail = function() error("nope", 0) end
    local r = ask("fail")
    assert.same({ code = -32000, message = "Server Error: nope" }, r.error)
    assert.matches("handler for 'fail' failed: nope", tostring(reported[1]))
    s.fail_table = function() error({ 1 }) end
    assert.equal(-32000, ask("fail_table").error.code)
  end)

  it("send a raised ProtocolError exactly", function()
    s.perr = function() error(jsonrpc.ProtocolError(-32099, "custom", { x = 1 })) end
    local r = ask("perr")
    assert.same({ code = -32099, message = "custom", data = { x = 1 } }, r.error)
  end)

  it("answer -32602 for params that are neither array nor object", function()
    s.p = function() return 1 end
    assert.equal(-32602, ask("p", 5).error.code)
    assert.equal(-32602, ask("p", "x").error.code)
  end)

  it("answer -32603 for a result that cannot be encoded", function()
    s.fn = function() return print end
    assert.same({ code = -32603, message = "Internal error" }, ask("fn").error)
    assert.matches("cannot be encoded", tostring(reported[1]))
  end)

  it("echo ids exactly, whatever their type", function()
    s.one = function() return 1 end
    local raw = '{"jsonrpc":"2.0","id":%s,"method":"one"}'
    for _, id in ipairs { "12345678901234567890", '"str"', "0", "-1", "1.5", '""' } do
      s.send_raw(raw:format(id))
      local found
      for _ = 1, 50 do
        for _, m in ipairs(s.received()) do
          if m.data == '{"jsonrpc":"2.0","id":' .. id .. ',"result":1}' then found = true end
        end
        if found then break end
        jsonrpc.sleep(0.01)
      end
      assert.is_true(found, "id " .. id .. " was not echoed exactly")
    end
  end)

  it("may call back into the server", function()
    s.double = function(x) return s.add(x, x) end
    assert.equal(42, ask("double", { 21 }).result)
  end)

  it("run concurrently, answering as each finishes", function()
    s.slow = function(t, v) jsonrpc.sleep(t) return v end
    local order = {}
    jsonrpc.run(function()
      for _, args in ipairs { { 0.2, "a" }, { 0.05, "b" } } do
        jsonrpc.spawn(function()
          local r = ask("slow", args)
          order[#order + 1] = r.result
        end)
      end
    end)
    assert.same({ "b", "a" }, order)
  end)

  it("answer batches from the server as arrays", function()
    s.one = function() return 1 end
    s.send_raw('[{"jsonrpc":"2.0","id":"a","method":"one"},{"jsonrpc":"2.0","method":"one"},'
      .. '{"jsonrpc":"2.0","id":"b","method":"nope"}]')
    local reply
    for _ = 1, 50 do
      local got = s.received()
      for _, m in ipairs(got) do
        if m.data:sub(1, 1) == "[" then reply = helper.decode(m.data) end
      end
      if reply then break end
      jsonrpc.sleep(0.01)
    end
    assert.equal(2, #reply)
    local by_id = { [reply[1].id] = reply[1], [reply[2].id] = reply[2] }
    assert.same({ jsonrpc = "2.0", id = "a", result = 1 }, by_id.a)
    assert.equal(-32601, by_id.b.error.code)
  end)

  it("time out with -32603 when handler_timeout passes", function()
    local t = jsonrpc.Server(helper.peer().url(), { handler_timeout = 0.1, on_error = function() end })
    t:ws_connect()
    t.forever = function() jsonrpc.sleep(1e6) end
    local r = t.call_client("forever")
    assert.same({ code = -32603, message = "Internal error: handler timed out" }, r.error)
    t:close()
  end)

  it("let a bare coroutine.yield() continue the handler", function()
    s.yielder = function() coroutine.yield() coroutine.yield() return "done" end
    assert.equal("done", ask("yielder").result)
  end)
end)

describe("handler replies", function()
  it("echo an id given with an escaped key as sound JSON; a lenient number is a parse error",
    function()
    local s = helper.connected()
    local reported = {}
    s:on("error", function(err) reported[#reported + 1] = err end)
    s.one = function() return 1 end
    s.send_raw('{"jsonrpc":"2.0","method":"one","i\\u0064":5}')
    s.send_raw('{"jsonrpc":"2.0","method":"one","id":7.}')
    jsonrpc.sleep(0.05)
    local replies = {}
    for _, m in ipairs(s.received()) do
      if m.data:find('"result":1', 1, true) or m.data:find('-32700', 1, true) then
        replies[#replies + 1] = m.data
        assert.is_true(pcall(helper.decode, m.data), m.data)
      end
    end
    assert.equal(2, #replies)
    assert.matches('"id":5,', replies[1], 1, true)
    assert.matches('"id":null,"error":{"code":-32700', replies[2], 1, true)
    assert.equal(1, #reported) -- to on_error; the connection stays
    assert.equal(-32700, reported[1].code)
    assert.equal(2, s.add(1, 1))
    s:close()
  end)
end)
