-- examples/hello.lua: the client tour. Usage: lua5.4 examples/hello.lua ws://127.0.0.1:PORT/
local jsonrpc = require "jsonrpc_websocket"

local url = arg[1] or "ws://127.0.0.1:9090/"
local server = jsonrpc.Server(url, { timeout = 5 })
server:ws_connect()
print("connected to " .. url)

-- A plain call blocks until its answer.
print("add(1, 2)                 -> " .. tostring(server.add(1, 2)))
print("greet{name = 'lua'}       -> " .. server.greet { name = "lua" })

-- Dotted names are built by the proxy.
local users = server.app.users.getUsers()
print("app.users.getUsers()      -> " .. #users .. " users, first: " .. users[1].name)

-- Errors are objects.
local _, err = pcall(server.no.such.method)
print("no.such.method()          -> " .. tostring(err) .. " [ProtocolError: "
  .. tostring(jsonrpc.ProtocolError.is(err)) .. "]")
_, err = pcall(server.call, server, "slow", { 2, "x" }, { timeout = 0.2 })
print("slow(2) with timeout 0.2  -> " .. tostring(err) .. " [TimeoutError: "
  .. tostring(jsonrpc.TimeoutError.is(err)) .. "]")

-- Inside tasks, calls yield: these ten are in flight at once.
local t0 = jsonrpc.now()
local sum = 0
jsonrpc.run(function()
  for i = 1, 10 do
    jsonrpc.spawn(function()
      local v = server.slow(0.2, i) -- yields; other tasks run meanwhile
      sum = sum + v
    end)
  end
end)
print(("10 x slow(0.2) in tasks   -> sum %d in %.2f s"):format(sum, jsonrpc.now() - t0))

-- The server may call us back: register handlers like methods.
server.client_name = function() return "hello.lua" end
server.tick = function(text) print("tick notification (server) -> " .. text) end
print("whoami() (server calls us) -> " .. server.whoami())
jsonrpc.sleep(0.05) -- let the notification arrive

server:notify("add", 1, 1)
print("notify add(1, 1)          -> sent, no answer expected")
server:close()
print("closed")
