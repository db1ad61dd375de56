--- The pusher for bench/streams.lua: our own server offering
-- eth_subscribe, and `flood(method, id, n)`, which pushes n copies of one
-- pre-formatted notification (with id: an eth_subscription for that
-- subscription; without: a plain notification of `method`) as fast as the
-- connection takes them, so that the client is what is measured.
--    lua5.4 stream_server.lua    prints "PORT n PID p", serves until killed

local bench_dir = arg[0]:match("^(.*)/[^/]*$") or "."
local root = bench_dir .. "/.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath

local jsonrpc = require "jsonrpc_websocket"
local link_of = require("jsonrpc_websocket.client").link

-- A newHeads-like item (what ganache sends, shortened).
local ITEM = '{"number":"0x1b4","hash":"0xdc0818cf78f21a8e70579cb46a43643f78291264dda'
  .. '342ae31049421c82d21ae","parentHash":"0xe99e022112df268087ea7eafaf4790497fd21db'
  .. 'eeb6bd7a1721df161a6657a54","timestamp":"0x55ba467c","gasUsed":"0x0"}'

-- Queues big enough that the flood rarely waits for room.
local srv = jsonrpc.listen { port = 0, max_send_queue = 64 * 1024 * 1024,
  max_send_messages = 1000000 }

srv.eth_subscribe = function() return jsonrpc.peer():subscription().id end

srv.flood = function(method, id, n)
  local link = link_of(jsonrpc.peer())
  local text = id
    and ('{"jsonrpc":"2.0","method":"%s","params":{"subscription":"%s","result":%s}}')
      :format(method, id, ITEM)
    or ('{"jsonrpc":"2.0","method":"%s","params":%s}'):format(method, ITEM)
  jsonrpc.spawn(function()
    for i = 1, n do
      while true do
        if link.state ~= "open" then return end
        local ok, _, kind = link.conn:send(text)
        if ok then break end
        if kind ~= "full" then return end
        coroutine.yield() -- the send queue is full: let the loop write it
      end
      if i % 64 == 0 then coroutine.yield() end
    end
  end)
  return #text
end

local stat = io.open("/proc/self/stat")
print(("PORT %d PID %d"):format(srv.port, stat and stat:read("n") or 0))
io.stdout:flush()
srv:run()
