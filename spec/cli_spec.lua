-- bin/jsonrpc-ws as a user runs it: a subprocess, against our own server
-- (`jsonrpc-ws serve`) and aria2c.
local helper = require "helper"

local CPATH = package.cpath:match("^[^;]*") -- ./build/?.so (or the ASan build)
local ENV = ("env LUA_PATH_5_4='./lua/?.lua;./lua/?/init.lua;;' LUA_CPATH_5_4='%s;;' ")
  :format(CPATH)

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function slurp(file)
  local f = io.open(file)
  if not f then return nil end
  local text = f:read("a")
  f:close()
  os.remove(file)
  return text
end

--- Runs jsonrpc-ws with `args` (a list; or a string, as is), stdin `input`;
-- returns stdout, stderr, exit code.
local function cli(args, input)
  if type(args) == "table" then
    local quoted = {}
    for i, a in ipairs(args) do quoted[i] = q(a) end
    args = table.concat(quoted, " ")
  end
  local err, inp = os.tmpname(), os.tmpname()
  local f = io.open(inp, "w")
  f:write(input or "")
  f:close()
  local p = io.popen(ENV .. "timeout 30 lua5.4 bin/jsonrpc-ws " .. args
    .. " <" .. inp .. " 2>" .. err)
  local out = p:read("a")
  local _, _, code = p:close()
  os.remove(inp)
  return out, slurp(err), code
end

--- Starts `cmd` in the background, killed after `limit` seconds (default
-- 30). Returns a job: finished(), wait() -> stdout, stderr, exit code,
-- first_line() (waits for it), stop().
local function background(cmd, limit)
  local out, err = os.tmpname(), os.tmpname()
  local done, pidfile = out .. ".done", out .. ".pid"
  os.execute(("(%s timeout %d %s >%s 2>%s & echo $! >%s; wait $!; echo $? >%s) 2>/dev/null &")
    :format(ENV, limit or 30, cmd, out, err, pidfile, done))
  local job = {}
  local function poll(what, read)
    for _ = 1, 600 do
      local f = io.open(what)
      local got = f and read(f)
      if f then f:close() end
      if got then return got end
      os.execute("sleep 0.05")
    end
    error("background command did not finish: " .. cmd)
  end
  function job.finished() local f = io.open(done) if f then f:close() end return f ~= nil end
  function job.wait()
    local code = poll(done, function(f) return f:read("n") end)
    os.remove(done)
    os.remove(pidfile)
    return slurp(out), slurp(err), code
  end
  function job.first_line() return poll(out, function(f) return f:read("L") end) end
  function job.stop()
    os.execute("kill " .. poll(pidfile, function(f) return f:read("n") end) .. " 2>/dev/null")
    return job.wait()
  end
  return job
end

