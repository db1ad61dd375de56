--- The link: one websocket connection at a time, the calls waiting on it,
-- its handlers and listeners. It owns the core events (open, message,
-- closed) and is the dispatch endpoint for what arrives.
--
-- A pending call is a waiter (see the scheduler) or a batch entry; either
-- way `resolve` delivers its outcome.
-- @module jsonrpc_websocket.link

local core = require "jsonrpc_websocket.core"
local sched = require "jsonrpc_websocket.scheduler"
local codec = require "jsonrpc_websocket.codec"
local errors = require "jsonrpc_websocket.errors"
local url_parse = require "jsonrpc_websocket.url"
local dispatch = require "jsonrpc_websocket.dispatch"
local options = require "jsonrpc_websocket.options"
local trace = require "jsonrpc_websocket.trace"

local TransportError, TimeoutError, ProtocolError =
  errors.TransportError, errors.TimeoutError, errors.ProtocolError
local type, pairs, ipairs, pcall, error, tostring = type, pairs, ipairs, pcall, error, tostring
local math_type, tointeger = math.type, math.tointeger
local waiter, wait, wake, timer, cancel, now =
  sched.waiter, sched.wait, sched.wake, sched.timer, sched.cancel, sched.now
local request_message, notification_message = codec.request, codec.notification
local co_running, task_waiter = coroutine.running, sched.task_waiter
local resume_now = sched.resume_now
local co_yield, WAIT = coroutine.yield, sched.WAIT

local Link = {}
Link.__index = Link

