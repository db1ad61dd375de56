--- Batches: several calls and notifications in one websocket message.
--
--    local results = server:batch(function(b)
--      b.add(1, 2)                 -- results[1] = { result = 3 }
--      b.app.users.get{ id = 7 }   -- results[2] = { error = <ProtocolError> }
--      b:notify("log", "hi")       -- notifications get no entry
--    end)
-- @module jsonrpc_websocket.batch

local core = require "jsonrpc_websocket.core"
local sched = require "jsonrpc_websocket.scheduler"
local codec = require "jsonrpc_websocket.codec"
local errors = require "jsonrpc_websocket.errors"

local TimeoutError = errors.TimeoutError
local type, setmetatable, rawset, error = type, setmetatable, rawset, error
local tointeger = math.tointeger

local M = {}

---------------------------------------------------------------------------
-- The builder handed to the user's function. Its state (`entries`) keeps
-- the messages in the form the core writes them from (conn:send_batch):
-- `list` holds each one's method prefix then params (JSON text, or false
-- for none); `notify`, once there is a notification, is true at the index
-- of each. No table per entry: an add costs two list slots.
---------------------------------------------------------------------------
local NAME, PREFIX, STATE = {}, {}, {} -- private keys: nothing shadows a method name
local builder_mt, method_mt = {}, {}
local simple_params, new_list = core.simple_params, core.new_list
local MAX_LIST_HINT = 2 * 4096

local function add(e, prefix, params)
  local n = e.n + 1
  e.n = n
  e.list[2 * n - 1], e.list[2 * n] = prefix, params or false
  return n
end

-- The proxy for remote method `name`, made once per batch.
local function method(e, name)
  local m = e.methods[name]
  if not m then
    m = setmetatable({ [NAME] = name, [PREFIX] = e.link:prefix_for(name), [STATE] = e },
      method_mt)
    e.methods[name] = m
  end
  return m
end

method_mt.__index = function(p, key)
  if type(key) ~= "string" then return nil end
  return method(p[STATE], p[NAME] .. "." .. key)
end

-- The hot path: simple params are written by the core (when the codec is
-- ours), the rest by codec.params_from_args.
method_mt.__call = function(p, ...)
  local e = p[STATE]
  if type((...)) == "table" and rawget((...), STATE) == e then -- b:add(1, 2)
    error(("remote method '%s' called with ':' in a batch; call it with a dot: b.%s(...)")
      :format(p[NAME], p[NAME]), 2)
  end
  local params
  if e.builtin_codec then params = simple_params(...) end
  if params == nil then
    params = codec.args_params(e.link.params_from_args, e.json, e.null, p[NAME], ...)
  end
  add(e, p[PREFIX], params)
end

local Builder = {}

function Builder.call(b, name, params)
  if type(name) ~= "string" then error("bad argument #1 to 'call' (string expected)", 2) end
  local e = b[STATE]
  add(e, e.link:prefix_for(name), codec.call_params(e.json, e.null, params, name))
end

function Builder.notify(b, name, ...)
  if type(name) ~= "string" then error("bad argument #1 to 'notify' (string expected)", 2) end
  local e = b[STATE]
  local n = add(e, e.link:prefix_for(name),
    codec.args_params(e.link.params_from_args, e.json, e.null, name, ...))
  e.notify = e.notify or {}
  e.notify[n] = true
  e.notifications = e.notifications + 1
end

-- b.key: a builder method, or the proxy for remote method `key`; kept in
-- b itself, so that adding the same method again reads a plain field.
builder_mt.__index = function(b, key)
  local value = Builder[key]
  if value == nil then
    if type(key) ~= "string" then return nil end
    value = method(b[STATE], key)
  end
  rawset(b, key, value)
  return value
end

---------------------------------------------------------------------------
-- A batch in flight: its requests have the ids first .. first + count - 1,
-- and request id's outcome goes to results[id - first + 1].
---------------------------------------------------------------------------
local Batch = {}
Batch.__index = Batch

-- The method of the index-th request (notifications have no result).
local function request_name(self, index)
  local e = self.entries
  local notify, i = e.notify or {}, 0
  repeat
    i = i + 1
    if not notify[i] then index = index - 1 end
  until index == 0
  return self.link.method_names[e.list[2 * i - 1]]
end

local function answers_left(self, left)
  self.left = left
  if left == 0 then
    self.link:batch_done(self)
    sched.wake(self.waiter, true)
  end
end

--- Whether request `id` is one of this batch's and still waits.
function Batch:waits_for(id)
  local index = type(id) == "number" and tointeger(id)
  if not index then return false end
  index = index - self.first + 1
  return index >= 1 and index <= self.count and self.results[index] == nil
end

--- Appends the ids still waiting to the list `ids`.
function Batch:waiting_ids(ids)
  local results, first = self.results, self.first
  for index = 1, self.count do
    if results[index] == nil then ids[#ids + 1] = first + index - 1 end
  end
end

--- The outcome of request `id` (called by the link's resolve).
function Batch:resolve(id, ok, value)
  local index = id - self.first + 1
  if ok then
    self.results[index] = { result = value }
  else
    if value == self.link.TIMED_OUT then
      value = TimeoutError(("no answer within %g s"):format(self.timeout))
    end
    value.method = request_name(self, index)
    self.results[index] = { error = value }
  end
  answers_left(self, self.left - 1)
end

--- The answers the core has read (see Link:on_responses), from list[i] on:
-- takes the run of them that are this batch's, and returns the index of
-- the first it left (i when it took none).
function Batch:take_responses(list, i, last)
  if self.link.max_in_flight then return i end -- resolve counts the slots
  local first, count, results, left = self.first, self.count, self.results, self.left
  while i <= last do
    local index = list[i] - first + 1 -- the core's ids are integers
    if index < 1 or index > count or results[index] ~= nil then break end
    results[index] = { result = list[i + 1] }
    left = left - 1
    i = i + 2
  end
  answers_left(self, left)
  return i
end

-- The batch's timer: every entry still waiting times out.
local function expire(b)
  for id = b.first, b.first + b.count - 1 do
    if b:waits_for(id) then b.link:expire(id) end
  end
end

-- The list size each link's last batch needed (a hint; weak: batch.lua's
-- own, not a field of the Link).
local list_size = setmetatable({}, { __mode = "k" })

--- Builds the batch with fn, sends it, waits for every answer.
function M.run(link, fn, timeout)
  -- the builder's list starts as large as this link's last batch needed
  local e = { link = link, json = link.json, null = link.null, builtin_codec = link.builtin_codec,
    n = 0, notifications = 0, list = new_list(list_size[link] or 0), methods = {} }
  fn(setmetatable({ [STATE] = e }, builder_mt))
  if e.n == 0 then return {} end
  list_size[link] = math.min(2 * e.n, MAX_LIST_HINT)
  if link.state ~= "open" or link.max_in_flight then link:await_turn("batch", timeout) end
  local count = e.n - e.notifications
  local first = link:reserve_ids(count)
  local ok, why, kind = link:send_batch(e.n, e.list, e.notify, first)
  if not ok then
    timeout = link:resend("batch", timeout, why, kind, link.send_batch,
      e.n, e.list, e.notify, first)
  end
  if count == 0 then return {} end
  local b = setmetatable({ link = link, entries = e, first = first, count = count,
    left = count, results = new_list(count), timeout = timeout, waiter = sched.waiter() }, Batch)
  link:batch_started(b)
  local t = timeout and sched.timer(timeout, expire, b)
  sched.wait(b.waiter)
  sched.cancel(t)
  return b.results
end

return M
