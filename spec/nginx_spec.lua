-- Behind a real load balancer (issue 16): nginx (Debian's) proxies
-- websockets to two of our listeners; calls, calls back to the client and
-- notifications go through it; trusted_proxies makes peer.address the
-- client's, and nothing else does.
require "helper" -- JSONRPC_GC=aggressive and the module paths
local jsonrpc = require "jsonrpc_websocket"
local core = require "jsonrpc_websocket.core"

local NGINX = "/usr/sbin/nginx"

local function eventually(pred, seconds)
  local deadline = jsonrpc.now() + (seconds or 10)
  while not pred() do
    if jsonrpc.now() > deadline then error("timed out waiting", 2) end
    jsonrpc.sleep(0.02)
  end
end

local function free_port()
  local fd, port = assert(core.reserve_port("127.0.0.1", 0))
  core.release_port(fd)
  return port
end

local function read_file(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- The config a user would write (README, "Scaling"), with the spec's
-- ports and a temp dir for everything nginx writes.
local function nginx_config(dir, port, backends)
  local servers = {}
  for i, p in ipairs(backends) do servers[i] = ("    server 127.0.0.1:%d;"):format(p) end
  return ([[
daemon off;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %s/body;
  proxy_temp_path %s/proxy;
  fastcgi_temp_path %s/fastcgi;
  uwsgi_temp_path %s/uwsgi;
  scgi_temp_path %s/scgi;
  upstream jsonrpc {
%s
  }
  server {
    listen 127.0.0.1:%d;
    location / {
      proxy_pass http://jsonrpc;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
    }
  }
}
]]):format(dir, dir, dir, dir, dir, dir, dir, table.concat(servers, "\n"), port)
end

-- Starts nginx in front of the backends' ports; returns { port, stop() }.
local function start_nginx(backends)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  local port = free_port()
  local f = assert(io.open(dir .. "/nginx.conf", "w"))
  f:write(nginx_config(dir, port, backends))
  f:close()
  assert(os.execute(("%s -p %s -e %s/error.log -c %s/nginx.conf > %s/out.log 2>&1 &")
    :format(NGINX, dir, dir, dir, dir)))
  local n = { port = port, dir = dir }
  eventually(function() return read_file(dir .. "/nginx.pid") end)
  n.pid = tonumber(read_file(dir .. "/nginx.pid"))
  function n.stop()
    if not n.pid then return end
    os.execute(("kill -TERM %d 2>/dev/null"):format(n.pid))
    eventually(function() return not read_file(dir .. "/nginx.pid") end)
    n.pid = nil
    os.execute("rm -rf " .. dir)
  end
  n.reaper = setmetatable({}, { __gc = function() n.stop() end })
  return n
end

-- A client through nginx (which may need a moment to accept).
local function through(n, opts)
  local c
  eventually(function()
    c = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(n.port), opts or { timeout = 10 })
    return pcall(c.ws_connect, c)
  end)
  return c
end

