-- Credentials in the URL (ws://user:pass@host/) are HTTP Basic, like the
-- `auth` option, and are never shown: errors and tostring mask the password.
require "helper"
local jsonrpc = require "jsonrpc_websocket"
local url = require "jsonrpc_websocket.url"

local function basic(user, pass)
  local b64 = io.popen(("printf '%%s' %q | base64"):format(user .. ":" .. pass)):read("l")
  return "Basic " .. b64
end

describe("credentials in the URL", function()
  local srv, seen
  before_each(function()
    seen = {}
    local want = basic("ada", "s3cr:et@x")
    srv = jsonrpc.listen { port = 0, authorize = function(headers)
      seen[#seen + 1] = headers.authorization or false
      if headers.authorization == want then return true end
      return false, 401
    end }
    srv.add = function(a, b) return a + b end
  end)
  after_each(function() srv:close() end)

  it("are sent as HTTP Basic, percent-decoded", function()
    local s = jsonrpc.Server(("ws://ada:s3cr%%3Aet%%40x@127.0.0.1:%d/"):format(srv.port))
    s:ws_connect()
    assert.equal(3, s.add(1, 2))
    s:close()
  end)

  it("give way to the auth option", function()
    local s = jsonrpc.Server(("ws://bob:wrong@127.0.0.1:%d/"):format(srv.port),
      { auth = { "ada", "s3cr:et@x" } })
    s:ws_connect()
    assert.equal(5, s.add(2, 3))
    s:close()
  end)

  it("are never printed: errors and tostring mask the password", function()
    local u = ("ws://ada:hunter2@127.0.0.1:%d/rpc"):format(srv.port)
    local s = jsonrpc.Server(u)
    assert.not_matches("hunter2", tostring(s))
    assert.matches("ada:%*%*%*@", tostring(s))
    local ok, err = pcall(s.ws_connect, s)
    assert.is_false(ok)
    assert.equal(basic("ada", "hunter2"), seen[#seen])   -- they were sent
    assert.matches("HTTP 401", tostring(err))
    assert.not_matches("hunter2", tostring(err))
    assert.matches("ws://ada:%*%*%*@127", err.message)
    local bad
    ok, bad = pcall(jsonrpc.Server, "ws://ada:hunter2@:99999/")
    assert.is_false(ok)
    assert.not_matches("hunter2", bad)
  end)

  it("redact leaves URLs without a password alone", function()
    assert.equal("ws://h:1/p", url.redact("ws://h:1/p"))
    assert.equal("ws://ada@h/p", url.redact("ws://ada@h/p"))
    assert.equal("wss://ada:***@h/p@q", url.redact("wss://ada:pw@h/p@q"))
  end)
end)
