--- Spec helper for the server specs: run an external client in the
-- background while our loop keeps serving, and read the kernel's table of
-- listening sockets.
local jsonrpc = require "jsonrpc_websocket"

local M = {}

M.PYTHON = "/usr/bin/python3"

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.q = shell_quote

--- Starts `cmd` in the background; returns wait(timeout) -> output, exit
-- status. Waiting sleeps in our loop, so a server in this process serves.
function M.spawn(cmd)
  local out = os.tmpname()
  local done = out .. ".done"
  os.execute(("(timeout 60 sh -c %s > %s 2>&1; echo $? > %s) &")
    :format(shell_quote(cmd), out, done))
  local job = {}
  function job.wait(timeout)
    local deadline = jsonrpc.now() + (timeout or 30)
    while jsonrpc.now() < deadline do
      local f = io.open(done)
      local status = f and f:read("n")
      if f then f:close() end
      if status then
        local o = io.open(out)
        local text = o:read("a")
        o:close()
        os.remove(out)
        os.remove(done)
        return text, status
      end
      jsonrpc.sleep(0.02)
    end
    error("background command did not finish: " .. cmd)
  end
  return job
end

--- The Python websockets client (spec/pyclient.py) with these arguments.
function M.pyclient(url, ...)
  local args = {}
  for i, a in ipairs { ... } do args[i] = shell_quote(a) end
  return M.spawn(("%s spec/pyclient.py %s %s"):format(M.PYTHON, shell_quote(url),
    table.concat(args, " ")))
end

--- Lines "RECV <text>" of a pyclient run, decoded.
function M.received(out, tag)
  local json = require("cjson").new()
  local list = {}
  for text in out:gmatch((tag or "RECV") .. " ([^\n]*)") do
    list[#list + 1] = { text = text, msg = json.decode(text) }
  end
  return list
end

--- Local addresses listening on `port` in /proc/net/tcp and tcp6, as the
-- kernel writes them (hex address:port).
function M.listening(port)
  local found = {}
  local hexport = (":%04X"):format(port)
  for _, file in ipairs { "/proc/net/tcp", "/proc/net/tcp6" } do
    local f = io.open(file)
    if f then
      for line in f:lines() do
        local localaddr, state = line:match("^%s*%d+:%s+(%S+)%s+%S+%s+(%x%x)")
        if localaddr and state == "0A" and localaddr:sub(-5) == hexport then
          found[#found + 1] = localaddr:sub(1, -6)
        end
      end
      f:close()
    end
  end
  return found
end

return M
