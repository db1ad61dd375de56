-- examples/cqueues.lua: jsonrpc_websocket inside a cqueues controller.
-- Usage: lua5.4 examples/cqueues.lua     (Debian: lua-cqueues)
-- Calls made in the controller's coroutines yield to cqueues; handlers
-- run in its coroutines too, so they may use cqueues themselves.
local jsonrpc = require "jsonrpc_websocket"
local cqueues = require "cqueues"

local cq = cqueues.new()
jsonrpc.attach(cq)

local srv = jsonrpc.listen { port = 0 }
srv.add = function(a, b)
  cqueues.sleep(0.05) -- a cqueues wait inside a handler
  return a + b
end

cq:wrap(function()
  local server = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port))
  server:ws_connect()
  local done = 0
  for i = 1, 10 do
    cq:wrap(function()
      print(("add(%d, 1) = %d"):format(i, server.add(i, 1)))
      done = done + 1
      if done == 10 then
        server:close()
        srv:close()
      end
    end)
  end
end)

cq:wrap(function()   -- interleaves with the calls above
  for i = 1, 3 do
    cqueues.sleep(0.02)
    print("cqueues.sleep tick " .. i)
  end
end)

assert(cq:loop())
print("cq:loop() returned: nothing left to do")
