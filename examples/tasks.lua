-- examples/tasks.lua: many calls in flight on one connection.
--   lua5.4 examples/tasks.lua
-- Each task's call yields until its answer; the loop runs the others.
local jsonrpc = require "jsonrpc_websocket"

local srv = jsonrpc.listen { port = 0 }
srv.slow = function(seconds, value) jsonrpc.sleep(seconds) return value end

local server = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port), { timeout = 10 })
server:ws_connect()

local results, t0 = {}, jsonrpc.now()
jsonrpc.run(function()
  for i = 1, 100 do
    jsonrpc.spawn(function() results[i] = server.slow(0.2, i) end)
  end
end)
local sum = 0
for i = 1, 100 do sum = sum + results[i] end
print(("100 calls of 0.2 s answered: sum %d, in %s"):format(sum,
  jsonrpc.now() - t0 < 10 and "well under 100 x 0.2 s" or "too long"))

-- Outside any task a call simply blocks; spawned tasks progress meanwhile.
local ticks = 0
jsonrpc.spawn(function() for _ = 1, 3 do jsonrpc.sleep(0.05) ticks = ticks + 1 end end)
print("blocking call:", server.slow(0.3, "done"), "ticks meanwhile:", ticks)

server:close()
srv:close()
