-- Pressure and abuse: memory stays bounded by configuration, not by what a
-- peer does; the process and the other peers carry on. Hostile peers are
-- spec/hostile.py (raw sockets where the websockets library would not
-- misbehave for us).
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"
local sched = require "jsonrpc_websocket.scheduler"

local function lua_heap_kb()
  collectgarbage("collect")
  collectgarbage("collect")
  return collectgarbage("count")
end

describe("cancelled timers", function()
  it("are freed at once, while an earlier timer is live", function()
    local srv = jsonrpc.listen {}
    srv.echo = function(x) return x end
    local c = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port))
    c:ws_connect()
    local live = sched.timer(500, function() end) -- due before every call's deadline
    local before_count = sched.timer_count()
    for i = 1, 500 do c:call("echo", { i }, { timeout = 600 }) end
    local before = lua_heap_kb()
    for i = 1, 5000 do c:call("echo", { i }, { timeout = 600 }) end
    local after = lua_heap_kb()
    assert.equal(before_count, sched.timer_count())
    -- each call's timer used to stay until its deadline: ~140 B a call
    assert.is_true(after - before < 150, ("Lua heap grew %.0f KB"):format(after - before))
    sched.cancel(live)
    assert.equal(before_count - 1, sched.timer_count())
    c:close()
    srv:close()
  end)

  it("of a closed connection's calls go with it: connect/close cycles hold nothing", function()
    local srv = jsonrpc.listen { handler_timeout = 600 }
    srv.add = function(a, b) return a + b end
    local url = ("ws://127.0.0.1:%d/"):format(srv.port)
    local live = sched.timer(500, function() end)
    local function cycles(n)
      for _ = 1, n do
        local c = jsonrpc.Server(url, { timeout = 600 })
        c:ws_connect()
        assert.equal(3, c.add(1, 2))
        c:close()
      end
      while srv.count > 0 do jsonrpc.sleep(0.01) end
    end
    cycles(20)
    local timers, before = sched.timer_count(), lua_heap_kb()
    cycles(100)
    local after = lua_heap_kb()
    assert.equal(timers, sched.timer_count())
    -- the 600 s deadline timer used to keep each closed link: ~6 KB a cycle
    assert.is_true(after - before < 150, ("Lua heap grew %.0f KB"):format(after - before))
    sched.cancel(live)
    srv:close()
  end)

  it("keep their order when taken from the middle of the heap", function()
    local fired, timers = {}, {}
    for i = 1, 40 do
      timers[i] = sched.timer(0.001 * ((i * 7) % 40), function(n) fired[#fired + 1] = n end, i)
    end
    for i = 1, 40, 3 do sched.cancel(timers[i]) end
    jsonrpc.sleep(0.3)
    local expect = {}
    for i = 1, 40 do
      if (i - 1) % 3 ~= 0 then expect[#expect + 1] = i end
    end
    -- every timer left fired once, in the order of their deadlines
    assert.equal(#expect, #fired)
    for i = 2, #fired do
      assert.is_true(timers[fired[i - 1]][1] <= timers[fired[i]][1])
    end
    table.sort(fired)
    assert.same(expect, fired)
  end)

end)

---------------------------------------------------------------------------
-- Hostile peers (spec/hostile.py), run in the background while our loop
-- serves: their output goes to a file we poll.
---------------------------------------------------------------------------
local link_of = require("jsonrpc_websocket.client").link
local hostile = require("hostile_helper").hostile

--- Serves the loop until fn() holds (or fails after `timeout` s).
local function eventually(fn, timeout, what)
  local deadline = jsonrpc.now() + (timeout or 10)
  while not fn() do
    if jsonrpc.now() > deadline then error("timed out waiting for " .. (what or "a condition")) end
    jsonrpc.sleep(0.02)
  end
end

--- Another client is served by srv as if nothing happened.
local function assert_served(srv)
  local good = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port))
  good:ws_connect()
  assert.equal(3, good.add(1, 2))
  good:close()
end

--- The reports (as strings) that reach obj's "error" listeners from now on.
local function reports_of(obj)
  local list = {}
  obj:on("error", function(e) list[#list + 1] = tostring(e) end)
  return list
end

local function conn_of(peer_or_server) return link_of(peer_or_server).conn end

describe("a bounded send queue", function()
  local KB = 1024
  local payload = ("x"):rep(8 * KB)

  it("notify_all skips a peer that never reads, closes it after send_queue_timeout, serves the others", function()
    local srv = jsonrpc.listen { max_send_queue = 64 * KB, send_queue_timeout = 1 }
    srv.add = function(a, b) return a + b end
    local events, reports = {}, {}
    srv:on("queue_full", function(peer) events[#events + 1] = "full " .. peer.id end)
    srv:on("disconnect", function(peer, code) events[#events + 1] = ("gone %d %d"):format(peer.id, code) end)
    srv:on("error", function(err) reports[#reports + 1] = tostring(err) end)
    local bad = hostile(("client %d --rcvbuf 4096"):format(srv.port))
    bad.wait_for("STATUS 101")
    local good = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port))
    local got = 0
    good.push = function() got = got + 1 end
    good:ws_connect()
    eventually(function() return srv.count == 2 end)
    local hostile_peer
    for _, p in ipairs(srv:peers()) do if p.id == 1 then hostile_peer = p end end
    local skipped_total, most_queued = 0, 0
    for _ = 1, 400 do -- 3.2 MB offered to each peer
      local _, skipped = srv:notify_all("push", payload)
      skipped_total = skipped_total + skipped
      if hostile_peer.connected then
        most_queued = math.max(most_queued, (conn_of(hostile_peer):queued()))
      end
      jsonrpc.sleep(0.001)
    end
    assert.is_true(skipped_total > 0)
    assert.is_true(hostile_peer.skipped == skipped_total)
    assert.is_true(most_queued <= 64 * KB, "queued " .. most_queued)
    eventually(function() return got == 400 end, 10, "the good client's notifications")
    eventually(function() return not hostile_peer.connected end, 10, "the hostile peer's close")
    assert.equal(3, good.add(1, 2))
    assert.same({ "full 1", "gone 1 1008" }, events)
    assert.matches("send queue full", table.concat(reports, "\n"), 1, true)
    good:close()
    srv:close()
    bad.stop()
  end)

  it("a client's calls and notifications wait for room, bounded by their timeout", function()
    local bad = helper.start_peer("server --rcvbuf 4096", "spec/hostile.py")
    local c = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(bad.port),
      { max_send_queue = 64 * KB, timeout = 0.5, send_queue_timeout = 3 })
    local reports = reports_of(c)
    c:ws_connect()
    local err
    local sent = 0
    local ok = pcall(function()
      for _ = 1, 10000 do -- 80 MB if nothing held it back
        c:notify("push", payload)
        sent = sent + 1
      end
    end)
    assert.is_false(ok)
    assert.is_true(sent < 10000)
    local queued = conn_of(c):queued()
    assert.is_true(queued <= 64 * KB, "queued " .. queued)
    -- a call from a task waits too, and times out with the same cause
    jsonrpc.run(function()
      ok, err = pcall(c.call, c, "echo", { payload })
    end)
    assert.is_false(ok)
    assert.is_true(jsonrpc.TimeoutError.is(err), tostring(err))
    assert.matches("send queue full", tostring(err), 1, true)
    -- the queue stays full: after send_queue_timeout the connection goes,
    -- long before this call's own timeout
    ok, err = pcall(c.call, c, "echo", { payload }, { timeout = 60 })
    assert.is_false(ok)
    assert.is_true(jsonrpc.TransportError.is(err) and not jsonrpc.TimeoutError.is(err), tostring(err))
    eventually(function() return not c.connected end)
    assert.matches("send queue full", tostring(err), 1, true)
    assert.matches("send queue full for longer than send_queue_timeout", reports[1], 1, true)
    bad.stop()
  end)
end)

--- A file of one message per line, for hostile.py --send.
local function message_file(lines)
  local name = os.tmpname()
  local f = assert(io.open(name, "w"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  return name
end

describe("a server reads only as fast as it answers", function()
  it("runs at most max_concurrent_requests handlers for a peer that pipelines and never reads", function()
    local srv = jsonrpc.listen { max_concurrent_requests = 8, max_send_queue = 32 * 1024,
      send_queue_timeout = 2 }
    local running, most, started = 0, 0, 0
    local big = ("y"):rep(4096)
    srv.slow = function()
      running, started = running + 1, started + 1
      most = math.max(most, running)
      jsonrpc.sleep(0.01)
      running = running - 1
      return big
    end
    srv.add = function(a, b) return a + b end
    local lines = {}
    for i = 1, 20000 do lines[i] = ('{"jsonrpc":"2.0","method":"slow","id":%d}'):format(i) end
    local file = message_file(lines)
    local bad = hostile(("client %d --rcvbuf 4096 --send %s"):format(srv.port, file))
    bad.wait_for("STATUS 101")
    local gone, reports, most_held = nil, {}, 0
    srv:on("disconnect", function(_, code) gone = code end)
    srv:on("error", function(e) reports[#reports + 1] = tostring(e) end)
    local function held_now()
      for _, p in ipairs(srv:peers()) do
        local held = link_of(p).held
        if held then most_held = math.max(most_held, held.last - held.first + 1) end
      end
      return started >= 200
    end
    eventually(held_now, 20, "the hostile peer's requests")
    -- another client is served meanwhile
    local good = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port))
    good:ws_connect()
    assert.equal(5, good.add(2, 3))
    eventually(function() held_now() return gone ~= nil end, 20, "the hostile peer's close")
    assert.equal(1008, gone) -- its replies filled the queue: dropped
    assert.matches("send queue full", reports[1], 1, true)
    -- what was read before reading stopped: about one read (64 KB) of requests
    assert.is_true(most_held < 3000, "requests held: " .. most_held)
    assert.is_true(most <= 8, "handlers at once: " .. most)
    assert.is_true(started < 20000, "every request was read: nothing held the peer back")
    assert.equal(5, good.add(2, 3))
    good:close()
    srv:close()
    bad.stop()
    os.remove(file)
  end)

  it("stops reading from a peer that sends junk and never reads its error answers", function()
    local srv = jsonrpc.listen { max_send_queue = 4096, send_queue_timeout = 2 }
    srv.add = function(a, b) return a + b end
    srv:on("error", function() end) -- its reports: not on stderr
    local lines, id = {}, ("i"):rep(1000)
    for i = 1, 20000 do -- each answered -32601 with its 1 KB id, as it is read
      lines[i] = ('{"jsonrpc":"2.0","method":"nope","id":"%s%d"}'):format(id, i)
    end
    local file = message_file(lines)
    local bad = hostile(("client %d --rcvbuf 4096 --send %s"):format(srv.port, file))
    bad.wait_for("STATUS 101")
    local gone, most_waiting = nil, 0
    srv:on("disconnect", function(_, code) gone = code end)
    eventually(function()
      for _, p in ipairs(srv:peers()) do
        most_waiting = math.max(most_waiting, link_of(p).replies_waiting or 0)
      end
      return gone ~= nil
    end, 20 * helper.PATIENCE, "the junk peer's close")
    assert.equal(1008, gone)
    -- about one read's worth (64 KB: 64 requests) waits, not all of them
    assert.is_true(most_waiting > 0 and most_waiting < 1000, "replies waiting: " .. most_waiting)
    assert_served(srv)
    srv:close()
    bad.stop()
    os.remove(file)
  end)

  it("answers a batch longer than max_batch with one -32600", function()
    local srv = jsonrpc.listen { max_batch = 10 }
    local calls = 0
    srv.add = function(a, b) calls = calls + 1 return a + b end
    local function batch(n)
      local list = {}
      for i = 1, n do list[i] = ('{"jsonrpc":"2.0","method":"add","params":[%d,1],"id":%d}'):format(i, i) end
      return "[" .. table.concat(list, ",") .. "]"
    end
    local reports = reports_of(srv)
    local file = message_file { batch(11), batch(10) }
    local h = hostile(("client %d --read --send %s"):format(srv.port, file))
    local first = h.wait_for("RECV ([^\n]*)\n")
    assert.same({ jsonrpc = "2.0", id = helper.decode("null"),
      error = { code = -32600, message = "Invalid Request" } }, helper.decode(first))
    local second = h.wait_for("RECV [^\n]*\nRECV ([^\n]*)\n")
    assert.equal(10, #helper.decode(second))
    assert.equal(10, calls)
    assert.matches("longer than max_batch (10)", reports[1], 1, true)
    srv:close()
    h.stop()
    os.remove(file)
  end)

  it("works through a long batch in turns: another peer's call is answered meanwhile", function()
    local srv = jsonrpc.listen {}
    local handled, handled_when_answered = 0, nil
    srv.work = function(i) handled = handled + 1 return i end
    srv.add = function(a, b) return a + b end
    local good = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port))
    good:ws_connect()
    local list = {}
    for i = 1, 1000 do list[i] = ('{"jsonrpc":"2.0","method":"work","params":[%d],"id":%d}'):format(i, i) end
    local file = message_file { "[" .. table.concat(list, ",") .. "]" }
    jsonrpc.run(function()
      local h = hostile(("client %d --read --send %s"):format(srv.port, file))
      while handled == 0 do jsonrpc.sleep(0.001) end
      assert.equal(5, good.add(2, 3))
      handled_when_answered = handled
      local answer = helper.decode(h.wait_for("RECV ([^\n]*)\n"))
      assert.equal(1000, #answer)
      assert.equal(1000, answer[1000].result)
      h.stop()
    end)
    assert.is_true(handled_when_answered < 1000,
      "the other peer waited for the whole batch")
    good:close()
    srv:close()
    os.remove(file)
  end)

  it("refuses connections past max_connections with 503, and takes new ones when some leave", function()
    local srv = jsonrpc.listen { max_connections = 2 }
    srv.add = function(a, b) return a + b end
    local url = ("ws://127.0.0.1:%d/"):format(srv.port)
    local a, b, c = jsonrpc.Server(url), jsonrpc.Server(url), jsonrpc.Server(url)
    a:ws_connect()
    b:ws_connect()
    local ok, err = pcall(c.ws_connect, c)
    assert.is_false(ok)
    assert.equal(503, err.status)
    assert.equal(3, a.add(1, 2))
    a:close()
    eventually(function() return srv.count == 1 end)
    c:ws_connect()
    assert.equal(3, c.add(1, 2))
    b:close()
    c:close()
    srv:close()
  end)
end)

describe("lies and oddities", function()
  it("refuses a frame whose header declares more than max_message_size with 1009 at once", function()
    local srv = jsonrpc.listen { max_message_size = 1024 * 1024 }
    srv.add = function(a, b) return a + b end
    local liar = hostile(("liar %d %d"):format(srv.port, 1024 * 1024 * 1024))
    -- before the fix the connection wedged until keepalive (61 s)
    assert.equal("1009", liar.wait_for("CLOSE (%d+)", 20))
    assert_served(srv)
    srv:close()
    liar.stop()
  end)

  it("answers a request whose id is an object, an array or a boolean with -32600", function()
    local srv = jsonrpc.listen {}
    local calls = 0
    srv.add = function(a, b) calls = calls + 1 return a + b end
    local reports = reports_of(srv)
    local file = message_file {
      '{"jsonrpc":"2.0","method":"add","params":[1,2],"id":{"a":1}}',
      '{"jsonrpc":"2.0","method":"add","params":[1,2],"id":[1]}',
      '{"jsonrpc":"2.0","method":"add","params":[1,2],"id":true}',
      '{"jsonrpc":"2.0","method":"add","params":[1,2],"id":"ok"}',
    }
    local h = hostile(("client %d --read --send %s"):format(srv.port, file))
    h.wait_for("RECV[^\n]*\nRECV[^\n]*\nRECV[^\n]*\nRECV[^\n]*\n")
    local answers = {}
    for text in h.text():gmatch("RECV ([^\n]*)") do answers[#answers + 1] = helper.decode(text) end
    for i = 1, 3 do
      assert.equal(-32600, answers[i].error.code)
      assert.equal(helper.decode("null"), answers[i].id)
    end
    assert.same({ jsonrpc = "2.0", id = "ok", result = 3 }, answers[4])
    assert.equal(1, calls)
    assert.matches("id is neither a string, a number nor null", reports[1], 1, true)
    srv:close()
    h.stop()
    os.remove(file)
  end)

  it("settles a caller whose answer is too deep to decode, by its id", function()
    local s = jsonrpc.Server(helper.peer().url())
    reports_of(s) -- not on stderr
    s:ws_connect()
    local id = tonumber(s.raw_request():match('"id":(%d+)')) + 1 -- the next call's
    local deep = ('{"jsonrpc":"2.0","result":%s%s,"id":%d}')
      :format(("["):rep(100000), ("]"):rep(100000), id)
    local ok, err = pcall(s.send_raw_then_answer, deep, 7) -- no timeout: it would wait forever
    assert.is_false(ok)
    assert.equal(-32700, err.code)
    assert.equal(3, s.add(1, 2))
    s:close()
  end)

  it("settles a batch's callers when its answer as a whole is not JSON", function()
    local s = jsonrpc.Server(helper.peer().url())
    reports_of(s) -- not on stderr
    s:ws_connect()
    local first = tonumber(s.raw_request():match('"id":(%d+)')) + 1 -- the batch's ids
    local results
    jsonrpc.run(function()
      jsonrpc.spawn(function()
        results = s:batch(function(b) b.never() b.never() end, { timeout = 10 * helper.PATIENCE })
      end)
      jsonrpc.sleep(0.1) -- the batch is out
      -- one element too deep: the array is not JSON, its first element is
      local deep = ("["):rep(1000) .. ("]"):rep(1000)
      s.send_raw(('[{"jsonrpc":"2.0","id":%d,"result":5},{"jsonrpc":"2.0","id":%d,"result":%s}]')
        :format(first, first + 1, deep))
    end)
    assert.equal(5, results[1].result)
    assert.equal(-32700, results[2].error.code)
    assert.equal(3, s.add(1, 2))
    s:close()
  end)

  it("counts an answer's envelope in the nesting limit", function()
    local s = jsonrpc.Server(helper.peer().url())
    reports_of(s) -- not on stderr
    s:ws_connect()
    local function nested(depth) return ("["):rep(depth) .. ("]"):rep(depth) end
    -- 1,000 levels with the envelope: delivered, an empty array inside
    local id = tonumber(s.raw_request():match('"id":(%d+)')) + 1
    local fits = ('{"jsonrpc":"2.0","id":%d,"result":%s}'):format(id, nested(999))
    local v, d = s.send_raw_then_answer(fits, 7), 0
    while type(v) == "table" do v, d = v[1], d + 1 end
    assert.equal(999, d)
    -- 1,001: too deep, as any message is, whichever way it is read
    id = tonumber(s.raw_request():match('"id":(%d+)')) + 1
    local deep = ('{"jsonrpc":"2.0","id":%d,"result":%s}'):format(id, nested(1000))
    local ok, err = pcall(s.send_raw_then_answer, deep, 7)
    assert.is_false(ok)
    assert.equal(-32700, err.code)
    assert.equal(3, s.add(1, 2))
    s:close()
  end)

  it("reports an unknown string id \"1\" apart from the number 1", function()
    local s = jsonrpc.Server(helper.peer().url())
    local reports = reports_of(s)
    s:ws_connect()
    s.send_raw('{"jsonrpc":"2.0","id":"987654","result":1}')
    s.send_raw('{"jsonrpc":"2.0","id":987654,"result":1}')
    eventually(function() return #reports == 2 end)
    assert.matches('unknown id "987654"', reports[1], 1, true)
    assert.matches("unknown id 987654$", reports[2])
    s:close()
  end)
end)

describe("tls.verify_client", function()
  it("requires a client certificate the listener's ca_file vouches for", function()
    local certs = helper.certs()
    local srv = jsonrpc.listen { tls = { cert_file = certs.server_cert, key_file = certs.server_key,
      ca_file = certs.ca, verify_client = true } }
    srv.add = function(a, b) return a + b end
    local url = ("wss://127.0.0.1:%d/"):format(srv.port)
    local with = jsonrpc.Server(url, { tls = { ca_file = certs.ca,
      cert_file = certs.client_cert, key_file = certs.client_key } })
    with:ws_connect()
    assert.equal(3, with.add(1, 2))
    local without = jsonrpc.Server(url, { tls = { ca_file = certs.ca } })
    local ok, err = pcall(without.ws_connect, without)
    assert.is_false(ok)
    assert.is_true(jsonrpc.TransportError.is(err), tostring(err))
    local stranger = jsonrpc.Server(url, { tls = { ca_file = certs.ca,
      cert_file = certs.self_cert, key_file = certs.self_key } })
    ok = pcall(stranger.ws_connect, stranger)
    assert.is_false(ok)
    assert.equal(3, with.add(1, 2))
    with:close()
    srv:close()
  end)

  it("is checked: a boolean, and only with ca_file", function()
    local certs = helper.certs()
    assert.error_matches(function()
      jsonrpc.listen { tls = { cert_file = certs.server_cert, key_file = certs.server_key, verify_client = true } }
    end, "needs 'tls.ca_file'")
    assert.error_matches(function()
      jsonrpc.listen { tls = { cert_file = certs.server_cert, key_file = certs.server_key,
        ca_file = certs.ca, verify_client = "yes" } }
    end, "must be a boolean")
  end)
end)

describe("limit options", function()
  it("are checked like the others, on both sides", function()
    local url = "ws://127.0.0.1:1/"
    for _, bad in ipairs {
      { max_send_queue = 0 }, { max_send_messages = 1.5 }, { send_queue_timeout = -1 },
      { send_queue_timeout = "30" }, { max_concurrent_requests = 0 }, { max_batch = "10" },
    } do
      local key = next(bad)
      assert.error_matches(function() jsonrpc.Server(url, bad) end, "option '" .. key .. "'")
      assert.error_matches(function() jsonrpc.listen(bad) end, "option '" .. key .. "'")
    end
    assert.error_matches(function() jsonrpc.listen { max_connections = -5 } end,
      "option 'max_connections' must be a positive integer")
    assert.error_matches(function() jsonrpc.listen { keepalive = 0 } end,
      "option 'keepalive' must be whole seconds %(1..32767%) or false")
    local srv = jsonrpc.listen { keepalive = false, send_queue_timeout = false, max_batch = 5 }
    srv.add = function(a, b) return a + b end
    local c = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port),
      { send_queue_timeout = false, max_send_queue = 1 }) -- an empty queue takes any one message
    c:ws_connect()
    assert.equal(3, c.add(1, 2))
    local results = c:batch(function(b) for i = 1, 5 do b.add(i, 1) end end)
    assert.equal(6, results[5].result)
    c:close()
    srv:close()
  end)
end)
