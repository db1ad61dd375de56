--- Inbound messages, for either end of a connection: responses go to the
-- endpoint's waiting calls, requests and notifications to its handlers,
-- and nothing a peer sends can raise into unrelated code.
--
-- The endpoint interface (a Link is one; docs/design.md, "Contracts").
-- Read by dispatch:
--   `json` (codec: encode), `decode(text)` -> value | nil, err, `null`,
--   `handlers` (name -> function), `handler_timeout` (seconds or nil),
--   `state` ("open" while messages may flow), `conn` (the core
--   connection, for conn:reading; nil when gone), `replies_waiting`
--   (replies waiting for room in the send queue, or nil),
--   `max_concurrent`, `max_batch` (limits, or nil).
-- Called by dispatch:
--   `send(ep, text)` -> ok (a reply; never raises),
--   `report(ep, err)` (a problem nobody waits for),
--   `take_response(ep, response)` (a decoded response to a call of ours).
-- Optional:
--   `send_result(ep, raw_id, result)` -> bool: sends a success reply
--   when it can write it itself (else dispatch encodes it and sends);
--   `streams` (stream.lua): may take notifications first (`deliver`);
--   `waits_for(ep, id)` and `resolve(ep, id, ok, value)`: an undecodable
--   response still fails the call waiting for its id;
--   `take_response_text(ep, text)` -> bool: a batch element that is a
--   simple response, read in C (the built-in codec's fast path);
--   `take_null_id_error(ep, response)` -> bool: an error with id null
--   fails the oldest batch in flight.
-- Written by dispatch (its own state on the endpoint): `active`,
-- `paused`, `held`, `batch_job`, `resume_timer`.
-- @module jsonrpc_websocket.dispatch

local core = require "jsonrpc_websocket.core"
local sched = require "jsonrpc_websocket.scheduler"
local errors = require "jsonrpc_websocket.errors"
local options = require "jsonrpc_websocket.options"

local ProtocolError = errors.ProtocolError
local json_member, json_elements, json_request =
  core.json_member, core.json_elements, core.json_request
local type, pcall, tostring, next = type, pcall, tostring, next
local co_running, run_service = coroutine.running, sched.run_service
local unpack, concat = table.unpack, table.concat
local math_type = math.type

local M = {}

--- The endpoint each handler task serves: coroutine -> endpoint (weak), so
-- `jsonrpc.peer()` can find the calling peer.
M.task_endpoint = setmetatable({}, { __mode = "k" })
local task_endpoint = M.task_endpoint

local PARSE_ERROR = '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}'
local INVALID_REQUEST =
  '{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request"}}'

--- The text of an error response with the raw id text.
local function error_response(json, raw_id, code, message, data)
  local err = { code = code, message = message, data = data }
  local ok, text = pcall(json.encode, err)
  if not ok then
    err.data = nil
    ok, text = pcall(json.encode, err)
  end
  if not ok then -- code or message cannot be encoded either (found by fuzz/)
    text = '{"code":-32603,"message":"Internal error"}'
  end
  return '{"jsonrpc":"2.0","id":' .. raw_id .. ',"error":' .. text .. "}"
end
M.error_response = error_response

-- One element of a batch is done (with `text` to answer, or nothing): the
-- array goes out when the last one is.
local function element_done(ep, batch, text)
  if not batch then return end
  local replies = batch.replies
  if text then replies[#replies + 1] = text end
  batch.left = batch.left - 1
  if batch.left == 0 and #replies > 0 then
    ep:send("[" .. concat(replies, ",") .. "]")
  end
end

-- Where a reply goes: straight out, or into the batch being collected.
local function reply(ep, batch, text)
  if batch then return element_done(ep, batch, text) end
  ep:send(text)
end

-- A handler's error as the remote caller reads it: a string without the
-- "file.lua:12: " that error() put in front (the local report keeps it).
local function without_position(err)
  if type(err) ~= "string" then return tostring(err) end
  return err:match("^[^%s:]+:%d+: (.*)$") or err:match('^%[string ".-"%]:%d+: (.*)$') or err
end

-- The reply for a handler's outcome: its first result, or its error.
local function outcome_text(ep, raw_id, method, ok, result)
  local json = ep.json
  if ok then
    if result == nil then result = ep.null end
    local encoded, text = pcall(json.encode, result)
    if encoded then
      return '{"jsonrpc":"2.0","id":' .. raw_id .. ',"result":' .. text .. "}"
    end
    ep:report(ProtocolError(-32603, ("handler for '%s' returned a value that "
      .. "cannot be encoded: %s"):format(method, tostring(text))))
    return error_response(json, raw_id, -32603, "Internal error")
  end
  if ProtocolError.is(result) then
    return error_response(json, raw_id, result.code, result.message, result.data)
  end
  ep:report(ProtocolError(-32000, ("handler for '%s' failed: %s")
    :format(method, tostring(result))))
  return error_response(json, raw_id, -32000, "Server Error: " .. without_position(result))
end

--[[ Reading only as fast as we answer. An endpoint with `max_concurrent`
(a listener's peers: max_concurrent_requests) runs at most that many
handlers at once. At the limit it stops reading from the peer
(conn:reading(false)): what the peer sends next stays in the kernel, and
TCP holds the peer back. Messages read before that (at most one read's
worth) are held here in order, as is the rest of a batch; they go on when
handlers finish, a slot's worth per turn of the loop, so one peer's long
batch never keeps the loop from the other peers. ]]

local resume_held

-- Reading goes on, unless replies wait for room (see Link:send).
local function read_again(ep)
  ep.paused = false
  if ep.conn and (ep.replies_waiting or 0) == 0 then ep.conn:reading(true) end
end

local function slot_taken(ep)
  local active = (ep.active or 0) + 1
  ep.active = active
  if active >= ep.max_concurrent and not ep.paused and ep.conn then
    ep.paused = true
    ep.conn:reading(false)
  end
end

-- What waits (held messages, the rest of a batch) goes on in a later turn.
local function resume_later(ep)
  if not ep.resume_timer then ep.resume_timer = sched.timer(0, resume_held, ep) end
end

local function slot_freed(ep)
  ep.active = ep.active - 1
  if ep.batch_job or ep.held then
    resume_later(ep)
  elseif ep.paused and ep.active < ep.max_concurrent then
    read_again(ep)
  end
end

-- Whether a message must wait behind others or for a free slot.
local function must_hold(ep)
  return ep.batch_job or ep.held or (ep.active or 0) >= ep.max_concurrent
end

local function hold(ep, text)
  local held = ep.held
  if not held then
    held = { first = 1, last = 0 }
    ep.held = held
  end
  held.last = held.last + 1
  held[held.last] = text
  if not ep.paused and ep.conn then
    ep.paused = true
    ep.conn:reading(false)
  end
end

-- The answer to a handler's outcome (none for a notification's).
local function answer(ep, batch, raw_id, method, ok, result)
  if not raw_id then
    if not ok then
      ep:report(ProtocolError(-32000, ("handler for notification '%s' failed: %s")
        :format(method, tostring(result))))
    end
    return element_done(ep, batch)
  end
  if ok and not batch and ep.send_result and ep:send_result(raw_id, result) then return end
  reply(ep, batch, outcome_text(ep, raw_id, method, ok, result))
end

--[[ Handlers run at once, as their request is read, each in a service task
from the scheduler's pool (sched.run_service): one that returns without
waiting costs no coroutine, no slot and no timer. One that waits (it calls
a peer, sleeps) becomes a call in `waiting` from then on: it holds one of
the endpoint's max_concurrent slots and its handler_timeout runs (from
that moment: a handler that never waits cannot be stopped, and is
answered when it returns). With a host loop (host.lua) handlers run in
the host's tasks instead, queued, so they count as waiting from the
start. ]]
local waiting = setmetatable({}, { __mode = "k" }) -- task -> call

-- The body of a handler's task.
local function run_handler(ep, batch, raw_id, method, fn, ...)
  local co = co_running()
  task_endpoint[co] = ep
  local ok, result = pcall(fn, ...)
  task_endpoint[co] = nil
  local call = waiting[co]
  if not call then return answer(ep, batch, raw_id, method, ok, result) end
  waiting[co] = nil
  sched.cancel(call.timer)
  if not call.done then -- else handler_timeout answered already
    call.done = true
    answer(ep, batch, raw_id, method, ok, result)
  end
  if ep.max_concurrent then slot_freed(ep) end
end

local function handler_expired(ep, call)
  call.done = true
  ep:report(ProtocolError(-32603, ("handler for '%s' did not finish within %g s")
    :format(call.method, ep.handler_timeout)))
  if call.raw_id then
    reply(ep, call.batch, error_response(ep.json, call.raw_id, -32603,
      "Internal error: handler timed out"))
  else
    element_done(ep, call.batch)
  end
end

-- The handler's task `co` waits: from now on it is a call.
local function handler_waits(ep, co, batch, raw_id, method)
  local call = { raw_id = raw_id, method = method, batch = batch, done = false }
  if ep.handler_timeout then
    call.timer = sched.timer(ep.handler_timeout, handler_expired, ep, call)
  end
  waiting[co] = call
  if ep.max_concurrent then slot_taken(ep) end
end

local function start_handler(ep, batch, raw_id, method, fn, ...)
  local co, done = run_service(run_handler, ep, batch, raw_id, method, fn, ...)
  if not done then handler_waits(ep, co, batch, raw_id, method) end
end

-- The arguments of array params: JSON null at argument level arrives as
-- nil.
local function positional(ep, params)
  local n, null = #params, ep.null
  for i = 1, n do
    if params[i] == null then params[i] = nil end
  end
  return unpack(params, 1, n)
end

-- Whether decoded params (a table) were a JSON object; [] and {} decode
-- alike: then the text tells.
local function is_object(params, text)
  if next(params) == nil then
    local raw = json_member(text, "params")
    return raw ~= nil and raw:sub(1, 1) == "{"
  end
  return params[1] == nil and math_type(next(params)) ~= "integer"
end

local function reject(ep, batch, raw_id, code, message, report)
  ep:report(ProtocolError(code, report))
  if raw_id then
    reply(ep, batch, error_response(ep.json, raw_id, code, message))
  else
    element_done(ep, batch)
  end
end

-- RFC 8259 numbers only: a lenient decoder may have accepted "1." or "01".
local function is_json_number(raw)
  local int, rest = raw:match("^%-?(%d+)(.*)$")
  if not int or (#int > 1 and int:sub(1, 1) == "0") then return false end
  rest = rest:gsub("^%.%d+", "", 1)
  rest = rest:gsub("^[eE][%+%-]?%d+", "", 1)
  return rest == ""
end

--- The id to echo: its exact text when that is sound JSON, else the
-- decoded id encoded again (an escaped "i\u0064" key, a lenient number).
local function raw_id_of(ep, id, text)
  local raw = json_member(text, "id")
  if raw then
    local c = raw:sub(1, 1)
    if c == '"' or raw == "null" or is_json_number(raw) then return raw end
  end
  local ok, encoded = pcall(ep.json.encode, id)
  return ok and encoded or "null"
end

-- A request with a sound envelope: its method, the id's exact text (nil
-- for a notification), and params: nil, or a table (an object when
-- is_object, else an array); anything else is answered -32602.
-- The handler for method; nil when there is none, and then the request
-- is answered -32601 (a notification: done).
local function handler_for(ep, batch, method, raw_id)
  local fn = ep.handlers[method]
  if fn then return fn end
  if not raw_id then return element_done(ep, batch) end -- unknown notification
  reply(ep, batch, error_response(ep.json, raw_id, -32601, "Method not found"))
end

local function serve(ep, batch, method, raw_id, params, params_is_object)
  local streams = not raw_id and ep.streams -- subscriptions first (stream.lua)
  if streams and streams:deliver(method, params) then return element_done(ep, batch) end
  local fn = handler_for(ep, batch, method, raw_id)
  if not fn then return end
  if params == nil then return start_handler(ep, batch, raw_id, method, fn) end
  if type(params) ~= "table" then
    return reject(ep, batch, raw_id, -32602, "Invalid params",
      ("received params for '%s' that are neither array nor object"):format(method))
  end
  if params_is_object then return start_handler(ep, batch, raw_id, method, fn, params) end
  return start_handler(ep, batch, raw_id, method, fn, positional(ep, params))
end

-- Exactly n of the values a, b, c, d.
local function first_of(n, a, b, c, d)
  if n == 2 then return a, b
  elseif n == 1 then return a
  elseif n == 0 then return
  elseif n == 3 then return a, b, c end
  return a, b, c, d
end

local INLINE_ARGS = core.INLINE_ARGS

-- A request the core has read (scan.c): its method, its id as the reply
-- echoes it, and its handler's nargs arguments (a, b, c, d; more than
-- INLINE_ARGS: the table a holds them).
local function serve_read(ep, batch, method, raw_id, nargs, a, b, c, d)
  local fn = handler_for(ep, batch, method, raw_id)
  if not fn then return end
  if nargs > INLINE_ARGS then
    return start_handler(ep, batch, raw_id, method, fn, unpack(a, 1, nargs))
  end
  return start_handler(ep, batch, raw_id, method, fn, first_of(nargs, a, b, c, d))
