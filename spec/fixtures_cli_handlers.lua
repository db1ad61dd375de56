-- Handlers `jsonrpc-ws serve` serves in spec/cli_spec.lua.
local jsonrpc = require "jsonrpc_websocket"

local last
return {
  add = function(a, b) return a + b end,
  shape = function() return { list = {}, n = 1.5, nested = { 1, 2 } } end,
  fail = function() error(jsonrpc.ProtocolError(-32042, "nope", { why = "testing" })) end,
  slow = function(s) jsonrpc.sleep(s) return "late" end,
  echo = function(...) return { ... } end,
  remember = function(x) last = x end,
  last = function() return last end,
  -- A subscription: its id as the answer, and notifications for it (one
  -- even before the answer), with one for another subscription between.
  eth_subscribe = function(topic)
    local peer = jsonrpc.peer()
    local id = "0x" .. topic
    peer:notify("eth_subscription", { subscription = id, result = 0 })
    jsonrpc.spawn(function()
      jsonrpc.sleep(0.05)
      peer:notify("eth_subscription", { subscription = "0xother", result = -1 })
      for i = 1, 3 do peer:notify("eth_subscription", { subscription = id, result = i }) end
    end)
    return id
  end,
}