local function decode_lines(text)
  local list = {}
  for line in text:gmatch("[^\n]+") do list[#list + 1] = helper.decode(line) end
  return list
end

describe("jsonrpc-ws against jsonrpc-ws serve", function()
  local server, url
  setup(function()
    server = background("lua5.4 bin/jsonrpc-ws serve spec/fixtures_cli_handlers.lua --port 0",
      120)
    url = helper.decode(server.first_line()).url
    assert.matches("^ws://127%.0%.0%.1:%d+/$", url)
  end)
  teardown(function() server.stop() end)

  it("calls: args are JSON values, bare words strings; the result is JSON on stdout", function()
    local out, err, code = cli { "call", url, "add", "1", "2" }
    assert.same({ "3\n", "", 0 }, { out, err, code })
    out, err, code = cli { "call", url, "echo", "1", "latest", '"0xabc"', '{"a": [1, {}]}',
      "true", "null", "-2.5", "--compact" }
    assert.equal(0, code, err)
    assert.equal('[1,"latest","0xabc",{"a":[1,{}]},true,null,-2.5]\n', out)
    out = cli { "call", url, "echo", "--params", '[1, "two"]' }
    assert.equal('[1,"two"]\n', out)
    out = cli { "call", url, "echo", "--named", '{"k": "v"}' }
    assert.equal('[{"k":"v"}]\n', out)
    out = cli { "call", url, "echo", "--id", '"my-id"', "x" }
    assert.equal('["x"]\n', out)
  end)

  it("prints --pretty indented, --compact (the default off a terminal) on one line", function()
    local out = cli { "call", url, "shape", "--pretty" }
    local value = helper.decode(out)
    assert.equal(1.5, value.n)
    assert.matches('^{\n  "', out)
    assert.matches('\n  "list": {}', out) -- an empty table, as the server encodes it
    assert.matches('\n    1,\n    2\n', out)
    local compact = cli { "call", url, "shape" }
    assert.equal(1, select(2, compact:gsub("\n", "")))
    assert.same(value, helper.decode(compact))
    local _, err, code = cli { "call", url, "shape", "--pretty", "--compact" }
    assert.equal(2, code)
    assert.matches("not both", err)
  end)

  it("exits 1 on a JSON-RPC error, with the error object on stderr", function()
    local out, err, code = cli { "call", url, "fail" }
    assert.same({ "", 1 }, { out, code })
    assert.same({ error = { code = -32042, message = "nope", data = { why = "testing" } } },
      helper.decode(err))
    out, err, code = cli { "call", url, "no.such" }
    assert.equal("", out)
    assert.equal(1, code)
    assert.equal(-32601, helper.decode(err).error.code)
  end)

  it("exits 3 when the server cannot be reached or does not answer in time", function()
    local nobody = ("ws://127.0.0.1:%d/"):format(helper.closed_port())
    local out, err, code = cli { "call", nobody, "add" }
    assert.same({ "", 3 }, { out, code })
    local e = helper.decode(err).error
    assert.equal("transport", e.type)
    assert.matches("connection refused", e.message)
    out, err, code = cli { "call", url, "slow", "5", "--timeout", "0.5" }
    assert.same({ "", 3 }, { out, code })
    assert.same({ type = "timeout", message = "no answer within 0.5 s" }, helper.decode(err).error)
    out, err, code = cli { "call", "http://example.org/", "x" }
    assert.equal("", out)
    assert.equal(2, code)
    assert.matches("invalid websocket URL", helper.decode(err).error.message)
  end)

  it("exits 2 on bad usage, saying what is wrong", function()
    local cases = {
      { { "frob", url }, "unknown verb 'frob'" },
      { { "call", url }, "missing URL and METHOD" },
      { { "call" }, "missing URL and METHOD" },
      { { "call", url, "add", "--tiemout", "3" }, "unknown option %-%-tiemout" },
      { { "call", url, "add", "[1,", "2" }, "argument 1 is not valid JSON: %[1," },
      { { "call", url, "add", "--params", "[1," }, "%-%-params needs a JSON array or object" },
      { { "call", url, "add", "--named", "[1]" }, "%-%-named needs a JSON object" },
      { { "call", url, "add", "1", "--params", "[1]" }, "give the params one way" },
      { { "call", url, "add", "--timeout" }, "option %-%-timeout needs a value" },
      { { "listen", url, "--count", "x" }, "%-%-count needs a whole number" },
      { { "notify", url, "add", "--id", "3" }, "unknown option %-%-id for notify" },
    }
    for _, case in ipairs(cases) do
      local out, err, code = cli(case[1])
      assert.equal(2, code, table.concat(case[1], " ") .. ": " .. tostring(err))
      assert.equal("", out)
      local e = helper.decode(err).error
      assert.equal("usage", e.type)
      assert.matches(case[2], e.message)
    end
    local out, err, code = cli {}
    assert.same({ "", 2 }, { out, code })
    assert.matches("jsonrpc%-ws call URL METHOD", err)
  end)

  it("has --help for each verb", function()
    for _, verb in ipairs { "call", "notify", "batch", "listen", "subscribe", "serve" } do
      local out, _, code = cli { verb, "--help" }
      assert.equal(0, code)
      assert.matches("^jsonrpc%-ws " .. verb, out)
    end
    local out, _, code = cli { "--help" }
    assert.equal(0, code)
    assert.matches("Exit codes: 0 ok, 1 JSON%-RPC error, 2 usage, 3 transport", out)
  end)

  it("sends notifications", function()
    local out, err, code = cli { "notify", url, "remember", "hello" }
    assert.same({ "", "", 0 }, { out, err, code })
    assert.equal('"hello"\n', (cli { "call", url, "last" }))
  end)

  it("-v traces every message in and out on stderr", function()
    local out, err, code = cli { "call", url, "add", "2", "3", "-v" }
    assert.same({ "5\n", 0 }, { out, code })
    assert.matches('^> {"jsonrpc":"2.0","method":"add","params":%[2,3%],"id":1}\n', err)
    assert.matches('\n< {[^\n]*"result":5', err)
  end)

  it("sends a batch read from stdin and prints the answers in call order", function()
    local input = table.concat({
      "# a comment, then a blank line", "",
      "add 1 2",
      '["add", 3, 4]',
      '{"method": "fail"}',
      '{"method": "remember", "params": ["from a batch"], "notify": true}',
      '{"method": "echo", "params": {"k": [1]}}',
    }, "\n")
    local out, err, code = cli({ "batch", url }, input)
    assert.equal(1, code, err) -- one call failed
    local answers = decode_lines(out)
    assert.equal(4, #answers)
    assert.same({ 3, 7 }, { answers[1].result, answers[2].result })
    assert.equal(-32042, answers[3].error.code)
    assert.same({ { k = { 1 } } }, answers[4].result)
    assert.equal('"from a batch"\n', (cli { "call", url, "last" }))
    out, err, code = cli({ "batch", url }, "add 1 1\nadd 2 2\n")
    assert.equal(0, code, err)
    assert.equal(2, #decode_lines(out))
    local _
    _, err, code = cli({ "batch", url }, 'add 1\n{"params": []}\n')
    assert.equal(2, code)
    assert.matches('stdin line 2: an object needs a', helper.decode(err).error.message)
  end)

  it("subscribes: prints the notifications of its subscription only", function()
    local out, err, code = cli { "subscribe", url, "eth_subscribe", "newHeads", "--count", "3",
      "--for", "20" }
    assert.equal(0, code, err)
    local got = decode_lines(out)
    assert.equal(3, #got)
    for i, n in ipairs(got) do
      assert.equal("eth_subscription", n.method)
      assert.same({ subscription = "0xnewHeads", result = i - 1 }, n.params)
    end
  end)

  it("serve: a bad handlers file is a usage error, a port in use a transport one", function()
    local out, err, code = cli { "serve", "/nonexistent/handlers.lua", "--port", "0" }
    assert.same({ "", 2 }, { out, code })
    assert.matches("cannot open /nonexistent/handlers.lua", helper.decode(err).error.message)
    local file = os.tmpname()
    local f = io.open(file, "w")
    f:write("return 42\n")
    f:close()
    out, err, code = cli { "serve", file, "--port", "0" }
    os.remove(file)
    assert.same({ "", 2 }, { out, code })
    assert.matches("must return a table of functions", helper.decode(err).error.message)
    out, err, code = cli { "serve", "spec/helper.lua", "--port", "0" } -- not only functions
    assert.same({ "", 2 }, { out, code })
    assert.matches("spec/helper.lua: handler for '%w+' must be a function",
      helper.decode(err).error.message)
    out, err, code = cli { "serve", "spec/fixtures_cli_handlers.lua", "--port",
      url:match(":(%d+)/$") }
    assert.same({ "", 3 }, { out, code })
    assert.matches("listen on 127.0.0.1:%d+ failed", helper.decode(err).error.message)
  end)

  it("listens, bounded by --for", function()
    local out, err, code = cli { "listen", url, "--for", "0.3" }
    assert.same({ "", "", 0 }, { out, err, code })
  end)

  it("ends listen and serve with 0 on Ctrl-C (SIGINT)", function()
    local jobs = {}
    for _, args in ipairs { "listen " .. url, "serve spec/fixtures_cli_handlers.lua --port 0" } do
      -- one SIGINT after 1.5 s (by then the interpreter has set its handler;
      -- a second would kill it, as it should)
      jobs[args] = background(("sh -c %s"):format(q("lua5.4 bin/jsonrpc-ws " .. args
        .. " & pid=$!; sleep 1.5; kill -INT $pid; wait $pid")))
    end
    for args, job in pairs(jobs) do
      local _, err, code = job.wait()
      assert.equal(0, code, args .. ": " .. err)
      assert.equal("", err)
    end
  end)
end)

describe("jsonrpc-ws against aria2c", function()
  local aria, url, dir
  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -m 700 " .. dir))
    local port = helper.closed_port()
    -- (not under the ASan runtime of make test-asan: aria2c never listens there)
    aria = background(("env -u LD_PRELOAD aria2c --enable-rpc --rpc-listen-port=%d --dir=%s"
      .. " --no-conf --quiet --stop-with-process=%d")
      :format(port, dir, io.open("/proc/self/stat"):read("n")), 120)
    url = ("ws://127.0.0.1:%d/jsonrpc"):format(port)
    local err
    for _ = 1, 200 do -- until it listens
      local _, e, code = cli { "call", url, "aria2.getVersion" }
      if code == 0 then return end
      err = e
      if aria.finished() then break end
      os.execute("sleep 0.05")
    end
    local _, aria_err, code = aria.wait()
    error(("aria2c did not start (exit %s: %s); jsonrpc-ws: %s"):format(code, aria_err, err))
  end)
  teardown(function()
    aria.stop()
    os.execute("rm -rf " .. dir)
  end)

  it("calls aria2.getVersion", function()
    local out, err, code = cli { "call", url, "aria2.getVersion" }
    assert.equal(0, code, err)
    local v = helper.decode(out)
    assert.matches("^%d+%.%d+", v.version)
    assert.is_table(v.enabledFeatures)
    out = cli { "call", url, "aria2.tellActive" }
    assert.equal("[]\n", out) -- an empty array stays an array
  end)

  it("listens to aria2's notifications of a download", function()
    local listen = background(("lua5.4 bin/jsonrpc-ws listen %s aria2.onDownloadStart "
      .. "aria2.onDownloadError --count 2 --for 20"):format(url))
    -- a download that fails at once, again until the listener has heard one
    -- (it may not have connected before the first)
    local gids = {}
    for _ = 1, 100 do
      local out, err, code = cli { "call", url, "aria2.addUri",
        ("[\"http://127.0.0.1:%d/nothing\"]"):format(helper.closed_port()) }
      assert.equal(0, code, err)
      gids[helper.decode(out)] = true
      os.execute("sleep 0.1")
      if listen.finished() then break end
    end
    local out, err, code = listen.wait()
    assert.equal(0, code, err)
    local got = decode_lines(out)
    assert.equal(2, #got)
    assert.equal("aria2.onDownloadStart", got[1].method)
    assert.is_true(gids[got[1].params[1].gid])
    assert.matches("^aria2%.onDownload", got[2].method)
  end)
end)

describe("jsonrpc-ws transport options (against spec/peer.py)", function()
  it("--auth and credentials in the URL are HTTP Basic; a password is never printed", function()
    local peer = helper.peer()
    local out, err, code = cli { "call", peer.url("/auth"), "add", "1", "2", "--auth", "user:pass" }
    assert.same({ "3\n", "", 0 }, { out, err, code })
    local with_creds = peer.url("/auth"):gsub("^ws://", "ws://user:pass@")
    out, err, code = cli { "call", with_creds, "add", "2", "2" }
    assert.same({ "4\n", "", 0 }, { out, err, code })
    local wrong = peer.url("/auth"):gsub("^ws://", "ws://user:hunter2@")
    out, err, code = cli { "call", wrong, "add", "2", "2", "-v" }
    assert.same({ "", 3 }, { out, code })
    assert.matches("HTTP 401", err)
    assert.matches("user:%*%*%*@", err)
    assert.not_matches("hunter2", err)
  end)

  it("--header adds handshake headers", function()
    local out, err, code = cli { "call", helper.peer().url("/h"), "headers", "--header",
      "X-Api-Key: k1", "--header", "X-Other:v:2" }
    assert.equal(0, code, err)
    local headers = helper.decode(out).headers
    assert.equal("k1", headers["x-api-key"], out)
    assert.equal("v:2", headers["x-other"])
  end)

  it("--ca trusts a CA for wss://, --insecure trusts anything", function()
    local peer = helper.start_tls_peer()
    local url = peer.url("/")
    local out, err, code = cli { "call", url, "add", "1", "2", "--ca", helper.certs().ca }
    assert.same({ "3\n", "", 0 }, { out, err, code })
    out, err, code = cli { "call", url, "add", "1", "2" }
    assert.same({ "", 3 }, { out, code })
    assert.matches("certificate", helper.decode(err).error.message)
    out, err, code = cli { "call", url, "add", "1", "2", "--insecure" }
    assert.same({ "3\n", "", 0 }, { out, err, code })
    out, err, code = cli { "call", url, "add", "--ca", "/nope.pem" }
    assert.same({ "", 2 }, { out, code })
    assert.matches("cannot read", helper.decode(err).error.message)
    peer.stop()
  end)
end)
