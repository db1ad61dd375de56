-- A listener in a process of its own, for spec/workers_spec.lua (workers
-- fork: they must not fork the spec runner).
--   lua5.4 spec/workers_server.lua WORKERS PORT [CLOSE_AFTER [REUSE]]
-- Prints "PORT n PID p" from worker 1 (or the only process); handler
-- pid() answers the process's id. With CLOSE_AFTER (seconds), worker 1
-- closes the listener then, prints "CLOSED", and stays alive 10 s more.
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("JRWS_SPEC_CPATH") or "./build/?.so") .. ";" .. package.cpath
local jsonrpc = require "jsonrpc_websocket"
local core = require "jsonrpc_websocket.core"

local workers, port = tonumber(arg[1]), tonumber(arg[2])
local close_after, reuse = tonumber(arg[3] or ""), arg[4] == "reuse"
local srv = jsonrpc.listen { port = port, workers = workers, reuse_port = reuse or nil }
srv.pid = function() return core.getpid() end
srv.where = function() return { worker = srv.worker, workers = srv.workers } end
if srv.worker == 1 then
  io.stdout:write(("PORT %d PID %d\n"):format(srv.port, core.getpid()))
  io.stdout:flush()
  if close_after and close_after > 0 then
    jsonrpc.spawn(function()
      jsonrpc.sleep(close_after)
      srv:close()
    end)
  end
end
srv:run()
if close_after then
  io.stdout:write("CLOSED\n")
  io.stdout:flush()
  jsonrpc.sleep(10)
end
