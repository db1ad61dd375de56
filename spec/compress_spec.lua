-- compress = true: permessage-deflate, measured on the peer's socket.
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"

describe("compression", function()
  local peer
  setup(function() peer = helper.start_peer("--compress") end)
  teardown(function() peer.stop() end)

  -- bytes that reach the peer's socket while sending `text` as params
  local function wire_cost(s, text)
    local before = s.wire_bytes()
    assert.equal(#text, s.len(text))
    return s.wire_bytes() - before
  end

  it("sends large repetitive messages compressed, and receives them", function()
    local text = ("all work and no play makes jack a dull boy. "):rep(20000) -- 880 KB
    local plain = jsonrpc.Server(peer.url())
    local deflated = jsonrpc.Server(peer.url(), { compress = true })
    plain:ws_connect()
    deflated:ws_connect()
    local raw, packed = wire_cost(plain, text), wire_cost(deflated, text)
    assert.is_true(raw > #text, "uncompressed: " .. raw)
    assert.is_true(packed < #text / 20, ("compressed: %d of %d"):format(packed, #text))
    assert.equal(text, deflated.echo(text)[1])
    assert.equal(5 * 1024 * 1024, #deflated.big(5 * 1024 * 1024))
    plain:close()
    deflated:close()
  end)

  it("still talks to a peer without the extension", function()
    local s = jsonrpc.Server(helper.peer().url(), { compress = true })
    s:ws_connect()
    assert.equal(("z"):rep(100000), s.echo(("z"):rep(100000))[1])
    s:close()
  end)
end)
