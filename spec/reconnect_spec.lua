-- Reconnecting, connection events, the fate of calls in flight, and
-- max_in_flight. Specs kill and restart real peer processes.
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"

local FAST = { initial = 0.05, max = 0.2, factor = 2, jitter = 0.1 }

local eventually = helper.eventually

describe("connection events", function()
  it("tell connect and disconnect with the close code and reason", function()
    local s = jsonrpc.Server(helper.peer().url())
    local log = {}
    s:on("connect", function() log[#log + 1] = "connect" end)
    s:on("disconnect", function(code, reason) log[#log + 1] = ("disconnect %d %s"):format(code, reason) end)
    s:ws_connect()
    pcall(s.call, s, "close", { 4001, "bye" })
    assert.is_true(eventually(function() return #log == 2 end))
    assert.same({ "connect", "disconnect 4001 bye" }, log)
  end)

  it("reject unknown events and non-functions", function()
    local s = jsonrpc.Server(helper.peer().url())
    assert.has_error(function() s:on("nope", print) end,
      "bad argument #1 to 'on' (unknown event 'nope')")
    assert.has_error(function() s:on("error", 1) end,
      "bad argument #2 to 'on' (function expected)")
  end)
end)

describe("reconnect", function()
  local peer
  after_each(function() if peer then peer.stop() end end)

  it("reconnects after the peer process is killed and restarted", function()
    peer = helper.start_peer()
    local s = jsonrpc.Server(peer.url(), { reconnect = FAST, on_error = function() end })
    local attempts, connects = {}, 0
    s:on("reconnect", function(attempt) attempts[#attempts + 1] = attempt end)
    s:on("connect", function() connects = connects + 1 end)
    s.kept = function() return "handler kept" end
    s:ws_connect()
    peer.stop()
    assert.is_true(eventually(function() return not s.connected end))
    jsonrpc.sleep(0.3) -- a few failed attempts while nobody listens
    peer = helper.start_peer("--port " .. peer.port)
    assert.is_true(eventually(function() return s.connected end))
    assert.equal(1, #attempts)
    assert.is_true(attempts[1] >= 2)
    assert.equal(2, connects)
    assert.equal(3, s.add(1, 2))
    assert.equal("handler kept", s.call_client("kept").result)
    s:close()
  end)

  it("lets calls made while reconnecting wait for the new connection", function()
    peer = helper.start_peer()
    local s = jsonrpc.Server(peer.url(), { reconnect = FAST, timeout = 5 })
    s:ws_connect()
    pcall(s.drop)
    assert.is_false(s.connected)
    assert.equal(7, s.add(3, 4)) -- waits for the reconnect, then goes
    s:close()
  end)

  it("bounds a waiting call by its timeout", function()
    peer = helper.start_peer()
    local s = jsonrpc.Server(peer.url(), { reconnect = FAST, on_error = function() end })
    s:ws_connect()
    peer.stop()
    assert.is_true(eventually(function() return not s.connected end))
    local ok, err = pcall(s.call, s, "add", { 1, 2 }, { timeout = 0.2 })
    assert.is_false(ok)
    assert.is_true(jsonrpc.TimeoutError.is(err))
    assert.equal("not reconnected within 0.2 s", err.cause)
    s:close()
  end)

  it("gives up after the attempts allowed", function()
    peer = helper.start_peer()
    local s = jsonrpc.Server(peer.url(),
      { reconnect = { initial = 0.02, attempts = 3 }, on_error = function() end })
    local gave_up
    s:on("give_up", function(n) gave_up = n end)
    s:ws_connect()
    peer.stop()
    assert.is_true(eventually(function() return gave_up ~= nil end))
    assert.equal(3, gave_up)
    assert.is_false(pcall(s.add, 1, 2))
  end)

  it("does not retry a handshake rejected with 4xx", function()
    peer = helper.start_peer()
    local s = jsonrpc.Server(peer.url("/status/403"), { reconnect = FAST })
    assert.is_false(pcall(s.ws_connect, s)) -- the first connect raises as usual
    local errors, gave_up = {}, nil
    local t = jsonrpc.Server(peer.url(), { reconnect = FAST })
    t:on("error", function(e) errors[#errors + 1] = e end)
    t:on("give_up", function(n) gave_up = n end)
    t:ws_connect()
    -- now make every new handshake fail with 403
    rawset(select(2, next(t)).connect_opts, "path", "/status/403")
    pcall(t.drop)
    assert.is_true(eventually(function() return gave_up ~= nil end))
    assert.equal(1, gave_up)
    assert.equal("handshake rejected: HTTP 403", errors[1].cause)
  end)

  it("stops when close() is called", function()
    peer = helper.start_peer()
    local s = jsonrpc.Server(peer.url(), { reconnect = FAST })
    local reconnects = 0
    s:on("reconnect", function() reconnects = reconnects + 1 end)
    s:ws_connect()
    pcall(s.drop)
    s:close()
    jsonrpc.sleep(0.4)
    assert.equal(0, reconnects)
    assert.is_false(s.connected)
  end)
end)

describe("calls in flight at a disconnect", function()
  it("say sent = true when the request had left", function()
    local s = jsonrpc.Server(helper.peer().url())
    s:ws_connect()
    local ok, err = pcall(s.drop)
    assert.is_false(ok)
    assert.is_true(err.sent)
  end)

  it("say sent = false when it never left", function()
    local s = jsonrpc.Server(helper.peer().url())
    s:ws_connect()
    local link = select(2, next(s))
    local err
    jsonrpc.run(function()
      jsonrpc.spawn(function() err = select(2, pcall(s.add, 1, 2)) end)
      jsonrpc.spawn(function() link.conn:abort() end) -- before the loop writes
    end)
    assert.is_true(jsonrpc.TransportError.is(err))
    assert.is_false(err.sent)
  end)
end)

describe("max_in_flight", function()
  it("bounds concurrent calls; the others wait for a slot", function()
    local s = jsonrpc.Server(helper.peer().url(), { max_in_flight = 2 })
    s:ws_connect()
    local t0 = jsonrpc.now()
    local done = 0
    jsonrpc.run(function()
      for _ = 1, 6 do
        jsonrpc.spawn(function() s.sleep(0.1) done = done + 1 end)
      end
    end)
    local dt = jsonrpc.now() - t0
    assert.equal(6, done)
    assert.is_true(dt >= 0.28, "6 calls, 2 at a time, 0.1 s each took " .. dt)
    s:close()
  end)

  it("bounds the wait for a slot by the call's timeout", function()
    local s = jsonrpc.Server(helper.peer().url(), { max_in_flight = 1 })
    s:ws_connect()
    local err
    jsonrpc.run(function()
      jsonrpc.spawn(function() pcall(s.call, s, "sleep", { 0.5 }) end)
      jsonrpc.spawn(function() err = select(2, pcall(s.call, s, "add", { 1, 2 }, { timeout = 0.1 })) end)
    end)
    assert.is_true(jsonrpc.TimeoutError.is(err))
    assert.matches("no free slot", err.cause)
    assert.equal(3, s.add(1, 2))
    s:close()
  end)
end)
