-- Every example runs, so none can rot: each is started as a user would
-- (lua5.4 examples/x.lua, the module on LUA_PATH_5_4), with what it needs
-- on 127.0.0.1, and its output is checked.
local helper = require "helper"

-- Runs `lua5.4 examples/<file> <args>`; returns its exit status and
-- stdout (stderr is kept apart: examples may report there).
local function run(file, args)
  local err = os.tmpname()
  local h = io.popen(("LUA_PATH_5_4='./lua/?.lua;./lua/?/init.lua;;' "
    .. "LUA_CPATH_5_4='%s' timeout 60 lua5.4 examples/%s %s 2>%s"):format(
    package.cpath:match("^[^;]*") .. ";;", file, args or "", err))
  local out = h:read("a")
  local ok = h:close()
  local f = io.open(err)
  local stderr = f:read("a")
  f:close()
  os.remove(err)
  assert(ok, ("examples/%s failed:\n%s%s"):format(file, out, stderr))
  return out
end

describe("examples", function()
  it("errors.lua tells each kind of failure apart", function()
    local out = run("errors.lua")
    assert.matches("ProtocolError:\ttrue\t-32602\tdivision by zero\t1\n", out, 1, true)
    assert.matches("unknown method:\t-32601\tMethod not found\n", out, 1, true)
    assert.matches("handler raised:\t-32000\tServer Error: something broke\n", out, 1, true)
    assert.matches("timeout:\ttrue\ttrue\tslow\n", out, 1, true)
    assert.matches("transport:\ttrue\tconnection refused\n", out, 1, true)
    assert.matches("misuse:\t[^\n]*errors.lua:%d+: unknown option 'tiemout' to Server "
      .. "%(did you mean 'timeout'%?%)\n", out)
  end)

  it("tasks.lua has 100 calls in flight", function()
    local out = run("tasks.lua")
    assert.matches("100 calls of 0.2 s answered: sum 5050, in well under", out, 1, true)
    assert.matches("blocking call:\tdone\tticks meanwhile:\t3\n", out, 1, true)
  end)

  it("batch.lua sends one batch", function()
    local out = run("batch.lua")
    assert.matches("1\tresult\t3\n2\terror\t-32601\tno.such.method\n3\tresult\t42\n", out, 1, true)
  end)

  it("reconnect.lua comes back with its server", function()
    local out = run("reconnect.lua")
    assert.matches("add before:\t3\n", out, 1, true)
    assert.matches("reconnected after\t%d+\tattempt%(s%)\n", out)
    assert.matches("add after:\t7\n", out, 1, true)
  end)

  it("authorize.lua accepts the token and refuses the rest", function()
    local out = run("authorize.lua")
    assert.matches("with the token:\tpeer #1\n", out, 1, true)
    assert.matches("without it:\tfalse\thandshake rejected: HTTP 401\n", out, 1, true)
  end)

  it("messages.lua reads what is not JSON-RPC", function()
    assert.equal("tick\t1\ntick\t2\ntick\t3\n", run("messages.lua"))
  end)

  it("tls.lua verifies the server with its CA", function()
    local c = helper.certs()
    local out = run("tls.lua", ("%s %s %s"):format(c.server_cert, c.server_key, c.ca))
    assert.matches("over TLS:\t3\n", out, 1, true)
    assert.matches("unverified:\tfalse\ttrue\n", out, 1, true)
  end)

  it("proxy.lua goes through a CONNECT proxy", function()
    local proxy = helper.start_proxy()
    local out = run("proxy.lua", ("http://127.0.0.1:%d"):format(proxy.port))
    assert.matches("through the proxy:\t3\n", out, 1, true)
    assert.equal(1, #proxy.used())
    proxy.stop()
  end)

  it("busted_spec.lua passes under busted", function()
    -- from another directory, as a user's project would (no .busted of ours)
    local here = os.getenv("PWD")
    local cpath = package.cpath:match("^[^;]*"):gsub("^%./", here .. "/")
    local h = io.popen(("cd / && LUA_PATH_5_4='%s/lua/?.lua;%s/lua/?/init.lua;;' "
      .. "LUA_CPATH_5_4='%s;;' busted --lua=lua5.4 %s/examples/busted_spec.lua 2>&1")
      :format(here, here, cpath, here))
    local out = h:read("a")
    assert.is_true(h:close(), out)
    assert.matches("2 successes / 0 failures / 0 errors", out, 1, true)
  end)

  it("luv.lua and cqueues.lua run inside their host loops", function()
    local out = run("luv.lua")
    assert.matches("add%(1, 2%) = 3\n100 answers; the 10 ms heartbeat ticked %d+ times meanwhile\n"
      .. "uv%.run%(%) returned: nothing left to do\n", out)
    out = run("cqueues.lua")
    assert.matches("add(10, 1) = 11\n", out, 1, true)
    assert.matches("cq:loop() returned: nothing left to do\n", out, 1, true)
  end)

  it("hello.lua runs against server.lua (make demo)", function()
    local h = io.popen("sh examples/demo.sh 2>&1")
    local out = h:read("a")
    assert.is_true(h:close(), out)
    assert.matches("add(1, 2)                 -> 3", out, 1, true)
  end)
end)
