-- Sharp edges a new user hits (issue 15): each misuse raises at once, in
-- words, naming the user's line; remote surprises are reported, not hidden.
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"

local HERE = "usage_spec.lua:%d+: "

-- The error `fn` raises; it must name this file (the caller's line).
local function misuse(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error")
  assert.is_string(err)
  assert.matches(HERE, err)
  return err
end

local URL = "ws://127.0.0.1:1/"

describe("misuse", function()
  it("server:add(1, 2) says to use a dot", function()
    local s = helper.connected()
    local err = misuse(function() local _ = s:add(1, 2) end) -- not a tail call: the line stays
    assert.matches("remote method 'add' called with ':'", err, 1, true)
    assert.matches("x.add(...)", err, 1, true)
    err = misuse(function() local _ = s.ns:add(1) end)
    assert.matches("remote method 'ns.add' called with ':'", err, 1, true)
    -- a table argument is still a table argument
    assert.same({ { a = 1 } }, { s.echo({ a = 1 }) })
    s:close()
  end)

  it("a peer's method called with ':' says the same", function()
    local srv = jsonrpc.listen{ port = 0 }
    local got
    srv.hello = function()
      local peer = jsonrpc.peer()
      got = select(2, pcall(function() return peer:ping() end))
      return true
    end
    local c = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port), { timeout = 10 })
    c:ws_connect()
    assert.is_true(c.hello())
    assert.matches("remote method 'ping' called with ':'", got, 1, true)
    c:close()
    srv:close()
  end)

  it("unknown options raise with the nearest valid name", function()
    local err = misuse(function() jsonrpc.Server(URL, { tiemout = 1 }) end)
    assert.matches("unknown option 'tiemout' to Server (did you mean 'timeout'?)", err, 1, true)
    err = misuse(function() jsonrpc.Server(URL, { max_in_fligth = 1 }) end)
    assert.matches("did you mean 'max_in_flight'?", err, 1, true)
    err = misuse(function() jsonrpc.Server(URL, { zzzzzzzzzzzz = 1 }) end)
    assert.matches("unknown option 'zzzzzzzzzzzz' to Server$", err)
    err = misuse(function() jsonrpc.listen{ prot = 9 } end)
    assert.matches("unknown option 'prot' to listen (did you mean 'port'?)", err, 1, true)
    err = misuse(function() jsonrpc.queue{ maxx = 1 } end)
    assert.matches("did you mean 'max'?", err, 1, true)
    local s = jsonrpc.Server(URL)
    err = misuse(function() s:call("f", nil, { timout = 1 }) end)
    assert.matches("unknown option 'timout' to call (did you mean 'timeout'?)", err, 1, true)
    err = misuse(function() s:batch(function() end, { timeot = 1 }) end)
    assert.matches("unknown option 'timeot' to batch", err, 1, true)
    err = misuse(function() s:subscribe("sub", nil, { max_quue = 1 }) end)
    assert.matches("unknown option 'max_quue' to subscribe (did you mean 'max_queue'?)",
      err, 1, true)
    err = misuse(function() s:notifications("n", { notification = "x" }) end)
    assert.matches("unknown option 'notification' to notifications", err, 1, true)
  end)

  it("a per-call timeout that is not a number is named", function()
    local s = jsonrpc.Server(URL)
    local err = misuse(function() s:call("f", nil, { timeout = "x" }) end)
    assert.matches("option 'timeout' must be a non-negative number of seconds", err, 1, true)
    err = misuse(function() s:batch(function() end, { timeout = "x" }) end)
    assert.matches("option 'timeout' must be", err, 1, true)
  end)

  it("checks tls files on ws:// URLs too", function()
    local err = misuse(function() jsonrpc.Server(URL, { tls = { ca_file = "/nope.pem" } }) end)
    assert.matches("option 'tls.ca_file': cannot read /nope.pem", err, 1, true)
  end)

  it("names the caller's line for every option error", function()
    for _, opts in ipairs {
      { timeout = "x" }, { compress = 1 }, { keepalive = "x" }, { proxy = 1 },
      { proxy = "nohost" }, { auth = 1 }, { headers = 1 }, { headers = { "x" } },
      { protocols = 1 }, { tls = 1 }, { tls = { bogus = 1 } }, { reconnect = 1 },
      { reconnect = { max = "x" } }, { named_params = 1 }, { json = {} },
      { trace = 1 }, { max_in_flight = 0 }, { max_send_queue = 0 },
      { max_message_size = -1 }, { tls = { cert_file = "/etc/hostname" } },
    } do
      misuse(function() jsonrpc.Server(URL, opts) end)
    end
    misuse(function() jsonrpc.Server("http://x/") end)
    misuse(function() jsonrpc.Server("ws:///") end)
    for _, opts in ipairs {
      { port = "x" }, { path = "x" }, { timeout = "x" }, { trace = 1 },
      { max_send_queue = 0 }, { keepalive = "x" }, { authorize = 1 },
    } do
      misuse(function() jsonrpc.listen(opts) end)
    end
    local port = helper.closed_port()
    local err = misuse(function() jsonrpc.listen{ port = port, handlers = { ns = { f = 1 } } } end)
    assert.matches("handler for 'ns.f' must be a function or nil", err, 1, true)
    jsonrpc.listen{ port = port }:close() -- the port was left free
    local s = jsonrpc.Server(URL)
    misuse(function() s.x = 1 end)
    misuse(function() s.ns.x = 1 end)
    misuse(function() s:register("x", 1) end)
    misuse(function() s:on("nope", print) end)
    misuse(function() jsonrpc.send_raw(s, 1) end)
    misuse(function() s:subscribe(1) end)
    misuse(function() s:notifications("n", { max_queue = 0 }) end)
    misuse(function() s:call("f", 1) end)
  end)

  it("encode errors name the method and the argument", function()
    local s = helper.connected()
    local err = misuse(function() local _ = s.echo(1, 0 / 0) end)
    assert.matches("cannot encode the params of 'echo': argument #2: ", err, 1, true)
    assert.matches("NaN", err, 1, true)
    err = misuse(function() s:notify("log", "a", { [1] = 1, [1000] = 2 }) end)
    assert.matches("cannot encode the params of 'log': argument #2: ", err, 1, true)
    assert.matches("sparse", err, 1, true)
    err = misuse(function() s:call("echo", { a = 1, b = 0 / 0 }) end)
    assert.matches("cannot encode the params of 'echo': params.b: ", err, 1, true)
    err = misuse(function() s:call("echo", { 1, 1 / 0 }) end)
    assert.matches("cannot encode the params of 'echo': params[2]: ", err, 1, true)
    err = misuse(function() s:batch(function(b) b.add(1, 0 / 0) end) end)
    assert.matches("cannot encode the params of 'add': argument #2: ", err, 1, true)
    err = misuse(function() s:batch(function(b) b:call("add", { 1, 0 / 0 }) end) end)
    assert.matches("cannot encode the params of 'add': params[2]: ", err, 1, true)
    err = misuse(function() s:batch(function(b) b:add(1, 2) end) end)
    assert.matches("remote method 'add' called with ':' in a batch", err, 1, true)
    assert.same({ { result = 3 } }, s:batch(function(b) b.add(1, 2) end))
    assert.equal(3, s.add(1, 2)) -- the connection is fine
    s:close()
  end)
end)

