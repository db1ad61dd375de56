-- Issue 16's idle memory: a link's bookkeeping tables and a peer's data
-- are made on first use, and a connection's texts only when set. What is
-- made late must still be each peer's own.
require "helper" -- JSONRPC_GC=aggressive and the module paths
local jsonrpc = require "jsonrpc_websocket"

local function client(srv, opts)
  local c = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port), opts or { timeout = 5 })
  c:ws_connect()
  return c
end

describe("state made on first use", function()
  local srv
  before_each(function() srv = jsonrpc.listen { host = "127.0.0.1", port = 0 } end)
  after_each(function() srv:close() end)

  it("peer.data is one table per peer, kept between calls", function()
    srv.put = function(v) jsonrpc.peer().data.v = v return true end
    srv.get = function() return jsonrpc.peer().data.v end
    srv.same = function() local p = jsonrpc.peer() return p.data == p.data end
    local a, b = client(srv), client(srv)
    assert.is_nil(a.get())
    assert.is_true(a.same())
    a.put("a")
    b.put("b")
    assert.equal("a", a.get())
    assert.equal("b", b.get())
    a:close()
    b:close()
  end)

  it("calls from the server to two peers at once are each peer's own", function()
    srv.ask = function(x)
      local peer = jsonrpc.peer()
      local r1 = peer.twice(x)
      return { r1, peer:call("twice", { x + 1 }) }
    end
    local a, b = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port), { timeout = 5 }),
      jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port), { timeout = 5 })
    a.twice = function(x) jsonrpc.sleep(0.05) return 2 * x end
    b.twice = function(x) return 3 * x end
    a:ws_connect()
    b:ws_connect()
    local got = {}
    jsonrpc.spawn(function() got.a = a.ask(10) end)
    jsonrpc.spawn(function() got.b = b.ask(100) end)
    local deadline = jsonrpc.now() + 5
    while not (got.a and got.b) and jsonrpc.now() < deadline do jsonrpc.sleep(0.01) end
    assert.same({ 20, 22 }, got.a)
    assert.same({ 300, 303 }, got.b)
    a:close()
    b:close()
  end)

  it("a peer with no subprotocol has none; a close reason arrives whole", function()
    local s = jsonrpc.listen { host = "127.0.0.1", port = 0 }
    s.sub = function() return jsonrpc.peer().subprotocol == nil end
    local c = client(s)
    local code, why
    c:on("disconnect", function(cd, r) code, why = cd, r end)
    assert.is_true(c.sub())
    s:close() -- its peers are closed with 1001, "server closing"
    local deadline = jsonrpc.now() + 5
    while not code and jsonrpc.now() < deadline do jsonrpc.sleep(0.01) end
    assert.equal(1001, code)
    assert.equal("server closing", why)
  end)
end)
