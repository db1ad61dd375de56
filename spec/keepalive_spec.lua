-- keepalive: pings on idle connections, a peer that stops answering is
-- declared dead and the calls waiting on it fail.
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"

describe("keepalive", function()
  it("keeps an idle connection that answers pings, drops a frozen peer", function()
    local idle = jsonrpc.Server(helper.peer().url(), { keepalive = 1 })
    local frozen = jsonrpc.Server(helper.peer().url(), { keepalive = 1 })
    idle:ws_connect()
    frozen:ws_connect()
    local ok, err, seconds
    jsonrpc.run(function()
      jsonrpc.spawn(function()
        local t0 = jsonrpc.now()
        ok, err = pcall(frozen.freeze, 10)
        seconds = jsonrpc.now() - t0
      end)
      jsonrpc.sleep(2.5) -- past the hangup deadline (2 s) of an unanswered ping
    end)
    assert.is_false(ok)
    assert.is_true(jsonrpc.TransportError.is(err), tostring(err))
    assert.equal("keepalive timeout", err.cause)
    assert.is_true(seconds > 1.5 and seconds < 2.5, "dead after " .. tostring(seconds))
    assert.is_false(frozen.connected)
    assert.is_true(idle.connected)
    assert.equal(3, idle.add(1, 2))
    idle:close()
  end)

  it("takes whole seconds or false", function()
    local url = helper.peer().url()
    assert.error_matches(function() jsonrpc.Server(url, { keepalive = 0.5 }) end,
      "option 'keepalive' must be whole seconds")
    assert.error_matches(function() jsonrpc.Server(url, { keepalive = 0 }) end,
      "option 'keepalive' must be whole seconds")
    local s = jsonrpc.Server(url, { keepalive = false })
    s:ws_connect()
    assert.equal(3, s.add(1, 2))
    s:close()
  end)
end)

-- spec/ping_peer.py: a raw-socket peer that counts the pings it gets and
-- answers them only when told to (no websocket library in between).
local sh = require "serve_helper"

-- A ping_peer serving one connection of ours: { port, url(), stop() }.
local function ping_server(mode, seconds)
  return helper.start_process(("%s spec/ping_peer.py server %s %s")
    :format(helper.PYTHON, mode, seconds))
end

-- Everything a ping_server printed, once it has ended.
local function output_of(peer)
  local out = peer.handle:read("a")
  peer.handle:close()
  peer.handle = nil
  return out
end

-- A ping_peer client of the listener on `port`: wait() -> its output.
local function ping_client(port, mode, seconds)
  return sh.spawn(("%s spec/ping_peer.py client 127.0.0.1 %d %s %s")
    :format(sh.PYTHON, port, mode, seconds))
end

local function pings(out)
  return tonumber(out:match("PINGS (%d+)")) or error("no PINGS line in: " .. out)
end

-- Our client against a ping_server and a ping_client against our listener,
-- both peers in `mode` for `seconds`, keepalive `ka` on our side. A second
-- before the peers stop, both connections must still be up. Returns what
-- the two peers printed: the server, the client.
local function both_sides(mode, ka, seconds)
  local peer = ping_server(mode, seconds)
  local s = jsonrpc.Server(peer.url(), { keepalive = ka, reconnect = false })
  s:ws_connect()
  local srv = jsonrpc.listen { port = 0, keepalive = ka }
  local job = ping_client(srv.port, mode, seconds)
  jsonrpc.sleep(seconds - 1)
  assert.is_true(s.connected)
  assert.equal(1, srv.count)
  local from_client = job.wait(30) -- serving both meanwhile
  local from_server = output_of(peer)
  s:close()
  srv:close()
  assert.not_matches("EOF", from_server)
  assert.not_matches("EOF", from_client)
  return from_server, from_client
end

describe("keepalive, counted by a raw peer", function()
  it("keeps a peer that answers pings up past several periods, either side", function()
    -- past the hangup deadlines (4 s, 5 s), three pings each way
    local from_server, from_client = both_sides("answer", 2, 7)
    assert.is_true(pings(from_server) >= 2, from_server)
    assert.is_true(pings(from_client) >= 2, from_client)
  end)

  it("never pings a connection busy with data, either side", function()
    local from_server, from_client = both_sides("busy", 2, 4)
    assert.equal(0, pings(from_server), from_server)
    assert.equal(0, pings(from_client), from_client)
  end)

  it("lets a listener drop a client that reads but never answers a ping", function()
    local srv = jsonrpc.listen { port = 0, keepalive = 1 }
    local gone
    srv:on("disconnect", function() gone = true end)
    local job = ping_client(srv.port, "mute", 10)
    helper.eventually(function() return gone end, 10)
    local out = job.wait(30)
    assert.is_true(pings(out) >= 1, out)
    assert.matches("EOF", out) -- dropped, no close frame: it could not answer
    assert.equal(0, srv.count)
    srv:close()
  end)

  it("sends no pings with keepalive = false, either side", function()
    local from_server, from_client = both_sides("mute", false, 4)
    assert.equal(0, pings(from_server), from_server)
    assert.equal(0, pings(from_client), from_client)
  end)
end)
