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
local type, setmetatable, error, concat = type, setmetatable, error, table.concat
local params_from_args = codec.params_from_args

local M = {}

---------------------------------------------------------------------------
-- The builder handed to the user's function.
---------------------------------------------------------------------------
local NAME, BUILDER = {}, {}
local builder_mt, method_mt = {}, {}

local function add(b, name, params, notify)
  local entries = b.entries
  entries[#entries + 1] = { name = name, params = params, notify = notify }
end

local function method(b, name)
  return setmetatable({ [NAME] = name, [BUILDER] = b }, method_mt)
end

method_mt.__index = function(p, key)
  if type(key) ~= "string" then return nil end
  return method(p[BUILDER], p[NAME] .. "." .. key)
end

method_mt.__call = function(p, ...)
  local b = p[BUILDER]
  add(b, p[NAME], params_from_args(b.link.json, b.link.null, ...), false)
end

local Builder = {}

function Builder.call(b, name, params)
  if type(name) ~= "string" then error("bad argument #1 to 'call' (string expected)", 2) end
  add(b, name, codec.params_from_table(b.link.json, b.link.null, params), false)
end

function Builder.notify(b, name, ...)
  if type(name) ~= "string" then error("bad argument #1 to 'notify' (string expected)", 2) end
  add(b, name, params_from_args(b.link.json, b.link.null, ...), true)
end

builder_mt.__index = function(b, key)
  local f = Builder[key]
  if f then return f end
  if type(key) ~= "string" then return nil end
  return method(b, key)
end

---------------------------------------------------------------------------
-- A batch in flight.
---------------------------------------------------------------------------
local Batch = {}
Batch.__index = Batch

--- One entry's outcome (called by the link's resolve).
function Batch:deliver(index, ok, value)
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
  local link, parts = b.link, {}
  for i = 1, #entries do
    local e = entries[i]
    local prefix = link:prefix_for(e.name)
    if e.notify then
      parts[i] = codec.notification(prefix, e.params)
    else
      local id = link:new_id()
      b.ids[#b.ids + 1] = id
      b.names[#b.names + 1] = e.name
      parts[i] = codec.request(prefix, e.params, id)
    end
  end
  return "[" .. concat(parts, ",") .. "]"
end

--- Builds the batch with fn, sends it, waits for every answer.
function M.run(link, fn, timeout)
  local builder = setmetatable({ link = link, entries = {} }, builder_mt)
  fn(builder)
  local entries = builder.entries
  if #entries == 0 then return {} end
  if link.state ~= "open" or link.max_in_flight then link:await_turn("batch", timeout) end
  local b = setmetatable({ link = link, ids = {}, names = {}, results = {},
    timeout = timeout, waiter = sched.waiter() }, Batch)
  local text = encode(b, entries)
  local ids = b.ids
  local ok, why, kind = link.conn:send(text, ids[1], #ids) -- ids are consecutive
  if not ok then link.send_failed(why, kind, "batch") end
  b.left = #ids
  if b.left == 0 then return {} end
  for i = 1, #ids do link:track(ids[i], { batch = b, index = i }, nil) end
  link:batch_started(b)
  local t = timeout and sched.timer(timeout, expire, b)
  sched.wait(b.waiter)
  sched.cancel(t)
  return b.results
end

return M
