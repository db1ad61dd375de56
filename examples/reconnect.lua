-- examples/reconnect.lua: a client that comes back when its server does.
--   lua5.4 examples/reconnect.lua
local jsonrpc = require "jsonrpc_websocket"

local function serve(port)
  local srv = jsonrpc.listen { port = port }
  srv.add = function(a, b) return a + b end
  return srv
end

local srv = serve(0)
local port = srv.port
local server = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(port), {
  timeout = 10,
  reconnect = { initial = 0.1, max = 0.5 },
})
server:on("error", function() end) -- failed attempts are reported here (quiet)
server:on("disconnect", function(code) print("disconnected, code", code) end)
server:on("reconnect", function(attempt) print("reconnected after", attempt, "attempt(s)") end)
server:ws_connect()
print("add before:", server.add(1, 2))

srv:close()         -- the server goes away ...
jsonrpc.sleep(0.3)
srv = serve(port)   -- ... and comes back on the same port

-- A call made while reconnecting waits for the new connection (bounded by
-- its timeout).
print("add after:", server.add(3, 4))
server:close()
srv:close()
