--- The client: `Server(url, opts)` objects, their method proxies, and the
-- link that owns one websocket connection at a time.
-- @module jsonrpc_websocket.client

local core = require "jsonrpc_websocket.core"
local sched = require "jsonrpc_websocket.scheduler"
local codec = require "jsonrpc_websocket.codec"
local errors = require "jsonrpc_websocket.errors"
local url_parse = require "jsonrpc_websocket.url"
local dispatch = require "jsonrpc_websocket.dispatch"

local TransportError, TimeoutError, ProtocolError =
  errors.TransportError, errors.TimeoutError, errors.ProtocolError
local type, pairs, rawget, rawset, setmetatable, error, pcall =
  type, pairs, rawget, rawset, setmetatable, error, pcall
local math_type, tointeger = math.type, math.tointeger
local waiter, wait, wake, timer, cancel =
  sched.waiter, sched.wait, sched.wake, sched.timer, sched.cancel
local request_message, notification_message = codec.request, codec.notification

local M = {}

local CLOSE_WAIT = 2 -- seconds close() waits for the peer's close frame
local DEFAULT_CONNECT_TIMEOUT = 10

-- Private keys: a Server's link, a proxy's name and request prefix.
local LINK, NAME, PREFIX = {}, {}, {}
local TIMED_OUT = {} -- what expire() delivers to the waiting caller

---------------------------------------------------------------------------
-- The link: connection state, pending calls. It owns the core events.
---------------------------------------------------------------------------
local Link = {}
Link.__index = Link

local function raise(err, method)
  err.method = method or err.method
  error(err, 0)
end

local function not_open(self, method)
  local why = self.state == "connecting" and "connection is still opening"
    or self.state == "closing" and "connection is closing"
    or "not connected"
  raise(TransportError("Connection is not open.", why), method)
end

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

--- A response arrived: hand it to whoever waits for its id.
function Link:settle(response)
  local id = response.id
  local w = id ~= nil and self.pending[id]
  if not w then
    if id ~= nil and self.expired[id] then
      self.expired[id] = nil -- the late answer of a timed-out call
      return
    end
    return self:report(ProtocolError(nil,
      "received a response with unknown id " .. tostring(whole(id)), nil, response))
  end
  self.pending[id] = nil
  local t = self.timers[id]
  if t then
    self.timers[id] = nil
    cancel(t)
  end
  local err = response.error
  if err ~= nil and err ~= self.null then
    return wake(w, false, self:protocol_error(response))
  end
  return wake(w, true, self:null_to_nil(response.result))
end

-- Core event handlers (see core.pop).
function Link:open()
  self.state = "open"
  local w = self.connect_waiter
  self.connect_waiter = nil
  if w then wake(w, true) end
end

function Link:message(data)
  dispatch.incoming(self, data)
end

--- Sends a reply; false when the connection is gone (the reply is lost).
function Link:send(text)
  local conn = self.conn
  return conn ~= nil and self.state == "open" and conn:send(text)
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

local function close_cause(self, code, reason, failure, status, closed_here)
  if status and status ~= 0 and status ~= 101 then
    return ("handshake rejected: HTTP %d"):format(status)
  end
  if failure then return url_parse.explain(failure) end
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

function Link:fail_pending(cause)
  local pending, timers = self.pending, self.timers
  self.pending, self.timers, self.expired = {}, {}, {}
  for _, t in pairs(timers) do cancel(t) end
  for _, w in pairs(pending) do
    wake(w, false, TransportError("Connection closed.", cause))
  end
end

function Link:closed(code, reason, failure, status, was_open, closed_here)
  sched.io_ended()
  self.conn, self.state = nil, "closed"
  self.close_code, self.close_reason = code, reason
  local cause = close_cause(self, code, reason, failure, status, closed_here)
  local w = self.connect_waiter
  if w then
    self.connect_waiter = nil
    wake(w, false, TransportError(("connect to %s failed: %s")
      :format(self.url, cause), cause))
  end
  if was_open then self:fail_pending(cause) end
  local waiters = self.close_waiters
  self.close_waiters = {}
  for i = 1, #waiters do wake(waiters[i], true) end
end

function Link:request(prefix, params, method, timeout)
  if self.state ~= "open" then not_open(self, method) end
  local id = self.next_id
  self.next_id = id + 1
  local ok, why = self.conn:send(request_message(prefix, params, id))
  if not ok then raise(TransportError("Connection is not open.", why), method) end
  local w = waiter()
  self.pending[id] = w
  if timeout then self.timers[id] = timer(timeout, Link.expire, self, id) end
  local done, value = wait(w)
  if done then return value end
  if value == TIMED_OUT then
    value = TimeoutError(("no answer within %g s"):format(timeout))
  end
  raise(value, method)
