-- The trace hook (Server and listen option `trace`) sees every message in
-- and out, including those the C core writes and reads itself; and
-- JSONRPC_WS_DEBUG=1 writes them to stderr.
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"

describe("trace", function()
  local srv, server_seen
  before_each(function()
    server_seen = {}
    srv = jsonrpc.listen { port = 0, trace = function(direction, text, peer)
      server_seen[#server_seen + 1] = { direction, text, peer and peer.id }
    end }
    srv.add = function(a, b) return a + b end
    srv.pair = function() return { 1, "x" } end
  end)
  after_each(function() srv:close() end)

  it("sees calls, notifications, batches and answers, both ways", function()
    local seen = {}
    local c = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port), { timeout = 5,
      trace = function(direction, text) seen[#seen + 1] = direction .. " " .. text end })
    c:ws_connect()
    assert.equal(3, c.add(1, 2))                 -- written in C, answer read in C
    assert.same({ 1, "x" }, c:call("pair", {}))
    c:notify("nobody", "hi")
    local r = c:batch(function(b) b.add(2, 2) b.add(3, 3) end)
    assert.same({ { result = 4 }, { result = 6 } }, r)
    c:close()
    assert.equal('out {"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}', seen[1])
    assert.matches('^in {.*"result":3[,}]', seen[2])
    assert.matches('^in {.*"id":1[,}]', seen[2])
    assert.equal('out {"jsonrpc":"2.0","method":"pair","params":[],"id":2}', seen[3])
    assert.matches('^in {.*"result":%[1,"x"%]', seen[4])
    assert.equal('out {"jsonrpc":"2.0","method":"nobody","params":["hi"]}', seen[5])
    assert.matches('^out %[{"jsonrpc":"2.0","method":"add","params":%[2,2%],"id":3},', seen[6])
    assert.matches('^in %[', seen[7])
    assert.equal(7, #seen)
    -- the listener's hook saw the same messages from its side, with the peer
    assert.same({ "in", '{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}', 1 },
      server_seen[1])
    assert.same({ "out", seen[2]:sub(4), 1 }, server_seen[2])
    assert.equal(7, #server_seen)
  end)

  it("rejects a hook that is not a function", function()
    assert.has_error(function() jsonrpc.Server("ws://127.0.0.1:1/", { trace = true }) end,
      "option 'trace' must be a function(direction, text)")
  end)

  it("keeps working when the hook fails, saying so on stderr", function()
    local ok, out = helper.run_lua(([[
      local jsonrpc = require "jsonrpc_websocket"
      local srv = jsonrpc.listen { port = 0 }
      srv.add = function(a, b) return a + b end
      local c = jsonrpc.Server("ws://127.0.0.1:" .. srv.port .. "/",
        { timeout = 5, trace = function() error("hook broke") end })
      c:ws_connect()
      print("result", c.add(20, 22))
    ]]))
    assert.is_true(ok, out)
    assert.matches("result\t42", out)
    assert.matches("trace hook failed: .*hook broke", out)
  end)

  it("JSONRPC_WS_DEBUG=1 writes every message to stderr", function()
    local code = [[
      local jsonrpc = require "jsonrpc_websocket"
      local srv = jsonrpc.listen { port = 0 }
      srv.add = function(a, b) return a + b end
      local c = jsonrpc.Server("ws://127.0.0.1:" .. srv.port .. "/", { timeout = 5 })
      c:ws_connect()
      print("result", c.add(20, 22))
    ]]
    local ok, out = helper.run_lua(code, "JSONRPC_WS_DEBUG=1")
    assert.is_true(ok, out)
    assert.matches('jsonrpc_websocket ws://127.0.0.1:%d+/ > '
      .. '{"jsonrpc":"2.0","method":"add","params":%[20,22%],"id":1}', out)
    assert.matches('jsonrpc_websocket ws://127.0.0.1:%d+/ < {[^\n]*"result":42', out)
    assert.matches('jsonrpc_websocket peer #1 127.0.0.1 < {"jsonrpc":"2.0","method":"add"', out)
    ok, out = helper.run_lua(code)
    assert.is_true(ok, out)
    assert.equal("result\t42\n", out)
  end)
end)
