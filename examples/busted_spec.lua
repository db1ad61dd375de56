-- spec/add_spec.lua; run with: busted --lua=lua5.4 spec/add_spec.lua
local jsonrpc = require "jsonrpc_websocket"

describe("add", function()
  local srv, server
  setup(function()
    srv = jsonrpc.listen{ port = 0, handlers = {   -- port 0: any free port
      add = function(a, b) return a + b end,
    } }
    server = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port), { timeout = 5 })
    server:ws_connect()
  end)
  teardown(function()
    server:close()
    srv:close()
  end)

  it("adds", function()
    assert.equal(3, server.add(1, 2))
  end)

  it("raises ProtocolError for an unknown method", function()
    local ok, err = pcall(server.nope)
    assert.is_false(ok)
    assert.is_true(jsonrpc.ProtocolError.is(err))
    assert.equal(-32601, err.code)
  end)
end)
