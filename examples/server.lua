-- examples/server.lua: the server tour, and the peer `make demo` runs
-- examples/hello.lua against.
--   lua5.4 examples/server.lua [port]     prints "PORT <n>" once listening
local jsonrpc = require "jsonrpc_websocket"

local srv = jsonrpc.listen { host = "127.0.0.1", port = tonumber(arg[1]) or 0 }

local users = { { id = 1, name = "ada" }, { id = 2, name = "grace" } }

srv.add = function(a, b) return a + b end
srv.greet = function(p) return "hello, " .. p.name end
srv.app.users.getUsers = function() return users end
srv.slow = function(seconds, x) jsonrpc.sleep(seconds) return x end

-- Calls back into the calling client, and notifies it.
srv.whoami = function()
  local peer = jsonrpc.peer()
  local name = peer.client_name()          -- yields until the client answers
  peer:notify("tick", "welcome, " .. name)
  return ("you are %s at %s (peer #%d)"):format(name, peer.address, peer.id)
end

srv:on("connect", function(peer) print("server: connect " .. tostring(peer)) end)
srv:on("disconnect", function(peer, code)
  print(("server: disconnect #%d (%d)"):format(peer.id, code))
end)

print("PORT " .. srv.port)
io.stdout:flush()
srv:run() -- serves until srv:close()