end

local function request(ep, msg, text, batch)
  local id = msg.id
  if id ~= nil and id ~= ep.null and type(id) ~= "string" and type(id) ~= "number" then
    return reject(ep, batch, "null", -32600, "Invalid Request",
      "received a request whose id is neither a string, a number nor null")
  end
  local raw_id = id ~= nil and raw_id_of(ep, id, text) or nil
  local method = msg.method
  if type(method) ~= "string" then
    return reject(ep, batch, raw_id or "null", -32600, "Invalid Request",
      "received a request whose method is not a string")
  end
  local params = msg.params
  return serve(ep, batch, method, raw_id, params,
    type(params) == "table" and is_object(params, text))
end

local function response(ep, msg, batch)
  if batch then batch.left = batch.left - 1 end
  local id = msg.id
  if id == ep.null and ep.take_null_id_error and ep:take_null_id_error(msg) then return end
  if id == nil or id == ep.null then
    local err = msg.error
    local code, what
    if type(err) == "table" then
      code, what = err.code, ": " .. tostring(err.message)
    elseif err ~= nil then
      what = ": " .. tostring(err)
    end
    return ep:report(ProtocolError(code, (id == nil
      and "received a response without an id"
      or "received a response with id null (the peer could not read one of "
        .. "our messages?)") .. (what or ""), nil, msg))
  end
  ep:take_response(msg)
