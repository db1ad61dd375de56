--- The scheduler: tasks (coroutines we own), timers, and the one loop that
-- services libwebsockets and hands its events to their owners.
--
-- A waiter is what a blocked caller leaves behind: the task's coroutine
-- when the caller is one of our tasks (it yields and is resumed here), or
-- a box table when it is not (the caller drives the loop until the box is
-- filled). Either way `wake(waiter, a, b)` delivers two values.
-- @module jsonrpc_websocket.scheduler

local core = require "jsonrpc_websocket.core"

local co_create, co_resume, co_yield, co_running, co_status =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.running,
  coroutine.status
local core_step, core_pop, now = core.step, core.pop, core.now
local core_timeout = core.backend_timeout

local M = { now = now }

-- Our tasks: coroutine -> "user" (counted by run) or "service" (handlers).
local tasks = setmetatable({}, { __mode = "k" })
local user_tasks = 0
local io_count = 0 -- connections that can still produce events

-- Ready queue: parallel arrays, so waking allocates nothing.
local ready_co, ready_a, ready_b = {}, {}, {}
local ready_head, ready_tail = 1, 0

local WAIT = {} -- what our tasks yield when they wait for a wake()
M.WAIT = WAIT
local IDLE = {} -- what a pooled service task yields when its job is done

-- The host loop we are attached to (host.lua), or nil: then we are the
-- loop. `kick` tells it that work appeared outside its callbacks.
local host, kick

-- Tasks that yielded bare (coroutine.yield()): they run again after the
-- next I/O poll, so a task that spins on yield never starves timers or I/O.
local yielded, yielded_n = {}, 0

-- Timers: a binary min-heap of { at, fn, a, b, index }, where `index` is
-- the entry's place in the heap (nil once it left). Cancelling removes
-- the entry at once, so a cancelled timer holds no memory until its
-- deadline however far that is.
local heap, heap_n = {}, 0

