--- Batches: several calls and notifications in one websocket message.
--
--    local results = server:batch(function(b)
--      b.add(1, 2)                 -- results[1] = { result = 3 }
--      b.app.users.get{ id = 7 }   -- results[2] = { error = <ProtocolError> }
--      b:notify("log", "hi")       -- notifications get no entry
--    end)
-- @module jsonrpc_websocket.batch

local sched = require "jsonrpc_websocket.scheduler"
local codec = require "jsonrpc_websocket.codec"
local errors = require "jsonrpc_websocket.errors"

local TimeoutError = errors.TimeoutError
local type, setmetatable, rawset, error, concat =
  type, setmetatable, rawset, error, table.concat
local params_from_args = codec.params_from_args

local M = {}

---------------------------------------------------------------------------
-- The builder handed to the user's function.
---------------------------------------------------------------------------
local NAME, BUILDER, STATE = {}, {}, {} -- private keys: nothing shadows a method name
local builder_mt, method_mt = {}, {}

-- Entries are kept in parallel arrays: no table per entry.
local function add(builder, name, params, notify)
  local b = builder[STATE]
  local n = b.n + 1
  b.n, b.names[n], b.params[n], b.notify[n] = n, name, params or false, notify
end

local function method(builder, name)
  local methods = builder[STATE].methods
  local m = methods[name]
  if not m then
    m = setmetatable({ [NAME] = name, [BUILDER] = builder }, method_mt)
    methods[name] = m
  end
  return m
end

method_mt.__index = function(p, key)
  if type(key) ~= "string" then return nil end
  return method(p[BUILDER], p[NAME] .. "." .. key)
end

method_mt.__call = function(p, ...)
  local b = p[BUILDER]
  local link = b[STATE].link
  add(b, p[NAME], params_from_args(link.json, link.null, ...), false)
end

local Builder = {}

function Builder.call(b, name, params)
  if type(name) ~= "string" then error("bad argument #1 to 'call' (string expected)", 2) end
  local link = b[STATE].link
  add(b, name, codec.params_from_table(link.json, link.null, params), false)
end

function Builder.notify(b, name, ...)
  if type(name) ~= "string" then error("bad argument #1 to 'notify' (string expected)", 2) end
  local link = b[STATE].link
  add(b, name, params_from_args(link.json, link.null, ...), true)
end

-- b.key: a builder method, or the proxy for remote method `key`; kept in
-- b itself, so that adding the same method again reads a plain field.
builder_mt.__index = function(b, key)
  local value = Builder[key]
  if value == nil then
    if type(key) ~= "string" then return nil end
    value = method(b, key)
  end
  rawset(b, key, value)
  return value
end

---------------------------------------------------------------------------
-- A batch in flight.
---------------------------------------------------------------------------
local Batch = {}
Batch.__index = Batch

--- The outcome of request `id` (called by the link's resolve). The ids of
-- a batch are consecutive, so the entry is id - first id + 1.
function Batch:deliver(id, ok, value)
  local index = id - self.ids[1] + 1
  local entry
  if ok then
    entry = { result = value }
  else
    if value == self.link.TIMED_OUT then
      value = TimeoutError(("no answer within %g s"):format(self.timeout))
    end
    value.method = self.names[index]
    entry = { error = value }
  end
  self.results[index] = entry
  self.left = self.left - 1
  if self.left == 0 then
    self.link:batch_done(self)
    sched.wake(self.waiter, true)
  end
end

-- The batch's timer: every entry still waiting times out.
local function expire(b)
  for i = 1, #b.ids do
    local id = b.ids[i]
    if b.link.pending[id] then b.link:expire(id) end
  end
end

-- The text of the whole batch; fills b.ids and b.names for the requests.
local function encode(b, entries)
  local link, parts, ids, names = b.link, {}, b.ids, b.names
  local request, notification = codec.request, codec.notification
  for i = 1, entries.n do
    local name, params = entries.names[i], entries.params[i] or nil
    local prefix = link:prefix_for(name)
    if entries.notify[i] then
      parts[i] = notification(prefix, params)
    else
      local id = link:new_id()
      ids[#ids + 1] = id
      names[#names + 1] = name
      parts[i] = request(prefix, params, id)
    end
  end
  return "[" .. concat(parts, ",") .. "]"
end

--- Builds the batch with fn, sends it, waits for every answer.
function M.run(link, fn, timeout)
  local entries = { link = link, n = 0, names = {}, params = {}, notify = {},
    methods = {} }
  fn(setmetatable({ [STATE] = entries }, builder_mt))
  if entries.n == 0 then return {} end
  if link.state ~= "open" or link.max_in_flight then link:await_turn("batch", timeout) end
  local b = setmetatable({ link = link, ids = {}, names = {}, results = {},
    timeout = timeout, waiter = sched.waiter() }, Batch)
  local text = encode(b, entries)
  local ids = b.ids
  local ok, why, kind = link.conn:send(text, ids[1], #ids) -- ids are consecutive
  if not ok then link.send_failed(why, kind, "batch") end
  b.left = #ids
  if b.left == 0 then return {} end
  for i = 1, #ids do link:track(ids[i], b, nil) end
  link:batch_started(b)
  local t = timeout and sched.timer(timeout, expire, b)
  sched.wait(b.waiter)
  sched.cancel(t)
  return b.results
end

return M
