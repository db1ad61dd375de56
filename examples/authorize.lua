-- examples/authorize.lua: accept or refuse a client before the upgrade.
--   lua5.4 examples/authorize.lua
local jsonrpc = require "jsonrpc_websocket"

local srv = jsonrpc.listen {
  port = 0,
  authorize = function(headers, _path)
    if headers.authorization == "Bearer secret" then return true end
    return false, 401
  end,
}
srv.whoami = function() return "peer #" .. jsonrpc.peer().id end
local url = ("ws://127.0.0.1:%d/"):format(srv.port)

local good = jsonrpc.Server(url, { headers = { Authorization = "Bearer secret" }, timeout = 5 })
good:ws_connect()
print("with the token:", good.whoami())
good:close()

local bad = jsonrpc.Server(url, { timeout = 5 })
local ok, err = pcall(bad.ws_connect, bad)
print("without it:", ok, err.cause)
srv:close()
