--- Background processes for the abuse specs and make soak: hostile peers
-- (spec/hostile.py) and other commands whose output goes to a file that
-- we poll while our loop keeps serving (a blocking read would stall the
-- listener they talk to).
local jsonrpc = require "jsonrpc_websocket"

local M = {}

M.PYTHON = "/usr/bin/python3"

--- This process's id (the hostile peers watch it and exit with it).
function M.my_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("a"):match("^(%d+)")
  f:close()
  return pid
end

--- Starts the shell command `cmd` in the background; returns a job with
-- text() (its output so far), wait_for(pattern [, timeout]) (serves the
-- loop until the output matches; returns the capture) and stop().
function M.background(cmd)
  local out = os.tmpname()
  -- the shell says its pid, then becomes the command: stop() kills it
  assert(os.execute(("sh -c 'echo PID $$; exec %s' > %s 2>&1 &"):format(cmd, out)))
  local job = {}
  function job.text()
    local f = io.open(out)
    local text = f and f:read("a") or ""
    if f then f:close() end
    return text
  end
  function job.wait_for(pattern, timeout)
    local deadline = jsonrpc.now() + (timeout or 10)
    repeat
      local found = job.text():match(pattern)
      if found then return found end
      jsonrpc.sleep(0.01)
    until jsonrpc.now() > deadline
    error(("%s: no %q in:\n%s"):format(cmd, pattern, job.text():sub(1, 400)))
  end
  function job.stop()
    local pid = job.text():match("PID (%d+)")
    if pid then os.execute("kill " .. pid .. " 2>/dev/null") end
    os.remove(out)
  end
  return job
end

--- spec/hostile.py with these arguments (see its docstring), in the
-- background; it exits with this process, or after `lifetime` seconds.
function M.hostile(args, lifetime)
  return M.background(("%s spec/hostile.py %s --watch %s --lifetime %d")
    :format(M.PYTHON, args, M.my_pid(), lifetime or 60))
end

return M
