--- The client: `Server(url, opts)` objects and their method proxies.
-- The connection itself and the calls waiting on it live in the link
-- (link.lua); batches in batch.lua.
-- @module jsonrpc_websocket.client

local sched = require "jsonrpc_websocket.scheduler"
local codec = require "jsonrpc_websocket.codec"
local errors = require "jsonrpc_websocket.errors"
local Link = require "jsonrpc_websocket.link"
local batch = require "jsonrpc_websocket.batch"
local stream = require "jsonrpc_websocket.stream"
local options = require "jsonrpc_websocket.options"

local TransportError = errors.TransportError
local type, rawget, rawset, setmetatable, error, pcall =
  type, rawget, rawset, setmetatable, error, pcall
local waiter, wait, timer, cancel = sched.waiter, sched.wait, sched.timer, sched.cancel
local raise = Link.raise

local M = {}

local CLOSE_WAIT = 2 -- seconds close() waits for the peer's close frame

-- Private keys: a Server's link, a proxy's name and request prefix.
local LINK, NAME, PREFIX = {}, {}, {}

---------------------------------------------------------------------------
-- Method proxies: server.a.b.c(...) calls "a.b.c".
---------------------------------------------------------------------------
local proxy_mt = {}

--- The cached proxy for a method name.
local function proxy(link, name)
  local p = link.proxies[name]
  if not p then
    p = setmetatable({ [NAME] = name, [LINK] = link }, proxy_mt)
    link:own("proxies")[name] = p
  end
  return p
end

proxy_mt.__index = function(p, key)
  if type(key) ~= "string" then return nil end
  return proxy(p[LINK], p[NAME] .. "." .. key)
end

-- server:add(1, 2) instead of server.add(1, 2): the first argument is
-- the server (or peer, or proxy) the method was read from.
local function colon_call(p, first)
  local what = getmetatable(first) == proxy_mt and "method proxy" or "object"
  error(("remote method '%s' called with ':', which passes the %s itself as its "
    .. "first argument; call it with a dot: x.%s(...)"):format(p[NAME], what, p[NAME]), 3)
end

proxy_mt.__call = function(p, ...)
  local link = p[LINK]
  if type((...)) == "table" and rawget((...), LINK) == link then colon_call(p, (...)) end
  local prefix = p[PREFIX]
  if not prefix then
    prefix = link:prefix_for(p[NAME])
    rawset(p, PREFIX, prefix)
  end
  return link:request_args(prefix, ...) -- a tail call: see link.lua, "Stack depth"
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
  link:stop_reconnecting()
  local ok, err = link:connect()
  if not ok then raise(err) end
  return self
end
Server.connect = Server.ws_connect