describe("behind nginx", function()
  local a, b, n

  before_each(function()
    a = jsonrpc.listen { trusted_proxies = { "127.0.0.1" } }
    b = jsonrpc.listen {}
    for name, srv in pairs({ a = a, b = b }) do
      srv.which = function() return name end
      srv.whoami = function() return jsonrpc.peer().address end
      srv.ask_back = function(x) return jsonrpc.peer().client_add(x, 1) end
      srv.hello = function() jsonrpc.peer():notify("news", name) return true end
    end
    n = start_nginx({ a.port, b.port })
  end)

  after_each(function()
    n.stop()
    a:close()
    b:close()
  end)

  it("spreads clients over both listeners, with calls both ways and notifications", function()
    local seen, clients = {}, {}
    for i = 1, 6 do
      local c = through(n)
      local news = {}
      c.client_add = function(x, y) return x + y end
      c.news = function(from) news[#news + 1] = from end
      local which = c.which()
      seen[which] = true
      assert.equal(i * 10 + 1, c.ask_back(i * 10))       -- server -> client, through nginx
      assert.is_true(c.hello())
      eventually(function() return news[1] == which end)  -- notification to one peer
      clients[i] = { c = c, news = news, which = which }
    end
    assert.is_true(seen.a and seen.b, "nginx reached only one listener")
    -- notify_all reaches each listener's own peers
    local sent = a:notify_all("news", "all") + b:notify_all("news", "all")
    assert.equal(6, sent)
    for _, cl in ipairs(clients) do
      eventually(function() return cl.news[2] == "all" end)
      cl.c:close()
    end
  end)

  it("reports the client's address only where the proxy is trusted", function()
    local addresses = {}
    eventually(function()
      local c = through(n, { timeout = 10, headers = { ["X-Forwarded-For"] = "198.51.100.9" } })
      addresses[c.which()] = c.whoami()
      c:close()
      return addresses.a and addresses.b
    end, 20)
    -- nginx sends "198.51.100.9, 127.0.0.1": the rightmost untrusted hop
    assert.equal("198.51.100.9", addresses.a)
    assert.equal("127.0.0.1", addresses.b)
    -- no header from the client: nginx's own hop, trusted, is all there is
    local c = through(n)
    eventually(function()
      if c.which() == "a" then return true end
      c:close()
      c = through(n)
    end, 20)
    assert.equal("127.0.0.1", c.whoami()) -- every hop trusted: the leftmost
    c:close()
  end)
end)

describe("trusted_proxies", function()
  local proxies = require "jsonrpc_websocket.proxies"

  it("never reads the headers of a peer that is not a trusted proxy", function()
    local plain = jsonrpc.listen {}
    local other = jsonrpc.listen { trusted_proxies = { "127.0.0.5" } }
    local trusting = jsonrpc.listen { trusted_proxies = { "127.0.0.1" } }
    for _, srv in ipairs({ plain, other, trusting }) do
      srv.whoami = function() return jsonrpc.peer().address end
    end
    local forged = { ["X-Forwarded-For"] = "203.0.113.1", ["X-Real-IP"] = "203.0.113.2" }
    local function whoami(srv, headers)
      local c = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port),
        { timeout = 10, headers = headers })
      c:ws_connect()
      local addr = c.whoami()
      c:close()
      return addr
    end
    assert.equal("127.0.0.1", whoami(plain, forged))
    assert.equal("127.0.0.1", whoami(other, forged))
    assert.equal("203.0.113.1", whoami(trusting, forged))
    assert.equal("203.0.113.2", whoami(trusting, { ["X-Real-IP"] = "203.0.113.2" }))
    assert.equal("127.0.0.1", whoami(trusting))
    plain:close()
    other:close()
    trusting:close()
  end)

  it("takes the rightmost untrusted hop of X-Forwarded-For", function()
    local t = proxies.trusted({ trusted_proxies = { "10.0.0.1", "10.0.0.2" } })
    local function addr(xff, xri)
      return proxies.client_address(t, "10.0.0.1\n" .. xff .. "\n" .. (xri or ""))
    end
    assert.equal("1.2.3.4", addr("9.9.9.9, 1.2.3.4, 10.0.0.2"))
    assert.equal("1.2.3.4", addr(" 1.2.3.4 ,10.0.0.2 "))
    assert.equal("10.0.0.2", addr("10.0.0.2, 10.0.0.1"))
    assert.equal("5.6.7.8", addr("", "5.6.7.8"))
    assert.equal("10.0.0.1", addr(""))
    assert.equal("7.7.7.7", proxies.client_address(t, "7.7.7.7\n1.2.3.4\n5.6.7.8"))
    -- a dual-stack socket's form of a trusted IPv4 address is trusted too
    assert.equal("5.6.7.8", proxies.client_address(t, "::ffff:10.0.0.1\n\n5.6.7.8"))
  end)

  it("is checked", function()
    assert.has_error(function() jsonrpc.listen { trusted_proxies = "127.0.0.1" } end,
      "option 'trusted_proxies' must be a list of addresses ({ \"127.0.0.1\" })")
    assert.has_error(function() jsonrpc.listen { trusted_proxies = { 1 } } end,
      "option 'trusted_proxies' must be a list of addresses ({ \"127.0.0.1\" })")
  end)
end)
