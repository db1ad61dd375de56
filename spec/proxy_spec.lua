-- proxy = "http://host:port": the websocket goes through HTTP CONNECT.
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"

describe("proxy", function()
  local proxy
  setup(function() proxy = helper.start_proxy() end)
  teardown(function() proxy.stop() end)

  it("tunnels ws:// through an HTTP CONNECT proxy", function()
    local peer = helper.peer()
    local s = jsonrpc.Server(peer.url(), { proxy = ("http://127.0.0.1:%d"):format(proxy.port) })
    s:ws_connect()
    assert.equal(3, s.add(1, 2))
    s:close()
    assert.same({ "127.0.0.1:" .. peer.port }, proxy.used())
  end)

  it("tunnels wss:// (TLS end to end) through it", function()
    local certs = helper.certs()
    local peer = helper.start_tls_peer()
    local s = jsonrpc.Server(peer.url(), { proxy = ("127.0.0.1:%d"):format(proxy.port),
      tls = { ca_file = certs.ca } })
    s:ws_connect()
    assert.equal(3, s.add(1, 2))
    s:close()
    peer.stop()
    local used = proxy.used()
    assert.equal("127.0.0.1:" .. peer.port, used[#used])
  end)

  it("says so when the proxy refuses", function()
    local deny = helper.start_proxy("--deny")
    local s = jsonrpc.Server(helper.peer().url(), { proxy = ("http://127.0.0.1:%d"):format(deny.port) })
    local ok, err = pcall(s.ws_connect, s)
    deny.stop()
    assert.is_false(ok)
    assert.is_true(jsonrpc.TransportError.is(err))
    assert.equal("the HTTP proxy refused the tunnel", err.cause)
  end)

  it("ignores $http_proxy: only the option routes through a proxy", function()
    local ok, out = helper.run_lua(([[
      local jsonrpc = require "jsonrpc_websocket"
      local s = jsonrpc.Server(%q)
      s:ws_connect()
      print(s.add(1, 2))
    ]]):format(helper.peer().url()), "http_proxy=http://127.0.0.1:1")
    assert.is_true(ok, out)
    assert.matches("^3", out)
  end)

  it("checks the proxy address when the Server is made", function()
    assert.error_matches(function()
      jsonrpc.Server(helper.peer().url(), { proxy = "http://nowhere" })
    end, "option 'proxy' must be http://host:port")
  end)
end)
