--- Waiting that is not a call: queues and events, for tasks (which yield)
-- and plain code (which drives the loop), as calls wait.
--
--    local q = jsonrpc.queue { max = 100 }   -- bounded; default unbounded
--    jsonrpc.spawn(function() q:put("hello") end)
--    print(q:next(5))                        -- "hello", or nil + TimeoutError
--    for item in q do ... end                -- until q:close()
--
--    local ready = jsonrpc.event()
--    ready:wait(2)                           -- true, or nil + TimeoutError
--    ready:set()                             -- wakes every waiter
-- @module jsonrpc_websocket.queue

local sched = require "jsonrpc_websocket.scheduler"
local errors = require "jsonrpc_websocket.errors"
local options = require "jsonrpc_websocket.options"

local TimeoutError, OverflowError = errors.TimeoutError, errors.OverflowError
local type, error, setmetatable, table_remove = type, error, setmetatable, table.remove
local waiter, wait, wake, timer, cancel =
  sched.waiter, sched.wait, sched.wake, sched.timer, sched.cancel

local M = {}

local TIMED_OUT = {} -- what a waiter's timer delivers

---------------------------------------------------------------------------
-- Waiters: a FIFO list per object (self.waiters), each with its timer when
-- it waits with a timeout (self.timers[w]).
---------------------------------------------------------------------------

local function waiter_expired(self, w)
  local list = self.waiters
  for i = 1, #list do
    if list[i] == w then table_remove(list, i) break end
  end
  self.timers[w] = nil
  wake(w, false, TIMED_OUT)
end

