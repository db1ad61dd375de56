-- The contracts between modules that docs/design.md writes down
-- ("Contracts between modules", "Return conventions"), against our own
-- server on 127.0.0.1.
local jsonrpc = require "jsonrpc_websocket"
local client = require "jsonrpc_websocket.client"

describe("contracts", function()
  local srv, s
  before_each(function()
    srv = jsonrpc.listen { host = "127.0.0.1", port = 0 }
    srv.echo = function(x) return x end
    s = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port))
    s:ws_connect()
  end)
  after_each(function()
    s:close()
    srv:close()
  end)

  it("client.link finds the Link behind a Server and a peer; client.wrap makes such objects", function()
    local link = client.link(s)
    assert.equal("open", link.state)
    assert.is_nil(client.link({}))
    assert.is_nil(client.link("not an object"))
    local peer_link
    srv.who = function()
      peer_link = client.link(jsonrpc.peer())
      return peer_link ~= nil
    end
    assert.is_true(s.who())
    assert.equal("open", peer_link.state)
    local other = client.wrap(link, {})
    assert.equal(link, client.link(other))
  end)

  it("core sends: true, or false, why, kind; send_call gives nothing for the Lua codec", function()
    local link = client.link(s)
    local conn = link.conn
    local prefix = link:prefix_for("echo")
    -- a table param is not simple: the Lua codec writes that message
    assert.equal(0, select("#", conn:send_call(prefix, nil, { a = 1 })))
    assert.is_true(conn:send('{"jsonrpc":"2.0","method":"echo","params":[1]}'))
    local first = link:reserve_ids(2)
    assert.equal(first + 2, link.next_id)
    s:close()
    local ok, why, kind = conn:send("{}")
    assert.equal(false, ok) -- false, not nil: send_call's nothing stays apart
    assert.equal("connection is not open", why)
    assert.equal("not_open", kind)
    ok, why, kind = conn:send_call(prefix, 7, 1)
    assert.equal(false, ok)
    assert.equal("not_open", kind)
    assert.is_string(why)
  end)
end)
