-- examples/serve.lua: serve a Lua file of handlers over JSON-RPC websockets.
--
--   lua5.4 examples/serve.lua handlers.lua [--port 9090] [--host 127.0.0.1] [--path /rpc]
--
-- handlers.lua returns a table of functions; nested tables are namespaces:
--   return { add = function(a, b) return a + b end,
--            app = { users = { getUsers = function() return {} end } } }
-- Handlers run in their own tasks; jsonrpc.peer() is the calling client.
local jsonrpc = require "jsonrpc_websocket"

local function usage(msg)
  io.stderr:write((msg and msg .. "\n" or ""), "usage: lua5.4 examples/serve.lua "
    .. "handlers.lua [--port N] [--host H] [--path /p]\n")
  os.exit(2)
end

local file
local opts = { host = "127.0.0.1", port = 9090 }
local i = 1
while i <= #arg do
  local a = arg[i]
  if a == "--port" or a == "--host" or a == "--path" then
    local v = arg[i + 1] or usage("missing value for " .. a)
    opts[a:sub(3)] = a == "--port" and (math.tointeger(tonumber(v)) or usage("bad port " .. v)) or v
    i = i + 2
  elseif a:sub(1, 2) == "--" then
    usage("unknown option " .. a)
  else
    if file then usage("one handlers file only") end
    file, i = a, i + 1
  end
end
if not file then usage() end

local chunk, err = loadfile(file)
if not chunk then usage(err) end
local handlers = chunk()
if type(handlers) ~= "table" then usage(file .. " must return a table of functions") end

local srv = jsonrpc.listen(opts)
srv:expose(handlers)
print(("serving %s on ws://%s:%d%s"):format(file, srv.host, srv.port, srv.path or "/"))
io.stdout:flush()
srv:run()