-- Suspends the caller until woken with (ok, value); a timeout (seconds or
-- nil) ends the wait with nil + TimeoutError(`what`).
local function await(self, timeout, what)
  local w = waiter()
  local list = self.waiters
  list[#list + 1] = w
  if timeout then self.timers[w] = timer(timeout, waiter_expired, self, w) end
  local ok, value = wait(w)
  if ok then return value end
  if value == TIMED_OUT then
    return nil, TimeoutError(("%s within %g s"):format(what, timeout))
  end
  return nil, value
end

-- Wakes the oldest waiter with (ok, value); false when nobody waits.
local function wake_first(self, ok, value)
  local w = self.waiters[1]
  if not w then return false end
  table_remove(self.waiters, 1)
  local t = self.timers[w]
  if t then
    self.timers[w] = nil
    cancel(t)
  end
  wake(w, ok, value)
  return true
end

local function wake_all(self, ok, value)
  while wake_first(self, ok, value) do end
end

local function check_timeout(timeout, name, level)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
    error(("bad argument #1 to '%s' (non-negative number of seconds expected)")
      :format(name), level + 1)
  end
end

---------------------------------------------------------------------------
-- Queue
---------------------------------------------------------------------------

--- A FIFO of values with waiting readers.
-- Fields: `dropped` (values the drop_oldest policy discarded), `closed`,
-- `error` (why it ended, when it ended with one).
-- @type Queue
local Queue = {}
Queue.__index = Queue
M.Queue = Queue

--- Adds `item` (not nil). Hands it to the oldest waiting reader, else
-- queues it; when `max` values are queued already, the `overflow` policy
-- applies: "drop_oldest" discards the oldest (counted in `dropped`),
-- "error" ends the queue with an OverflowError (readers get what is
-- queued, then nil + that error). Returns false when the queue is closed
-- (or has just overflowed), true otherwise.
function Queue:put(item)
  if item == nil then error("bad argument #1 to 'put' (a value expected, got nil)", 2) end
  if self.closed then return false end
  if self.waiters[1] and wake_first(self, true, item) then return true end
  local first, last = self.first, self.last
  local max = self.max
  if max and last - first + 1 >= max then
    if self.overflow == "error" then
      self:finish(OverflowError(("more than %d items queued"):format(max), max))
      return false
    end
    self.items[first] = nil
    first = first + 1
    self.first = first
    self.dropped = self.dropped + 1
  end
  last = last + 1
  self.last = last
  self.items[last] = item
  return true
end

--- The next value: at once when one is queued, else waits (a task yields,
-- plain code drives the loop). `timeout` in seconds (nil: no limit).
-- Returns the value; or nil + TimeoutError; or, once the queue is closed
-- and empty, nil (plus the error it ended with, if any).
function Queue:next(timeout)
  local first = self.first
  if first <= self.last then
    local items = self.items
    local item = items[first]
    items[first] = nil
    if first == self.last then
      self.first, self.last = 1, 0 -- empty: indices start over
    else
      self.first = first + 1
    end
    return item
  end
  if self.closed then return nil, self.error end
  check_timeout(timeout, "next", 2)
  return await(self, timeout, "nothing arrived")
end

local function finish(self, err)
  if self.closed then return end
  self.closed, self.error = true, err
  wake_all(self, false, err)
end

--- Ends the queue: no more puts; readers get what is queued, then nil
-- (plus `err` when given). Idempotent.
Queue.finish = finish

--- Ends the queue and discards what is queued: readers get nil at once.
function Queue:close()
  self.items, self.first, self.last = {}, 1, 0
  finish(self, nil)
end

Queue.__call = function(self) return (self:next()) end -- for item in q do
Queue.__len = function(self) return self.last - self.first + 1 end
Queue.__close = function(self) self:close() end
Queue.__name = "jsonrpc_websocket.Queue"

local OVERFLOW = { drop_oldest = true, error = true }

--- Checks opts.<max_name> and opts.overflow; returns them (max may be nil).
function M.limits(opts, max_name, default_max, level)
  if opts == nil then return default_max, "drop_oldest" end
  if type(opts) ~= "table" then error("bad argument (options table expected)", level + 1) end
  local max = options.positive_integer(opts, max_name, level + 1)
  if max == nil then max = default_max end
  local overflow = opts.overflow
  if overflow == nil then overflow = "drop_oldest" end
  if not OVERFLOW[overflow] then
    error("option 'overflow' must be \"drop_oldest\" or \"error\"", level + 1)
  end
  return max, overflow
end

--- Gives `t` the state of an empty queue and the class `class` (Queue or
-- a subclass).
function M.init(t, max, overflow, class)
  t.items, t.first, t.last = {}, 1, 0
  t.max, t.overflow, t.dropped = max, overflow, 0
  t.closed = false
  t.waiters, t.timers = {}, {}
  return setmetatable(t, class or Queue)
end

--- queue([opts]): a Queue. opts.max bounds it (default: unbounded),
-- opts.overflow = "drop_oldest" (default) or "error".
local QUEUE_OPTIONS = options.set{ "max", "overflow" }

function M.queue(opts)
  local max, overflow = M.limits(opts, "max", nil, 2)
  if opts then options.known(opts, QUEUE_OPTIONS, "queue", 2) end
  return M.init({}, max, overflow)
end

---------------------------------------------------------------------------
-- Event
---------------------------------------------------------------------------

--- A flag that tasks can wait for. Field `is_set`.
-- @type Event
local Event = {}
Event.__index = Event
Event.__name = "jsonrpc_websocket.Event"
M.Event = Event

--- Sets the flag and wakes every waiter. Idempotent.
function Event:set()
  if self.is_set then return end
  self.is_set = true
  wake_all(self, true, true)
end

--- Clears the flag: later waits wait again.
function Event:clear()
  self.is_set = false
end

--- Waits until the flag is set: true; or nil + TimeoutError after
-- `timeout` seconds (nil: no limit).
function Event:wait(timeout)
  if self.is_set then return true end
  check_timeout(timeout, "wait", 2)
  return await(self, timeout, "not set")
end

--- event(): a new Event, not set.
function M.event()
  return setmetatable({ is_set = false, waiters = {}, timers = {} }, Event)
end

return M
