-- Prints a scale_server's stats(): lua5.4 scale_stats.lua PORT
package.path = "../lua/?.lua;../lua/?/init.lua;" .. package.path
package.cpath = "../build/?.so;" .. package.cpath
local jsonrpc = require "jsonrpc_websocket"
local c = jsonrpc.Server("ws://127.0.0.1:" .. arg[1], { timeout = 30 })
c:ws_connect()
local s = c.stats()
print(("STATS lua_kb=%.0f rss_kb=%d peers=%d"):format(s.lua_kb, s.rss_kb, s.peers))
c:close()
