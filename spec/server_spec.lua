-- The server side: jsonrpc.listen, our client against our server.
require "helper" -- JSONRPC_GC=aggressive and the module paths
local jsonrpc = require "jsonrpc_websocket"
local sh = require "serve_helper"

local function url(srv, path)
  return ("ws://127.0.0.1:%d%s"):format(srv.port, path or "/")
end

local function client(srv, opts, path)
  local c = jsonrpc.Server(url(srv, path), opts or { timeout = 5 })
  c:ws_connect()
  return c
end

-- Waits (serving) until pred() holds; fails after `seconds`.
local function eventually(pred, seconds)
  local deadline = jsonrpc.now() + (seconds or 5)
  while not pred() do
    assert(jsonrpc.now() < deadline, "condition not reached in time")
    jsonrpc.sleep(0.01)
  end
end

describe("listen", function()
  local srv, reported
  before_each(function()
    reported = {}
    srv = jsonrpc.listen { host = "127.0.0.1", port = 0,
      on_error = function(e) reported[#reported + 1] = e end }
  end)
  after_each(function() srv:close() end)

  it("answers our client: positional, named, namespaces, null, errors", function()
    srv.add = function(a, b) return a + b end
    srv.greet = function(p) return "hello, " .. p.name end
    srv.app.users.getUsers = function() return { { id = 1, name = "ada" } } end
    srv.nothing = function() end
    srv.fail = function() error("nope", 0) end
    srv.perr = function() error(jsonrpc.ProtocolError(-32099, "custom", { x = 1 })) end
    local c = client(srv)
    assert.equal(3, c.add(1, 2))
    assert.equal("hello, lua", c.greet { name = "lua" })
    assert.equal("ada", c.app.users.getUsers()[1].name)
    assert.is_nil(c.nothing())
    local ok, err = pcall(c.no.such)
    assert.is_false(ok)
    assert.equal(-32601, err.code)
    ok, err = pcall(c.fail)
    assert.is_false(ok)
    assert.equal(-32000, err.code)
    assert.equal("Server Error: nope", err.message)
    assert.matches("handler for 'fail' failed: nope", tostring(reported[1]))
    ok, err = pcall(c.perr)
    assert.is_false(ok)
    assert.same({ -32099, "custom", { x = 1 } }, { err.code, err.message, err.data })
    c:close()
  end)

  it("binds exactly the host asked, on a free port for port 0", function()
    assert.is_true(srv.port > 0)
    -- 0100007F is 127.0.0.1 as the kernel prints it; 00000000 would be any
    assert.same({ "0100007F" }, sh.listening(srv.port))
    local any = jsonrpc.listen { host = "0.0.0.0", port = 0 }
    assert.same({ "00000000" }, sh.listening(any.port))
    any:close()
    assert.same({}, sh.listening(any.port))
  end)

  it("raises when the port is taken", function()
    assert.has_error(function() jsonrpc.listen { port = srv.port } end,
      ("listen on 127.0.0.1:%d failed: address in use (by another listener)"):format(srv.port))
    local other = require("helper").peer().port -- held by another process
    local ok, err = pcall(jsonrpc.listen, { port = other })
    assert.is_false(ok)
    assert.matches("listen on 127.0.0.1:%d+ failed: cannot listen", err)
    assert.has_error(function() jsonrpc.listen { port = 70000 } end,
      "option 'port' must be an integer 0..65535")
  end)

  it("upgrades only on its path", function()
    local s = jsonrpc.listen { port = 0, path = "/rpc" }
    s.one = function() return 1 end
    local ok_client = client(s, nil, "/rpc?x=1")
    assert.equal(1, ok_client.one())
    ok_client:close()
    local c = jsonrpc.Server(url(s, "/other"))
    local ok, err = pcall(c.ws_connect, c)
    assert.is_false(ok)
    assert.matches("HTTP 404", err.cause)
    s:close()
  end)

  it("refuses upgrades with the status authorize returns", function()
    local seen
    local s = jsonrpc.listen { port = 0, authorize = function(headers, path)
      seen = { auth = headers.authorization, key = headers["X-Api-Key"], path = path,
        host = headers.host }
      if headers["x-api-key"] == "good" then return true end
      if headers["x-api-key"] then return false, 403 end
      return false, 401
    end }
    s.one = function() return 1 end
    local c = client(s, { headers = { ["X-Api-Key"] = "good" }, auth = { "u", "p" } }, "/p")
    assert.equal(1, c.one())
    assert.same({ auth = "Basic dTpw", key = "good", path = "/p",
      host = "127.0.0.1:" .. s.port }, seen)
    for key, status in pairs { bad = 403, [""] = 401 } do
      local d = jsonrpc.Server(url(s), { headers = key ~= "" and { ["X-Api-Key"] = key } or nil })
      local ok, err = pcall(d.ws_connect, d)
      assert.is_false(ok)
      assert.equal("handshake rejected: HTTP " .. status, err.cause)
    end
    -- and an independent client sees the same real status
    local out = sh.pyclient(url(s), "--header", "X-Api-Key:bad").wait()
    assert.matches("STATUS 403", out)
    s:close()
  end)

  it("refuses with 500 when authorize raises or tries to wait", function()
    local errs = {}
    for _, hook in ipairs {
      function() error("boom") end,
      function() jsonrpc.sleep(0.01) return true end,
    } do
      local s = jsonrpc.listen { port = 0, authorize = hook,
        on_error = function(e) errs[#errs + 1] = tostring(e) end }
      local c = jsonrpc.Server(url(s))
      local ok, err = pcall(c.ws_connect, c)
      assert.is_false(ok)
      assert.equal("handshake rejected: HTTP 500", err.cause)
      s:close()
    end
    assert.matches("authorize hook failed: .*boom", errs[1])
    assert.matches("cannot run inside an authorize hook", errs[2])
  end)

  it("negotiates a subprotocol it lists and refuses others", function()
    local s = jsonrpc.listen { port = 0, protocols = { "jsonrpc" } }
    local got
    s.sub = function() got = jsonrpc.peer().subprotocol return true end
    local c = client(s, { protocols = { "other", "jsonrpc" } })
    assert.is_true(c.sub())
    assert.equal("jsonrpc", got)
    local d = jsonrpc.Server(url(s), { protocols = { "other" } })
    assert.is_false(pcall(d.ws_connect, d))
    s:close()
  end)

  it("calls back into the client from a handler and from connect", function()
    local from_connect
    srv:on("connect", function(peer) from_connect = peer.client_method(1, 2) end)
    srv.ask_back = function(a, b)
      local peer = jsonrpc.peer()
      return { peer.client_method(a, b), peer:call("client_method", { b, a }) }
    end
    local c = jsonrpc.Server(url(srv), { timeout = 5 })
    c.client_method = function(a, b) return a * 10 + b end
    c:ws_connect()
    assert.same({ 42, 24 }, c.ask_back(4, 2))
    eventually(function() return from_connect end)
    assert.equal(12, from_connect)
    assert.is_nil(jsonrpc.peer())
    c:close()
  end)

  it("sends notifications to one peer and to all", function()
    srv.subscribe = function() jsonrpc.peer():notify("tick", 1) return true end
    local got = {}
    local clients = {}
    for i = 1, 3 do
      clients[i] = client(srv)
      clients[i].tick = function(n) got[i] = (got[i] or 0) + n end
    end
    assert.is_true(clients[2]:call("subscribe")) -- server.subscribe is the stream method
    eventually(function() return got[2] == 1 end)
    assert.equal(3, srv:notify_all("tick", 10))
    eventually(function() return got[1] == 10 and got[2] == 11 and got[3] == 10 end)
    assert.equal(3, #srv:peers())
    for _, c in ipairs(clients) do c:close() end
    eventually(function() return #srv:peers() == 0 end)
    assert.equal(0, srv:notify_all("tick", 1))
  end)

  it("reports connect and disconnect with the close code and reason", function()
    local events = {}
    srv:on("connect", function(peer) events[#events + 1] = { "connect", peer.address } end)
    srv:on("disconnect", function(peer, code)
      events[#events + 1] = { "disconnect", code, peer.connected }
    end)
    local c = client(srv)
    c:close()
    eventually(function() return #events == 2 end)
    assert.same({ { "connect", "127.0.0.1" }, { "disconnect", 1000, false } }, events)
  end)

  it("fails calls in flight when either side closes", function()
    -- the client leaves while the server waits on its answer
    local server_err
    srv.ask_slow = function()
      local ok, err = pcall(jsonrpc.peer().slow)
      server_err = err
      return ok
    end
    local c = jsonrpc.Server(url(srv), { timeout = 5 })
    c.slow = function() jsonrpc.sleep(10) end
    c:ws_connect()
    jsonrpc.spawn(function() pcall(c.ask_slow) end)
    eventually(function() return #srv:peers() == 1 end)
    jsonrpc.sleep(0.05)
    c:close()
    eventually(function() return server_err end)
    assert.is_true(jsonrpc.TransportError.is(server_err))
    -- the server closes while the client waits on its answer
    srv.forever = function() jsonrpc.sleep(10) end
    local d = client(srv)
    local client_err
    jsonrpc.spawn(function() client_err = select(2, pcall(d.forever)) end)
    jsonrpc.sleep(0.05)
    local t0 = jsonrpc.now()
    srv:close()
    assert.is_true(jsonrpc.now() - t0 < 1)
    eventually(function() return client_err end)
    assert.is_true(jsonrpc.TransportError.is(client_err))
    assert.matches("1001 server closing", client_err.cause)
    assert.is_false(d.connected)
  end)

  it("can be closed from inside its own handler", function()
    srv.shutdown = function() srv:close() return "bye" end
    local c = client(srv)
    local ok, err = pcall(c.shutdown)
    -- the answer may or may not beat the close frame; either way no hang
    assert.is_true(ok or jsonrpc.TransportError.is(err))
    eventually(function() return not c.connected end)
    assert.same({}, sh.listening(srv.port))
  end)

  it("closes a peer with 1009 past max_message_size", function()
    local s = jsonrpc.listen { port = 0, max_message_size = 1000 }
    local code
    s:on("disconnect", function(_, c) code = c end)
    s.echo = function(x) return x end
    local c = client(s)
    assert.equal(("x"):rep(500), c.echo(("x"):rep(500)))
    assert.is_false(pcall(c.echo, ("x"):rep(2000)))
    eventually(function() return code end)
    assert.equal(1009, code)
    s:close()
  end)

  it("answers -32603 when handler_timeout passes", function()
    local s = jsonrpc.listen { port = 0, handler_timeout = 0.1, on_error = function() end }
    s.forever = function() jsonrpc.sleep(1e6) end
    local c = client(s)
    local ok, err = pcall(c.forever)
    assert.is_false(ok)
    assert.equal(-32603, err.code)
    s:close()
  end)

  it("run() serves until close()", function()
    srv.stop = function() jsonrpc.spawn(function() srv:close() end) return true end
    local c = client(srv)
    jsonrpc.spawn(function() c.stop() end)
    local t0 = jsonrpc.now()
    srv:run()
    assert.is_true(jsonrpc.now() - t0 < 2)
    assert.same({}, sh.listening(srv.port))
  end)

  it("lets a script exit with listeners it never closed, idle or serving", function()
    local ok, out = require("helper").run_lua([[
      local jsonrpc = require "jsonrpc_websocket"
      local idle = jsonrpc.listen { port = 0 }
      local busy = jsonrpc.listen { port = 0 }
      busy.add = function(a, b) return a + b end
      local c = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(busy.port))
      c:ws_connect()
      print(c.add(20, 22), idle.port > 0)
    ]])
    assert.is_true(ok, out)
    assert.equal("42\ttrue\n", out)
  end)

  it("says so when the process is out of file descriptors, and recovers", function()
    local ok, out = require("helper").run_lua([[
      local jsonrpc = require "jsonrpc_websocket"
      local srv = jsonrpc.listen { port = 0 }   -- loads everything first
      srv.add = function(a, b) return a + b end
      local url = ("ws://127.0.0.1:%d/"):format(srv.port)
      local files = {}
      while true do
        local f = io.open("/dev/null")
        if not f then break end
        files[#files + 1] = f
      end
      print(select(2, pcall(jsonrpc.listen, { port = 0 })))
      local c = jsonrpc.Server(url)
      print(select(2, pcall(c.ws_connect, c)))
      for _, f in ipairs(files) do f:close() end
      local other = jsonrpc.listen { port = 0 }
      c:ws_connect()
      print(c.add(1, 2), other.port > 0)
    ]], nil, 64)
    assert.is_true(ok, out)
    local listen_err, connect_err, after = out:match("^([^\n]*)\n([^\n]*)\n([^\n]*)\n$")
    assert.matches("listen on 127.0.0.1:0 failed: cannot listen: Too many open files", listen_err, 1, true)
    assert.matches("failed: Too many open files (raise ulimit -n)", connect_err, 1, true)
    assert.equal("3\ttrue", after)
  end)

  it("serves a new listener on the port of one just closed, at once or later", function()
    local port = srv.port
    srv.add = function(a, b) return a + b end
    local old = client(srv)
    assert.equal(3, old.add(1, 2))
    for round, pause in ipairs { 0, 0.2, 0 } do
      srv:close()
      if pause > 0 then jsonrpc.sleep(pause) end
      srv = jsonrpc.listen { port = port }
      srv.add = function(a, b) return a + b + round end
      local c = client(srv)
      assert.equal(3 + round, c.add(1, 2))
      c:close()
    end
    assert.is_false(old.connected)
  end)

  it("registers handler tables with expose, and rejects taken names", function()
    srv:expose { math = { add = function(a, b) return a + b end }, id = function(x) return x end }
    srv:register("close", function() return "remote close" end)
    local c = client(srv)
    assert.equal(5, c.math.add(2, 3))
    assert.equal("x", c.id("x"))
    assert.equal("remote close", c:call("close"))
    assert.has_error(function() srv.close = function() end end,
      'srv.close is taken; use srv:register("close", fn)')
    c:close()
  end)

  it("holds 1,000 concurrent connections", function()
    local h = io.popen("ulimit -n")
    local nofile = tonumber(h:read("a"))
    h:close()
    assert(not nofile or nofile > 2100,
      "both ends in this process need over 2,100 descriptors: ulimit -n is "
      .. tostring(nofile) .. " (make test raises it)")
    local s = jsonrpc.listen { port = 0 }
    s.add = function(a, b) return a + b end
    local clients, sum = {}, 0
    jsonrpc.run(function()
      for i = 1, 1000 do
        jsonrpc.spawn(function()
          local c = jsonrpc.Server(url(s), { timeout = 20, connect_timeout = 20 })
          c:ws_connect()
          clients[i] = c
        end)
      end
    end)
    assert.equal(1000, #s:peers())
    local ticks = 0
    for _, c in ipairs(clients) do c.tick = function() ticks = ticks + 1 end end
    jsonrpc.run(function()
      for i = 1, 1000 do
        jsonrpc.spawn(function()
          local v = clients[i].add(i, 0)
          sum = sum + v
        end)
      end
    end)
    assert.equal(1000 * 1001 / 2, sum)
    assert.equal(1000, s:notify_all("tick"))
    eventually(function() return ticks == 1000 end, 10)
    s:close()
    eventually(function()
      for _, c in ipairs(clients) do if c.connected then return false end end
      return true
    end, 10)
  end)
end)

describe("examples/serve.lua", function()
  it("serves a Lua file of handlers, nested tables as namespaces", function()
    local port
    do -- a free port: bind one, release it
      local s = jsonrpc.listen { port = 0 }
      port = s.port
      s:close()
    end
    local out = os.tmpname()
    os.execute(("LUA_PATH='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH=%q "
      .. "timeout 20 lua5.4 examples/serve.lua spec/fixtures_handlers.lua --port %d > %s 2>&1 & echo $! > %s.pid")
      :format(package.cpath:match("^[^;]*") .. ";;", port, out, out))
    local pidf = io.open(out .. ".pid")
    local pid = pidf:read("n")
    pidf:close()
    finally(function()
      os.execute("kill " .. pid .. " 2>/dev/null")
      os.remove(out)
      os.remove(out .. ".pid")
    end)
    local c = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(port), { timeout = 5 })
    local deadline = jsonrpc.now() + 10
    while not pcall(c.ws_connect, c) do
      assert.is_true(jsonrpc.now() < deadline, "serve.lua did not start")
      jsonrpc.sleep(0.05)
    end
    assert.equal(7, c.add(3, 4))
    assert.equal(2, c.app.users.count())
    c:close()
    local f = io.open(out)
    assert.matches("serving spec/fixtures_handlers.lua on ws://127.0.0.1:" .. port, f:read("a"))
    f:close()
  end)
end)

describe("a listener with keepalive", function()
  it("drops a peer that stops answering pings", function()
    local srv = jsonrpc.listen { port = 0, keepalive = 1 }
    local gone
    srv:on("disconnect", function(_, code) gone = { code, jsonrpc.now() } end)
    local t0 = jsonrpc.now()
    local job = sh.spawn(("%s spec/silent_client.py 127.0.0.1 %d 4.5"):format(sh.PYTHON, srv.port))
    local deadline = t0 + 7
    while not gone and jsonrpc.now() < deadline do jsonrpc.sleep(0.05) end
    assert.is_not_nil(gone, "the silent peer was never dropped")
    assert.is_true(gone[2] - t0 >= 1, "dropped before any ping could go unanswered")
    assert.equal(0, srv.count)
    srv:close()
    local out = job.wait(15)
    assert.matches("101", out)
  end)
end)
