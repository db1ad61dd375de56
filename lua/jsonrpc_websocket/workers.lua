--- Worker processes for `listen{ workers = N }`: every core (issue 16).
--
-- Pre-fork: `listen` forks N - 1 children before anything listens; every
-- process (the caller is worker 1) then makes its own listener on one
-- port with SO_REUSEPORT, and the kernel spreads new connections over
-- them. The code after `listen` runs in every worker; each has its own
-- handlers, peers and state. See src/workers.c.
-- @module jsonrpc_websocket.workers

local core = require "jsonrpc_websocket.core"

local M = {}

--- Checks opts.workers (nil, or an integer 1..1024).
function M.check(opts, level)
  local n = opts.workers
  if n ~= nil and (math.type(n) ~= "integer" or n < 1 or n > 1024) then
    error("option 'workers' must be an integer 1..1024", level + 1)
  end
end

--- start(opts, host): forks the workers when opts.workers > 1. Returns
-- the options for this process's listener (the shared port, reuse_port
-- set) and the workers' record: { index, count, pids (worker 1 only),
-- reserved (the descriptor holding the port until release) }; or opts
-- and nil when there is a single process.
function M.start(opts, host, level)
  local n = opts.workers or 1
  if n == 1 then return opts, nil end
  local fd, port = core.reserve_port(host, opts.port or 0)
  if not fd then
    error(("listen on %s:%d failed: %s"):format(host, opts.port or 0, port), level + 1)
  end
  local ok, index, pids = pcall(core.fork_workers, n)
  if not ok then
    core.release_port(fd)
    error(index, level + 1)
  end
  local copy = {}
  for k, v in pairs(opts) do copy[k] = v end
  copy.port, copy.reuse_port = port, true
  return copy, { index = index, count = n, pids = pids, reserved = fd }
end

--- The listener is up (or failed): the port needs no holding any more.
function M.release(w)
  if w and w.reserved then
    core.release_port(w.reserved)
    w.reserved = nil
  end
end

--- Stops the other workers (from worker 1; a no-op elsewhere): SIGTERM,
-- SIGKILL after 2 s. Their peers' connections drop.
function M.stop(w)
  if w and w.pids then
    local pids = w.pids
    w.pids = nil
    core.stop_workers(pids)
  end
end

return M
