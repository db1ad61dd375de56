-- The server side of the scale bench (issue 16): a listener answering
-- add(a, b) and pid(). Prints "PORT n" once listening, then serves until
-- killed or until stdin closes.
--   lua5.4 scale_server.lua [PORT [WORKERS]]
package.path = "../lua/?.lua;../lua/?/init.lua;" .. package.path
package.cpath = "../build/?.so;" .. package.cpath
local jsonrpc = require "jsonrpc_websocket"

local port = tonumber(arg[1]) or 0
local workers = tonumber(arg[2]) or 1
-- SCALE_KEEPALIVE: the listeners' keepalive in seconds, "off" for none,
-- unset for the library's default
local keepalive = os.getenv("SCALE_KEEPALIVE")
if keepalive == "off" then keepalive = false else keepalive = math.tointeger(tonumber(keepalive)) end
-- max_connections: the library caps a listener at 10,000 by default
local srv = jsonrpc.listen { port = port, workers = workers > 1 and workers or nil,
  max_connections = 1000000, keepalive = keepalive }
srv.add = function(a, b) return a + b end
-- the Lua heap after a full collection, and the process's resident size
srv.stats = function()
  collectgarbage()
  local f = io.open("/proc/self/status")
  local rss = f and f:read("a"):match("VmRSS:%s*(%d+)")
  if f then f:close() end
  return { lua_kb = collectgarbage("count"), rss_kb = tonumber(rss), peers = srv.count }
end
io.stdout:write("PORT ", srv.port, "\n")
io.stdout:flush()
srv:run()