describe("remote surprises", function()
  it("a handler's error reaches the caller without the server's file and line", function()
    local reported = {}
    local srv = jsonrpc.listen{ port = 0, on_error = function(e) reported[#reported + 1] = e end }
    srv.boom = function() error("boom") end
    local c = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port), { timeout = 10 })
    c:ws_connect()
    local ok, err = pcall(c.boom)
    assert.is_false(ok)
    assert.equal("Server Error: boom", err.message)
    assert.is_true(helper.eventually(function() return #reported > 0 end))
    assert.matches("usage_spec.lua:%d+: boom", tostring(reported[1])) -- kept locally
    c:close()
    srv:close()
  end)

  it("reports the peer's close code (1009) instead of 1006", function()
    local srv = jsonrpc.listen{ port = 0, max_message_size = 1000 }
    srv.echo = function(x) return x end
    local c = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port), { timeout = 10 })
    c:ws_connect()
    local ok, err = pcall(c.echo, ("x"):rep(5000))
    assert.is_false(ok)
    assert.matches("1009", tostring(err), 1, true)
    assert.not_matches("1006", tostring(err), 1, true)
    c:close()
    srv:close()
  end)

  it("a message that is not JSON-RPC goes to on('message'), unanswered and unreported", function()
    local reported, seen = {}, {}
    local s = helper.connected(nil, { on_error = function(e) reported[#reported + 1] = e end })
    s:on("message", function(msg, text) seen[#seen + 1] = { msg, text } end)
    local event = '{"notification":"tick","params":[1]}'
    assert.is_true(s.send_raw_then_answer(event, "ok") == "ok")
    assert.is_true(helper.eventually(function() return #seen == 1 end))
    assert.equal("tick", seen[1][1].notification)
    assert.equal(event, seen[1][2])
    -- nothing went back but our own call
    local received = s.received()
    assert.equal(1, #received)
    assert.equal("send_raw_then_answer", helper.decode(received[1].data).method)
    assert.equal(0, #reported)
    s:close()
  end)

  it("jsonrpc.send_raw sends text as is", function()
    local s = helper.connected()
    jsonrpc.send_raw(s, '{"jsonrpc":"2.0","method":"note","params":["raw"]}')
    local received = s.received()
    assert.equal('{"jsonrpc":"2.0","method":"note","params":["raw"]}', received[1].data)
    s:close()
    local ok, err = pcall(jsonrpc.send_raw, s, "{}")
    assert.is_false(ok)
    assert.is_true(jsonrpc.TransportError.is(err))
  end)
end)
