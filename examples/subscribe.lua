-- examples/subscribe.lua: subscriptions end to end, in one process.
-- A server of ours offers eth_subscribe("ticks", n): n ticks, one every
-- 50 ms, then it ends the subscription itself. A client subscribes,
-- iterates, and also waits on a notification stream.
--   LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./build/?.so;;" \
--     lua5.4 examples/subscribe.lua
local jsonrpc = require "jsonrpc_websocket"

-- The server side: a subscription per eth_subscribe call.
local srv = jsonrpc.listen { port = 0 }
srv.eth_subscribe = function(kind, n)
  if kind ~= "ticks" then
    error(jsonrpc.ProtocolError(-32602, "unknown kind " .. tostring(kind)))
  end
  local peer = jsonrpc.peer()
  local sub = peer:subscription() -- ended by eth_unsubscribe or the peer leaving
  jsonrpc.spawn(function()
    for i = 1, n do
      if not sub:send({ tick = i, at = jsonrpc.now() }) then return end
      jsonrpc.sleep(0.05)
    end
    peer:notify("ticks_done", { id = sub.id, sent = n })
    sub:close()
  end)
  return sub.id
end

-- The client side.
local server = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port))
server:ws_connect()

local done = server:notifications("ticks_done") -- plain notifications: params are the item
jsonrpc.run(function()
  local ticks <close> = server:subscribe("eth_subscribe", { "ticks", 5 })
  print("subscribed, id " .. ticks.id)
  for item in ticks do
    print(("tick %d"):format(item.tick))
    if item.tick == 3 then break end -- <close> unsubscribes when we leave
  end
end)

-- Plain code waits too (it drives the loop): a second subscription.
local more = server:subscribe("eth_subscribe", { "ticks", 2 })
print("second subscription, id " .. more.id)
print(("first item: tick %d"):format(more:next(5).tick))
local report = done:next(5)
print(("server says: subscription %s sent %d ticks"):format(report.id, report.sent))
print(("queued meanwhile: tick %d"):format(more:next(0).tick))
local item, err = more:next(0.1)
print("then: " .. tostring(item) .. ", " .. tostring(err))
more:close()

server:close()
srv:close()