end

--- A call's timer ran out: forget the call, fail its caller.
function Link:expire(id)
  local w = self.pending[id]
  if not w then return end
  self.pending[id], self.timers[id] = nil, nil
  self.expired[id] = true
  wake(w, false, TIMED_OUT)
end

function Link:notify(prefix, params, method)
  if self.state ~= "open" then not_open(self, method) end
  local ok, why = self.conn:send(notification_message(prefix, params))
  if not ok then raise(TransportError("Connection is not open.", why), method) end
end

function Link:register(name, fn)
  self.handlers[name] = dispatch.check_handler(fn, name)
end

--- The cached proxy for a method name.
function Link:proxy(name)
  local p = self.proxies[name]
  if not p then
    p = setmetatable({ [NAME] = name, [LINK] = self }, M.proxy_mt)
    self.proxies[name] = p
  end
  return p
end

function Link:prefix_for(name)
  local prefix = self.prefixes[name]
  if not prefix then
    prefix = codec.method_prefix(self.json, name)
    self.prefixes[name] = prefix
  end
  return prefix
end

---------------------------------------------------------------------------
-- Method proxies: server.a.b.c(...) calls "a.b.c".
---------------------------------------------------------------------------
local proxy_mt = {}
M.proxy_mt = proxy_mt

proxy_mt.__index = function(p, key)
  if type(key) ~= "string" then return nil end
  return p[LINK]:proxy(p[NAME] .. "." .. key)
end

proxy_mt.__call = function(p, ...)
  local link = p[LINK]
  local prefix = p[PREFIX]
  if not prefix then
    prefix = link:prefix_for(p[NAME])
    rawset(p, PREFIX, prefix)
  end
  local params = codec.params_from_args(link.json, link.null, ...)
  return link:request(prefix, params, p[NAME], link.timeout)
end

-- server.ns.method = fn registers a handler for "ns.method".
proxy_mt.__newindex = function(p, key, fn)
  if type(key) ~= "string" then error("handler names must be strings", 2) end
  p[LINK]:register(p[NAME] .. "." .. key, fn)
end

proxy_mt.__tostring = function(p)
  return "jsonrpc_websocket method proxy '" .. p[NAME] .. "'"
end

---------------------------------------------------------------------------
-- Server: the public object.
---------------------------------------------------------------------------
local Server = {}
local server_mt = { __name = "jsonrpc_websocket.Server" }

local function link_of(server)
  local link = type(server) == "table" and rawget(server, LINK)
  if not link then error("expected a jsonrpc_websocket Server (use server:method())", 3) end
  return link
end

--- Opens the connection; raises TransportError. Waits for the handshake.
function Server:ws_connect()
  local link = link_of(self)
  if link.state == "closing" then self:close() end
  if link.state ~= "closed" then
    raise(TransportError("Connection already open.", "already " .. link.state))
  end
  local conn, failure = core.connect(link, link.connect_opts)
  if not conn then
    local cause = url_parse.explain(failure, link.connect_opts.address)
    raise(TransportError(("connect to %s failed: %s"):format(link.url, cause), cause))
  end
  sched.io_started()
  link.conn, link.state = conn, "connecting"
  local w = waiter()
  link.connect_waiter = w
  local t = link.connect_timeout and timer(link.connect_timeout, Link.connect_expired, link, w)
  local ok, err = wait(w)
  cancel(t)
  if not ok then raise(err) end
  return self
end
Server.connect = Server.ws_connect

function Link:connect_expired(w)
  if self.connect_waiter ~= w then return end
  self.connect_waiter = nil
  self.conn:abort()
  wake(w, false, TimeoutError(("connect to %s timed out after %g s")
    :format(self.url, self.connect_timeout)))
end

