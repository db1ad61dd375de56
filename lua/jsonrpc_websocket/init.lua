--- jsonrpc_websocket: JSON-RPC 2.0 over websockets for Lua 5.4.
--
--    local jsonrpc = require "jsonrpc_websocket"
--    local server = jsonrpc.Server("ws://127.0.0.1:9090/rpc")
--    server:ws_connect()
--    print(server.app.add(1, 2))
--
-- @module jsonrpc_websocket

local sched = require "jsonrpc_websocket.scheduler"
local client = require "jsonrpc_websocket.client"
local errors = require "jsonrpc_websocket.errors"
local codec = require "jsonrpc_websocket.codec"
local listen = require "jsonrpc_websocket.listen"
local host = require "jsonrpc_websocket.host"
local queue = require "jsonrpc_websocket.queue"

local M = {
  _VERSION = "jsonrpc_websocket scm",
  Server = client.Server,
  listen = listen.listen,
  peer = listen.peer,
  TransportError = errors.TransportError,
  TimeoutError = errors.TimeoutError,
  ProtocolError = errors.ProtocolError,
  OverflowError = errors.OverflowError,
  null = codec.null,
  json = codec.builtin,
  array_mt = codec.array_mt,
  run = sched.run,
  spawn = sched.spawn,
  sleep = sched.sleep,
  now = sched.now,
  loop = host.loop,
  attach = host.attach,
  queue = queue.queue,
  event = queue.event,
}

-- on_error: errors with nobody to raise into (a bad frame, a failed
-- handler task) go to jsonrpc.on_error(err) when set, else to stderr.
return setmetatable(M, {
  __newindex = function(t, k, v)
    if k == "on_error" then sched.on_error = v return end
    rawset(t, k, v)
  end,
  __index = function(_, k)
    if k == "on_error" then return sched.on_error end
  end,
})
