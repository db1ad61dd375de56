--- JSON-RPC 2.0 over websockets for Lua 5.4.
--
-- This file is the reference manual's source (`make docs` runs LDoc on
-- it; nothing loads it). It documents the public API only: what
-- `require "jsonrpc_websocket"` returns and the objects it makes. The
-- guides under `docs/` explain the same things at length;
-- `spec/docs_spec.lua` fails when a public function is missing here.
--
-- Misuse (a wrong argument or option) raises a string at once, naming the
-- caller's line. Failures of the peer or the network raise error objects:
-- `TransportError`, `TimeoutError`, `ProtocolError`, `OverflowError`.
--
-- @module jsonrpc_websocket
-- @usage
-- local jsonrpc = require "jsonrpc_websocket"
-- local server = jsonrpc.Server("ws://127.0.0.1:9090/", { timeout = 5 })
-- server:ws_connect()
-- print(server.add(1, 2))   --> 3
-- server:close()

--- Module functions and values
-- @section module

--- Makes a client for the JSON-RPC server at `url`. Does not connect
-- (see `Server:ws_connect`). Remote methods are read off the object:
-- `server.add(1, 2)`, `server.app.users.get{ id = 7 }`.
-- @tparam string url `ws://` or `wss://`, optionally with `user:pass@`
-- (sent as HTTP Basic, never printed)
-- @tparam[opt] table opts `timeout`, `connect_timeout` (default 10),
-- `handler_timeout`, `headers`, `auth = { user, password }`, `protocols`,
-- `origin`, `max_message_size` (default 16 MiB), `reconnect`,
-- `max_in_flight`, `named_params` (default true), `json` (a codec),
-- `on_error`, `trace`, `tls`, `keepalive` (default 30), `compress`,
-- `proxy`, `max_send_queue`, `max_send_messages`, `send_queue_timeout`,
-- `max_concurrent_requests`, `max_batch` (see docs/calls.md,
-- docs/transport.md)
-- @treturn Server
-- @raise a string for a malformed URL, an unknown option (naming the
-- nearest valid one), a wrong option value or an unreadable `tls` file
-- @usage local server = jsonrpc.Server("ws://127.0.0.1:9090/rpc", { timeout = 5 })
function Server(url, opts) end

--- Serves JSON-RPC over websockets on the shared loop.
-- @tparam[opt] table opts `host` (default "127.0.0.1"), `port` (0: any free),
-- `path`, `protocols`, `handlers` (a table for `Listener:expose`),
-- `authorize`, `tls`, `keepalive`, `timeout`, `handler_timeout`,
-- `max_message_size`, `max_connections`, `max_concurrent_requests`,
-- `max_batch`, `max_send_queue`, `max_send_messages`,
-- `send_queue_timeout`, `json`, `on_error`, `trace` (see docs/serving.md)
-- @treturn Listener
-- @raise a string for a bad or unknown option, or when the port is taken
-- @usage
-- local srv = jsonrpc.listen{ port = 9090, handlers = {
--   add = function(a, b) return a + b end } }
-- srv:run()
function listen(opts) end

--- Inside a handler (or a connection listener) run for a listener's peer:
-- that peer.
-- @treturn ?Peer nil outside such a task
-- @usage srv.whoami = function() return jsonrpc.peer().address end
function peer() end

--- Sends one text message on `server` exactly as given: nothing is checked
-- or added and no answer is awaited. For servers that speak more than
-- JSON-RPC; read their messages with `server:on("message", fn)`. Works on
-- a listener's `Peer` too (examples/messages.lua).
-- @tparam Server|Peer server a connected client, or a peer
-- @tparam string text the message
-- @raise TransportError when the connection is not open
-- @usage jsonrpc.send_raw(server, '{"subscribe":"ticks"}')
function send_raw(server, text) end

--- Runs `fn(...)` as a task and drives the loop until every task has
-- finished.
-- @tparam function fn the first task
-- @param ... its arguments
-- @raise the first error of any task (with its traceback), or an error
-- when the tasks wait for what can never happen; it cannot be called
-- from inside a task
-- @usage jsonrpc.run(function()
--   for i = 1, 100 do jsonrpc.spawn(function() print(server.slow(0.1, i)) end) end
-- end)
function run(fn, ...) end

--- Starts a task, inside or outside `run`. Calls made in it yield.
-- @tparam function fn the task's body
-- @param ... its arguments
-- @treturn thread the task's coroutine
-- @usage jsonrpc.spawn(function() print(server.add(1, 2)) end)
function spawn(fn, ...) end

--- Waits `seconds`: yields a task; blocks plain code, driving the loop.
-- @tparam number seconds how long
-- @usage jsonrpc.sleep(0.5)
function sleep(seconds) end

