--- The server side: `listen(opts)` objects and the peers they accept.
--
-- One handler model for both roles: a peer is a client Link (pending calls,
-- proxies, dispatch of its messages) whose handlers are the server's, so
-- `srv.add = fn` works as `client.add = fn` does, and `peer.method(1, 2)`
-- calls back into that client as `server.method(1, 2)` does.
-- @module jsonrpc_websocket.listen

local core = require "jsonrpc_websocket.core"
local sched = require "jsonrpc_websocket.scheduler"
local codec = require "jsonrpc_websocket.codec"
local client = require "jsonrpc_websocket.client"
local dispatch = require "jsonrpc_websocket.dispatch"
local options = require "jsonrpc_websocket.options"
local workers = require "jsonrpc_websocket.workers"
local proxies = require "jsonrpc_websocket.proxies"
local subscription = require "jsonrpc_websocket.subscription"
local trace = require "jsonrpc_websocket.trace"

local Link = require "jsonrpc_websocket.link"
local link_of, wrap, methods, proxy = client.link, client.wrap, client.methods, client.proxy
local type, pairs, rawget, setmetatable, error, pcall, tostring =
  type, pairs, rawget, setmetatable, error, pcall, tostring
local waiter, wait, wake, timer, cancel =
  sched.waiter, sched.wait, sched.wake, sched.timer, sched.cancel

local M = {}

local CLOSE_WAIT = 2 -- seconds close() gives peers to answer our close
-- Limits per peer (README "Limits"): handlers running at once, batch length.
local DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_BATCH = 64, 1000
local DEFAULT_MAX_CONNECTIONS = 10000 -- sessions at once; more get HTTP 503
local DEFAULT_SEND_QUEUE = 1024 * 1024 -- bytes per peer
local LISTENER = {}  -- private key: a srv's listener state
-- Port -> core listener, for our listeners that hold a port: open ones,
-- and closed ones libwebsockets has not let go of yet (see src/server.c).
-- It would share one listening socket between two vhosts on a port, or
-- hand a closing vhost the connections meant for a new one.
local ports_in_use = {}

local function port_taken(port)
  local core_listener = ports_in_use[port]
  if core_listener and core_listener:gone() then
    ports_in_use[port] = nil
    return false
  end
  return core_listener ~= nil
end

---------------------------------------------------------------------------
-- Peers: a Link per accepted connection.
---------------------------------------------------------------------------
local PeerLink = setmetatable({}, { __index = Link })
PeerLink.__index = PeerLink

-- A peer's connection events are the listener's to tell (with the peer).
function PeerLink.emit() end

function PeerLink:on_closed(code, reason, ...)
  Link.on_closed(self, code, reason, ...)
  subscription.peer_gone(self)
  self.listener:peer_gone(self, code, reason)
end

local Peer = {
  call = methods.call,
  notify = methods.notify,
  close = methods.close,
}

--- peer:subscription([opts]): a subscription this peer can be sent items
-- on (subscription.lua); return its `id` from the subscribe handler.
function Peer.subscription(self, opts)
  return subscription.open(link_of(self), opts)
end
local peer_mt = { __name = "jsonrpc_websocket.Peer" }

local PEER_FIELDS = {
  connected = function(link) return link.state == "open" end,
  address = function(link) return link.address end,
  id = function(link) return link.id end,
  skipped = function(link) return link.skipped end,
  data = function(link) -- made on first use (idle memory)
    local data = link.data
    if not data then
      data = {}
      link.data = data
    end
    return data
  end,
  subprotocol = function(link) return link.subprotocol end,
  server = function(link) return link.listener.srv end,
}

peer_mt.__index = function(self, key)
  local method = Peer[key]
  if method then return method end
  local link = link_of(self)
  local field = PEER_FIELDS[key]
  if field then return field(link) end
  if type(key) ~= "string" then return nil end
  return proxy(link, key)
end

peer_mt.__newindex = function(_, key)
  error(("cannot set peer.%s: handlers belong to the server (srv.%s = fn), "
    .. "per-peer values to peer.data"):format(tostring(key), tostring(key)), 2)
end