--- Closes gracefully (close frame 1000, brief wait for the peer's) and
-- stops reconnecting. Idempotent.
function Server:close()
  local link = link_of(self)
  link:stop_reconnecting()
  if link.state == "closed" then return end
  if link.state == "connecting" then
    link.conn:abort()
  elseif link.state == "open" then
    link.state = "closing"
    link.conn:close(1000)
  end
  if link.state == "closed" or not sched.can_wait() then return end
  local w = waiter()
  local waiters = link:own("close_waiters")
  waiters[#waiters + 1] = w
  local t = timer(CLOSE_WAIT, link.close_expired, link)
  wait(w)
  cancel(t)
end

local CALL_OPTIONS = options.set{ "timeout" }

--- call(method, params, opts): params nil, a sequence (array) or a record
-- (object); opts.timeout overrides the default timeout.
function Server:call(method, params, opts)
  local link = link_of(self)
  if type(method) ~= "string" then error("bad argument #1 to 'call' (string expected)", 2) end
  local json_params = codec.call_params(link.json, link.null, params, method)
  local timeout = link.timeout
  if opts ~= nil then
    if type(opts) ~= "table" then error("bad argument #3 to 'call' (table expected)", 2) end
    options.known(opts, CALL_OPTIONS, "call", 2)
    if opts.timeout ~= nil then timeout = options.seconds(opts, "timeout", 2) end
  end
  return link:request(link:prefix_for(method), json_params, method, timeout)
end

--- notify(method, ...): a notification; same params rules as proxies.
function Server:notify(method, ...)
  local link = link_of(self)
  if type(method) ~= "string" then error("bad argument #1 to 'notify' (string expected)", 2) end
  link:notify_args(link:prefix_for(method), method, ...)
end

--- batch(fn [, opts]): fn(b) adds calls (b.add(1, 2), b:call(...),
-- b:notify(...)); they go out as one message. Returns one entry per call,
-- in call order: { result = v } or { error = err }.
function Server:batch(fn, opts)
  local link = link_of(self)
  if type(fn) ~= "function" then error("bad argument #1 to 'batch' (function expected)", 2) end
  local timeout = link.timeout
  if opts ~= nil then
    if type(opts) ~= "table" then error("bad argument #2 to 'batch' (table expected)", 2) end
    options.known(opts, CALL_OPTIONS, "batch", 2)
    if opts.timeout ~= nil then timeout = options.seconds(opts, "timeout", 2) end
  end
  return batch.run(link, fn, timeout)
end

--- subscribe(method, params [, opts]): calls `method` (with params, as
-- call does) for a subscription id, and returns the Stream of the items of
-- the notifications that carry that id. opts: notification (default
-- "eth_subscription"), unsubscribe (default "eth_unsubscribe"), max_queue
-- (default 1000), overflow ("drop_oldest", the default, or "error"),
-- timeout (for the subscribe and unsubscribe calls). Raises what the
-- subscribe call raises. See README "Subscriptions and streams".
function Server:subscribe(method, params, opts)
  local s = stream.subscribe(link_of(self), method, params, opts)
  return s -- not a tail call: misuse errors name the caller's line
end

--- notifications(method [, opts]): the Stream of the params of every
-- notification of `method`. opts: max_queue, overflow (as subscribe).
function Server:notifications(method, opts)
  local s = stream.notifications(link_of(self), method, opts)
  return s -- not a tail call: misuse errors name the caller's line
end

--- register(name, fn): handle the server's requests and notifications
-- named `name` with fn (nil unregisters). Reaches every name, including
-- the ones taken at the top level (close, call, ...).
function Server:register(name, fn)
  if type(name) ~= "string" then error("bad argument #1 to 'register' (string expected)", 2) end
  link_of(self):register(name, fn)
end

local EVENTS = { error = true, connect = true, disconnect = true,
  reconnect = true, give_up = true, message = true }

--- on(event, fn): "error" fn(err) for problems with nobody to raise
-- into; "connect" fn(); "disconnect" fn(code, reason); "reconnect"
-- fn(attempt); "give_up" fn(attempts); "message" fn(msg, text) for a JSON
-- object from the server that is not JSON-RPC (no "jsonrpc", "id",
-- "method", "result" or "error" member: rpc-websockets' {"notification":
-- ...} events), which is otherwise dropped unanswered. Connection and
-- message listeners run as tasks.
function Server:on(event, fn)
  if not EVENTS[event] then
    error(("bad argument #1 to 'on' (unknown event '%s')"):format(tostring(event)), 2)
  end
  if type(fn) ~= "function" then error("bad argument #2 to 'on' (function expected)", 2) end
  local listeners = link_of(self).listeners
  listeners[event] = listeners[event] or {}
  table.insert(listeners[event], fn)
end

-- What `server[key]` reads: a method, `connected`, or the proxy for the
-- remote method `key`. Methods and proxies are remembered in `known`, the
-- server's __index table, so reading them again costs one table lookup
-- and no function call (a proxy call reads its name every time).
local function reader(link)
  return function(known, key)
    if key == "connected" then return link.state == "open" end
    local value = Server[key]
    if value == nil then
      if type(key) ~= "string" then return nil end
      value = proxy(link, key)
    end
    known[key] = value
    return value
  end
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
  if not link then return end
  link.reconnecting = false
  if link.conn and link.state ~= "closed" then
    link.state = "closing"
    pcall(link.conn.close, link.conn, 1001)
  end
end

local SERVER_OPTIONS = options.set{
  "json", "timeout", "connect_timeout", "handler_timeout", "reconnect", "max_in_flight",
  "named_params", "max_send_queue", "max_send_messages", "send_queue_timeout",
  "max_concurrent_requests", "max_batch", "on_error", "trace", "auth", "headers",
  "protocols", "origin", "max_message_size", "keepalive", "compress", "proxy", "tls",
}

--- Server(url [, opts]): a client for the JSON-RPC server at url.
function M.Server(url, opts)
  if type(url) ~= "string" then error("bad argument #1 to 'Server' (string expected)", 2) end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'Server' (table expected)", 2)
  end
  if opts then options.known(opts, SERVER_OPTIONS, "Server", 2) end
  local link = Link.new(url, opts or {})
  local mt = { __index = setmetatable({}, { __index = reader(link) }) }
  for k, v in pairs(server_mt) do mt[k] = v end -- one metatable per server
  return setmetatable({ [LINK] = link }, mt)
end

--- send_raw(server, text): sends one text message on `server` (or a
-- listener's peer) exactly as
-- given (JSON the caller wrote; nothing is checked or added, no answer is
-- awaited). For servers that speak more than JSON-RPC; read what comes
-- back with server:on("message") or the trace option. A module function,
-- not a method, so that no remote method name is taken. Raises
-- TransportError when the connection is not open.
function M.send_raw(server, text)
  local link = link_of(server)
  if type(text) ~= "string" then error("bad argument #2 to 'send_raw' (string expected)", 2) end
  if not link:send(text) then
    raise(TransportError("Connection is not open.", "not connected (state " .. link.state .. ")"))
  end
end

--- The link behind a Server (or a listener's peer), or nil.
-- For listen.lua and the tools beside the module; not user API.
function M.link(object)
  return type(object) == "table" and rawget(object, LINK) or nil
end

--- A new object around `link` with metatable `mt`, on which the Server
-- methods (`methods`) work: a listener's peers are made so.
function M.wrap(link, mt)
  return setmetatable({ [LINK] = link }, mt)
end

-- For listen.lua: a server's peers are links too, with these methods.
M.proxy, M.methods = proxy, Server
return M
