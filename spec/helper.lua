--- Spec helper: starts real websocket peers on 127.0.0.1.
-- The scripted peer is spec/peer.py (Python `websockets`); see its
-- docstring for the methods it answers.

local M = {}

M.PYTHON = "/usr/bin/python3"

-- With JSONRPC_GC=aggressive the whole suite runs under a collector that
-- steps on every allocation, to flush out lifetime bugs.
if os.getenv("JSONRPC_GC") == "aggressive" then
  collectgarbage("incremental", 100, 1000, 1)
end

--- Starts a peer; returns { port, pid, url(path), stop() }.
function M.start_peer(args, script)
  return M.start_process(("%s %s %s"):format(M.PYTHON, script or "spec/peer.py", args or ""))
end

--- Starts the command `cmd`, which prints "PORT <port> PID <pid>" once it
-- listens; returns { port, pid, url(path), stop() } as start_peer does.
function M.start_process(cmd)
  local handle = assert(io.popen("exec " .. cmd, "r"))
  local line = handle:read("l") or ""
  local port, pid = line:match("^PORT (%d+) PID (%d+)$")
  assert(port, "peer did not start: " .. line)
  local peer = { port = tonumber(port), pid = tonumber(pid), handle = handle }
  function peer.url(path) return ("ws://127.0.0.1:%d%s"):format(peer.port, path or "/") end
  function peer.stop()
    if peer.handle then
      os.execute(("kill %d 2>/dev/null"):format(peer.pid))
      peer.handle:close()
      peer.handle = nil
    end
  end
  -- Lua closes a popen handle by waiting for the child: make sure the
  -- child is gone first, even when the spec run simply ends. (Created after
  -- the handle, this sentinel is finalized before it.)
  peer.reaper = setmetatable({}, { __gc = function() peer.stop() end })
  return peer
end

--- Starts a ganache dev node (spec/node/ganache.js; a real Ethereum
-- JSON-RPC server) on a free port of 127.0.0.1.
function M.start_ganache()
  return M.start_process("node spec/node/ganache.js")
end

--- Starts a wss:// peer (spec/peer.py --tls); url() gives wss:// URLs.
function M.start_tls_peer(args)
  local c = M.certs()
  local peer = M.start_peer(("--tls %s %s %s"):format(c.server_cert, c.server_key, args or ""))
  function peer.url(path) return ("wss://127.0.0.1:%d%s"):format(peer.port, path or "/") end
  return peer
end

--- Starts spec/connect_proxy.py; proxy.used() lists the CONNECT targets
-- it has tunnelled so far.
function M.start_proxy(args)
  local log = os.tmpname()
  local proxy = M.start_peer(("--log %s %s"):format(log, args or ""), "spec/connect_proxy.py")
  function proxy.used()
    local list = {}
    for line in io.lines(log) do list[#list + 1] = line:match("^CONNECT (.*)$") end
    return list
  end
  local stop = proxy.stop
  function proxy.stop() stop() os.remove(log) end
  return proxy
end

local certs
--- A throwaway PKI, made once per run with the openssl CLI: a CA, a server
-- certificate for localhost and 127.0.0.1 signed by it, a client
-- certificate signed by it, and a self-signed certificate for example.org.
function M.certs()
  if certs then return certs end
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -m 700 " .. dir))
  local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  local script = table.concat({
    "set -e", "cd " .. dir,
    "openssl req -x509 " .. ec .. " -keyout ca.key -out ca.pem -days 2 -subj '/CN=jrws test CA'",
    "openssl req " .. ec .. " -keyout server.key -out server.csr -subj '/CN=localhost'",
    "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext",
    "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext",
    "openssl req " .. ec .. " -keyout client.key -out client.csr -subj '/CN=jrws client'",
    "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2",
    "openssl req -x509 " .. ec .. " -keyout self.key -out self.pem -days 2 -subj '/CN=example.org'"
      .. " -addext subjectAltName=DNS:example.org",
  }, "\n")
  assert(os.execute("(" .. script .. ") >/dev/null 2>&1"), "openssl could not make the test certificates")
  certs = {
    dir = dir, ca = dir .. "/ca.pem",
    server_cert = dir .. "/server.pem", server_key = dir .. "/server.key",
    client_cert = dir .. "/client.pem", client_key = dir .. "/client.key",
    self_cert = dir .. "/self.pem", self_key = dir .. "/self.key",
  }
  certs.reaper = setmetatable({}, { __gc = function() os.execute("rm -rf " .. dir) end })
  return certs
end

local shared
--- One peer shared by every spec that only needs a well-behaved server.
function M.peer()
  if not shared then shared = M.start_peer() end
  return shared
end

--- A Server connected to the shared peer.
function M.connected(path, opts)
  local s = require("jsonrpc_websocket").Server(M.peer().url(path), opts)
  s:ws_connect()
  return s
end

--- A port where nothing listens (bound once, then released).
function M.closed_port()
  local p = M.start_peer()
  local port = p.port
  p.stop()
  return port
end

--- Runs a Lua snippet in a child lua5.4 with the module on its paths
-- (env: optional "NAME=value ..." prefix); returns ok, output, seconds taken.
-- nofile: the script runs with that limit on open files (ulimit -n).
function M.run_lua(code, env, nofile)
  local jsonrpc = require "jsonrpc_websocket"
  local file = os.tmpname()
  local f = assert(io.open(file, "w"))
  f:write(("package.path = %q .. package.path\npackage.cpath = %q .. package.cpath\n")
    :format("./lua/?.lua;./lua/?/init.lua;", package.cpath:match("^[^;]*;")), code)
  f:close()
  local t0 = jsonrpc.now()
  local h = io.popen(("%s%s timeout 20 lua5.4 %s 2>&1"):format(
    nofile and ("ulimit -n %d && "):format(nofile) or "", env and "env " .. env or "", file))
  local out = h:read("a")
  local ok = h:close()
  os.remove(file)
  return ok, out, jsonrpc.now() - t0
end

--- Waits (driving the loop) until pred() holds: true, or false after
-- `seconds` (default 10).
function M.eventually(pred, seconds)
  local jsonrpc = require "jsonrpc_websocket"
  local deadline = jsonrpc.now() + (seconds or 10)
  while not pred() do
    if jsonrpc.now() > deadline then return false end
    jsonrpc.sleep(0.01)
  end
  return true
end

--- The first `n` values of the iterator `iter` (a stream), in a list.
function M.take(iter, n)
  local list = {}
  for v in iter do
    list[#list + 1] = v
    if #list == n then break end
  end
  return list
end

--- Decodes with a private cjson.
local json = require("cjson").new()
M.decode = json.decode
M.encode = json.encode

return M