end

-- One decoded message object (alone or a batch element).
local function message(ep, msg, text, batch)
  if type(msg) ~= "table" then
    return reject(ep, batch, "null", -32600, "Invalid Request",
      "received JSON that is not a JSON-RPC message: " .. text:sub(1, 60))
  end
  if msg.method ~= nil then return request(ep, msg, text, batch) end
  if msg.result ~= nil or msg.error ~= nil then return response(ep, msg, batch) end
  if not batch and not ep.listener and msg.jsonrpc == nil and msg.id == nil then
    -- not JSON-RPC at all (rpc-websockets' {"notification": ...}): a client
    -- does not answer it; on("message") listeners may read it
    return ep:emit("message", msg, text)
  end
  return reject(ep, batch, "null", -32600, "Invalid Request",
    "received an object that is neither request nor response: " .. text:sub(1, 60))
end

local OPEN_BRACE = ("{"):byte()

-- The first character of a message past any space ("{" at a glance).
local function first_char(text)
  return text:byte(1) == OPEN_BRACE and "{" or text:match("^%s*(.)")
end

-- A response the codec could not decode (too deep, not JSON) whose id can
-- still be read: its caller fails with `err` rather than wait forever.
-- Returns true when it resolved one.
local function resolve_one(ep, text, err)
  local raw = json_member(text, "id")
  if not raw or not (json_member(text, "result") or json_member(text, "error")) then
    return false
  end
  local id
  if raw:sub(1, 1) == '"' then id = ep.decode(raw)
  else id = math.tointeger(tonumber(raw)) or tonumber(raw) end
  if id == nil or not ep:waits_for(id) then return false end
  ep:resolve(id, false, err)
  return true
end

-- The same for a text that is not JSON as a whole: a single response
-- (resolve_one), or an array of them (a batch answer with one bad
-- element), whose elements are then read one by one: an answer that
-- decodes alone is taken, one that does not settles its caller with err.
-- Returns true when it settled any.
local function resolve_undecodable(ep, text, err)
  if not ep.waits_for then return false end
  if first_char(text) ~= "[" then return resolve_one(ep, text, err) end
  local resolved = false
  for _, el in ipairs(json_elements(text, ep.max_batch, true) or {}) do
    local msg = ep.decode(el)
    if type(msg) == "table" and msg.method == nil and msg.id ~= nil
        and (msg.result ~= nil or msg.error ~= nil) and ep:waits_for(msg.id) then
      ep:take_response(msg)
      resolved = true
    elseif msg == nil and resolve_one(ep, el, err) then
      resolved = true
    end
  end
  return resolved
end

-- The decoded message, or nil (reported; `resolved` true when it was a
-- response whose caller has its error now, see resolve_undecodable).
local function decode(ep, text)
  local msg, err = ep.decode(text)
  if msg ~= nil then return msg end
  if err == nil then return ep.null end -- the text was null
  local problem = ProtocolError(-32700, "received a message that is not JSON: "
    .. tostring(err):sub(1, 200))
  ep:report(problem)
  return nil, resolve_undecodable(ep, text, problem)
end

-- Works through a batch's elements from batch.next on. With a limit on
-- handlers at once (max_concurrent), it starts at most that many in one
-- turn, and none while that many wait: the rest stays in ep.batch_job
-- for a later turn, so one peer's long batch never holds up the others.
local function continue_batch(ep, batch)
  local elements, n, max = batch.elements, batch.n, ep.max_concurrent
  local take_response_text, builtin = ep.take_response_text, ep.builtin_codec
  local i = batch.next
  local last = max and i + max - 1 or n
  while i <= n do
    if max and (i > last or (ep.active or 0) >= max) then
      batch.next, ep.batch_job = i, batch
      -- when slots are full, the next one freed resumes the batch
      if (ep.active or 0) < max then resume_later(ep) end
      return
    end
    local el = elements[i]
    elements[i] = nil -- done with it: its memory can go
    i = i + 1
    local kind, method, x, y, a, b, c, d
    if builtin then kind, method, x, y, a, b, c, d = json_request(el) end
    if kind == "on_request" then
      serve_read(ep, batch, method, x, y, a, b, c, d)
    elseif kind then -- a notification: params, params_is_object
      serve(ep, batch, method, nil, x, y)
    elseif take_response_text and take_response_text(ep, el) then
      batch.left = batch.left - 1 -- a response: nothing to answer
    else
      local msg, resolved = decode(ep, el)
      if resolved then
        batch.left = batch.left - 1 -- a response: nothing to answer
      elseif msg == nil then
        reply(ep, batch, PARSE_ERROR)
      else
        message(ep, msg, el, batch)
      end
    end
  end
  if ep.batch_job == batch then ep.batch_job = nil end
end

local function batch_of(ep, text)
  local elements = json_elements(text, ep.max_batch)
  if elements == false then
    ep:report(ProtocolError(-32600, ("received a batch longer than max_batch (%d)")
      :format(ep.max_batch)))
    return ep:send(INVALID_REQUEST)
  end
  if not elements then -- not JSON: the decoder says why
    local msg, resolved = decode(ep, text)
    if resolved then return end -- it was an answer of ours, read as far as it could be
    if msg == nil then return ep:send(PARSE_ERROR) end
    elements = {} -- a lenient codec read it: an invalid batch all the same
  end
  if #elements == 0 then
    ep:report(ProtocolError(-32600, "received an empty batch"))
    return ep:send(INVALID_REQUEST)
  end
  local n = #elements
  continue_batch(ep, { left = n, replies = {}, elements = elements, n = n, next = 1 })
end

local function incoming(ep, text)
  local first = first_char(text)
  if first == "[" then return batch_of(ep, text) end
  local msg, resolved = decode(ep, text)
  if resolved then return end
  if msg == nil then return ep:send(PARSE_ERROR) end
  if first == "{" then return message(ep, msg, text) end
  ep:report(ProtocolError(-32600, "received JSON that is not a JSON-RPC message: "
    .. text:sub(1, 60)))
end

--- Handles one inbound websocket message (text or binary, as a string).
-- Whatever it holds, nothing is raised: problems go to ep:report. (The
-- scheduler calls this under pcall and reports escapes the same way.)
function M.incoming(ep, text)
  if ep.max_concurrent and must_hold(ep) then return hold(ep, text) end
  return incoming(ep, text)
end

--- Core events of requests and notifications the core has read
-- (scan.c; drive.c lists their values), handled as M.incoming handles a
-- text. Held, they wait as { fn, ... } for fn(ep, nil, ...).
function M.incoming_request(ep, method, raw_id, nargs, a, b, c, d)
  if ep.max_concurrent and must_hold(ep) then
    return hold(ep, { serve_read, method, raw_id, nargs, a, b, c, d })
  end
  return serve_read(ep, nil, method, raw_id, nargs, a, b, c, d)
end

function M.incoming_notification(ep, method, params, params_is_object)
  if ep.max_concurrent and must_hold(ep) then
    return hold(ep, { serve, method, nil, params, params_is_object })
  end
  return serve(ep, nil, method, nil, params, params_is_object)
end

-- The next held message (a text, or an event read already) goes on.
local function next_held(ep, held)
  local i = held.first
  local item = held[i]
  held[i], held.first = nil, i + 1
  if held.first > held.last then ep.held = nil end
  if type(item) == "string" then return incoming(ep, item) end
  item[1](ep, nil, item[2], item[3], item[4], item[5], item[6], item[7], item[8])
end

-- A timer's work (see slot_freed, continue_batch): what waited goes on,
-- at most max_concurrent messages a turn and as far as slots allow;
-- reading resumes once nothing waits.
function resume_held(ep)
  ep.resume_timer = nil
  if ep.state ~= "open" then -- gone: what waited is dropped
    ep.batch_job, ep.held = nil, nil
    return
  end
  local max, started = ep.max_concurrent, 0
  while (ep.active or 0) < max do
    if ep.batch_job then
      continue_batch(ep, ep.batch_job)
      if ep.batch_job then return end -- it goes on in a later turn
    elseif not ep.held then
      break
    elseif started == max then
      return resume_later(ep)
    else
      started = started + 1
      next_held(ep, ep.held)
    end
  end
  if ep.paused and not (ep.batch_job or ep.held) and (ep.active or 0) < max then
    read_again(ep)
  end
end

--- Checks a handler value: a function, a callable table, or nil.
function M.check_handler(fn, name)
  if fn == nil or type(fn) == "function" then return fn end
  local mt = getmetatable(fn)
  if type(mt) == "table" and mt.__call then return fn end
  error(("handler for '%s' must be a function or nil"):format(name), options.caller_level())
end

return M