peer_mt.__tostring = function(self)
  local link = link_of(self)
  return ("jsonrpc_websocket.Peer(#%d %s, %s)"):format(link.id, link.address, link.state)
end

---------------------------------------------------------------------------
-- The listener: owns the C listener and receives its accept events.
---------------------------------------------------------------------------
local Listener = {}
Listener.__index = Listener

-- Listener callbacks run as service tasks: they may call their peer.
local function call_listener(self, fn, ...)
  local ok, err = pcall(fn, ...)
  if not ok then self:report(err) end
end

function Listener:emit(event, peer, ...)
  local list = self.listeners[event]
  if not list then return end
  for i = 1, #list do
    local co = sched.spawn_kind("service", call_listener, self, list[i], peer, ...)
    dispatch.task_endpoint[co] = link_of(peer)
  end
end

function Listener:report(err)
  Link.report(self, err)
end

-- What every peer of a listener shares lives once, in the table behind
-- its peers' links (their metatable), not in each link: an idle peer's
-- Link then keeps a hash part of 32 slots instead of 64 (issue 16: about
-- 0.8 KB less per idle connection). The class holds a copy of Link's and
-- PeerLink's methods and defaults too: a peer finds each in one step, not
-- through every __index (they are read for every message).
local function flat_copy(class)
  for _, from in ipairs { PeerLink, Link } do -- PeerLink's own come first
    for k, v in pairs(from) do
      if class[k] == nil and k ~= "__index" then class[k] = v end
    end
  end
  return class
end

local function peer_class(listener)
  if not listener.peer_class then
    local class = setmetatable(flat_copy {
      json = listener.json, null = listener.null, timeout = listener.timeout,
      connect_opts = listener.connect_opts, handlers = listener.handlers,
      listeners = listener.listeners, handler_timeout = listener.handler_timeout,
      listener = listener, max_concurrent = listener.max_concurrent, max_batch = listener.max_batch,
      decode = codec.safe_decoder(listener.json), builtin_codec = codec.is_builtin(listener.json),
      params_from_args = codec.params_from_args, skipped = 0,
    }, { __index = PeerLink })
    class.__index = class
    listener.peer_class = class
  end
  return listener.peer_class
end

--- Core event: a session passed the handshake.
function Listener:on_accept(conn, address)
  if self.trusted then address = proxies.client_address(self.trusted, address) end
  self.next_peer = self.next_peer + 1
  local class = peer_class(self)
  local link = Link.init(setmetatable({
    url = "peer " .. address, address = address, id = self.next_peer,
    subprotocol = conn:subprotocol(), state = "open", conn = conn,
  }, class), class)
  core.adopt(conn, link)
  if link.builtin_codec then conn:builtin_codec(true) end
  local q = self.send_queue
  if q then conn:queue_limits(q[1], q[2], q[3]) end
  sched.io_started() -- ended by Link.closed
  local peer = wrap(link, peer_mt)
  link.peer = peer
  if self.trace then
    local fn = self.trace
    conn:trace(function(direction, text) return fn(direction, text, peer) end)
  end
  self.peers[link] = peer
  self.count = self.count + 1
  if self.state ~= "open" then -- closing: no new peers
    link.state = "closing"
    conn:close(1001, "server closing")
    return
  end
  self:emit("connect", peer)
end

function Listener:peer_gone(link, code, reason)
  if not self.peers[link] then return end
  local peer = self.peers[link]
  self.peers[link] = nil
  self.count = self.count - 1
  self:emit("disconnect", peer, code, reason)
  if self.count == 0 and self.drained then
    local w = self.drained
    self.drained = nil
    wake(w, true)
  end
end

---------------------------------------------------------------------------
-- srv: the public object.
---------------------------------------------------------------------------
local Srv = {}
local srv_mt = { __name = "jsonrpc_websocket.Listener" }

local function listener_of(srv)
  local listener = type(srv) == "table" and rawget(srv, LISTENER)
  if not listener then error("expected a jsonrpc_websocket listener (use srv:method())", 3) end
  return listener
end

