-- examples/proxy.lua: through an HTTP CONNECT proxy.
--   lua5.4 examples/proxy.lua http://proxy:3128
-- (spec/connect_proxy.py is a small one.) Only the `proxy` option routes
-- through a proxy: $http_proxy is not read.
local jsonrpc = require "jsonrpc_websocket"

local proxy = arg[1]
if not proxy then
  io.stderr:write("usage: lua5.4 examples/proxy.lua http://host:port\n")
  os.exit(2)
end

local srv = jsonrpc.listen { port = 0 }
srv.add = function(a, b) return a + b end

local server = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port),
  { proxy = proxy, timeout = 5 })
server:ws_connect()
print("through the proxy:", server.add(1, 2))
server:close()
srv:close()
