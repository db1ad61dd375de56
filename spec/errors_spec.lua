-- Error objects and every way a call or a connect can fail.
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"

local TransportError, TimeoutError, ProtocolError =
  jsonrpc.TransportError, jsonrpc.TimeoutError, jsonrpc.ProtocolError

local function connected(path, opts) return helper.connected(path, opts) end

local function failure(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return err
end

describe("error classes", function()
  it("are callable and recognise their instances", function()
    local t = TransportError("Connection is not open.", "not connected")
    assert.is_true(TransportError.is(t))
    assert.is_false(ProtocolError.is(t))
    assert.equal("not connected", t.cause)
    local p = ProtocolError(-32000, "boom", { 1 })
    assert.is_true(ProtocolError.is(p))
    assert.is_false(TransportError.is(p))
    assert.same({ -32000, "boom", { 1 } }, { p.code, p.message, p.data })
  end)

  it("make TimeoutError a kind of TransportError", function()
    local e = TimeoutError("too slow")
    assert.is_true(TimeoutError.is(e))
    assert.is_true(TransportError.is(e))
    assert.is_false(TimeoutError.is(TransportError("x")))
  end)

  it("answer is() with false for anything else", function()
    for _, v in ipairs { 1, "x", {}, true, print } do
      assert.is_false(TransportError.is(v))
      assert.is_false(ProtocolError.is(v))
    end
    assert.is_false(TransportError.is(nil))
  end)

  it("print as one readable line", function()
    local e = TransportError("Connection closed.", "connection closed by peer (1006)")
    e.method = "foo"
    assert.equal("Error calling method 'foo': connection closed by peer (1006)", tostring(e))
    assert.equal("boom (code -32000)", tostring(ProtocolError(-32000, "boom")))
    assert.equal("jsonrpc_websocket.TransportError", tostring(TransportError))
  end)
end)

describe("a call", function()
  local s
  before_each(function() s = connected() end)
  after_each(function() s:close() end)

  it("raises ProtocolError with code, message, data and response", function()
    local e = failure(s.error, -32001, "boom", { why = "x" })
    assert.is_true(ProtocolError.is(e))
    assert.equal(-32001, e.code)
    assert.equal("integer", math.type(e.code))
    assert.equal("boom", e.message)
    assert.same({ why = "x" }, e.data)
    assert.equal("error", e.method)
    assert.equal(-32001, e.response.error.code)
    assert.equal("Error calling method 'error': boom (code -32001)", tostring(e))
  end)

  it("raises ProtocolError when error is not an object", function()
    local e = failure(s.error_string, "oops")
    assert.is_true(ProtocolError.is(e))
    assert.is_nil(e.code)
    assert.equal("oops", e.message)
  end)

  it("raises ProtocolError for an unknown method", function()
    local e = failure(s.no_such_method)
    assert.equal(-32601, e.code)
    assert.equal("Method not found", e.message)
  end)

  it("raises TimeoutError after its timeout and stays usable", function()
    local t0 = jsonrpc.now()
    local e = failure(s.call, s, "sleep", { 0.3, "late" }, { timeout = 0.1 })
    assert.is_true(TimeoutError.is(e))
    assert.equal("sleep", e.method)
    assert.is_true(jsonrpc.now() - t0 < 0.25)
    jsonrpc.sleep(0.3) -- the late answer arrives and is dropped
    assert.is_true(s.connected)
    assert.equal(3, s.add(1, 2))
  end)

  it("uses the default timeout, which call options override", function()
    local d = connected("/", { timeout = 0.1 })
    assert.is_true(TimeoutError.is(failure(d.never)))
    assert.equal("x", d:call("sleep", { 0.2, "x" }, { timeout = 2 }))
    d:close()
  end)

  it("raises TransportError when not connected", function()
    local c = jsonrpc.Server(helper.peer().url())
    local e = failure(c.add, 1, 2)
    assert.is_true(TransportError.is(e))
    assert.equal("Connection is not open.", e.message)
    assert.equal("not connected", e.cause)
    assert.equal("add", e.method)
    e = failure(c.notify, c, "x")
    assert.is_true(TransportError.is(e))
  end)

  it("fails at once with TransportError when the peer closes", function()
    local t0 = jsonrpc.now()
    local e = failure(s.call, s, "close", { 4000, "bye" }, { timeout = 5 })
    assert.is_true(TransportError.is(e))
    assert.is_false(TimeoutError.is(e))
    assert.equal("connection closed by peer (4000 bye)", e.cause)
    assert.is_true(jsonrpc.now() - t0 < 1)
    assert.is_false(s.connected)
  end)

  it("fails every waiting call when the connection breaks", function()
    local results = {}
    jsonrpc.run(function()
      for i = 1, 10 do
        jsonrpc.spawn(function()
          results[i] = { pcall(s.call, s, "never", nil, { timeout = 10 }) }
        end)
      end
      jsonrpc.sleep(0.1)
      pcall(s.drop)
    end)
    for i = 1, 10 do
      assert.is_false(results[i][1])
      assert.equal("Error calling method 'never': connection closed by peer (1006)",
        tostring(results[i][2]))
    end
    assert.is_false(s.connected)
  end)

  it("fails with TransportError when the peer process dies mid-call", function()
    local peer = helper.start_peer()
    local d = jsonrpc.Server(peer.url())
    d:ws_connect()
    local e
    jsonrpc.run(function()
      jsonrpc.spawn(function() e = select(2, pcall(d.call, d, "never", nil, { timeout = 10 })) end)
      jsonrpc.sleep(0.05)
      pcall(d.die)
    end)
    assert.is_true(TransportError.is(e))
    assert.matches("connection closed by peer", e.cause)
    assert.is_false(d.connected)
    peer.stop()
  end)
end)

describe("ws_connect", function()
  local function connect_error(url, opts)
    local e = failure(function() jsonrpc.Server(url, opts):ws_connect() end)
    assert.is_true(TransportError.is(e))
    return e
  end

  it("says when the connection is refused", function()
    local url = ("ws://127.0.0.1:%d/"):format(helper.closed_port())
    local e = connect_error(url)
    assert.equal("connection refused", e.cause)
    assert.equal(("connect to %s failed: connection refused"):format(url), tostring(e))
  end)

  it("says when the host name does not resolve", function()
    assert.equal("could not resolve host 'no-such-host.invalid'",
      connect_error("ws://no-such-host.invalid:80/").cause)
  end)

  it("says when the handshake is rejected", function()
    local peer = helper.peer()
    assert.equal("handshake rejected: HTTP 401", connect_error(peer.url("/auth")).cause)
    assert.equal("handshake rejected: HTTP 403", connect_error(peer.url("/status/403")).cause)
    assert.equal("handshake rejected: HTTP 404", connect_error(peer.url("/status/404")).cause)
    assert.equal("handshake rejected: HTTP 500", connect_error(peer.url("/status/500")).cause)
  end)

  it("raises TimeoutError when the handshake never completes", function()
    local t0 = jsonrpc.now()
    local e = connect_error(helper.peer().url("/hang-handshake"), { connect_timeout = 0.3 })
    assert.is_true(TimeoutError.is(e))
    assert.is_true(jsonrpc.now() - t0 < 1)
  end)

  it("raises when the connection is already open", function()
    local s = connected()
    local e = failure(s.ws_connect, s)
    assert.is_true(TransportError.is(e))
    assert.equal("Connection already open.", e.message)
    assert.equal(3, s.add(1, 2))
    s:close()
  end)

  it("can be retried after a failure", function()
    local s = jsonrpc.Server(helper.peer().url("/status/404"))
    assert.is_false(pcall(s.ws_connect, s))
    assert.is_false(s.connected)
    assert.is_false(pcall(s.ws_connect, s))
  end)
end)
