-- examples/errors.lua: every kind of failure, and how to tell them apart.
--   lua5.4 examples/errors.lua
local jsonrpc = require "jsonrpc_websocket"
local ProtocolError, TransportError, TimeoutError =
  jsonrpc.ProtocolError, jsonrpc.TransportError, jsonrpc.TimeoutError

local srv = jsonrpc.listen { port = 0, on_error = function() end } -- quiet reports
srv.divide = function(a, b)
  if b == 0 then error(ProtocolError(-32602, "division by zero", { dividend = a })) end
  return a / b
end
srv.boom = function() error("something broke") end
srv.slow = function(seconds) jsonrpc.sleep(seconds) return "done" end

local url = ("ws://127.0.0.1:%d/"):format(srv.port)
local server = jsonrpc.Server(url, { timeout = 5 })
server:ws_connect()

-- The server's own error object: code, message, data.
local _, err = pcall(server.divide, 1, 0)
print("ProtocolError:", ProtocolError.is(err), err.code, err.message, err.data.dividend)

-- No such method.
_, err = pcall(server.nope)
print("unknown method:", err.code, err.message)

-- A handler that raised: the message only, not the server's file and line.
_, err = pcall(server.boom)
print("handler raised:", err.code, err.message)

-- No answer in time: a TimeoutError, which is a kind of TransportError.
_, err = pcall(server.call, server, "slow", { 1 }, { timeout = 0.1 })
print("timeout:", TimeoutError.is(err), TransportError.is(err), err.method)

-- Nobody listening.
local nowhere = jsonrpc.Server("ws://127.0.0.1:1/", { connect_timeout = 5 })
_, err = pcall(nowhere.ws_connect, nowhere)
print("transport:", TransportError.is(err), err.cause)

-- Misuse is a plain string, raised at once, naming your line.
_, err = pcall(function() jsonrpc.Server(url, { tiemout = 1 }) end)
print("misuse:", err)

server:close()
srv:close()
