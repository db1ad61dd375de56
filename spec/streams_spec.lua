-- Subscriptions and notification streams between our client and our own
-- server (jsonrpc.listen offering subscriptions), including reconnects.
-- Against real Ethereum and aria2 peers: ganache_spec.lua, aria2_spec.lua.
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"

local FAST = { initial = 0.05, max = 0.2, factor = 2, jitter = 0.1 }
local eventually = helper.eventually

-- A server offering eth_subscribe: `subs` lists the subscriptions made, in
-- order; `early` items are sent before the subscribe call is answered.
local function subscription_server(port)
  local srv = jsonrpc.listen { port = port or 0, on_error = function() end }
  local subs = {}
  srv.eth_subscribe = function(kind, early)
    local sub = jsonrpc.peer():subscription()
    sub.kind = kind
    subs[#subs + 1] = sub
    for i = 1, early or 0 do sub:send({ early = i }) end
    return sub.id
  end
  srv.tick = function(method, n) -- plain notifications, to the caller
    for i = 1, n do jsonrpc.peer():notify(method, { n = i }) end
    return true
  end
  return srv, subs
end

local function url(srv) return ("ws://127.0.0.1:%d/"):format(srv.port) end

-- before_each/after_each for a describe: a fresh server and a client
-- connected to it, in state.srv, state.subs, state.s; what the client
-- reports goes to state.reports.
local function server_and_client(state)
  before_each(function()
    state.srv, state.subs = subscription_server()
    state.reports = {}
    state.s = jsonrpc.Server(url(state.srv), { timeout = 5,
      on_error = function(err) table.insert(state.reports, err) end })
    state.s:ws_connect()
  end)
  after_each(function()
    state.s:close()
    state.srv:close()
  end)
end

describe("server:subscribe", function()
  local state = {}
  server_and_client(state)
  local srv, subs, s
  before_each(function() srv, subs, s = state.srv, state.subs, state.s end)

  it("yields the items of its notifications, in order, as they come", function()
    local heads = s:subscribe("eth_subscribe", { "newHeads" })
    assert.equal(1, #subs)
    assert.equal(subs[1].id, heads.id)
    assert.equal("newHeads", subs[1].kind)
    local got = {}
    jsonrpc.run(function()
      jsonrpc.spawn(function()
        for i = 1, 5 do
          subs[1]:send({ number = i })
          if i % 2 == 0 then jsonrpc.sleep(0.01) end
        end
      end)
      for _, head in ipairs(helper.take(heads, 5)) do got[#got + 1] = head.number end
    end)
    assert.same({ 1, 2, 3, 4, 5 }, got)
    assert.equal(0, heads.dropped)
    assert.equal(0, heads.resubscribed)
  end)

  it("waits in plain code; next(timeout) gives nil + TimeoutError", function()
    local heads = s:subscribe("eth_subscribe", { "newHeads" })
    local item, err = heads:next(0.05)
    assert.is_nil(item)
    assert.is_true(jsonrpc.TimeoutError.is(err))
    jsonrpc.spawn(function() jsonrpc.sleep(0.02) subs[1]:send("late") end)
    assert.equal("late", heads:next(5))
  end)

  it("keeps the items sent before the subscribe call was answered", function()
    local heads = s:subscribe("eth_subscribe", { "newHeads", 3 })
    assert.same({ early = 1 }, heads:next(5))
    assert.same({ early = 2 }, heads:next(5))
    assert.same({ early = 3 }, heads:next(5))
  end)

  it("routes each notification to its own subscription", function()
    local a = s:subscribe("eth_subscribe", { "a" })
    local b = s:subscribe("eth_subscribe", { "b" })
    assert.are_not.equal(a.id, b.id)
    subs[2]:send("b1")
    subs[1]:send("a1")
    subs[2]:send("b2")
    assert.equal("a1", a:next(5))
    assert.equal("b1", b:next(5))
    assert.equal("b2", b:next(5))
    local item, err = a:next(0.05)
    assert.is_nil(item)
    assert.is_true(jsonrpc.TimeoutError.is(err))
  end)

  it("unsubscribes on close, on <close>, and ends the iteration", function()
    local heads = s:subscribe("eth_subscribe", { "newHeads" })
    subs[1]:send(1)
    assert.is_true(eventually(function() return #heads == 1 end))
    assert.is_true(heads:close())
    assert.is_false(subs[1].active) -- the server saw eth_unsubscribe
    assert.is_true(subs[1].ended.is_set)
    assert.is_nil(heads:next()) -- what was queued is discarded
    assert.is_nil(heads()) -- the iterator has ended
    assert.is_true(heads:close()) -- idempotent
    do
      local scoped <close> = s:subscribe("eth_subscribe", { "scoped" })
      assert.equal(subs[2].id, scoped.id)
      assert.is_true(subs[2].active)
    end
    assert.is_false(subs[2].active)
  end)

  it("remembers boundedly the unsubscribes of collected streams that are never answered", function()
    local quiet = jsonrpc.listen { port = 0, max_concurrent_requests = 10000,
      on_error = function() end }
    local n = 0
    quiet.eth_subscribe = function() n = n + 1; return n end
    quiet.eth_unsubscribe = function() jsonrpc.sleep(60) end -- never answers in time
    local c = jsonrpc.Server(url(quiet), { timeout = 5 })
    c:ws_connect()
    local link = require("jsonrpc_websocket.client").link(c)
    for _ = 1, 4200 do c:subscribe("eth_subscribe", { "x" }) end -- each dropped at once
    collectgarbage()
    collectgarbage()
    eventually(function() return n == 4200 and link.n_expired > 0 end, 20, "the quiet unsubscribes")
    assert.is_true(link.n_expired <= 4096, "answers remembered: " .. link.n_expired)
    c:close()
    quiet:close()
  end)

  it("unsubscribes a stream that is collected without close", function()
    s:subscribe("eth_subscribe", { "forgotten" })
    assert.is_true(subs[1].active)
    collectgarbage()
    collectgarbage()
    assert.is_true(subs[1].ended:wait(5))
  end)

  it("leaves the handler what belongs to no subscription, and only that", function()
    local handled = {}
    s.eth_subscription = function(p) handled[#handled + 1] = p.result end
    local heads = s:subscribe("eth_subscribe", { "newHeads" })
    s:call("eth_subscribe", { "manual" }) -- a subscription nobody streams
    subs[1]:send("streamed")
    subs[2]:send("handled")
    assert.equal("streamed", heads:next(5))
    assert.is_true(eventually(function() return #handled == 1 end))
    assert.same({ "handled" }, handled)
  end)

  it("leaves the handler what came during a subscribe call and was not for it", function()
    local handled = {}
    s.eth_subscription = function(p) handled[#handled + 1] = p end
    srv.eth_subscribe = function(kind) -- another subscription's item first
      jsonrpc.peer():notify("eth_subscription", { subscription = "0xother", result = kind })
      local sub = jsonrpc.peer():subscription()
      sub:send("own")
      return sub.id
    end
    local heads = s:subscribe("eth_subscribe", { "newHeads" })
    assert.equal("own", heads:next(5))
    assert.is_true(eventually(function() return #handled == 1 end))
    assert.same({ subscription = "0xother", result = "newHeads" }, handled[1])
  end)

  it("bounds its queue: drop_oldest counts what it dropped", function()
    local heads = s:subscribe("eth_subscribe", { "newHeads" }, { max_queue = 10 })
    for i = 1, 50 do subs[1]:send(i) end
    assert.is_true(eventually(function() return heads.dropped == 40 end))
    assert.equal(10, #heads)
    assert.equal(41, heads:next())
  end)

  it("ends with OverflowError and unsubscribes when overflow = \"error\"", function()
    local heads = s:subscribe("eth_subscribe", { "newHeads" },
      { max_queue = 3, overflow = "error" })
    for i = 1, 5 do subs[1]:send(i) end
    assert.is_true(eventually(function() return heads.closed end))
    assert.same({ 1, 2, 3 }, { heads:next(), heads:next(), heads:next() })
    local item, err = heads:next()
    assert.is_nil(item)
    assert.is_true(jsonrpc.OverflowError.is(err))
    assert.is_true(subs[1].ended:wait(5))
    assert.is_true(s.tick("tick", 0)) -- answered after the unsubscribe call
    assert.same({}, state.reports) -- whose answer nobody waited for: quietly
  end)

  it("raises what the subscribe call raises, and checks its arguments", function()
    local ok, err = pcall(s.subscribe, s, "no_such_subscribe", { "x" })
    assert.is_false(ok)
    assert.equal(-32601, err.code)
    assert.has_error(function() s:subscribe(1) end, "bad argument #1 to 'subscribe' (string expected)")
    assert.has_error(function() s:subscribe("eth_subscribe", "x") end,
      "bad argument #2 to 'subscribe' (table or nil expected)")
    assert.has_error(function() s:subscribe("eth_subscribe", {}, { max_queue = -1 }) end,
      "option 'max_queue' must be a positive integer")
    assert.has_error(function() s:subscribe("eth_subscribe", {}, { notification = 3 }) end,
      "option 'notification' must be a string (a method name)")
  end)

  it("ends when the connection goes without reconnect: nil + TransportError", function()
    local heads = s:subscribe("eth_subscribe", { "newHeads" })
    subs[1]:send("last")
    assert.is_true(eventually(function() return #heads == 1 end))
    srv:close()
    assert.equal("last", heads:next(5)) -- what came is not lost
    local item, err = heads:next(5)
    assert.is_nil(item)
    assert.is_true(jsonrpc.TransportError.is(err))
    assert.is_nil(heads()) -- for head in heads do ... end ends
    assert.equal(err, heads.error)
  end)
end)

describe("a Lua server's subscriptions", function()
  it("end when their peer disconnects", function()
    local srv, subs = subscription_server()
    local s = jsonrpc.Server(url(srv))
    s:ws_connect()
    s:subscribe("eth_subscribe", { "newHeads" })
    local sub = subs[1]
    assert.is_true(sub.active)
    assert.is_true(sub:send(1))
    s:close()
    assert.is_true(sub.ended:wait(5))
    assert.is_false(sub.active)
    assert.is_false(sub:send(2))
    srv:close()
  end)

  it("wait for room in the peer's send queue, in order, from tasks and plain code", function()
    local srv = jsonrpc.listen { port = 0, max_send_queue = 2048 }
    local sub
    srv.eth_subscribe = function()
      sub = jsonrpc.peer():subscription()
      return sub.id
    end
    local s = jsonrpc.Server(url(srv))
    s:ws_connect()
    local heads = s:subscribe("eth_subscribe", {}, { max_queue = 3000 })
    local filler = ("x"):rep(100)
    for i = 1, 1000 do assert.is_true(sub:send({ i, filler })) end -- plain code
    jsonrpc.run(function()
      for i = 1001, 2000 do assert(sub:send({ i, filler })) end
    end)
    for i = 1, 2000 do assert.equal(i, heads:next(5)[1]) end
    assert.equal(0, heads.dropped)
    s:close()
    srv:close()
  end)

  it("answer an unknown unsubscribe with false", function()
    local srv = subscription_server()
    local s = jsonrpc.Server(url(srv))
    s:ws_connect()
    s:subscribe("eth_subscribe", { "newHeads" }) -- registers eth_unsubscribe
    assert.is_false(s.eth_unsubscribe("0xnope"))
    s:close()
    srv:close()
  end)
end)

describe("reconnecting subscriptions", function()
  it("subscribe again after the server restarts; the iteration continues", function()
    local srv, subs = subscription_server()
    local port = srv.port
    local s = jsonrpc.Server(url(srv), { reconnect = FAST, timeout = 5, on_error = function() end })
    local reconnected = 0
    s:on("reconnect", function() reconnected = reconnected + 1 end)
    s:ws_connect()
    local heads = s:subscribe("eth_subscribe", { "newHeads" })
    local first_id = heads.id
    local got = {}
    jsonrpc.run(function()
      jsonrpc.spawn(function()
        subs[1]:send(1)
        subs[1]:send(2)
        jsonrpc.sleep(0.05)
        srv:close() -- the server goes away ...
        jsonrpc.sleep(0.2)
        srv, subs = subscription_server(port) -- ... and comes back, knowing nothing
        assert(eventually(function() return subs[1] ~= nil end))
        subs[1]:send(3)
        subs[1]:send(4)
      end)
      got = helper.take(heads, 4)
    end)
    assert.same({ 1, 2, 3, 4 }, got)
    assert.equal(1, heads.resubscribed)
    assert.equal(1, reconnected)
    assert.equal("newHeads", subs[1].kind) -- subscribed with the same params
    assert.equal(subs[1].id, heads.id)
    assert.are_not.equal(first_id, heads.id)
    heads:close()
    assert.is_false(subs[1].active)
    s:close()
    srv:close()
  end)

  it("never take a notification for an id they had before the reconnect", function()
    -- A server that gives each kind of subscription the id `ids[kind]`, and
    -- sends its first item (the kind) before the answer.
    local function server(port, ids)
      local srv = jsonrpc.listen { port = port or 0, on_error = function() end }
      srv.eth_subscribe = function(kind)
        jsonrpc.peer():notify("eth_subscription", { subscription = ids[kind], result = kind })
        return ids[kind]
      end
      return srv
    end
    local srv = server(nil, { a = "0x1", b = "0x2" })
    local port = srv.port
    local s = jsonrpc.Server(url(srv), { reconnect = FAST, timeout = 5, on_error = function() end })
    s:ws_connect()
    local a = s:subscribe("eth_subscribe", { "a" })
    local b = s:subscribe("eth_subscribe", { "b" })
    assert.same({ "0x1", "0x2", "a", "b" }, { a.id, b.id, a:next(5), b:next(5) })
    srv:close()
    assert.is_true(eventually(function() return not s.connected end))
    srv = server(port, { a = "0x2", b = "0x1" }) -- each gets the other's old id
    assert.equal("a", a:next(5))
    assert.equal("b", b:next(5))
    assert.same({ 1, 1, "0x2", "0x1" }, { a.resubscribed, b.resubscribed, a.id, b.id })
    s:close()
    srv:close()
  end)

  it("end with the error of a resubscribe the restarted server refuses", function()
    local srv = subscription_server()
    local port = srv.port
    local s = jsonrpc.Server(url(srv), { reconnect = FAST, timeout = 5, on_error = function() end })
    s:ws_connect()
    local heads = s:subscribe("eth_subscribe", { "newHeads" })
    srv:close()
    assert.is_true(eventually(function() return not s.connected end))
    srv = jsonrpc.listen { port = port } -- knows no eth_subscribe now
    local item, err = heads:next(10)
    assert.is_nil(item)
    assert.is_true(jsonrpc.ProtocolError.is(err))
    assert.equal(-32601, err.code)
    assert.equal(0, heads.resubscribed)
    assert.is_true(s.connected)
    s:close()
    srv:close()
  end)

  it("end when the client is closed while it reconnects", function()
    local srv, subs = subscription_server()
    local s = jsonrpc.Server(url(srv), { reconnect = FAST, on_error = function() end })
    s:ws_connect()
    local heads = s:subscribe("eth_subscribe", { "newHeads" })
    assert.is_true(subs[1].active)
    srv:close()
    assert.is_true(eventually(function() return not s.connected end))
    s:close()
    local item, err = heads:next(5)
    assert.is_nil(item)
    assert.is_true(jsonrpc.TransportError.is(err))
  end)
end)

describe("server:notifications", function()
  local state = {}
  server_and_client(state)
  local srv, s
  before_each(function() srv, s = state.srv, state.s end)

  it("yields the params of every notification of its method", function()
    local ticks = s:notifications("tick")
    local also = s:notifications("tick")
    local others = s:notifications("tock")
    assert.is_true(s.tick("tick", 3))
    assert.same({ n = 1 }, ticks:next(5))
    assert.same({ n = 2 }, ticks:next(5))
    assert.same({ n = 3 }, ticks:next(5))
    assert.same({ n = 1 }, also:next(5))
    assert.equal(0, #others)
    assert.is_nil(ticks.id)
    ticks:close()
    assert.is_true(s.tick("tick", 1))
    assert.is_true(eventually(function() return #also == 3 end))
    assert.equal(0, #ticks)
  end)

  it("never grow past max_queue when nobody reads them", function()
    local ticks = s:notifications("tick", { max_queue = 100 })
    assert.is_true(s.tick("tick", 1000))
    assert.is_true(eventually(function() return ticks.dropped == 900 end))
    assert.equal(100, #ticks)
    assert.same({ n = 901 }, ticks:next())
  end)

  it("go on across reconnects, and end without", function()
    local port = srv.port
    local r = jsonrpc.Server(url(srv), { reconnect = FAST, timeout = 5, on_error = function() end })
    r:ws_connect()
    local ticks = r:notifications("tick")
    local plain = s:notifications("tick")
    srv:close()
    assert.is_true(eventually(function() return not r.connected end))
    srv = subscription_server(port)
    assert.is_true(r.tick("tick", 1)) -- waits for the reconnect
    assert.same({ n = 1 }, ticks:next(5))
    local item, err = plain:next(5)
    assert.is_nil(item)
    assert.is_true(jsonrpc.TransportError.is(err))
    r:close()
  end)
end)

describe("examples/subscribe.lua", function()
  it("runs: a server of ours offering a subscription, a client iterating it", function()
    local f = assert(io.open("examples/subscribe.lua"))
    local ok, out = require("helper").run_lua(f:read("a"))
    f:close()
    assert.is_true(ok, out)
    assert.matches("tick 3\nsecond subscription", out)
    assert.matches("server says: subscription 0x2 sent 2 ticks", out)
  end)
end)