--- The monotonic clock.
-- @treturn number seconds, as a float
-- @usage local t0 = jsonrpc.now(); server.ping(); print(jsonrpc.now() - t0)
function now() end

--- A queue that tasks can wait on (see docs/subscriptions.md).
-- @tparam[opt] table opts `max` (default unbounded), `overflow`
-- ("drop_oldest", the default, or "error")
-- @treturn Queue
-- @raise a string for a bad or unknown option
-- @usage local q = jsonrpc.queue{ max = 100 }
function queue(opts) end

--- A flag that tasks can wait for.
-- @treturn Event
-- @usage local ready = jsonrpc.event()
function event() end

--- Lets a host event loop drive the library: luv (`jsonrpc.attach(uv)`),
-- cqueues (`jsonrpc.attach(cq)`), see docs/tasks.md.
-- @param host a luv module or a cqueues controller
-- @usage local uv = require "luv"; jsonrpc.attach(uv); uv.run()
function attach(host) end

--- `jsonrpc.null` is JSON null (a light userdata, the same value as
-- `cjson.null`); `jsonrpc.array_mt` marks an empty table as an array;
-- `jsonrpc.json` is the built-in codec (`encode`, `decode`, `null`,
-- `array_mt`); `jsonrpc.loop` is the `Loop`; `jsonrpc.on_error` (settable)
-- hears errors that have no caller.
-- @table values

--- Server: a client connection
-- @type Server

--- Opens the connection and waits for the handshake. `server:connect()` is
-- the same.
-- @treturn Server itself
-- @raise TransportError (TimeoutError after `connect_timeout`)
-- @usage server:ws_connect()
function Server:ws_connect() end

--- The same as `Server:ws_connect`.
-- @treturn Server itself
-- @raise TransportError
-- @usage server:connect()
function Server:connect() end

