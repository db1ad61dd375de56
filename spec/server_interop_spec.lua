-- Our server against independent clients (Python websockets, Node ws +
-- json-rpc-2.0), and our client against an independent Node server.
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"
local sh = require "serve_helper"

local NODE_DIR = "spec/node"
local have_node = os.execute("command -v node >/dev/null && test -d " .. NODE_DIR .. "/node_modules/ws")

local function url(srv, path)
  return ("ws://127.0.0.1:%d%s"):format(srv.port, path or "/")
end

local function standard_handlers(srv)
  local notes = {}
  srv.add = function(a, b) return a + b end
  srv.greet = function(p) return "hello, " .. p.name end
  srv.app.users.getUsers = function() return { { id = 1, name = "ada" } } end
  srv.fail = function() error(jsonrpc.ProtocolError(-32001, "it failed", { why = "test" })) end
  srv.ask_back = function(a, b) return jsonrpc.peer().client_method(a, b) end
  srv.subscribe = function() jsonrpc.peer():notify("tick", { n = 1 }) return true end
  srv.note = function(text) notes[#notes + 1] = text end
  srv.last_note = function() return notes[#notes] end
  return notes
end

describe("our server with the Python websockets client", function()
  local srv
  before_each(function()
    srv = jsonrpc.listen { port = 0, on_error = function() end }
    standard_handlers(srv)
  end)
  after_each(function() srv:close() end)

  it("answers requests, echoing ids exactly", function()
    local out = sh.pyclient(url(srv), "--expect", "4",
      '{"jsonrpc":"2.0","id":12345678901234567890,"method":"add","params":[1,2]}',
      '{"jsonrpc":"2.0","id":"s","method":"greet","params":{"name":"py"}}',
      '{"jsonrpc":"2.0","id":1.5,"method":"nope"}',
      '{"jsonrpc":"2.0","id":null,"method":"app.users.getUsers"}').wait()
    local got = {}
    for _, r in ipairs(sh.received(out)) do got[#got + 1] = r.text end
    table.sort(got)
    assert.equal(4, #got)
    assert.equal('{"jsonrpc":"2.0","id":"s","result":"hello, py"}', got[1])
    -- the id text is ours, byte for byte; the error object is the codec's
    assert.equal('{"jsonrpc":"2.0","id":1.5,"error":', got[2]:sub(1, 34))
    assert.same({ code = -32601, message = "Method not found" },
      require("cjson").new().decode(got[2]).error)
    assert.equal('{"jsonrpc":"2.0","id":12345678901234567890,"result":3}', got[3])
    assert.equal('{"jsonrpc":"2.0","id":null,"result":[{"', got[4]:sub(1, 39))
    assert.equal("ada", require("cjson").new().decode(got[4]).result[1].name)
  end)

  it("answers a batch with one array, and parse errors with -32700", function()
    local out = sh.pyclient(url(srv), "--expect", "2",
      '[{"jsonrpc":"2.0","id":"a","method":"add","params":[2,2]},'
        .. '{"jsonrpc":"2.0","method":"note","params":["x"]},'
        .. '{"jsonrpc":"2.0","id":"b","method":"fail"}]',
      '{not json').wait()
    local r = sh.received(out)
    assert.equal(2, #r)
    local batch = r[1].msg[1] and r[1].msg or r[2].msg
    local parse = r[1].msg[1] and r[2].msg or r[1].msg
    assert.equal(2, #batch)
    local by_id = { [batch[1].id] = batch[1], [batch[2].id] = batch[2] }
    assert.equal(4, by_id.a.result)
    assert.same({ code = -32001, message = "it failed", data = { why = "test" } }, by_id.b.error)
    assert.equal(-32700, parse.error.code)
  end)

  it("answers many requests at once, every frame length intact", function()
    srv.echo = function(x) return x end
    local frames, want = {}, {}
    for n = 0, 140 do want[#want + 1] = ("ab\"\\c"):rep(n // 5 + 1):sub(1, n) end
    want[#want + 1] = ("x"):rep(65500) -- the longest that is gathered (one command
    -- line argument, for sh -c, holds at most 128 KiB: no room for more)
    local json = require("cjson").new()
    for id, text in ipairs(want) do
      frames[id] = json.encode { jsonrpc = "2.0", id = id, method = "echo", params = { text } }
    end
    local out = sh.pyclient(url(srv), "--expect", tostring(#want),
      table.unpack(frames)).wait()
    local got = {}
    for _, r in ipairs(sh.received(out)) do got[r.msg.id] = r.msg.result end
    for id, text in ipairs(want) do assert.equal(text, got[id], "length " .. #text) end
  end)

  it("calls back into the client and notifies it", function()
    local out = sh.pyclient(url(srv), "--expect", "3",
      '{"jsonrpc":"2.0","id":1,"method":"ask_back","params":[4,2]}',
      '{"jsonrpc":"2.0","id":2,"method":"subscribe"}').wait()
    assert.matches('ASKED {"jsonrpc":"2.0","method":"client_method","params":%[4,2%],"id":1}', out)
    local by = {}
    for _, r in ipairs(sh.received(out)) do by[r.msg.id or r.msg.method] = r.msg end
    assert.same({ py = { "client_method", { 4, 2 } } }, by[1].result)
    assert.is_true(by[2].result)
    assert.same({ n = 1 }, by.tick.params)
  end)
end)

describe("our server over TLS (wss://)", function()
  it("serves the Python client with a self-signed certificate", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert.is_true(os.execute(("mkdir %s && openssl req -x509 -newkey rsa:2048 -nodes "
      .. "-keyout %s/key.pem -out %s/cert.pem -days 1 -subj /CN=127.0.0.1 2>/dev/null")
      :format(dir, dir, dir)))
    finally(function() os.execute("rm -rf " .. dir) end)
    local srv = jsonrpc.listen { port = 0,
      tls = { cert_file = dir .. "/cert.pem", key_file = dir .. "/key.pem" } }
    srv.add = function(a, b) return a + b end
    local out = sh.pyclient(("wss://127.0.0.1:%d/"):format(srv.port), "--expect", "1",
      '{"jsonrpc":"2.0","id":7,"method":"add","params":[20,22]}').wait()
    srv:close()
    assert.matches('RECV {"jsonrpc":"2.0","id":7,"result":42}', out, 1, true)
  end)
end)

describe("our client against our server over wss://", function()
  it("verifies the server with the CA, and refuses without it", function()
    local certs = helper.certs()
    local srv = jsonrpc.listen { port = 0,
      tls = { cert_file = certs.server_cert, key_file = certs.server_key } }
    srv.add = function(a, b) return a + b end
    local wss_url = ("wss://127.0.0.1:%d/"):format(srv.port)
    local c = jsonrpc.Server(wss_url, { tls = { ca_file = certs.ca } })
    c:ws_connect()
    assert.equal(42, c.add(20, 22))
    c:close()
    local bad = jsonrpc.Server(wss_url)
    local ok, err = pcall(bad.ws_connect, bad)
    assert.is_false(ok)
    assert.matches("certificate verify failed", err.cause)
    srv:close()
  end)
end)

describe("our server with a Node.js client (ws + json-rpc-2.0)", function()
  it("runs the scenario: calls, errors, a call back, notifications both ways", function()
    assert.truthy(have_node, "node and spec/node/node_modules are needed: run make deps")
    local srv = jsonrpc.listen { port = 0, path = "/rpc", on_error = function() end }
    local notes = standard_handlers(srv)
    local out, status = sh.spawn(("node %s/client.js %s"):format(NODE_DIR, url(srv, "/rpc"))).wait()
    srv:close()
    assert.equal(0, status, out)
    local seen = require("cjson").new().decode(out:match("[^\n]*{[^\n]*"))
    assert.equal(3, seen.add)
    assert.equal("hello, node", seen.greet)
    assert.equal("ada", seen.users[1].name)
    assert.equal(-32601, seen.missing)
    assert.same({ code = -32001, message = "it failed" }, seen.fail)
    assert.equal(42, seen.ask_back)
    assert.same({ { n = 1 } }, seen.ticks)
    assert.equal("from node", seen.noted)
    assert.same({ "from node" }, notes)
  end)
end)

describe("our client with a Node.js server (ws + json-rpc-2.0)", function()
  it("calls it and answers its calls back", function()
    assert.truthy(have_node, "node and spec/node/node_modules are needed: run make deps")
    local h = io.popen(("exec node %s/server.js"):format(NODE_DIR), "r")
    local port, pid = (h:read("l") or ""):match("^PORT (%d+) PID (%d+)$")
    assert.truthy(port, "node server did not start")
    finally(function()
      os.execute("kill " .. pid)
      h:close()
    end)
    local c = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(port), { timeout = 5 })
    local notes = {}
    c.client_method = function(a, b) return a * 10 + b end
    c.note = function(text) notes[#notes + 1] = text end
    c:ws_connect()
    assert.equal(5, c.add(2, 3))
    assert.same({ a = { 1, 2 } }, c.echo { a = { 1, 2 } })
    assert.equal(73, c.call_me(7, 3))
    assert.is_true(c.notify_me("hi"))
    local deadline = jsonrpc.now() + 5
    while #notes == 0 and jsonrpc.now() < deadline do jsonrpc.sleep(0.01) end
    assert.same({ "hi" }, notes)
    c:close()
  end)
end)
