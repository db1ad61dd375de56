-- examples/batch.lua: several calls in one message.
--   lua5.4 examples/batch.lua
local jsonrpc = require "jsonrpc_websocket"

local srv = jsonrpc.listen { port = 0 }
srv.add = function(a, b) return a + b end
srv.log = function(text) print("server log:", text) end

local server = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port), { timeout = 5 })
server:ws_connect()

local results = server:batch(function(b)
  b.add(1, 2)
  b.no.such.method()
  b:notify("log", "a notification has no entry")
  b:call("add", { 40, 2 })
end)
for i, r in ipairs(results) do
  if r.error then print(i, "error", r.error.code, r.error.method)
  else print(i, "result", r.result) end
end

server:close()
srv:close()
