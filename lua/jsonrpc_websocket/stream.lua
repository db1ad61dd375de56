--- Streams: what the server pushes, as iterators.
--
-- A subscription (`server:subscribe`) is the subscribe call, then the
-- notifications that carry the id it returned; a notification stream
-- (`server:notifications`) is every notification of one method. Both are
-- Queues (queue.lua) that the link's dispatch feeds (Registry:deliver),
-- bounded by `max_queue`, and both follow the link across reconnects: a
-- subscription subscribes again and maps its new id.
-- @module jsonrpc_websocket.stream

local queue = require "jsonrpc_websocket.queue"
local options = require "jsonrpc_websocket.options"
local Queue = queue.Queue
local sched = require "jsonrpc_websocket.scheduler"
local codec = require "jsonrpc_websocket.codec"
local dispatch = require "jsonrpc_websocket.dispatch"
local errors = require "jsonrpc_websocket.errors"
local type, pairs, pcall, error, setmetatable, table_remove =
  type, pairs, pcall, error, setmetatable, table.remove

local M = {}

local MAX_QUEUE = 1000  -- default max_queue of a stream
local MAX_EARLY = 1000  -- notifications held for subscribe calls in flight
local WEAK_KEYS, WEAK_VALUES = { __mode = "k" }, { __mode = "v" }

---------------------------------------------------------------------------
-- The registry: a link's streams, by notification method (link.streams;
-- the link calls opened/closed/ended, dispatch calls deliver).
---------------------------------------------------------------------------

--[[ Per notification method, a router: `by_id` maps the ids of live
subscriptions to their streams, `plain` is the set of notification
streams. A stream nobody holds any more is collected (both are weak), and
its __gc unsubscribes. A notification may come before the answer to the
subscribe call that makes its id known (a server that sends at once, or
both in one read): while subscribe calls are in flight (`pending`), such
notifications are held in `early` for them; those that turn out to be for
none of them are dispatched again once no call is in flight (a handler's,
say). ]]
local Registry = {}
Registry.__index = Registry

local function registry_of(link)
  local reg = link.streams
  if not reg then
    reg = setmetatable({ link = link, routers = {},
      all = setmetatable({}, WEAK_KEYS) }, Registry)
    link.streams = reg
  end
  return reg
end

local function router_of(reg, method)
  local rt = reg.routers[method]
  if not rt then
    rt = { by_id = setmetatable({}, WEAK_VALUES), plain = setmetatable({}, WEAK_KEYS),
      pending = 0, early = {} }
    reg.routers[method] = rt
  end
  return rt
end

-- A notification's item: JSON null (or nothing) stays a value, so it
-- cannot end an iteration.
local function item_of(link, value)
  if value == nil then return link.null end
  return value
end

