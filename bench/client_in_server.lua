-- A client's sequential calls from a process that also holds a listener's
-- idle connections (docs/scaling.md, "What stopped a run"): what one
-- answer costs while libwebsockets' timer list holds every connection's
-- keepalive timer.
--   lua5.4 client_in_server.lua TARGET_PORT GO_FILE [KEEPALIVE|off] [SECONDS]
-- Listens (prints "PORT n"), waits until GO_FILE exists (meanwhile open the
-- idle connections: out/loadgen n idle N), then calls add(i, 1) on
-- TARGET_PORT (out/floor_server) with the client's keepalive as given
-- (default: the library's) for SECONDS of CPU (default 1.5) and prints
-- "CALLS n cpu_us_per_call=x".
package.path = "../lua/?.lua;../lua/?/init.lua;" .. package.path
package.cpath = "../build/?.so;" .. package.cpath
local jsonrpc = require "jsonrpc_websocket"

local target, go_file = arg[1], arg[2]
local keepalive = tonumber(arg[3])
if arg[3] == "off" then keepalive = false end
local seconds = tonumber(arg[4]) or 1.5

local srv = jsonrpc.listen { port = 0, max_connections = 100000 }
io.stdout:write("PORT ", srv.port, "\n")
io.stdout:flush()

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

jsonrpc.run(function()
  while not exists(go_file) do jsonrpc.sleep(0.1) end
  local server = jsonrpc.Server("ws://127.0.0.1:" .. target .. "/",
    { timeout = 30, keepalive = keepalive })
  server:ws_connect()
  local n, c0 = 0, os.clock()
  while os.clock() - c0 < seconds do
    server.add(n, 1)
    n = n + 1
  end
  io.stdout:write(("CALLS %d cpu_us_per_call=%.1f\n"):format(n, 1e6 * (os.clock() - c0) / n))
  server:close()
end)
srv:close()