--- Closes gracefully (close frame 1000, brief wait for the peer's).
-- Idempotent.
function Server:close()
  local link = link_of(self)
  if link.state == "closed" then return end
  if link.state == "connecting" then
    link.conn:abort()
  elseif link.state == "open" then
    link.state = "closing"
    link.conn:close(1000)
  end
  if link.state == "closed" then return end
  local w = waiter()
  local waiters = link.close_waiters
  waiters[#waiters + 1] = w
  local t = timer(CLOSE_WAIT, Link.close_expired, link)
  wait(w)
  cancel(t)
end

function Link:close_expired()
  if self.conn then self.conn:abort() end
end

--- call(method, params, opts): params nil, a sequence (array) or a record
-- (object); opts.timeout overrides the default timeout.
function Server:call(method, params, opts)
  local link = link_of(self)
  if type(method) ~= "string" then error("bad argument #1 to 'call' (string expected)", 2) end
  local json_params = codec.params_from_table(link.json, link.null, params)
  local timeout = link.timeout
  if opts ~= nil then
    if type(opts) ~= "table" then error("bad argument #3 to 'call' (table expected)", 2) end
    if opts.timeout ~= nil then timeout = opts.timeout end
  end
  return link:request(link:prefix_for(method), json_params, method, timeout)
end

--- notify(method, ...): a notification; same params rules as proxies.
function Server:notify(method, ...)
  local link = link_of(self)
  if type(method) ~= "string" then error("bad argument #1 to 'notify' (string expected)", 2) end
  link:notify(link:prefix_for(method),
    codec.params_from_args(link.json, link.null, ...), method)
end

server_mt.__index = function(self, key)
  local method = Server[key]
  if method then return method end
  local link = rawget(self, LINK)
  if key == "connected" then return link.state == "open" end
  if type(key) ~= "string" then return nil end
  return link:proxy(key)
end

--- register(name, fn): handle the server's requests and notifications
-- named `name` with fn (nil unregisters). Reaches every name, including
-- the ones taken at the top level (close, call, ...).
function Server:register(name, fn)
  if type(name) ~= "string" then error("bad argument #1 to 'register' (string expected)", 2) end
  link_of(self):register(name, fn)
end

local EVENTS = { error = true }

--- on(event, fn): listen to connection events. "error": fn(err) for
-- problems with nobody to raise into (a bad frame, a failed handler).
function Server:on(event, fn)
  if not EVENTS[event] then error(("bad argument #1 to 'on' (unknown event '%s')"):format(tostring(event)), 2) end
  if type(fn) ~= "function" then error("bad argument #2 to 'on' (function expected)", 2) end
  local listeners = link_of(self).listeners
  listeners[event] = listeners[event] or {}
  table.insert(listeners[event], fn)
end

-- server.method = fn registers a handler; top-level names that are taken
-- need server:register.
server_mt.__newindex = function(self, key, fn)
  if type(key) ~= "string" then error("handler names must be strings", 2) end
  if Server[key] or key == "connected" then
    error(("server.%s is taken; use server:register(%q, fn)"):format(key, key), 2)
  end
  rawget(self, LINK):register(key, fn)
end

server_mt.__tostring = function(self)
  local link = rawget(self, LINK)
  return ("jsonrpc_websocket.Server(%s, %s)"):format(link.url, link.state)
end

server_mt.__close = function(self) Server.close(self) end

-- Collected while open: start a polite close; nothing can wait here.
server_mt.__gc = function(self)
  local link = rawget(self, LINK)
  if link and link.conn and link.state ~= "closed" then
    pcall(link.conn.close, link.conn, 1001)
  end
end

local function check_seconds(opts, key)
  local v = opts[key]
  if v ~= nil and (type(v) ~= "number" or v < 0) then
    error(("option '%s' must be a non-negative number of seconds"):format(key), 3)
  end
  return v
end

local function new_link(url, opts)
  local target = url_parse.parse(url)
  local json = opts.json or codec.default()
  if type(json.encode) ~= "function" or type(json.decode) ~= "function" then
    error("option 'json' must have encode and decode functions", 3)
  end
  local connect_timeout = check_seconds(opts, "connect_timeout")
  return setmetatable({
    url = url,
    json = json,
    null = json.null or codec.null,
    timeout = check_seconds(opts, "timeout"),
    connect_timeout = connect_timeout or DEFAULT_CONNECT_TIMEOUT,
    connect_opts = url_parse.connect_options(target, opts),
    state = "closed",
    next_id = 1,
    pending = {}, timers = {}, expired = {},
    proxies = {}, prefixes = {},
    close_waiters = {},
    handlers = {}, listeners = { error = opts.on_error and { opts.on_error } },
    handler_timeout = check_seconds(opts, "handler_timeout"),
  }, Link)
end

--- Server(url [, opts]): a client for the JSON-RPC server at url.
function M.Server(url, opts)
  if type(url) ~= "string" then error("bad argument #1 to 'Server' (string expected)", 2) end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'Server' (table expected)", 2)
  end
  return setmetatable({ [LINK] = new_link(url, opts or {}) }, server_mt)
end

M.Link = Link
-- For listen.lua: a server's peers are Links too, and share these methods.
M.LINK = LINK
M.methods = Server
return M