-- Puts t at place i or above it (its deadline may be earlier than its
-- parents').
local function sift_up(t, i)
  local at = t[1]
  while i > 1 do
    local parent = i // 2
    local p = heap[parent]
    if p[1] <= at then break end
    heap[i] = p
    p[5] = i
    i = parent
  end
  heap[i] = t
  t[5] = i
end

-- Puts t at place i or below it.
local function sift_down(t, i)
  local at = t[1]
  while true do
    local child = 2 * i
    if child > heap_n then break end
    local c = heap[child]
    if child < heap_n and heap[child + 1][1] < c[1] then
      child = child + 1
      c = heap[child]
    end
    if at <= c[1] then break end
    heap[i] = c
    c[5] = i
    i = child
  end
  heap[i] = t
  t[5] = i
end

local function heap_push(t)
  heap_n = heap_n + 1
  sift_up(t, heap_n)
end

-- Takes the entry at place i out of the heap.
local function heap_remove(i)
  local t, last = heap[i], heap[heap_n]
  heap[heap_n] = nil
  heap_n = heap_n - 1
  t[5] = nil
  if i <= heap_n then -- the last entry fills the gap
    if i > 1 and last[1] < heap[i // 2][1] then sift_up(last, i)
    else sift_down(last, i) end
  end
  return t
end

local function heap_pop() return heap_remove(1) end

--- Calls `fn(a, b)` after `seconds`; returns a handle for `cancel`.
function M.timer(seconds, fn, a, b)
  local t = { now() + seconds, fn, a, b, false }
  heap_push(t)
  if kick then kick() end
  return t
end

--- Cancels a timer (nil, fired or cancelled already: nothing happens).
function M.cancel(t)
  if t then
    t[2] = nil
    local i = t[5]
    if i then heap_remove(i) end
  end
end

--- How many timers wait (for specs: cancelled ones must not count).
function M.timer_count() return heap_n end

local function next_timer()
  return heap[1]
end

-- Runs the timers that are due; returns the next one still waiting, and
-- the time it went by.
local function fire_timers()
  local t = heap[1]
  if not t then return nil end
  local at = now()
  while t and t[1] <= at do
    heap_pop()
    local fn = t[2]
    t[2] = nil
    fn(t[3], t[4])
    t = next_timer()
  end
  return t, at
end

--- Error hook for failures that have no caller to raise into.
function M.report(err)
  local hook = M.on_error
  if hook then
    local ok, why = pcall(hook, err)
    if ok then return end
    err = why
  end
  io.stderr:write("jsonrpc_websocket: ", tostring(err), "\n")
end

local running_runs = 0 -- run() calls in progress
local run_error        -- first error of a task while run() drives

-- Service tasks whose job is done, kept for the next (M.run_service): a
-- handler that never waits then costs no coroutine of its own.
local pool, pool_n = {}, 0
local POOL_MAX = 64

local function pool_put(co)
  if pool_n < POOL_MAX then
    pool_n = pool_n + 1
    pool[pool_n] = co
  else
    tasks[co] = nil -- enough spares: this one goes with the garbage
  end
end

-- A task stopped other than by waiting again (run_ready checks that
-- common case itself): it finished, failed, went back to the pool, or
-- yielded bare.
local function task_done(co, ok, err)
  if co_status(co) == "dead" then
    if tasks[co] == "user" then user_tasks = user_tasks - 1 end
    tasks[co] = nil
  elseif ok and err == IDLE then
    pool_put(co)
  elseif ok and err ~= WAIT and tasks[co] ~= "host" then
    -- a bare coroutine.yield() in a task: let others, timers and I/O run,
    -- then continue (a host's coroutine yields to its host loop: the
    -- host resumes it)
    yielded_n = yielded_n + 1
    yielded[yielded_n] = co
  end
  if not ok then
    err = debug.traceback(co, tostring(err))
    if running_runs > 0 and not run_error then run_error = err
    else M.report(err) end
  end
end

local function run_ready()
  while ready_head <= ready_tail do
    local i = ready_head
    local co, a, b = ready_co[i], ready_a[i], ready_b[i]
    ready_co[i], ready_a[i], ready_b[i] = nil, nil, nil
    ready_head = i + 1
    local ok, err = co_resume(co, a, b)
    if not (ok and err == WAIT) then task_done(co, ok, err) end
  end
  -- empty: start again at 1, so the queue stays in the tables' array parts
  ready_head, ready_tail = 1, 0
end

--- Delivers (a, b) to a waiter: resumes a task, or fills a box.
function M.wake(waiter, a, b)
  if type(waiter) == "thread" then
    local i = ready_tail + 1
    ready_tail = i
    ready_co[i], ready_a[i], ready_b[i] = waiter, a, b
    if kick then kick() end
  else
    waiter.done, waiter[1], waiter[2] = true, a, b
    if waiter.signal then waiter:signal() end
  end
end

--- wake(waiter, a, b), but a task runs at once, right here, when the
-- caller is not a task itself: an event handler that the loop runs. Its
-- answer then reaches it without a trip through the ready queue. (From a
-- task, it is queued: tasks never resume one another.)
function M.resume_now(waiter, a, b)
  if type(waiter) ~= "thread" then -- a box, filled as wake fills it
    waiter.done, waiter[1], waiter[2] = true, a, b
    if waiter.signal then waiter:signal() end
    return
  end
  local running, main = co_running()
  if not main and tasks[running] then return M.wake(waiter, a, b) end
  local ok, err = co_resume(waiter, a, b)
  if not (ok and err == WAIT) then task_done(waiter, ok, err) end
end

--- The waiter for coroutine `co` (`main`: it is the main one), as
-- coroutine.running() gives them: `co` if it is our task, else a box.
-- Attached to a host loop, a coroutine of the host's may wait the host's
-- way (host.waiter decides; nil: block as without a host).
function M.task_waiter(co, main)
  if not main then
    local kind = tasks[co]
    if kind then
      if kind == "host" and kick then kick() end
      return co
    end
  end
  return host and host.waiter(co, main)
    or { false, false, done = false } -- sized for what wake stores
end

--- Whether coroutine `co` is one of our tasks.
function M.is_task(co) return tasks[co] ~= nil end

--- The waiter for the running code: its coroutine if it is our task.
function M.waiter()
  return M.task_waiter(co_running())
end

-- Hands each queued event to its owner: owner:on_<event>(...) (core.pop
-- returns the handler's name). One pcall
-- covers a run of events; an error is reported to the owner whose event
-- raised it, and the run goes on with the next event.
-- With a `deadline` (a host loop's step: see M.step), core.pop looks at
-- the clock before each event (`first_goes`: but the first) and, once it
-- has passed, the rest waits for the next step (events_left).
local event_owner
local events_left = false
local function dispatch_run(deadline, first_goes)
  local by = not first_goes and deadline or nil
  while true do
    local owner, handler, a, b, c, d, e, f, g = core_pop(by)
    if not owner then
      events_left = owner == false
      event_owner = nil -- keeps nothing alive between turns
      return
    end
    by = deadline
    event_owner = owner
    owner[handler](owner, a, b, c, d, e, f, g)
  end
end

local function dispatch_events(deadline, first_goes)
  events_left = false
  while true do
    local ok, err = pcall(dispatch_run, deadline, first_goes)
    if ok then return end
    first_goes = false -- it went: the event that raised
    local owner = event_owner
    if owner.report then owner:report(err) else M.report(err) end
  end
end

-- Runs what is ready and the timers that are due; returns the next timer
-- and the time it went by (nil: read the clock again).
local function run_due()
  if ready_head <= ready_tail then run_ready() end
  local t, at = fire_timers()
  if ready_head <= ready_tail then
    run_ready()
    t, at = next_timer(), nil
  end
  return t, at
end

-- After an I/O poll, the tasks that yielded bare are ready again, in the
-- order they yielded.
local function requeue_yielded()
  for i = 1, yielded_n do
    M.wake(yielded[i])
    yielded[i] = nil
  end
  yielded_n = 0
end

-- Whole milliseconds until timer t, rounded up, at least 0.
local function ms_until(t, at)
  local ms = (t[1] - (at or now())) * 1000 // 1 + 1
  return ms < 0 and 0 or ms
end

--- One turn of the loop: run what is ready, fire due timers, then (unless
-- `finished(arg)` already holds) service I/O once and dispatch its events.
-- Returns false when nothing could ever happen: no task ready, no timer,
-- no connection.
local function turn(finished, arg)
  local t, at = run_due()
  if finished(arg) then return true end
  local ms = -1
  if yielded_n > 0 then
    ms = 0 -- poll: the yielded tasks are ready to go on
  elseif t then
    ms = ms_until(t, at)
  elseif io_count == 0 then
    return false
  end
  if core_step(ms) then dispatch_events() end
  -- what the events woke runs in this turn, before a blocked caller
  -- looks at its box again
  if ready_head <= ready_tail then run_ready() end
  requeue_yielded()
  return true
end

local function check_run_error()
  if run_error then
    local err = run_error
    run_error = nil
    error(err, 0)
  end
end

local function is_filled(box) return box.done end

--- Suspends the caller until `wake(waiter, ...)`; returns what it delivers.
function M.wait(waiter)
  if type(waiter) == "thread" then
    local a, b = co_yield(WAIT)
    return a, b
  end
  if waiter.await then return waiter:await() end -- the host loop's way
  while not waiter.done do
    if not turn(is_filled, waiter) then
      error("jsonrpc_websocket: waiting for something that can never "
        .. "happen (no connection, no timer)", 2)
    end
    if running_runs > 0 then check_run_error() end
  end
  return waiter[1], waiter[2]
end

--- Makes a task of fn(...) and queues it. `kind` "service" tasks (request
-- handlers) do not keep run() going.
function M.spawn_kind(kind, fn, ...)
  if kind == "service" and host then return host.spawn(fn, ...) end
  local n = select("#", ...)
  local co, a, b
  if n <= 2 then -- the first resume passes them: no closure, no table
    co, a, b = co_create(fn), ...
  else
    local args = { ... }
    co = co_create(function() return fn(table.unpack(args, 1, n)) end)
  end
  tasks[co] = kind
  if kind == "user" then user_tasks = user_tasks + 1 end
  M.wake(co, a, b)
  return co
end

-- The body of a pooled task: a job, then back to the pool until the next
-- resume hands it another (a tail call: the stack does not grow).
local function pooled(fn, ...)
  fn(...)
  return pooled(co_yield(IDLE))
end

--- Runs fn(...) at once, right here, as a "service" task (not queued, as
-- spawn_kind does), in a coroutine from the pool. fn must not raise.
-- Returns the task and true when fn is done (finished or failed), false
-- when it waits (the loop resumes it as any task; its coroutine goes back
-- to the pool when fn is done).
-- With a host loop, the host's own task runs fn instead, queued
-- (host.spawn): it counts as waiting from the start.
function M.run_service(fn, ...)
  if host then return host.spawn(fn, ...), false end
  local co
  if pool_n > 0 then
    co = pool[pool_n]
    pool[pool_n] = nil
    pool_n = pool_n - 1
  else
    co = co_create(pooled)
    tasks[co] = "service"
  end
  local ok, err = co_resume(co, fn, ...)
  if ok and err == IDLE then
    pool_put(co)
    return co, true
  end
  if ok and err == WAIT then return co, false end
  task_done(co, ok, err) -- failed (reported: done), or yielded bare
  return co, co_status(co) == "dead"
end

-- Raises, naming the caller's argument, unless fn is a function.
local function check_function(fn, caller)
  if type(fn) ~= "function" then
    error(("bad argument #1 to '%s' (function expected)"):format(caller), 3)
  end
end

function M.spawn(fn, ...)
  check_function(fn, "spawn")
  M.spawn_kind("user", fn, ...)
end

local function no_user_tasks() return user_tasks == 0 end

-- Tasks that can never wake are dropped, so later runs do not wait on them.
local function abandon_user_tasks()
  local stuck = user_tasks
  for co, kind in pairs(tasks) do
    if kind == "user" then tasks[co] = nil end
  end
  user_tasks = 0
  return stuck
end

--- Runs fn(...) as a task and drives the loop until every task finished.
function M.run(fn, ...)
  check_function(fn, "run")
  local co, main = co_running()
  if not main and tasks[co] then
    error("jsonrpc_websocket.run called from inside a task (use spawn)", 2)
  end
  M.spawn_kind("user", fn, ...)
  running_runs = running_runs + 1
  local ok, err = pcall(function()
    while user_tasks > 0 do
      if not turn(no_user_tasks) then
        local stuck = abandon_user_tasks()
        error(("jsonrpc_websocket.run: %d task(s) wait for something that "
          .. "can never happen (no connection, no timer)"):format(stuck), 0)
      end
      check_run_error()
    end
  end)
  running_runs = running_runs - 1
  if not ok then error(err, 0) end
end

--- Sleeps: yields this task, or blocks when not in a task.
function M.sleep(seconds)
  seconds = tonumber(seconds)
  if not seconds then error("bad argument #1 to 'sleep' (number expected)", 2) end
  local w = M.waiter()
  M.timer(seconds > 0 and seconds or 0, M.wake, w)
  M.wait(w)
end

--- Connections report their birth and death so the loop knows whether
-- waiting for I/O can ever end.
function M.io_started()
  io_count = io_count + 1
  if kick then kick() end
end
function M.io_ended() io_count = io_count - 1 end

---------------------------------------------------------------------------
-- Driven from outside: the pollable loop (host.lua) and host loops.
---------------------------------------------------------------------------

local stepping = false -- inside step(): kicks wait for its end

-- How long one step may take, counted from its start: a host loop's other
-- work (a luv timer, say) waits for the step, so a step that has more
-- leaves the rest for the next one (timeout() is 0 then). Its I/O counts:
-- a step whose read took the budget hands no event over; the next step
-- reads nothing and hands over at least one, so nothing starves. One
-- event's handler is not cut: a 1 MB answer takes the time it takes (but
-- not after a read that used the budget: then in a step of its own).
local step_budget = 0.0005 -- s

--- Sets how long (seconds) a host loop's step may take.
function M.set_step_budget(seconds) step_budget = seconds end

--- Does the work that is ready: tasks, due timers, I/O (waiting at most
-- `max_seconds` for it; 0: never waits; nil: until there is some, or
-- the next timer), and what the events woke.
function M.step(max_seconds)
  stepping = true
  local deadline = now() + step_budget
  if events_left then -- what the last step left: no new I/O before it
    dispatch_events(deadline, true)
    if ready_head <= ready_tail then run_ready() end
    core.flush()
    stepping = false
    return
  end
  local t, at = run_due()
  local ms = 0
  if max_seconds ~= 0 and ready_head > ready_tail and yielded_n == 0 then
    ms = -1
    if t then ms = ms_until(t, at) end
    if max_seconds then
      local cap = math.max(0, max_seconds * 1000 // 1)
      if ms < 0 or cap < ms then ms = cap end
    end
    if ms < 0 and io_count == 0 then ms = 0 end
  end
  if core_step(ms) then
    -- waiting for I/O (max_seconds ~= 0) is not the step's work
    dispatch_events(ms ~= 0 and now() + step_budget or deadline, false)
  end
  if ready_head <= ready_tail then run_ready() end
  requeue_yielded()
  core.flush() -- what the step's tasks sent goes now, not a wakeup later
  stepping = false
end

--- Seconds until step() has work even without I/O (0: now), or nil.
function M.timeout()
  if ready_head <= ready_tail or yielded_n > 0 or events_left then return 0 end
  local t = next_timer()
  local ms = core_timeout()
  local s = ms >= 0 and ms / 1000 or nil
  if t then
    local left = t[1] - now()
    if left < 0 then left = 0 end
    if not s or left < s then s = left end
  end
  return s
end

--- Whether anything of ours can still happen: a connection or listener,
-- a timer, a task ready to run. A host loop lets go of us when not.
function M.busy()
  return io_count > 0 or ready_head <= ready_tail or yielded_n > 0
    or next_timer() ~= nil or events_left
end

function M.stepping() return stepping end

--- Installs the host loop (host.lua): { waiter = fn(co, main), spawn =
-- fn(fn, ...), kick = fn() }.
function M.set_host(h)
  host = h
  kick = h.kick
end

function M.host() return host end

--- Whether the running code may wait: not in plain code while the host
-- loop runs (a luv callback, say): it would block that loop.
function M.can_wait()
  return not (host and host.cannot_wait(co_running()))
end

--- Makes the running coroutine `co`, a host loop's, one that our loop
-- resumes when what it waits for comes (its other yields are the host's).
function M.adopt(co)
  tasks[co] = "host"
end

return M
