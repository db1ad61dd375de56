--- Subscriptions that a Lua server offers its peers: the server side of
-- `server:subscribe` (stream.lua).
--
--    srv.eth_subscribe = function(kind)
--      local sub = jsonrpc.peer():subscription()
--      jsonrpc.spawn(function()
--        while sub.active do sub:send(next_head()) jsonrpc.sleep(1) end
--      end)
--      return sub.id
--    end
--
-- The peer's unsubscribe call (default "eth_unsubscribe", answered here
-- unless the server has a handler of that name) and the peer's disconnect
-- end the subscription.
-- @module jsonrpc_websocket.subscription

local codec = require "jsonrpc_websocket.codec"
local dispatch = require "jsonrpc_websocket.dispatch"
local queue = require "jsonrpc_websocket.queue"
local Link = require "jsonrpc_websocket.link"

local type, pairs, pcall, error, setmetatable = type, pairs, pcall, error, setmetatable

local M = {}

local last_id = 0 -- ids are unique in the process

--- One subscription of one peer. Fields: `id` (what the subscribe
-- handler returns), `active`, `ended` (an Event set when it ends).
-- @type Subscription
local Subscription = {}
Subscription.__index = Subscription
Subscription.__name = "jsonrpc_websocket.Subscription"

--- Sends `item` to the peer as a notification { subscription = id,
-- result = item }. While the peer's send queue is full it waits for room,
-- as notify does (a task yields, plain code blocks). Returns true when it
-- went out, false when the subscription has ended or the peer is gone.
function Subscription:send(item)
  if not self.active then return false end
  local link = self.link
  local conn = link.conn
  if not conn or link.state ~= "open" then return false end -- nothing to encode for
  local text = codec.notification(self.prefix, codec.params_from_table(link.json,
    link.null, { subscription = self.id, result = item }))
  local ok, why, kind = conn:send(text)
  if ok or kind ~= "full" then return ok end
  return (pcall(link.resend, link, "subscription", nil, why, kind, Link.send_text, text))
end

--- Ends the subscription (no more sends); sets `ended`. Idempotent.
function Subscription:close()
  if not self.active then return end
  self.active = false
  self.link.subscriptions[self.id] = nil
  self.ended:set()
end

Subscription.__close = Subscription.close

Subscription.__tostring = function(self)
  return ("jsonrpc_websocket.Subscription(%s, %s)"):format(self.id,
    self.active and "active" or "ended")
end

-- The unsubscribe handler: (id) -> whether the calling peer had it.
local function unsubscribe(id)
  local link = dispatch.task_endpoint[coroutine.running()]
  local sub = link and link.subscriptions and link.subscriptions[id]
  if not sub then return false end
  sub:close()
  return true
end

local function option(opts, key, default)
  local v = opts and opts[key]
  if v == nil then return default end
  if type(v) ~= "string" then
    error(("option '%s' must be a string (a method name)"):format(key), 4)
  end
  return v
end

--- A new subscription on the peer `link`; opts: notification (default
-- "eth_subscription"), unsubscribe (default "eth_unsubscribe").
function M.open(link, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #1 to 'subscription' (table or nil expected)", 3)
  end
  local notification = option(opts, "notification", "eth_subscription")
  local unsubscribe_method = option(opts, "unsubscribe", "eth_unsubscribe")
  last_id = last_id + 1
  local sub = setmetatable({
    id = ("0x%x"):format(last_id), active = link.state == "open",
    ended = queue.event(), link = link, prefix = link:prefix_for(notification),
  }, Subscription)
  link.subscriptions = link.subscriptions or {}
  if sub.active then
    link.subscriptions[sub.id] = sub
  else
    sub.ended:set()
  end
  local handlers = link.handlers -- the server's, shared by its peers
  if handlers[unsubscribe_method] == nil then handlers[unsubscribe_method] = unsubscribe end
  return sub
end

--- The peer `link` is gone: its subscriptions end.
function M.peer_gone(link)
  local subs = link.subscriptions
  if not subs then return end
  for _, sub in pairs(subs) do sub:close() end
end

M.Subscription = Subscription -- for spec/docs_spec.lua
return M
