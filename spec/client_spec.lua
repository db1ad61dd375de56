-- The client API: connecting, proxies, params, results, notifications.
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"

local function connected(path, opts) return helper.connected(path, opts) end

-- The text of the request before the current one, as the peer received it.
local function last_sent(s)
  local got = s.received()
  return got[#got].data, helper.decode(got[#got].data)
end

describe("Server", function()
  local s
  before_each(function() s = connected("/path") end)
  after_each(function() s:close() end)

  it("connects and reports connected", function()
    assert.is_true(s.connected)
    s:close()
    assert.is_false(s.connected)
  end)

  it("sends handshake headers, basic auth, subprotocols and origin", function()
    local a = connected("/auth", {
      headers = { ["X-Test2"] = "true", ["X-Other"] = 7 },
      auth = { "user", "pass" }, protocols = { "nope", "jsonrpc" },
      origin = "http://example.org",
    })
    local h = a.headers()
    assert.equal("true", h.headers["x-test2"])
    assert.equal("7", h.headers["x-other"])
    assert.equal("Basic dXNlcjpwYXNz", h.headers.authorization)
    assert.equal("nope,jsonrpc", h.headers["sec-websocket-protocol"])
    assert.equal("jsonrpc", h.subprotocol)
    assert.equal("http://example.org", h.headers.origin)
    assert.equal("/auth", h.path)
    a:close()
  end)

  it("keeps the query string of the URL in the request path", function()
    local q = connected("/p?x=1&y=2")
    assert.equal("/p?x=1&y=2", q.headers().path)
    q:close()
  end)

  it("refuses header values that would inject lines", function()
    local bad = jsonrpc.Server(helper.peer().url(), { headers = { ["X-A"] = "a\r\nX-B: b" } })
    assert.has_error(function() bad:ws_connect() end,
      "handshake header value contains CR, LF or NUL")
  end)

  it("calls with positional params", function()
    assert.equal(3, s.add(1, 2))
    local _, req = last_sent(s)
    assert.same({ 1, 2 }, req.params)
    assert.equal("add", req.method)
    assert.equal("2.0", req.jsonrpc)
  end)

  it("sends one table with only string keys as named params", function()
    assert.same({ bar = 1, baz = 2 }, s.echo { bar = 1, baz = 2 })
    s.echo { a = "x" }
    assert.matches('"params":{"a":"x"}', last_sent(s), 1, true)
  end)

  it("builds dotted method names at any depth", function()
    pcall(s.foo.bar, 1)
    pcall(s.app.users.getUsers)
    local got = s.received()
    assert.equal("foo.bar", helper.decode(got[#got - 1].data).method)
    assert.equal("app.users.getUsers", helper.decode(got[#got].data).method)
  end)

  it("sends no params member for a call without arguments", function()
    assert.equal("<no params>", s.echo())
    assert.not_matches("params", s.raw_request())
  end)

  it("turns nil holes into null", function()
    assert.same({ 1, jsonrpc.null, 3 }, s.echo(1, nil, 3))
    assert.same({ jsonrpc.null, jsonrpc.null }, s.echo(nil, nil))
  end)

  it("sends a sequence argument positionally", function()
    assert.same({ { 1, 2 } }, s.echo({ 1, 2 }))
  end)

  it("call() sends params exactly as given", function()
    assert.same({ { a = 1 } }, s:call("echo", { { a = 1 } }))
    assert.same({ a = 1 }, s:call("echo", { a = 1 }))
    assert.same({ 1, 2 }, s:call("echo", { 1, 2 }))
    assert.equal("<no params>", s:call("echo"))
    assert.matches('"params":%[%]', s:call("raw_request", {}))
    assert.same({ 1, jsonrpc.null }, s:call("echo", table.pack(1, nil)))
    assert.same({ 1, jsonrpc.null, 3 }, s:call("echo", { 1, nil, 3 }))
  end)

  it("call() rejects params that are neither sequence nor record", function()
    assert.has_error(function() s:call("echo", { 1, a = 2 }) end,
      "params mixes array and record keys")
    assert.has_error(function() s:call("echo", 5) end)
  end)

  it("call() reaches remote methods named like reserved names", function()
    local ok, err = pcall(s.call, s, "connect")
    assert.is_false(ok)
    assert.equal(-32601, err.code)
    assert.equal("connect", err.method)
    assert.equal("connect", select(2, last_sent(s)).method)
  end)

  it("treats reserved names below the top level as remote methods", function()
    local ok, err = pcall(function() return s.ns.close() end)
    assert.is_false(ok)
    assert.equal("ns.close", err.method)
    assert.is_true(s.connected)
    assert.equal("function", type(s.close))
    assert.equal("function", type(s.ws_connect))
    assert.equal(s.connect, s.ws_connect)
  end)

  it("returns nil for a null result", function()
    assert.is_nil(s.null_result())
    assert.equal(1, select("#", s.null_result()))
  end)

  it("returns a plain integer result as a Lua integer, exactly", function()
    assert.equal("integer", math.type(s.add(1, 2)))
    local big = s.power(2, 62) + 1 -- 4611686018427387905: beyond a double
    assert.equal("integer", math.type(big))
    assert.equal(4611686018427387905, big)
    assert.equal("float", math.type(s.add(1.5, 1)))
    assert.equal("float", math.type(s.power(2, 70))) -- beyond 64 bits
    assert.equal('tab\tquote"', s.echo('tab\tquote"')[1])
  end)

  it("writes simple params exactly: whole integers, shortest floats, escapes", function()
    local text = 'q"b\\c\n\t\1/é\127'
    local echoed = s.echo(1, -2, math.maxinteger, math.mininteger, 9007199254740993,
      0.5, -0.0, 1e300, 3.0, true, false, nil, text)
    local got = s.received()
    local params = got[#got].data:match('"params":(%b[])')
    assert.equal('[1,-2,9223372036854775807,-9223372036854775808,9007199254740993,'
      .. '0.5,-0.0,1e+300,3.0,true,false,null,'
      .. '"q\\"b\\\\c\\n\\t\\u0001/é\127"]', params)
    assert.equal(text, echoed[13])
    assert.equal(jsonrpc.null, echoed[12])
    s:notify("log", 1, "x")
    got = s.received()
    assert.equal('{"jsonrpc":"2.0","method":"log","params":[1,"x"]}', got[#got].data)
  end)

  it("writes any UTF-8 string as JSON that reads back, scans it whole, and refuses other bytes",
    function()
    local core = require "jsonrpc_websocket.core"
    local cjson = require("cjson").new()
    local random = math.random
    local valid = 0
    for _ = 1, 3000 do
      local bytes = {}
      for i = 1, random(0, 40) do
        -- mostly ASCII, some multi-byte characters, some stray bytes
        local r = random(1, 10)
        bytes[i] = r <= 7 and string.char(random(0, 127))
          or r <= 9 and utf8.char(random(0x80, 0x10FFFF)) -- surrogates: not UTF-8
          or string.char(random(128, 255))
      end
      local str = table.concat(bytes)
      local text = core.simple_params(str)
      if utf8.len(str) then
        valid = valid + 1
        assert.equal(str, cjson.decode(text)[1])
        assert.equal(str, core.json_decode(text)[1])
        assert.equal(text, core.json_member('{"a":' .. text .. ',"b":1}', "a"))
      else
        assert.is_nil(text)
        assert.matches("not valid UTF%-8", select(2, pcall(core.json_encode, str)))
      end
    end
    assert.is_true(valid > 100 and valid < 3000)
  end)

  it("call() writes a list of simple params exactly too", function()
    local text = 'q"b\\c\n/é'
    local echoed = s:call("echo", { 9007199254740993, 0.1, -0.0, text, true, false })
    local got = s.received()
    assert.equal('[9007199254740993,0.1,-0.0,"q\\"b\\\\c\\n/é",true,false]',
      got[#got].data:match('"params":(%b[])'))
    assert.same({ 0.1, text, true, false }, { echoed[2], echoed[4], echoed[5], echoed[6] })
    -- what is not a plain list of simple values still goes to the codec
    assert.same({ { 1 }, 2 }, s:call("echo", { { 1 }, 2 }))
    assert.same({ 1, 2 }, s:call("echo", setmetatable({ 1, 2 }, {})))
    local ok, err = pcall(s.call, s, "echo", { 1, 0 / 0 })
    assert.is_false(ok)
    assert.matches("cannot encode NaN: JSON numbers are finite", tostring(err))
    s:batch(function(b) b:call("echo", { 9007199254740993, "x" }) end)
    got = s.received()
    assert.matches('"params":%[9007199254740993,"x"%]', got[#got].data)
  end)

  it("hands tables, and numbers JSON cannot write, to the codec", function()
    assert.same({ { 1, 2 }, { a = "b" }, 3 }, s.echo({ 1, 2 }, { a = "b" }, 3))
    assert.same({ a = 1 }, s.echo { a = 1 })
    for _, bad in ipairs { math.huge, -math.huge, 0 / 0 } do
      local ok, err = pcall(s.echo, 1, bad)
      assert.is_false(ok)
      assert.matches("cannot encode %-?[infNa]+: JSON numbers are finite", tostring(err))
    end
    assert.equal(3, s.add(1, 2))
  end)

  it("returns decoded results", function()
    assert.same({ x = { 1, 2 }, s = "é" }, s.echo { x = { 1, 2 }, s = "é" })
  end)

  it("sends notifications without an id", function()
    assert.is_nil(s:notify("log", 1, 2))
    s:notify("bare")
    s:notify("named", { a = 1 })
    local got = s.received()
    local n1, n2, n3 = helper.decode(got[#got - 2].data),
      helper.decode(got[#got - 1].data), helper.decode(got[#got].data)
    assert.same({ jsonrpc = "2.0", method = "log", params = { 1, 2 } }, n1)
    assert.same({ jsonrpc = "2.0", method = "bare" }, n2)
    assert.same({ a = 1 }, n3.params)
    assert.is_nil(n3.id)
  end)

  it("uses unique ids per connection", function()
    for _ = 1, 20 do s.add(1, 1) end
    local seen = {}
    for _, m in ipairs(s.received()) do
      local id = helper.decode(m.data).id
      assert.is_nil(seen[id])
      seen[id] = true
    end
  end)

  it("closes idempotently and can connect again", function()
    s:close()
    s:close()
    assert.is_false(s.connected)
    s:ws_connect()
    assert.equal(5, s.add(2, 3))
  end)

  it("closes at the end of a to-be-closed block", function()
    local peer_url = helper.peer().url()
    local kept
    do
      local c <close> = jsonrpc.Server(peer_url)
      c:ws_connect()
      kept = c
      assert.is_true(c.connected)
    end
    assert.is_false(kept.connected)
  end)

  it("sends a close frame with code 1000", function()
    local before = #s.closes()
    local c = connected()
    c:close()
    local closes
    for _ = 1, 50 do
      closes = s.closes()
      if #closes > before then break end
      jsonrpc.sleep(0.02)
    end
    assert.same({ 1000, "" }, closes[#closes])
  end)

  it("describes itself", function()
    assert.matches("^jsonrpc_websocket.Server%(ws://127.0.0.1:%d+/path, open%)$", tostring(s))
  end)
end)

describe("the json option", function()
  it("routes every encode and decode through the given codec", function()
    local cjson = require("cjson").new()
    local counts = { encode = 0, decode = 0 }
    local codec = {
      encode = function(v) counts.encode = counts.encode + 1 return cjson.encode(v) end,
      decode = function(v) counts.decode = counts.decode + 1 return cjson.decode(v) end,
      null = cjson.null,
    }
    local s = connected("/", { json = codec })
    assert.equal(3, s.add(1, 2))
    assert.is_true(counts.encode > 0)
    assert.equal(1, counts.decode)
    s:close()
  end)

  it("does not use or change the global cjson settings", function()
    local cjson = require "cjson"
    cjson.encode_number_precision(3)
    local ok, v = pcall(function()
      local s = connected()
      local r = s.echo(3.14159265)
      s:close()
      return r
    end)
    cjson.encode_number_precision(14)
    assert.is_true(ok, tostring(v))
    assert.same({ 3.14159265 }, v)
  end)

  it("keeps ids exact whatever the codec does with numbers", function()
    local s = connected()
    local raw = s.raw_request()
    assert.matches('"id":%d+}$', raw)
    s:close()
  end)

  it("rejects a codec without encode and decode", function()
    assert.has_error(function() jsonrpc.Server("ws://127.0.0.1:1/", { json = {} }) end,
      "option 'json' must have encode and decode functions")
  end)
end)

describe("Server()", function()
  it("rejects URLs that are not ws://", function()
    assert.has_error(function() jsonrpc.Server("http://x/") end,
      "invalid websocket URL 'http://x/' (expected ws://host[:port]/path)")
    assert.has_error(function() jsonrpc.Server("ws:///x") end,
      "invalid websocket URL 'ws:///x' (no host)")
  end)

  it("rejects bad options with a message naming them", function()
    assert.has_error(function() jsonrpc.Server("ws://h/", { timeout = "x" }) end,
      "option 'timeout' must be a non-negative number of seconds")
    assert.has_error(function() jsonrpc.Server("ws://h/", { auth = "x" }) end,
      "option 'auth' must be { user, password }")
    assert.has_error(function() jsonrpc.Server("ws://h/", { max_message_size = 0 }) end,
      "option 'max_message_size' must be a positive integer")
  end)

  it("exposes jsonrpc.null and a monotonic clock", function()
    assert.equal(require("cjson").null, jsonrpc.null)
    local a = jsonrpc.now()
    jsonrpc.sleep(0.05)
    local b = jsonrpc.now()
    assert.is_true(b - a >= 0.045 and b - a < 1)
  end)
end)