--- A notification of `method` with `params` arrived: true when a stream
-- took it (then no handler runs).
function Registry:deliver(method, params)
  local rt = self.routers[method]
  if not rt then return false end
  if type(params) == "table" then
    local id = params.subscription
    if id ~= nil then
      local s = rt.by_id[id]
      if s then
        s:put(item_of(self.link, params.result))
        return true
      end
      if rt.pending > 0 then -- perhaps for a subscribe call in flight
        local early = rt.early
        if #early >= MAX_EARLY then table_remove(early, 1) end
        early[#early + 1] = params
        return true
      end
    end
  end
  local taken = false
  for s in pairs(rt.plain) do
    s:put(params == nil and {} or params)
    taken = true
  end
  return taken
end

--- The connection is open (again): stale subscriptions subscribe again.
function Registry:opened()
  local conn = self.link.conn
  for s in pairs(self.all) do
    if s.kind == "subscription" and s.id ~= nil and s.conn ~= conn
        and not s.resubscribing then
      sched.spawn_kind("service", M.resubscribe, s)
    end
  end
end

--- The connection went (`cause`). While the link reconnects, streams
-- live on: subscriptions lose their id until they subscribe again (a
-- restarted server may give a new subscription an old id). Else they end.
function Registry:closed(cause)
  if not self.link.reconnecting then return self:ended(cause) end
  for s in pairs(self.all) do
    local rt = s.router
    if s.id ~= nil and rt.by_id[s.id] == s then rt.by_id[s.id] = nil end
  end
end

--- No connection will come back: every stream ends with TransportError.
function Registry:ended(cause)
  for s in pairs(self.all) do
    s:finish(errors.TransportError("Connection closed.", cause))
  end
end

---------------------------------------------------------------------------
-- Stream: a Queue with a route, and for a subscription its id.
---------------------------------------------------------------------------

--- A stream of items the server pushes. Fields: `id` (the current
-- subscription id), `dropped`, `resubscribed`, `closed`, `error`.
-- @type Stream
local Stream = setmetatable({}, { __index = Queue })
Stream.__index = Stream
Stream.__name = "jsonrpc_websocket.Stream"
Stream.__call = Queue.__call
Stream.__len = Queue.__len
M.Stream = Stream

-- The subscription id that is live on the open connection, if any.
local function live_id(s)
  local link = s.link
  if s.kind == "subscription" and s.id ~= nil and s.conn ~= nil
      and s.conn == link.conn and link.state == "open" then
    return s.id
  end
end

-- Takes the stream out of its router: nothing more is delivered to it.
local function unroute(s)
  local rt = s.router
  if s.id ~= nil and rt.by_id[s.id] == s then rt.by_id[s.id] = nil end
  rt.plain[s] = nil
  s.registry.all[s] = nil
end

-- Unsubscribes without waiting for the answer (for __gc and overflow,
-- which cannot wait): the answer is dropped as a late one.
local function unsubscribe_quietly(link, method, id)
  local conn = link.conn
  if not conn or link.state ~= "open" then return end
  local ok, params = pcall(codec.params_from_table, link.json, link.null, { id })
  if not ok then return end
  local rid = link:new_id()
  link:forget_answer(rid) -- its answer is nobody's: dropped quietly
  pcall(conn.send, conn, codec.request(link:prefix_for(method), params, rid))
end

--- Ends the stream: readers get what is queued, then nil + `err`. A live
-- subscription is unsubscribed (without waiting).
function Stream:finish(err)
  if self.closed then return end
  local id = live_id(self)
  Queue.finish(self, err)
  unroute(self)
  if id ~= nil then unsubscribe_quietly(self.link, self.unsubscribe, id) end
end

--- Closes the stream: what is queued is discarded, iteration ends, and a
-- live subscription is unsubscribed (the unsubscribe call waits for its
-- answer). Returns true, or nil + error when the unsubscribe call failed.
-- Idempotent; also `<close>` and garbage collection.
function Stream:close()
  if self.closed then return true end
  local id = live_id(self)
  unroute(self)
  Queue.close(self)
  if id == nil then return true end
  local link = self.link
  local ok, err = pcall(link.request, link, link:prefix_for(self.unsubscribe),
    codec.params_from_table(link.json, link.null, { id }), self.unsubscribe, self.timeout)
  if ok then return true end
  return nil, err
end

Stream.__close = function(self) self:close() end

Stream.__gc = function(self)
  if self.closed then return end
  local id = live_id(self)
  if id ~= nil then unsubscribe_quietly(self.link, self.unsubscribe, id) end
end

Stream.__tostring = function(self)
  return ("jsonrpc_websocket.Stream(%s %s, %d queued%s)"):format(
    self.kind, tostring(self.id or self.notification), #self,
    self.closed and ", closed" or "")
end

-- Dispatches again, as if they arrived now, the notifications of `method`
-- (params in `list`) that were held for subscribe calls but are for none.
local function redispatch(link, method, list)
  for i = 1, #list do
    local ok, text = pcall(link.json.encode,
      { jsonrpc = "2.0", method = method, params = list[i] })
    if ok then
      local done, err = pcall(dispatch.incoming, link, text)
      if not done then link:report(err) end
    end
  end
end

-- The subscribe call; on success the stream's id is the one it returned,
-- and the notifications that came early for that id are its first items.
-- Raises what the call raises.
local function subscribe_call(s)
  local link, rt = s.link, s.router
  rt.pending = rt.pending + 1
  local ok, id = pcall(link.request, link, link:prefix_for(s.method), s.json_params,
    s.method, s.timeout)
  rt.pending = rt.pending - 1
  if ok and (id == nil or type(id) == "table") then
    ok, id = false, errors.ProtocolError(nil, ("'%s' answered without a subscription id")
      :format(s.method))
  end
  local early = rt.early
  if ok and not s.closed then
    s.id, s.conn = id, link.conn
    rt.by_id[id] = s
    local i = 1
    while early[i] do
      if early[i].subscription == id then
        s:put(item_of(link, table_remove(early, i).result))
      else
        i = i + 1
      end
    end
  end
  if rt.pending == 0 and early[1] then
    rt.early = {}
    redispatch(link, s.notification, early)
  end
  if not ok then error(id, 0) end
  if s.closed then unsubscribe_quietly(link, s.unsubscribe, id) end -- closed meanwhile
end

--- Subscribes `s` again after a reconnect (a service task).
function M.resubscribe(s)
  if s.closed then return end
  s.resubscribing = true
  local ok, err = pcall(subscribe_call, s)
  s.resubscribing = false
  if ok then
    s.resubscribed = s.resubscribed + 1
    return
  end
  local link = s.link
  if s.closed then return end
  -- a TransportError other than a timeout: the connection went meanwhile
  if errors.TransportError.is(err) and not errors.TimeoutError.is(err) then
    if link.state == "open" then return M.resubscribe(s) end -- a newer one is up
    if link.reconnecting then return end -- the next one subscribes again
  end
  link:report(err) -- refused, or no answer: the stream ends with why
  s:finish(err)
end

local function check_name(value, what, level)
  if type(value) ~= "string" then
    error(("bad argument #1 to '%s' (string expected)"):format(what), level + 1)
  end
end

local function check_option_name(opts, key, default, level)
  local v = opts and opts[key]
  if v == nil then return default end
  if type(v) ~= "string" then
    error(("option '%s' must be a string (a method name)"):format(key), level + 1)
  end
  return v
end

local STREAM_OPTIONS = options.set{ "max_queue", "overflow", "timeout" }
local SUBSCRIBE_OPTIONS = options.set{
  "max_queue", "overflow", "timeout", "notification", "unsubscribe" }

local function new_stream(link, fields, opts, level)
  local max, overflow = queue.limits(opts, "max_queue", MAX_QUEUE, level + 1)
  if opts then
    local sub = fields.kind == "subscription"
    options.known(opts, sub and SUBSCRIBE_OPTIONS or STREAM_OPTIONS,
      sub and "subscribe" or "notifications", level + 1)
  end
  local timeout = link.timeout
  if opts and opts.timeout ~= nil then
    timeout = opts.timeout
    if type(timeout) ~= "number" or timeout <= 0 then
      error("option 'timeout' must be a positive number of seconds", level + 1)
    end
  end
  fields.link, fields.timeout, fields.resubscribed = link, timeout, 0
  local reg = registry_of(link)
  fields.registry, fields.router = reg, router_of(reg, fields.notification)
  local s = queue.init(fields, max, overflow, Stream)
  reg.all[s] = true
  return s
end

--- subscribe(link, method, params, opts): a subscription stream (see
-- Server:subscribe in client.lua). Raises what the subscribe call raises.
function M.subscribe(link, method, params, opts)
  check_name(method, "subscribe", 3)
  if params ~= nil and type(params) ~= "table" then
    error("bad argument #2 to 'subscribe' (table or nil expected)", 3)
  end
  local s = new_stream(link, {
    kind = "subscription", method = method,
    json_params = codec.params_from_table(link.json, link.null, params),
    notification = check_option_name(opts, "notification", "eth_subscription", 3),
    unsubscribe = check_option_name(opts, "unsubscribe", "eth_unsubscribe", 3),
  }, opts, 3)
  local ok, err = pcall(subscribe_call, s)
  if not ok then
    unroute(s)
    Queue.finish(s, err)
    error(err, 0)
  end
  return s
end

--- notifications(link, method, opts): a stream of the notifications of
-- `method` (see Server:notifications in client.lua).
function M.notifications(link, method, opts)
  check_name(method, "notifications", 3)
  local s = new_stream(link, { kind = "notifications", notification = method }, opts, 3)
  s.router.plain[s] = true
  return s
end

return M