--- Closes gracefully (close frame 1000, a brief wait for the peer's) and
-- stops reconnecting. Idempotent; a `<close>` variable does it too.
-- @usage server:close()
function Server:close() end

--- Calls `method` with explicit params.
-- @tparam string method the remote method
-- @tparam[opt] table params a sequence (JSON array, `n` honoured) or a
-- record (JSON object); nil: no params
-- @tparam[opt] table opts `timeout` (seconds) overrides the Server's
-- @return the result (nil for JSON null)
-- @raise ProtocolError (the server's error), TimeoutError, TransportError;
-- a string for bad params, options, or params the codec cannot encode
-- (naming the method and the param)
-- @usage local v = server:call("eth_getBalance", { "0xabc", "latest" }, { timeout = 2 })
function Server:call(method, params, opts) end

--- Sends a notification (no id, no answer); params follow the proxy
-- rules (one record argument: named; else positional).
-- @tparam string method the remote method
-- @param ... the params
-- @raise TransportError when it cannot be sent
-- @usage server:notify("log", "hi")
function Server:notify(method, ...) end

--- Sends the calls `fn` adds as one batch message.
-- @tparam function fn `fn(b)`: `b.add(1, 2)`, `b:call(m, params)`,
-- `b:notify(m, ...)`
-- @tparam[opt] table opts `timeout`
-- @treturn table one entry per call, in call order: `{ result = v }` or
-- `{ error = err }`
-- @raise TransportError when nothing could be sent
-- @usage local r = server:batch(function(b) b.add(1, 2); b.add(3, 4) end)
-- print(r[1].result, r[2].result)   --> 3  7
function Server:batch(fn, opts) end

--- Subscribes and returns the stream of the subscription's items.
-- @tparam string method the subscribe method (e.g. "eth_subscribe")
-- @tparam[opt] table params its params, as for `Server:call`
-- @tparam[opt] table opts `notification` (default "eth_subscription"),
-- `unsubscribe` (default "eth_unsubscribe"), `max_queue` (default 1000),
-- `overflow`, `timeout`
-- @treturn Stream
-- @raise what the subscribe call raises; a string for bad options
-- @usage for head in server:subscribe("eth_subscribe", { "newHeads" }) do print(head.number) end
function Server:subscribe(method, params, opts) end

--- The stream of the params of every notification of `method`.
-- @tparam string method the notification's method
-- @tparam[opt] table opts `max_queue`, `overflow`
-- @treturn Stream
-- @usage local started = server:notifications("aria2.onDownloadStart")
-- print(started:next(30)[1].gid)
function Server:notifications(method, opts) end

--- Handles the server's requests and notifications named `name`. Also
-- `server.name = fn` for names that are not taken.
-- @tparam string name the method
-- @tparam ?function fn `fn(...)` returns the result; nil unregisters
-- @usage server:register("close", function() return "not me" end)
function Server:register(name, fn) end

--- Listens to an event.
-- @tparam string event "error" `fn(err)`, "connect" `fn()`, "disconnect"
-- `fn(code, reason)`, "reconnect" `fn(attempt)`, "give_up" `fn(attempts)`,
-- "message" `fn(msg, text)` (a JSON object from the server that is not
-- JSON-RPC)
-- @tparam function fn the listener (connection and message listeners run
-- as tasks)
-- @raise a string for an unknown event
-- @usage server:on("disconnect", function(code, reason) print("lost", code, reason) end)
function Server:on(event, fn) end

--- Listener: what `listen` returns
-- @type Listener

--- Stops listening, closes every peer (1001), waits up to 2 s. Idempotent.
-- @usage srv:close()
function Listener:close() end

--- Serves until `Listener:close`.
-- @usage srv:run()
function Listener:run() end

--- A notification to every peer.
-- @tparam string method the method
-- @param ... the params
-- @treturn int peers it went to
-- @treturn int peers skipped (send queue full)
-- @usage local sent, skipped = srv:notify_all("tick", os.time())
function Listener:notify_all(method, ...) end

--- The connected peers.
-- @treturn {Peer,...}
-- @usage for _, p in ipairs(srv:peers()) do print(p.id, p.address) end
function Listener:peers() end

--- Handles requests and notifications named `name`; also `srv.name = fn`.
-- @tparam string name the method
-- @tparam ?function fn the handler; nil unregisters
-- @usage srv:register("run", function() return "remote run" end)
function Listener:register(name, fn) end

--- Registers every function of a (nested) table as a handler.
-- @tparam table tbl `{ add = fn, users = { get = fn } }`: "add", "users.get"
-- @tparam[opt] string prefix put before every name, with a dot
-- @treturn Listener itself
-- @usage srv:expose({ get = get_user }, "users")
function Listener:expose(tbl, prefix) end

--- Listens to an event.
-- @tparam string event "connect" `fn(peer)`, "disconnect" `fn(peer, code,
-- reason)`, "error" `fn(err)`, "queue_full" `fn(peer)`
-- @tparam function fn the listener
-- @usage srv:on("connect", function(peer) print("hello", peer.address) end)
function Listener:on(event, fn) end

--- Peer: one client connected to a listener. Fields: `connected`,
-- `address`, `id`, `subprotocol`, `skipped`, `data`, `server`.
-- @type Peer

--- Calls the peer's `method`, as `Server:call`.
-- @tparam string method the method
-- @tparam[opt] table params the params
-- @tparam[opt] table opts `timeout`
-- @return the result
-- @raise ProtocolError, TimeoutError, TransportError
-- @usage local v = jsonrpc.peer():call("client.version")
function Peer:call(method, params, opts) end

--- A notification to the peer.
-- @tparam string method the method
-- @param ... the params
-- @usage peer:notify("welcome", "hi")
function Peer:notify(method, ...) end

--- Closes the peer's connection (1000).
-- @usage peer:close()
function Peer:close() end

--- A subscription this peer can be sent items on; return its `id` from
-- the subscribe handler.
-- @tparam[opt] table opts `notification` (default "eth_subscription")
-- @treturn Subscription
-- @usage srv.subscribe = function()
--   local sub = jsonrpc.peer():subscription()
--   jsonrpc.spawn(function() for i = 1, 3 do sub:send(i) end end)
--   return sub.id
-- end
function Peer:subscription(opts) end

--- Subscription: a subscription a Lua server offers (`Peer:subscription`).
-- @type Subscription

--- Sends one item as the notification `{ subscription = id, result =
-- item }`. While the peer's send queue is full it waits for room (a task
-- yields, plain code blocks).
-- @param item any JSON value
-- @treturn boolean true when it went out; false once the subscription
-- has ended or the peer is gone
-- @usage sub:send({ tick = 1 })
function Subscription:send(item) end

--- Ends the subscription (later `send`s return false); sets its `ended`
-- Event. Idempotent.
-- @usage sub:close()
function Subscription:close() end

--- Stream: what `Server:subscribe` and `Server:notifications` return; a
-- `Queue` with these extras. Fields `id`, `dropped`, `resubscribed`,
-- `error`. `for item in stream do ... end` iterates.
-- @type Stream

--- The next item, waiting for it.
-- @tparam[opt] number timeout seconds; nil: no limit
-- @return the item, or nil and an error (TimeoutError, TransportError,
-- OverflowError) or nil when closed
-- @usage local item, err = stream:next(5)
function Stream:next(timeout) end

--- Ends the stream; a subscription calls its unsubscribe method.
-- @treturn ?boolean true, or nil and the unsubscribe call's error
-- @usage heads:close()
function Stream:close() end

--- Queue: `jsonrpc.queue()`. `for item in q do ... end` iterates; `#q` counts.
-- @type Queue

--- Adds an item; wakes one waiting reader. Past `max`, "drop_oldest"
-- drops the oldest (counted in `dropped`); "error" ends the queue with an
-- OverflowError (readers get what is queued, then nil and that error).
-- @param item any non-nil value
-- @treturn boolean false when the queue is closed (or has just overflowed)
-- @raise a string for a nil item
-- @usage q:put("job")
function Queue:put(item) end

--- Ends the queue, keeping what is queued: readers get it, then nil (and
-- `err`). Idempotent.
-- @param[opt] err the error readers get after the last item
-- @usage q:finish()
function Queue:finish(err) end

--- The next item, waiting for it.
-- @tparam[opt] number timeout seconds; nil: no limit
-- @return the item; or nil and TimeoutError; or, once closed and empty,
-- nil (and the error it ended with, if any)
-- @usage local job = q:next(1)
function Queue:next(timeout) end

--- Ends the queue and discards what is queued: readers get nil at once.
-- Idempotent.
-- @usage q:close()
function Queue:close() end

--- Event: `jsonrpc.event()`. Field `is_set`.
-- @type Event

--- Sets the flag and wakes every waiter.
-- @usage ready:set()
function Event:set() end

--- Clears the flag.
-- @usage ready:clear()
function Event:clear() end

--- Waits until the flag is set.
-- @tparam[opt] number timeout seconds
-- @treturn ?boolean true; or nil and TimeoutError after `timeout`
-- @usage if ready:wait(5) then print("ready") end
function Event:wait(timeout) end

--- Loop: `jsonrpc.loop`, the library as one pollable object (cqueues'
-- protocol) for any poll loop.
-- @type Loop

--- A descriptor that becomes readable when there is I/O to do.
-- @treturn int
-- @usage local poll = uv.new_poll(jsonrpc.loop:pollfd())
function Loop:pollfd() end

--- The events to poll for.
-- @treturn string "r"
-- @usage print(jsonrpc.loop:events())
function Loop:events() end

--- Seconds until a step is needed even without I/O.
-- @treturn ?number nil: none
-- @usage cqueues.poll(jsonrpc.loop, jsonrpc.loop:timeout())
function Loop:timeout() end

--- Does all ready work: I/O, timers, resuming tasks.
-- @tparam[opt] number seconds the most it may block (0: never)
-- @usage jsonrpc.loop:step(0)
function Loop:step(seconds) end

--- Whether anything of ours can still happen.
-- @treturn boolean
-- @usage while jsonrpc.loop:busy() do cqueues.poll(jsonrpc.loop, jsonrpc.loop:timeout()); jsonrpc.loop:step(0) end
function Loop:busy() end

--- Sets how long one step may hand events to their handlers; the rest waits
-- for the next step (timeout() is 0 then), so a host loop's own work waits
-- at most about that long plus one event's handling. Default 0.0005 s.
-- @tparam number seconds non-negative
-- @usage jsonrpc.loop:set_step_budget(0.001)
function Loop:set_step_budget(seconds) end

--- Errors: the classes are callable and each has `is(value)`.
-- `TransportError(message [, cause [, method]])`: fields `message`,
-- `cause`, `method`, `sent`. `TimeoutError`: a kind of TransportError.
-- `ProtocolError(code, message [, data [, response]])`: the peer's error.
-- `OverflowError(message, limit)`: a stream or queue over its bound.
-- @type errors

--- Whether `value` is a TransportError (or a TimeoutError).
-- @param value anything
-- @treturn boolean
-- @usage if jsonrpc.TransportError.is(err) and err.sent == false then retry() end
function TransportError.is(value) end

--- Whether `value` is a TimeoutError.
-- @param value anything
-- @treturn boolean
-- @usage if jsonrpc.TimeoutError.is(err) then print("slow") end
function TimeoutError.is(value) end

--- Whether `value` is a ProtocolError.
-- @param value anything
-- @treturn boolean
-- @usage local ok, err = pcall(server.nope)
-- if jsonrpc.ProtocolError.is(err) then print(err.code) end   --> -32601
function ProtocolError.is(value) end

--- Whether `value` is an OverflowError.
-- @param value anything
-- @treturn boolean
-- @usage local item, err = stream:next(); print(jsonrpc.OverflowError.is(err))
function OverflowError.is(value) end
