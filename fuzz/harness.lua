--- Lua side of the inbound-message fuzzer (fuzz/fuzz_inbound.c drives it).
-- One Server whose link is fed by a detached connection (no wsi: every
-- send fails as on a dead socket), handlers of every kind, calls of ours
-- waiting for answers; and the checks whose failure is a finding:
--   * an error reaches nobody (scheduler on_error, or a report that is
--     not a ProtocolError: a Lua error dispatch caught in its last pcall);
--   * a reply we would send is not valid JSON-RPC;
--   * after the close a call of ours or a handler is still running.
-- Called with { fail = fn(msg), new_conn = fn(owner, max) }; returns the
-- harness table and the sentinel connection.

local fuzz = ...
local jsonrpc = require "jsonrpc_websocket"
local sched = require "jsonrpc_websocket.scheduler"
local Link = require "jsonrpc_websocket.link"
local errors = require "jsonrpc_websocket.errors"
local cjson = require "cjson"

local ProtocolError, TransportError = errors.ProtocolError, errors.TransportError
local fail = fuzz.fail
local Link_send = Link.send

local H = {}

-- What a strict peer would accept: RFC 8259 numbers only.
local strict = cjson.new()
strict.decode_invalid_numbers(false)
strict.decode_max_depth(100000)

local server = jsonrpc.Server("ws://127.0.0.1:1/fuzz")
local link
for k, v in pairs(server) do
  if type(k) == "table" then link = v end -- the private LINK key
end
assert(getmetatable(link) == Link, "harness: no link in Server")

-- Every error with nobody to raise into lands here.
jsonrpc.on_error = function(err)
  fail("error reached the scheduler's on_error: " .. tostring(err))
end
server:on("error", function(err)
  if not ProtocolError.is(err) then
    fail("a non-protocol error was reported: " .. tostring(err))
  end
end)

---------------------------------------------------------------------------
-- Replies: checked, then sent through the real Link.send (which fails).
---------------------------------------------------------------------------
local function check_response(r, text)
  if type(r) ~= "table" or r.jsonrpc ~= "2.0" or r.id == nil
      or (r.result == nil) == (r.error == nil)
      or (r.error ~= nil and type(r.error) ~= "table") then
    fail("reply is not a JSON-RPC response: " .. text:sub(1, 300))
  end
end

local function check_reply(text)
  if type(text) ~= "string" then fail("reply is not a string") end
  if not utf8.len(text) then -- it would go out in a text frame
    fail("reply is not UTF-8: " .. text:sub(1, 300))
  end
  local ok, v = pcall(strict.decode, text)
  if not ok then
    fail("reply is not valid JSON (" .. tostring(v) .. "): " .. text:sub(1, 300))
  end
  if text:match("^%s*%[") then
    if #v == 0 then fail("empty batch reply: " .. text:sub(1, 300)) end
    for i = 1, #v do check_response(v[i], text) end
  else
    check_response(v, text)
  end
end

function link.send(self, text) -- shadows Link.send for this link only
  check_reply(text)
  local sent = Link_send(self, text)
  if sent ~= false then fail("send on a detached connection returned " .. tostring(sent)) end
  return sent
end

---------------------------------------------------------------------------
-- Handlers: every handler's task is counted so none can be left behind.
---------------------------------------------------------------------------
local running = 0

local function counted(fn)
  return function(...)
    running = running + 1
    local r = table.pack(pcall(fn, ...))
    running = running - 1
    if r[1] then return table.unpack(r, 2, r.n) end
    error(r[2], 0)
  end
end

local function sleeps(n, ...)
  n = math.type(n) == "integer" and n or 1
  for _ = 1, math.max(0, math.min(n, 3)) do sched.sleep(0) end
  return ...
end

server.echo = counted(function(...) return ... end)
server.count = counted(function(...) return select("#", ...) end)
server.fail = counted(function() error("handler fails on purpose") end)
server.raise = counted(function(code, message, data)
  error(ProtocolError(code, message, data)) -- whatever the peer chose
end)
server.callback = counted(function(...) return server.echo(...) end)
server.notify_back = counted(function(...) server:notify("echo", ...) end)
server.sleep = counted(sleeps)
server.app.nested.echo = counted(function(...) return ... end)
server:register("close", counted(function() return "close" end))
server:register("callable", setmetatable({}, { __call = counted(function(_, ...)
  return { n = select("#", ...), ... }
end) }))

---------------------------------------------------------------------------
-- Calls of ours waiting for answers, made through the real request path
-- over a connection stand-in that accepts their requests.
---------------------------------------------------------------------------
local accepting = {
  send = function() return 1 end, -- a message sequence number
  send_call = function() return true end,
  send_batch = function() return true end,
  close = function() return true end,
  abort = function() end,
}
local waiting = 0

local function caller(fn, ...)
  waiting = waiting + 1
  local ok, err = pcall(fn, ...)
  waiting = waiting - 1
  if not ok and not TransportError.is(err) and not ProtocolError.is(err) then
    fail("a call raised something else than an rpc error: " .. tostring(err))
  end
end

--- A fresh connection, as ws_connect leaves it.
function H.begin(max_message, pending, handler_timeout_zero)
  if link.state ~= "closed" or next(link.pending) or link.batches[1] then
    fail("the previous connection was not cleaned up")
  end
  local conn = fuzz.new_conn(link, max_message)
  if link.builtin_codec then conn:builtin_codec(true) end -- as start_connect does
  link.connect_opts.max_message_size = max_message
  link.next_id, link.expired, link.n_expired = 1, {}, 0
  link.handler_timeout = handler_timeout_zero and 0 or nil
  sched.io_started()
  link.state = "open"
  if pending then
    link.conn = accepting
    sched.spawn(caller, server.add, 1, 2)                               -- id 1
    sched.spawn(caller, server.call, server, "sub", { a = 1 }, { timeout = 1e6 }) -- id 2
    sched.spawn(caller, server.call, server, "late", nil, { timeout = 0 }) -- id 3
    sched.spawn(caller, server.batch, server, function(b)                  -- ids 4-6
      b.add(1, 2)
      b.echo { a = 1 }
      b:notify("log", "n")
      b.app.nested.get()
    end, { timeout = 1e6 })
    sched.sleep(0) -- they send and wait; id 3 times out
  end
  link.conn = conn
  return conn
end

local box
local sentinel_owner = {
  on_message = function() sched.wake(box, true) end,
}

--- Pops and dispatches what is queued: the scheduler's own turn, until the
-- sentinel (queued last) has been dispatched.
function H.dispatch()
  box = {}
  sched.wait(box)
end

--- One scheduler turn without I/O: ready tasks, due timers.
function H.turn()
  sched.sleep(0)
end

--- After the close: everything must have come to an end.
function H.finish()
  for _ = 1, 6 do sched.sleep(0) end
  if link.state ~= "closed" then fail("link not closed: " .. tostring(link.state)) end
  if waiting ~= 0 then fail(waiting .. " call(s) still waiting after the close") end
  if next(link.pending) then fail("pending calls left after the close") end
  if link.batches[1] then fail("a batch still in flight after the close") end
  if running ~= 0 then fail(running .. " handler(s) still running after the close") end
end

local sentinel = fuzz.new_conn(sentinel_owner, 16)
sched.io_started() -- the sentinel: I/O that can still happen
return H, sentinel
