-- examples/luv.lua: jsonrpc_websocket inside a luv program.
-- Usage: lua5.4 examples/luv.lua     (Debian: lua-luv)
-- A server and a client in one luv loop; a luv timer keeps ticking while
-- the calls wait, and uv.run() returns once everything is closed.
local jsonrpc = require "jsonrpc_websocket"
local uv = require "luv"

jsonrpc.attach(uv) -- from now on uv.run() drives our connections and timers

local srv = jsonrpc.listen { port = 0 }
srv.add = function(a, b) return a + b end
srv.slow = function(seconds, value)
  jsonrpc.sleep(seconds) -- a handler runs in a coroutine: it may wait
  return value
end

local ticks = 0
local heartbeat = uv.new_timer()
heartbeat:start(10, 10, function() ticks = ticks + 1 end)

coroutine.wrap(function()
  local server = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port))
  server:ws_connect()                 -- yields to luv, does not block it
  print("add(1, 2) = " .. server.add(1, 2))

  local answers = 0
  for i = 1, 100 do                   -- 100 calls in flight, one coroutine each
    coroutine.wrap(function()
      assert(server.slow(0.2, i) == i)
      answers = answers + 1
      if answers == 100 then
        print(("100 answers; the 10 ms heartbeat ticked %d times meanwhile"):format(ticks))
        server:close()
        srv:close()
        heartbeat:close()
      end
    end)()
  end
end)()

uv.run()
print("uv.run() returned: nothing left to do")
