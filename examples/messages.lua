-- examples/messages.lua: a server that pushes messages that are not
-- JSON-RPC (rpc-websockets sends {"notification": ...}), read with
-- server:on("message"); jsonrpc.send_raw sends text as is.
--   lua5.4 examples/messages.lua
local jsonrpc = require "jsonrpc_websocket"

local srv = jsonrpc.listen { port = 0 }
srv.start = function(n)
  local peer = jsonrpc.peer()
  jsonrpc.spawn(function()
    for i = 1, n do jsonrpc.send_raw(peer, ('{"notification":"tick","params":[%d]}'):format(i)) end
  end)
  return true
end

local server = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port), { timeout = 5 })
local ticks = jsonrpc.queue()
server:on("message", function(msg) ticks:put(msg) end)
server:ws_connect()
server.start(3)
for _ = 1, 3 do
  local msg = ticks:next(5)
  print(msg.notification, msg.params[1])
end
server:close()
srv:close()
