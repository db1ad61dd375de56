--- Host loops: the library as one pollable object (`jsonrpc.loop`), and
-- `attach` to luv or to a cqueues controller.
--
-- The engine (src/loop.c) is one epoll descriptor and one timeout. Who
-- drives it is the seam: without attach, our own scheduler (blocking
-- calls, jsonrpc.run); with attach, the host loop watches the descriptor
-- and calls step(0), and calls made in its coroutines wait its way.
-- @module jsonrpc_websocket.host

local core = require "jsonrpc_websocket.core"
local sched = require "jsonrpc_websocket.scheduler"

local co_isyieldable, co_create = coroutine.isyieldable, coroutine.create
local unpack, pack = table.unpack, table.pack

local M = {}

---------------------------------------------------------------------------
-- The pollable loop (cqueues' protocol: pollfd, events, timeout).
---------------------------------------------------------------------------

-- luacheck: ignore 212/self (methods of one object: self is the object)
local Loop = { __name = "jsonrpc_websocket.loop" }
Loop.__index = Loop

--- A descriptor that becomes readable when the library has I/O to do.
function Loop:pollfd() return core.pollfd() end

--- What to wait for on pollfd(): always "r".
function Loop:events() return "r" end

--- Seconds until the library needs a step even without I/O; nil: none.
function Loop:timeout() return sched.timeout() end

--- Does all ready work (I/O, timers, resuming tasks). `seconds`: how long
-- it may wait for I/O; 0 (the default) never blocks.
function Loop:step(seconds)
  if seconds ~= nil and (type(seconds) ~= "number" or seconds < 0) then
    error("bad argument #1 to 'step' (non-negative number expected)", 2)
  end
  sched.step(seconds or 0)
  return true
end

--- Sets how long one step may take, counted from its start with its I/O,
-- before it leaves the events it did not reach to the next step (timeout()
-- is 0 then), so that a host loop's own work waits at most that long plus
-- one event's handling. Default 0.0005 s.
-- @tparam number seconds non-negative
function Loop:set_step_budget(seconds)
  if type(seconds) ~= "number" or seconds < 0 then
    error("bad argument #1 to 'set_step_budget' (non-negative number expected)", 2)
  end
  sched.set_step_budget(seconds)
end

--- Whether anything of ours can still happen (connections, listeners,
-- timers, tasks): a hand-written loop may stop when not.
function Loop:busy() return sched.busy() end

Loop.__tostring = function() return "jsonrpc_websocket.loop" end

M.loop = setmetatable({}, Loop)

---------------------------------------------------------------------------
-- attach
---------------------------------------------------------------------------

local attached       -- what attach was given
local attached_kind  -- "luv" or "cqueues"

local function report(err)
  sched.report(debug.traceback(tostring(err), 2))
end

-- A host loop's step. While it runs, work that appears is ours to do in
-- this step: the engine need not make its descriptor readable for it.
local function host_step()
  core.set_hosted(false)
  local ok, err = pcall(sched.step, 0)
  core.set_hosted(true)
  if not ok then report(err) end
end

-- luv: a uv poll handle on our descriptor, a uv timer for our timeout and
-- a uv idle handle for "a step at the next pass" (a 0 ms timer would run
-- again and again in one pass of luv's timers: luv's clock stands still
-- there, and its other timers would starve). Open only while we are busy,
-- so uv.run() returns when we are done.
local function luv_host(uv)
  local poll, timer, idle
  local idle_on, timer_on = false, false
  local on_ready, on_idle

  local function rearm()
    if not sched.busy() then
      if poll then
        poll:close()
        timer:close()
        idle:close()
        poll, timer, idle = nil, nil, nil
        idle_on, timer_on = false, false
      end
      return
    end
    if not poll then
      poll = uv.new_poll(core.pollfd())
      timer = uv.new_timer()
      idle = uv.new_idle()
      poll:start("r", on_ready)
    end
    local t = sched.timeout()
    if t == 0 then -- a timer that is on may stay: it only steps early
      if not idle_on then
        idle:start(on_idle)
        idle_on = true
      end
      return
    end
    if idle_on then
      idle:stop()
      idle_on = false
    end
    if t then
      timer:start(math.ceil(t * 1000), 0, on_ready)
      timer_on = true
    elseif timer_on then
      timer:stop()
      timer_on = false
    end
  end

  -- One of our steps per pass of luv's loop: while the idle handle is on
  -- (work is left), it alone steps, and the poll handle and the timer,
  -- later in the same pass, leave it that step; so luv's own timers run
  -- between any two steps of ours.
  on_idle = function()
    host_step()
    rearm()
  end
  on_ready = function()
    if idle_on then return end
    host_step()
    rearm()
  end

  -- Code runs inside uv.run() when uv.run is on the main thread's stack.
  local main_thread = debug.getregistry()[1]
  local function in_uv_run()
    for level = 1, math.huge do
      local info = debug.getinfo(main_thread, level, "f")
      if not info then return false end
      if info.func == uv.run then return true end
    end
  end

  local function cannot_wait(_, main)
    if (main or not co_isyieldable()) and in_uv_run() then
      return "jsonrpc_websocket: this call cannot wait here: it runs in "
        .. "plain code (a luv callback) while uv.run() runs, and waiting "
        .. "would block the loop. Make the call inside a coroutine, e.g. "
        .. "coroutine.wrap(function() ... end)()"
    end
  end

  return {
    kick = function()
      if not sched.stepping() then rearm() end
    end,
    cannot_wait = cannot_wait,
    waiter = function(co, main)
      if not main and co_isyieldable() then -- a coroutine: it yields to luv
        sched.adopt(co)
        rearm()
        return co
      end
      local why = cannot_wait(co, main)
      if why then error(why, 0) end
    end,
    spawn = function(fn, ...)
      return sched.spawn_kind("host", fn, ...)
    end,
  }
end

-- cqueues: a driver coroutine in the controller polls our pollable (and a
-- condition that wakes it for work started elsewhere), while we are busy.
local function cqueues_host(cq)
  local cqueues = require "cqueues"
  local condition = require "cqueues.condition"
  local poke = condition.new()
  local driving = false
  local poll = cqueues.poll
  -- Callers whose answer came (their box signalled) and that have not run
  -- yet. While there are some, the driver waits for the last of them
  -- rather than for our descriptor: their next calls then go out in one
  -- step, as they do when our own loop resumes its tasks. (Without this
  -- the driver runs first in each controller pass, as cqueues resumes the
  -- thread made ready last first, and steps for a few calls at a time.)
  local woken = 0
  local LAST_WOKEN_WITHIN = 0.005 -- s; then the driver steps anyway

  local function drive()
    while sched.busy() do
      if woken > 0 then
        if not poll(poke, LAST_WOKEN_WITHIN) then
          woken = 0 -- a caller that never came back for its answer
        end
      else
        poll(M.loop, poke)
      end
      host_step()
    end
    driving = false
  end

  local function kick()
    if sched.stepping() then return end
    if driving then
      poke:signal()
    elseif sched.busy() then
      driving = true
      cq:wrap(drive)
    end
  end

  -- The yield cqueues.poll(cond) and cond:wait() make, without their Lua
  -- wrappers: the caller is known to run in the controller. `_POLL` is
  -- cqueues' own marker, not documented API: without it, cond:wait().
  local POLL, co_yield = cqueues._POLL, coroutine.yield
  local function await(box)
    local cond = box.cond
    while not box.done do
      if POLL then co_yield(POLL, cond) else cond:wait() end
    end
    if box.woken then
      woken = woken - 1
      if woken <= 0 then
        woken = 0
        poke:signal()
      end
    end
    return box[1], box[2]
  end
  local function signal(box)
    if not box.woken then
      box.woken = true
      woken = woken + 1
    end
    box.cond:signal()
  end
  -- One box and condition per coroutine, made once and filled again for
  -- each wait: a coroutine waits for one thing at a time, and nothing is
  -- woken twice (our own tasks are waiters again and again the same way).
  -- A signal nobody waits for is dropped.
  local boxes = setmetatable({}, { __mode = "k" })

  local function cannot_wait(_, main)
    if cqueues.running() and (main or not co_isyieldable()) then
      return "jsonrpc_websocket: this call cannot wait here: it runs in a "
        .. "cqueues controller but not in one of its coroutines (or "
        .. "where they cannot yield). Make the call inside cq:wrap(function() "
        .. "... end)"
    end
  end

  return {
    kick = kick,
    cannot_wait = cannot_wait,
    waiter = function(co, main)
      -- a driver that runs needs no poke: what the caller waits for
      -- pokes it (a send makes our descriptor readable, a timer kicks)
      local box = boxes[co] -- co has waited in the controller before
      if box and co_isyieldable() then
        if not driving then kick() end
        box[1], box[2], box.done, box.woken = false, false, false, false
        return box
      end
      if cqueues.running() and not main and co_isyieldable() then
        if not driving then kick() end
        box = { false, false, done = false, cond = condition.new(),
          woken = false, await = await, signal = signal }
        boxes[co] = box
        return box
      end
      local why = cannot_wait(co, main)
      if why then error(why, 0) end
    end,
    -- handlers run in coroutines of the controller: they may use cqueues
    spawn = function(fn, ...)
      local args = pack(...)
      local co = co_create(function()
        local ok, err = xpcall(fn, debug.traceback, unpack(args, 1, args.n))
        if not ok then sched.report(err) end
      end)
      cq:attach(co)
      kick()
      return co
    end,
  }
end

-- What kind of loop `x` is: "luv", "cqueues", or nil.
local function kind_of(x)
  local loaded = package.loaded
  if x ~= nil and x == loaded.luv then return "luv" end
  local cqueues = loaded.cqueues
  if cqueues and cqueues.type(x) == "controller" then return "cqueues" end
end

--- Lets a host loop drive every connection, listener and timer of ours:
-- `uv` (the luv module) or a cqueues controller.
-- @param host the luv module (`require "luv"`) or a cqueues controller
function M.attach(host)
  local kind = kind_of(host)
  if not kind then
    error(("bad argument #1 to 'attach' (the luv module or a cqueues "
      .. "controller expected, got %s)"):format(type(host) == "table"
      and "a table that is neither" or type(host)), 2)
  end
  if attached ~= nil then
    if rawequal(attached, host) then return end
    error(("jsonrpc_websocket.attach: already attached to %s; one host "
      .. "loop per program"):format(attached_kind == "luv" and "luv"
      or tostring(attached)), 2)
  end
  attached, attached_kind = host, kind
  core.set_hosted(true)
  sched.set_host(kind == "luv" and luv_host(host) or cqueues_host(host))
  sched.host().kick()
end

return M