--- Stops listening: closes every peer (1001), waits up to 2 s for them,
-- then drops the rest. Idempotent.
function Srv:close()
  local listener = listener_of(self)
  if listener.state ~= "open" then return end
  listener.state = "closing"
  for link in pairs(listener.peers) do
    if link.state == "open" then
      link.state = "closing"
      link.conn:close(1001, "server closing")
    end
  end
  if listener.count > 0 and sched.can_wait() then
    local w = waiter()
    listener.drained = w
    local t = timer(CLOSE_WAIT, wake, w, false)
    wait(w)
    cancel(t)
    listener.drained = nil
    for link in pairs(listener.peers) do
      if link.conn then link.conn:abort() end
    end
  end
  listener.core:close()
  if listener.core:gone() then ports_in_use[listener.port] = nil end
  workers.stop(listener.workers)
  listener.state = "closed"
  sched.io_ended()
  local waiters = listener.run_waiters
  listener.run_waiters = {}
  for i = 1, #waiters do wake(waiters[i], true) end
end

--- Serves until srv:close(): blocks, or yields when called in a task.
function Srv:run()
  local listener = listener_of(self)
  if listener.state == "closed" then return end
  local w = waiter()
  listener.run_waiters[#listener.run_waiters + 1] = w
  wait(w)
end

--- notify_all(method, ...): a notification to every connected peer of
-- this process (with `workers`, each worker has its own peers: this
-- reaches this worker's only); returns how many it went to, and how many
-- peers were skipped because their send queue was full (each counted in
-- peer.skipped; the first skip since the queue last had room emits
-- "queue_full" with the peer).
function Srv:notify_all(method, ...)
  local listener = listener_of(self)
  if type(method) ~= "string" then error("bad argument #1 to 'notify_all' (string expected)", 2) end
  local text = codec.notification(listener.handler_link:prefix_for(method),
    codec.params_from_args(listener.json, listener.null, ...))
  local n, skipped = 0, 0
  for link, peer in pairs(listener.peers) do
    if link.state == "open" then
      local ok, _, kind = link.conn:send(text)
      if ok then
        n = n + 1
      elseif kind == "full" then
        skipped = skipped + 1
        link.skipped = link.skipped + 1
        if not link.skipping then
          link.skipping = true
          listener:emit("queue_full", peer)
        end
      end
    end
  end
  return n, skipped
end

--- peers(): the connected peers, in no particular order.
function Srv:peers()
  local list = {}
  for link, peer in pairs(listener_of(self).peers) do
    if link.state == "open" then list[#list + 1] = peer end
  end
  return list
end

--- register(name, fn): like srv[name] = fn, for any name.
function Srv:register(name, fn)
  if type(name) ~= "string" then error("bad argument #1 to 'register' (string expected)", 2) end
  listener_of(self).handler_link:register(name, fn)
end

--- expose(tbl [, prefix]): registers every function of tbl; nested tables
-- are namespaces ({ app = { add = f } } registers "app.add").
function Srv:expose(tbl, prefix)
  if type(tbl) ~= "table" then error("bad argument #1 to 'expose' (table expected)", 2) end
  local listener = listener_of(self)
  local function walk(t, p, seen)
    if seen[t] then return end
    seen[t] = true
    for k, v in pairs(t) do
      if type(k) == "string" then
        local name = p and (p .. "." .. k) or k
        if type(v) == "table" and not (getmetatable(v) or {}).__call then
          walk(v, name, seen)
        else
          listener.handler_link:register(name, v)
        end
      end
    end
  end
  walk(tbl, prefix, {})
  return self
end

local EVENTS = { connect = true, disconnect = true, error = true, queue_full = true }

--- on(event, fn): "connect" fn(peer), "disconnect" fn(peer, code, reason),
-- "error" fn(err), "queue_full" fn(peer) (notify_all skipped the peer).
-- connect/disconnect/queue_full listeners run as tasks.
function Srv:on(event, fn)
  if not EVENTS[event] then
    error(("bad argument #1 to 'on' (unknown event '%s')"):format(tostring(event)), 2)
  end
  if type(fn) ~= "function" then error("bad argument #2 to 'on' (function expected)", 2) end
  local listeners = listener_of(self).listeners
  listeners[event] = listeners[event] or {}
  table.insert(listeners[event], fn)
end

srv_mt.__index = function(self, key)
  local method = Srv[key]
  if method then return method end
  local listener = rawget(self, LISTENER)
  if key == "port" then return listener.port end
  if key == "host" then return listener.host end
  if key == "path" then return listener.path end
  if key == "count" then return listener.count end
  if key == "worker" then return listener.workers and listener.workers.index or 1 end
  if key == "workers" then return listener.workers and listener.workers.count or 1 end
  if type(key) ~= "string" then return nil end
  return proxy(listener.handler_link, key) -- srv.app.users.getUsers = fn
end

srv_mt.__newindex = function(self, key, fn)
  if type(key) ~= "string" then error("handler names must be strings", 2) end
  if Srv[key] or key == "port" or key == "host" or key == "path" or key == "count"
      or key == "worker" or key == "workers" then
    error(("srv.%s is taken; use srv:register(%q, fn)"):format(key, key), 2)
  end
  rawget(self, LISTENER).handler_link:register(key, fn)
end

srv_mt.__tostring = function(self)
  local listener = rawget(self, LISTENER)
  return ("jsonrpc_websocket.Listener(%s:%d%s, %s, %d peers)")
    :format(listener.host, listener.port, listener.path or "", listener.state, listener.count)
end

srv_mt.__close = function(self) Srv.close(self) end

---------------------------------------------------------------------------
-- listen(opts)
---------------------------------------------------------------------------

-- The user's hook runs inside a libwebsockets callback (see server.c): it
-- must give an answer at once. Errors refuse with 500; a yield (a call, a
-- sleep) raises, so it refuses too.
local function wrap_authorize(listener, fn)
  return function(headers, path)
    local ok, allow, status = pcall(fn, headers, path)
    if not ok then
      listener:report("authorize hook failed: " .. tostring(allow))
      return false, 500
    end
    if allow then return true end
    return false, math.tointeger(status) or 403
  end
end

local LISTEN_OPTIONS = options.set{
  "host", "port", "path", "protocols", "max_message_size", "max_concurrent_requests",
  "max_batch", "max_connections", "authorize", "keepalive", "tls", "json", "timeout",
  "handler_timeout", "max_send_queue", "max_send_messages", "send_queue_timeout",
  "on_error", "handlers", "trace", "workers", "reuse_port", "trusted_proxies",
}

local function check_options(opts)
  options.known(opts, LISTEN_OPTIONS, "listen", 3)
  if opts.host ~= nil and type(opts.host) ~= "string" then
    error("option 'host' must be a string", 3)
  end
  local port = opts.port
  if port ~= nil and (math.type(port) ~= "integer" or port < 0 or port > 65535) then
    error("option 'port' must be an integer 0..65535", 3)
  end
  if opts.path ~= nil and (type(opts.path) ~= "string" or opts.path:sub(1, 1) ~= "/") then
    error("option 'path' must be a string starting with '/'", 3)
  end
  options.positive_integer(opts, "max_message_size", 3)
  options.positive_integer(opts, "max_concurrent_requests", 3)
  options.positive_integer(opts, "max_batch", 3)
  options.positive_integer(opts, "max_connections", 3)
  workers.check(opts, 3)
  proxies.check(opts, 3)
  if opts.authorize ~= nil and type(opts.authorize) ~= "function" then
    error("option 'authorize' must be a function", 3)
  end
  options.keepalive_seconds(opts, 3)
  local tls = opts.tls
  if tls ~= nil and (type(tls) ~= "table" or type(tls.cert_file) ~= "string"
      or type(tls.key_file) ~= "string") then
    error("option 'tls' must be { cert_file = ..., key_file = ... [, ca_file = ...] }", 3)
  end
  if tls and tls.verify_client ~= nil then
    if type(tls.verify_client) ~= "boolean" then
      error("option 'tls.verify_client' must be a boolean", 3)
    end
    if tls.verify_client and type(tls.ca_file) ~= "string" then
      error("option 'tls.verify_client' needs 'tls.ca_file' "
        .. "(the CA that signs client certificates)", 3)
    end
  end
end

-- The core listener for listener. A free port (port 0) is the kernel's choice,
-- which may be one a closed listener of ours still holds: choose again.
local function bind(listener, host, protocols, opts)
  for _ = 1, 10 do
    local core_listener, why = core.listen(listener, {
      host = host, port = opts.port or 0, path = opts.path,
      protocols = protocols, max_message_size = opts.max_message_size,
      max_connections = opts.max_connections or DEFAULT_MAX_CONNECTIONS,
      keepalive = options.keepalive_seconds(opts, 2), tls = opts.tls,
      reuse_port = opts.reuse_port, proxy_headers = listener.trusted ~= nil,
      authorize = opts.authorize and wrap_authorize(listener, opts.authorize),
    })
    if not core_listener or not port_taken(core_listener:port()) then return core_listener, why end
    core_listener:close()
  end
  return nil, "no free port"
end

--- listen(opts): a JSON-RPC websocket server on the shared loop.
-- opts: host (default "127.0.0.1"), port (0 = any free), path (nil: any),
-- protocols, max_message_size, keepalive, tls, authorize, timeout (for
-- calls to peers), handler_timeout, json, on_error, handlers (for expose),
-- workers (N processes sharing the port: see workers.lua), reuse_port
-- (SO_REUSEPORT: other processes may listen on the same port),
-- trusted_proxies (peer.address from X-Forwarded-For: see proxies.lua).
-- trace (fn(direction, text, peer): see trace.lua).
function M.listen(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("bad argument #1 to 'listen' (table expected)", 2) end
  check_options(opts)
  local json = opts.json or codec.default()
  local protocols = opts.protocols
  if type(protocols) == "string" then protocols = { protocols } end
  local host = opts.host or "127.0.0.1"
  if host == "localhost" then host = "127.0.0.1" end
  local listener = setmetatable({
    host = host, path = opts.path,
    json = json, null = json.null or codec.null,
    timeout = options.seconds(opts, "timeout", 2),
    handler_timeout = options.seconds(opts, "handler_timeout", 2),
    send_queue = options.send_queue(opts, 2, DEFAULT_SEND_QUEUE),
    max_concurrent = opts.max_concurrent_requests or DEFAULT_MAX_CONCURRENT,
    max_batch = opts.max_batch or DEFAULT_MAX_BATCH,
    connect_opts = { max_message_size = opts.max_message_size },
    handlers = {}, listeners = { error = opts.on_error and { opts.on_error } },
    peers = {}, count = 0, next_peer = 0, run_waiters = {},
    trusted = proxies.trusted(opts),
    state = "open",
  }, Listener)
  listener.trace = trace.option(opts, "listener", 2)
  listener.handler_link = Link.init({ handlers = listener.handlers, json = json,
    null = listener.null, listeners = listener.listeners })
  if opts.port and opts.port ~= 0 and port_taken(opts.port) then
    error(("listen on %s:%d failed: address in use (by another listener)")
      :format(host, opts.port), 2)
  end
  local w
  opts, w = workers.start(opts, host, 2)
  listener.workers = w
  local core_listener, why = bind(listener, host, protocols, opts)
  workers.release(w)
  if not core_listener then
    workers.stop(w)
    error(("listen on %s:%d failed: %s"):format(host, opts.port or 0, why), 2)
  end
  listener.core, listener.port = core_listener, core_listener:port()
  ports_in_use[listener.port] = core_listener
  sched.io_started() -- ended by close
  local srv = setmetatable({ [LISTENER] = listener }, srv_mt)
  listener.srv = srv
  if opts.handlers then
    local ok, err = pcall(Srv.expose, srv, opts.handlers)
    if not ok then -- a bad handler: no listener is left open
      Srv.close(srv)
      error(err, 0)
    end
  end
  return srv
end

--- peer(): inside a handler (or a connect/disconnect listener) run for a
-- server's peer, that peer; nil elsewhere.
function M.peer()
  local ep = dispatch.task_endpoint[coroutine.running()]
  return ep and ep.peer
end

M.listener_methods, M.peer_methods = Srv, Peer -- for spec/docs_spec.lua
return M