--[[ Idle memory (issue 16): a link's bookkeeping tables start as NONE, one
shared empty table that refuses entries, and a link gets a table of its own
(Link.own) only when it first stores something there; its counters start as
defaults here. An idle peer then holds no empty tables and a small hash
part. Reads (self.pending[id], pairs, #) need no change. ]]
local NONE = setmetatable({}, { __newindex = function(_, k, v)
  if v ~= nil then error("link: a shared empty table written (key " .. tostring(k) .. ")", 2) end
end })
for _, key in ipairs { "pending", "timers", "expired", "batches", "deadlines", "proxies",
  "prefixes", "method_names", "close_waiters", "turn_waiters", "room_waiters" } do
  Link[key] = NONE
end
Link.next_id, Link.in_flight, Link.n_expired, Link.deadline_cursor = 1, 0, 0, 1
Link.state = "closed"
-- dispatch's state and stream.lua's registry, read for every message: a
-- default found here costs less than a miss through every __index
Link.active, Link.paused, Link.held, Link.batch_job, Link.streams = 0, false, false, false, false

--- The link's own table `key` (one of those starting as NONE), made now
-- if it has none yet.
function Link:own(key)
  local t = self[key]
  if t == NONE then
    t = {}
    self[key] = t
  end
  return t
end

local TIMED_OUT = {} -- what expire() delivers to the waiting caller
local MAX_EXPIRED = 4096 -- timed-out ids remembered per connection
Link.TIMED_OUT = TIMED_OUT

function Link.raise(err, method)
  err.method = method or err.method
  error(err, 0)
end
local raise = Link.raise

-- Numbers from cjson 2.1.0 are floats; an error code reads better whole.
local function whole(n)
  if math_type(n) == "float" then return tointeger(n) or n end
  return n
end

function Link:null_to_nil(v)
  if v == self.null then return nil end
  return v
end

function Link:protocol_error(response)
  local err = response.error
  if type(err) == "table" then
    local message = err.message
    return ProtocolError(whole(err.code),
      type(message) == "string" and message or tostring(message),
      self:null_to_nil(err.data), response)
  end
  return ProtocolError(nil, tostring(err), nil, response)
end

---------------------------------------------------------------------------
-- Pending calls
---------------------------------------------------------------------------

--[[ Calls are pending in two ways. A single call's waiter is in
`pending[id]`, with its deadline or timer. A batch's calls are not there
(a batch of a hundred would cost a hundred hash inserts and removals): the
batch is in `batches` and knows which of its ids still wait. ]]

--- The batch in flight that still waits for request `id`, if any.
local function batch_waiting(self, id)
  local list = self.batches
  for i = 1, #list do
    if list[i]:waits_for(id) then return list[i] end
  end
end

--- Whether anyone waits for the answer to request `id`.
function Link:waits_for(id)
  return self.pending[id] ~= nil or batch_waiting(self, id) ~= nil
end

--- Forgets call `id` and hands (ok, value) to whoever waits for it.
-- `at_once`: a task waiting for it runs now rather than on the next turn
-- (sched.resume_now says when that is allowed).
function Link:resolve(id, ok, value, at_once)
  local w, batch = self.pending[id], nil
  if w then
    self.pending[id], self.deadlines[id] = nil, nil
    local t = self.timers[id]
    if t then
      self.timers[id] = nil
      cancel(t)
    end
  else
    batch = batch_waiting(self, id)
    if not batch then return end
  end
  if self.max_in_flight then self:slot_freed() end
  if batch then return batch:resolve(id, ok, value) end
  if at_once then return resume_now(w, ok, value) end
  wake(w, ok, value)
end

--- A decoded response arrived (dispatch): resolve the call with its id.
function Link:take_response(response)
  local id = response.id
  if not self:waits_for(id) then
    if self.expired[id] then
      self.expired[id] = nil -- the late answer of a timed-out call
      return
    end
    local shown = type(id) == "string" and ('"' .. id .. '"') or tostring(whole(id))
    return self:report(ProtocolError(nil,
      "received a response with unknown id " .. shown, nil, response))
  end
  local err = response.error
  if err ~= nil and err ~= self.null then
    return self:resolve(id, false, self:protocol_error(response))
  end
  return self:resolve(id, true, self:null_to_nil(response.result))
end

--- Nobody waits for the answer to request `id` any more: remember it, so
-- that its answer is dropped quietly. A peer that never answers must not
-- grow this forever, so past a bound the oldest are forgotten (their late
-- answers, if any, are then reported as unknown ids).
function Link:forget_answer(id)
  if self.n_expired >= MAX_EXPIRED then self.expired, self.n_expired = {}, 0 end
  self:own("expired")[id] = true
  self.n_expired = self.n_expired + 1
end

--- A call's timer ran out: forget the call, fail its caller.
function Link:expire(id)
  if not self:waits_for(id) then return end
  self.timers[id] = nil
  self:forget_answer(id)
  self:resolve(id, false, TIMED_OUT)
end

--- The connection went: every waiting call fails, saying whether its
-- request had left (sent = true: outcome unknown) or not (safe to retry).
-- `unsent`: the set of ids whose requests never left, or nil.
function Link:fail_pending(cause, unsent)
  local ids = {}
  for id in pairs(self.pending) do ids[#ids + 1] = id end
  for _, b in ipairs(self.batches) do b:waiting_ids(ids) end
  for i = 1, #ids do
    local id = ids[i]
    local err = TransportError("Connection closed.", cause)
    err.sent = not (unsent and unsent[id])
    self:resolve(id, false, err)
  end
  self.expired, self.n_expired = NONE, 0
  -- no call is left with a deadline: its timer must not keep the link
  -- (and what it holds) alive until it runs out
  cancel(self.deadline_timer)
  self.deadline_timer, self.deadline_cursor = nil, self.next_id
end

--- A fresh request id.
function Link:new_id()
  local id = self.next_id
  self.next_id = id + 1
  return id
end

--[[ Call deadlines. A timer per call would cost an allocation and heap
work per call (and its cancel more heap work when the answer comes). But
calls that use the Server's default timeout expire in id order, so they
only record a deadline, and one timer walks them from the oldest id:
`deadline_cursor` is the lowest id that may still have one. Calls with
another timeout get a timer of their own. ]]

function Link:arm_deadlines(at)
  self.deadline_timer = timer(at - now(), Link.check_deadlines, self)
end

function Link:check_deadlines()
  self.deadline_timer = nil
  local deadlines, t = self.deadlines, now()
  local id, last = self.deadline_cursor, self.next_id - 1
  while id <= last do
    local at = deadlines[id]
    if at then
      if at > t then return self:arm_deadlines(at) end
      self:expire(id)
    end
    id = id + 1
    self.deadline_cursor = id
  end
end

-- conn:send refused: not open, or over max_message_size (nothing sent).
function Link.send_failed(why, kind, method)
  raise(TransportError(kind == "too_large" and "Message too large."
    or "Connection is not open.", why), method)
end
local send_failed = Link.send_failed

--[[ The send queue is bounded (conn:queue_limits; README "Limits"). A
send it refuses (kind "full") waits here for room: the core's "drained"
event wakes every waiter, each tries again. Waiting is bounded by the
caller's deadline (nil: none; the queue's own timeout then closes a
connection whose peer does not read, which wakes the waiters too). ]]

-- Takes waiter w out of `list` (its deadline passed) and wakes it: false.
-- Not in the list any more: it was woken with true already (the list was
-- handed over whole), and must not be queued a second time.
local function left_waiting(list, w)
  for i = 1, #list do
    if list[i] == w then
      table.remove(list, i)
      return wake(w, false)
    end
  end
end

local function room_expired(self, w) left_waiting(self.room_waiters, w) end

-- Waits in the list self[key] until woken; false when `deadline` (nil:
-- none) passed first, then `expired(self, w)` took it out of the list.
local function wait_listed(self, key, expired, deadline)
  local w = waiter()
  local list = self:own(key)
  list[#list + 1] = w
  local t = deadline and timer(deadline - now(), expired, self, w)
  local ok = wait(w)
  cancel(t)
  return ok
end

--- Waits until the send queue may have room; raises TimeoutError past
-- `deadline` (`timeout` seconds from the start), TransportError when the
-- connection goes meanwhile.
function Link:await_room(method, deadline, timeout)
  if not wait_listed(self, "room_waiters", room_expired, deadline) then
    raise(TimeoutError(("send queue full (the peer does not read fast enough), "
      .. "not sent within %g s"):format(timeout)), method)
  end
  if self.state ~= "open" then
    raise(TransportError("Connection is not open.", "closed while waiting for "
      .. "room in the send queue: " .. (self.close_cause or "not connected")), method)
  end
end

--- Core event: the send queue that was full has room again.
function Link:on_drained()
  self.skipping = nil
  local waiters = self.room_waiters
  if #waiters == 0 then return end
  self.room_waiters = NONE
  for i = 1, #waiters do wake(waiters[i], true) end
end

--- Sends again what `send(self, ...)` sent and was refused (why, kind):
-- while the queue is full, waits for room, for `timeout` seconds at most
-- (nil: no bound). Returns what is left of the timeout.
function Link:resend(method, timeout, why, kind, send, ...)
  local deadline = timeout and now() + timeout
  while kind == "full" do
    self:await_room(method, deadline, timeout)
    local ok
    ok, why, kind = send(self, ...)
    if ok then return deadline and deadline - now() end
  end
  send_failed(why, kind, method)
end

--- Reserves `count` consecutive request ids (a batch's); returns the first.
function Link:reserve_ids(count)
  local first = self.next_id
  self.next_id = first + count
  return first
end

--- Sends a batch the core writes itself (conn:send_batch, encode.c): `n`
-- messages described by `list` and `notify`, requests numbered from
-- `first`. Returns true, or false, why, kind (as conn:send).
function Link:send_batch(n, list, notify, first)
  return self.conn:send_batch(n, list, notify, first)
end

local function send_text(self, text, id) return self.conn:send(text, id) end
Link.send_text = send_text

--[[ Stack depth and memory. A task's stack grows to the deepest point it
reaches and keeps that while it waits: a task starts with 40 slots, and
the first time it needs more it has 80 (640 bytes more, for every call
waiting). A C function call takes 20 slots above its arguments. So the
common call path keeps few registers live where it calls C: the send in
request_args comes before any other local, the proxy call reaches it by a
tail call, and the waiting is a tail call too (await_answer, which calls
C itself rather than through helpers one level down). A task whose own
frame is small then waits within its first 40 slots. ]]

--- Waits for the answer to request `id`, just sent: its result, or raises
-- (the method is named by the prefix of its request).
function Link:await_answer(id, timeout, prefix)
  local w = task_waiter(co_running())
  self:own("pending")[id] = w -- the call is pending: with a deadline, or a timer
  if timeout then
    if timeout == self.timeout then
      local at = now() + timeout
      self:own("deadlines")[id] = at
      if not self.deadline_timer then self:arm_deadlines(at) end
    else
      self:own("timers")[id] = timer(timeout, Link.expire, self, id)
    end
  end
  if self.max_in_flight then self.in_flight = self.in_flight + 1 end
  local done, value
  if type(w) == "thread" then -- yield right here: a shallower stack per task
    done, value = co_yield(WAIT)
  else
    done, value = wait(w)
  end
  if done then return value end
  if value == TIMED_OUT then
    value = TimeoutError(("no answer within %g s"):format(timeout))
  end
  raise(value, self.method_names[prefix])
end

--- A call whose params are JSON text already (or nil: none).
function Link:request(prefix, params, method, timeout)
  if self.state ~= "open" or self.max_in_flight then
    timeout = self:await_turn(method, timeout)
  end
  local id = self:new_id()
  local text = request_message(prefix, params, id)
  local ok, why, kind = self.conn:send(text, id)
  if not ok then
    timeout = self:resend(method, timeout, why, kind, send_text, text, id)
  end
  return self:await_answer(id, timeout, prefix)
end

-- Sends the request `id` (nil: the notification) whose params are the
-- arguments `...`, encoded by the codec (the rules of
-- codec.params_from_args, or with named_params = false of
-- codec.positional_params_from_args): for what conn:send_call leaves,
-- values it cannot write or a codec of the user's.
local function send_encoded(self, prefix, id, ...)
  local params = codec.args_params(self.params_from_args, self.json, self.null,
    self.method_names[prefix], ...)
  if id then return self.conn:send(request_message(prefix, params, id), id) end
  return self.conn:send(notification_message(prefix, params))
end

-- Sends request `id` (nil: the notification) with the params `...`.
local function send_args(self, prefix, id, ...)
  local ok, why, kind = self.conn:send_call(prefix, id, ...)
  if ok ~= nil then return ok, why, kind end
  return send_encoded(self, prefix, id, ...)
end

-- request_args once the call must wait for its turn (see below), or for
-- room in the send queue (`id` given: its send was refused, why, kind).
local function request_after_turn(self, prefix, id, why, kind, ...)
  local method, timeout = self.method_names[prefix], self.timeout
  if not id then
    timeout = self:await_turn(method, timeout)
    id = self:new_id()
    local ok
    ok, why, kind = send_args(self, prefix, id, ...)
    if ok then return self:await_answer(id, timeout, prefix) end
  end
  timeout = self:resend(method, timeout, why, kind, send_args, prefix, id, ...)
  return self:await_answer(id, timeout, prefix)
end

--- A call of the method `prefix` names, whose params are the arguments
-- `...` (a proxy call), with the Server's timeout. The common case is
-- written out here, its send first (see "Stack depth" above).
function Link:request_args(prefix, ...)
  if self.state ~= "open" or self.max_in_flight then
    return request_after_turn(self, prefix, nil, nil, nil, ...)
  end
  local id = self.next_id
  self.next_id = id + 1
  local ok, why, kind = self.conn:send_call(prefix, id, ...)
  if ok == nil then ok, why, kind = send_encoded(self, prefix, id, ...) end
  if not ok then return request_after_turn(self, prefix, id, why, kind, ...) end
  return self:await_answer(id, self.timeout, prefix)
end

--- A notification whose params are the arguments `...`.
function Link:notify_args(prefix, method, ...)
  if self.state ~= "open" then self:await_turn(method, self.timeout) end
  local ok, why, kind = send_args(self, prefix, nil, ...)
  if not ok then self:resend(method, self.timeout, why, kind, send_args, prefix, nil, ...) end
end

--- Batches in flight, oldest first: a peer that cannot read a batch may
-- answer it with one error object whose id is null. Each of its calls
-- takes a slot (max_in_flight).
function Link:batch_started(b)
  local list = self:own("batches")
  list[#list + 1] = b
  if self.max_in_flight then self.in_flight = self.in_flight + b.count end
end

function Link:batch_done(b)
  local list = self.batches
  for i = 1, #list do
    if list[i] == b then table.remove(list, i) return end
  end
end

--- An error response with id null: fail the oldest batch in flight with
-- it. Returns false when no batch waits (then it is only reported).
function Link:take_null_id_error(response)
  local b = self.batches[1]
  local err = response.error
  if not b or err == nil or err == self.null then return false end
  for id = b.first, b.first + b.count - 1 do
    if b:waits_for(id) then self:resolve(id, false, self:protocol_error(response)) end
  end
  return true
end

---------------------------------------------------------------------------
-- Waiting for a turn: an open connection (while reconnecting) and a free
-- slot (max_in_flight). Returns what is left of the timeout.
---------------------------------------------------------------------------

local function not_open(self, method)
  local why = self.state == "connecting" and "connection is still opening"
    or self.state == "closing" and "connection is closing"
    or "not connected"
  raise(TransportError("Connection is not open.", why), method)
end

function Link:can_go()
  return self.state == "open"
    and (not self.max_in_flight or self.in_flight < self.max_in_flight)
end

local function turn_expired(self, w) left_waiting(self.turn_waiters, w) end

function Link:await_turn(method, timeout)
  local deadline = timeout and now() + timeout
  while not self:can_go() do
    if self.state ~= "open" and not self.reconnecting then not_open(self, method) end
    if not wait_listed(self, "turn_waiters", turn_expired, deadline) then
      if self.state == "open" then
        raise(TimeoutError(("no free slot within %g s (max_in_flight = %d)")
          :format(timeout, self.max_in_flight)), method)
      end
      raise(TimeoutError(("not reconnected within %g s"):format(timeout)), method)
    end
  end
  return deadline and deadline - now()
end

--- Wakes every caller waiting for a turn; each checks again.
function Link:wake_turns()
  local waiters = self.turn_waiters
  if #waiters == 0 then return end
  self.turn_waiters = NONE
  for i = 1, #waiters do wake(waiters[i], true) end
end

function Link:slot_freed()
  self.in_flight = self.in_flight - 1
  if self.turn_waiters[1] then self:wake_turns() end
end

---------------------------------------------------------------------------
-- Connection life
---------------------------------------------------------------------------

--- Starts a connection; returns the waiter that the open or closed event
-- will wake, or nil and a TransportError.
function Link:start_connect()
  local conn, failure = core.connect(self, self.connect_opts)
  if not conn then
    local cause = url_parse.explain(failure, self.connect_opts.address)
    return nil, TransportError(("connect to %s failed: %s"):format(self.url, cause), cause)
  end
  sched.io_started()
  if self.builtin_codec then conn:builtin_codec(true) end
  local q = self.send_queue
  if q then conn:queue_limits(q[1], q[2], q[3]) end
  if self.trace then conn:trace(self.trace) end
  self.conn, self.state = conn, "connecting"
  if self.max_in_flight then self.in_flight = 0 end
  local w = waiter()
  self.connect_waiter = w
  return w
end

--- Connects and waits for the handshake; returns true or nil, error.
function Link:connect()
  local w, err = self:start_connect()
  if not w then return nil, err end
  local t = self.connect_timeout and timer(self.connect_timeout, Link.connect_expired, self, w)
  local ok
  ok, err = wait(w)
  cancel(t)
  if not ok then return nil, err end
  return true
end

function Link:connect_expired(w)
  if self.connect_waiter ~= w then return end
  self.connect_waiter = nil
  self.conn:abort()
  wake(w, false, TimeoutError(("connect to %s timed out after %g s")
    :format(self.url, self.connect_timeout)))
end

function Link:close_expired()
  if self.conn then self.conn:abort() end
end

--- Runs the listeners of `event` in their own tasks (they may call).
function Link:emit(event, ...)
  local listeners = self.listeners[event]
  if not listeners then return end
  for i = 1, #listeners do sched.spawn_kind("service", listeners[i], ...) end
end

-- Core event handlers, on_<event> (see core.pop in drive.c).
function Link:on_open()
  self.state = "open"
  local w = self.connect_waiter
  self.connect_waiter = nil
  if w then wake(w, true) end
  self:emit("connect")
  if self.streams then self.streams:opened() end
  self:wake_turns()
end

--[[ An inbound message. The common one, a success response to a call of
ours, is read in C without building the envelope table: its result is
decoded where it lies (a result that is not JSON leaves it for the general
way, which settles the caller with the parse error). Everything else goes
the general way. ]]
local json_response, incoming = core.json_response, dispatch.incoming

--- The fast path; true when `text` was such a response and is resolved.
function Link:take_response_text(text)
  if not self.builtin_codec then return false end
  local id, value = json_response(text)
  if not (id and self:waits_for(id)) then return false end
  self:resolve(id, true, value)
  return true
end

--- Core event: a message. (A simple response never comes this way when
-- the codec is ours: the core has read it already, see Link:on_response.)
function Link:on_message(text)
  return incoming(self, text)
end

--- Core events: a request or a notification the core has read
-- (conn:builtin_codec; src/drive.c lists their values).
Link.on_request = dispatch.incoming_request
Link.on_notification = dispatch.incoming_notification

--- Core event: a response the core has read (conn:builtin_codec): its id
-- and its result.
function Link:on_response(id, value)
  if self.pending[id] or batch_waiting(self, id) then
    return self:resolve(id, true, value, true)
  end
  self:take_response({ jsonrpc = "2.0", id = id, result = value })
end

--- Core event: a batch answer of such responses, `n` pairs in `list`.
-- A batch takes its own answers in one go (Batch:take_responses).
function Link:on_responses(list, n)
  local pending, i, last = self.pending, 1, 2 * n
  while i <= last do
    local id, j = list[i], i
    if not pending[id] then
      local b = batch_waiting(self, id)
      if b then j = b:take_responses(list, i, last) end
    end
    if j == i then
      self:on_response(id, list[i + 1])
      j = i + 2
    end
    i = j
  end
end

local function close_cause(self, code, reason, failure, status, closed_here)
  if status and status ~= 0 and status ~= 101 then
    return ("handshake rejected: HTTP %d"):format(status)
  end
  if failure then return url_parse.explain(failure) end
  if closed_here and code == 1008 and reason == "send queue full" then
    return "send queue full for longer than send_queue_timeout (the peer does "
      .. "not read), connection closed (1008)"
  end
  if closed_here and code == 1009 then
    return ("incoming message larger than max_message_size (%d bytes), "
      .. "connection closed (1009)"):format(self.connect_opts.max_message_size
        or 16 * 1024 * 1024)
  end
  local text = closed_here and "connection closed" or "connection closed by peer"
  if reason and reason ~= "" then
    return ("%s (%d %s)"):format(text, code, reason)
  end
  return ("%s (%d)"):format(text, code)
end

function Link:on_closed(code, reason, failure, status, was_open, closed_here, unsent)
  sched.io_ended()
  local by_user = self.state == "closing"
  self.conn, self.state = nil, "closed"
  local cause = close_cause(self, code, reason, failure, status, closed_here)
  self.close_cause = cause
  local w = self.connect_waiter
  if w then
    self.connect_waiter = nil
    local err = TransportError(("connect to %s failed: %s"):format(self.url, cause), cause)
    err.status = status ~= 0 and status or nil
    wake(w, false, err)
  end
  if was_open then
    if closed_here and code == 1008 then self:report(TransportError(cause)) end
    self:fail_pending(cause, unsent)
    self:emit("disconnect", code, reason)
    if self.reconnect and not by_user then self:start_reconnecting() end
    if self.streams then self.streams:closed(cause) end
  end
  local waiters = self.close_waiters
  self.close_waiters = NONE
  for i = 1, #waiters do wake(waiters[i], true) end
  self:on_drained() -- senders waiting for room: the connection is gone
  if not self.reconnecting then self:wake_turns() end
end

---------------------------------------------------------------------------
-- Reconnecting: exponential backoff with jitter, in a service task.
---------------------------------------------------------------------------

-- A rejected handshake (4xx) or a certificate failure will not heal.
local function retryable(err)
  local status = err.status
  if status and status >= 400 and status < 500 then return false end
  return not (err.cause and err.cause:find("certificate", 1, true))
end

local function backoff(policy, attempt)
  local delay = policy.initial * policy.factor ^ (attempt - 1)
  if delay > policy.max then delay = policy.max end
  local jitter = policy.jitter * delay
  return delay - jitter + 2 * jitter * math.random()
end

function Link:reconnect_loop()
  local policy, attempt = self.reconnect, 0
  while self.reconnecting and not (policy.attempts and attempt >= policy.attempts) do
    attempt = attempt + 1
    sched.sleep(backoff(policy, attempt))
    if not self.reconnecting then return end
    local ok, err = self:connect()
    if ok then
      self.reconnecting = false
      self:emit("reconnect", attempt)
      return
    end
    self:report(err)
    if not retryable(err) then break end
  end
  self.reconnecting = false
  self:emit("give_up", attempt)
  if self.streams then self.streams:ended("gave up reconnecting") end
  self:wake_turns()
end

function Link:start_reconnecting()
  if self.reconnecting then return end
  self.reconnecting = true
  sched.spawn_kind("service", Link.reconnect_loop, self)
end

function Link:stop_reconnecting()
  if self.reconnecting and self.streams then self.streams:ended("reconnecting stopped") end
  self.reconnecting = false
  self:wake_turns()
end

---------------------------------------------------------------------------
-- The dispatch endpoint: replies, problems, handlers.
---------------------------------------------------------------------------

--- Sends a reply; false when the connection is gone (the reply is lost).
-- While the send queue is full, a task waits for room (the queue's own
-- timeout bounds that); other code (an error answered as a message is
-- read) hands the reply to a task that does, and reading from the peer
-- stops until those replies are queued: a peer that sends junk and never
-- reads cannot make us hold its answers without bound.
function Link:send(text)
  local conn = self.conn
  if conn == nil or self.state ~= "open" then return false end
  local ok, why, kind = conn:send(text)
  if ok or kind ~= "full" then return ok end
  local co, main = co_running()
  if main or not sched.is_task(co) then
    self.replies_waiting = (self.replies_waiting or 0) + 1
    conn:reading(false)
    sched.spawn_kind("service", Link.send_later, self, text, why, kind)
    return true
  end
  return pcall(self.resend, self, "reply", nil, why, kind, send_text, text)
end

--- Sends the success reply to the request whose id is raw_id (an integer or its
-- exact text) when the core writes it at once (a simple result, our codec);
-- false when not: then the caller encodes it and uses send.
function Link:send_result(raw_id, result)
  local conn = self.conn
  if conn == nil or self.state ~= "open" then return false end
  return conn:send_result(raw_id, result) == true
end

-- Link:send's task for a reply that waits for room.
function Link:send_later(text, why, kind)
  pcall(self.resend, self, "reply", nil, why, kind, send_text, text)
  self.replies_waiting = self.replies_waiting - 1
  -- dispatch's own pause (self.paused, max_concurrent) lifts it there
  if self.replies_waiting == 0 and not self.paused and self.conn then
    self.conn:reading(true)
  end
end

--- Something went wrong with nobody to raise into: the "error" listeners
-- hear it, else jsonrpc.on_error, else stderr.
function Link:report(err)
  local listeners = self.listeners.error
  if not listeners then return sched.report(err) end
  for i = 1, #listeners do
    local ok, why = pcall(listeners[i], err)
    if not ok then sched.report(why) end
  end
end

function Link:register(name, fn)
  self.handlers[name] = dispatch.check_handler(fn, name)
end

--- The fixed head of a request for method `name` (codec.method_prefix),
-- made once; method_names maps it back.
function Link:prefix_for(name)
  local prefix = self.prefixes[name]
  if not prefix then
    prefix = codec.method_prefix(self.json, name)
    self:own("prefixes")[name], self:own("method_names")[prefix] = prefix, name
  end
  return prefix
end

---------------------------------------------------------------------------


local RECONNECT_DEFAULTS = { initial = 0.5, max = 30, factor = 2, jitter = 0.2 }

local function reconnect_policy(value)
  if not value then return nil end
  if value == true then value = {} end
  if type(value) ~= "table" then error("option 'reconnect' must be true or a table", 4) end
  local policy = {}
  for k, default in pairs(RECONNECT_DEFAULTS) do
    local v = value[k] == nil and default or value[k]
    if type(v) ~= "number" or v < 0 then
      error(("option reconnect.%s must be a non-negative number"):format(k), 4)
    end
    policy[k] = v
  end
  policy.attempts = value.attempts
  return policy
end


local DEFAULT_CONNECT_TIMEOUT = 10
-- A client's send queue holds 10,000 pipelined calls of a few hundred bytes.
local DEFAULT_SEND_QUEUE = 4 * 1024 * 1024

-- named_params = false: a single table argument is one positional value.
local function named_params(value)
  if value == nil or value == true then return codec.params_from_args end
  if value == false then return codec.positional_params_from_args end
  error("option 'named_params' must be a boolean", 4)
end

--- A link for `url` with the Server options.
function Link.new(url, opts)
  local target = url_parse.parse(url)
  url = url_parse.redact(url) -- errors and tostring never show a password
  local json = opts.json or codec.default()
  if type(json.encode) ~= "function" or type(json.decode) ~= "function" then
    error("option 'json' must have encode and decode functions", 3)
  end
  return Link.init({
    url = url,
    json = json,
    null = json.null or codec.null,
    timeout = options.seconds(opts, "timeout", 3),
    connect_timeout = options.seconds(opts, "connect_timeout", 3) or DEFAULT_CONNECT_TIMEOUT,
    handler_timeout = options.seconds(opts, "handler_timeout", 3),
    connect_opts = url_parse.connect_options(target, opts),
    reconnect = reconnect_policy(opts.reconnect),
    max_in_flight = options.positive_integer(opts, "max_in_flight", 3),
    params_from_args = named_params(opts.named_params),
    send_queue = options.send_queue(opts, 3, DEFAULT_SEND_QUEUE),
    max_concurrent = options.positive_integer(opts, "max_concurrent_requests", 3),
    max_batch = options.positive_integer(opts, "max_batch", 3),
    listeners = { error = opts.on_error and { opts.on_error } },
    trace = trace.option(opts, url, 3),
  }, Link)
end

--- Gives `t` the state every link needs (what it lacks) and the class
-- `class` (Link or a subclass, such as a server's peer).
function Link.init(t, class)
  -- state, next_id, the counters and the bookkeeping tables: Link's
  -- defaults (above); what a class (a listener's peers) shares stays there
  if not t.handlers then t.handlers = {} end
  if not t.listeners then t.listeners = {} end
  if not t.params_from_args then t.params_from_args = codec.params_from_args end
  if t.json and not t.decode then
    t.decode = codec.safe_decoder(t.json)
    t.builtin_codec = codec.is_builtin(t.json)
  end
  return setmetatable(t, class or Link)
end

return Link
