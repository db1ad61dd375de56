-- listen{ workers = N } and reuse_port (issue 16): N processes share one
-- port, every one of them serves, and none outlives its parent.
local jsonrpc = require "jsonrpc_websocket"
local helper = require "helper"

-- Starts spec/workers_server.lua; returns { port, pid, handle, stop() }.
-- The module under test is the one this run loads (the ASan build, in the
-- ASan suite): its cpath goes to the server.
local function start_server(args)
  local cpath = package.cpath:match("^[^;]*")
  return helper.start_process(("env JRWS_SPEC_CPATH=%s lua5.4 spec/workers_server.lua %s")
    :format(cpath, args))
end

-- The kernel's list, not pgrep: under the ASan suite every child process
-- has the sanitizer preloaded, and pgrep can deadlock in it.
local function children(pid)
  local list = {}
  local f = assert(io.open(("/proc/%d/task/%d/children"):format(pid, pid)))
  for n in f:read("a"):gmatch("%d+") do list[#list + 1] = tonumber(n) end
  f:close()
  return list
end

local function alive(pid)
  -- a zombie is gone for our purpose: its parent has not reaped it yet
  local f = io.open(("/proc/%d/stat"):format(pid))
  if not f then return false end
  local state = f:read("a"):match("%) (%a)")
  f:close()
  return state ~= "Z"
end

local function wait_gone(pids, seconds)
  local deadline = jsonrpc.now() + seconds
  repeat
    local any = false
    for _, pid in ipairs(pids) do any = any or alive(pid) end
    if not any then return true end
    jsonrpc.sleep(0.05)
  until jsonrpc.now() > deadline
  return false
end

-- The pids that answered `calls` fresh connections.
local function pids_seen(port, calls)
  local seen, n = {}, 0
  for _ = 1, calls do
    local c = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(port), { timeout = 10 })
    c:ws_connect()
    local pid = c.pid()
    if not seen[pid] then n = n + 1 end
    seen[pid] = true
    c:close()
  end
  return seen, n
end

describe("listen{ workers = N }", function()
  it("runs N processes on one port, and every one serves", function()
    local s = start_server("3 0")
    local kids = children(s.pid)
    assert.are.equal(2, #kids)
    local workers = { [s.pid] = true }
    for _, pid in ipairs(kids) do workers[pid] = true end
    local seen, n = pids_seen(s.port, 60)
    assert.is_true(n >= 2, "connections reached only " .. n .. " worker(s)")
    for pid in pairs(seen) do assert.is_true(workers[pid], "pid " .. pid .. " is no worker") end
    -- each worker knows which one it is
    local c = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(s.port), { timeout = 10 })
    c:ws_connect()
    local where = c.where()
    c:close()
    assert.are.equal(3, where.workers)
    assert.is_true(where.worker >= 1 and where.worker <= 3)
    s.stop()
    assert.is_true(wait_gone(kids, 10), "workers outlived their parent")
  end)

  it("stops its workers when worker 1 closes the listener", function()
    local s = start_server("2 0 1")
    local kids = children(s.pid)
    assert.are.equal(1, #kids)
    assert.are.equal("CLOSED", s.handle:read("l"))
    assert.is_true(wait_gone(kids, 10), "a worker outlived close()")
    assert.is_true(alive(s.pid)) -- the parent itself goes on
    s.stop()
  end)

  it("leaves no worker behind when the parent is killed outright", function()
    local s = start_server("2 0")
    local kids = children(s.pid)
    assert.are.equal(1, #kids)
    os.execute(("kill -9 %d"):format(s.pid))
    assert.is_true(wait_gone(kids, 10), "a worker outlived a killed parent")
    s.handle:close()
    s.handle = nil
  end)

  it("refuses bad counts, and workers once the engine runs", function()
    local ok, out = helper.run_lua([[
      local jsonrpc = require "jsonrpc_websocket"
      print(select(2, pcall(jsonrpc.listen, { workers = 0 })))
      print(select(2, pcall(jsonrpc.listen, { workers = 1.5 })))
      local first = jsonrpc.listen {}
      print(select(2, pcall(jsonrpc.listen, { workers = 2 })))
      first:close()
    ]])
    assert.is_true(ok, out)
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.matches("option 'workers' must be an integer 1..1024", lines[1], 1, true)
    assert.matches("option 'workers' must be an integer 1..1024", lines[2], 1, true)
    assert.matches("workers must be started before this process opens any connection",
      lines[3], 1, true)
  end)
end)

describe("listen{ reuse_port = true }", function()
  it("lets separate processes share a port, both serving", function()
    local a = start_server("1 0 0 reuse")
    local b = start_server(("1 %d 0 reuse"):format(a.port))
    assert.are.equal(a.port, b.port)
    local seen, n = pids_seen(a.port, 60)
    assert.is_true(n == 2 and seen[a.pid] and seen[b.pid],
      "connections reached " .. n .. " process(es)")
    a.stop()
    -- the other goes on serving alone
    local _, n2 = pids_seen(a.port, 5)
    assert.are.equal(1, n2)
    b.stop()
  end)

  it("without it, a second process cannot take the port", function()
    local a = start_server("1 0")
    local ok, out = helper.run_lua(([[
      local jsonrpc = require "jsonrpc_websocket"
      print(pcall(jsonrpc.listen, { port = %d, reuse_port = true }))
    ]]):format(a.port))
    assert.is_true(ok, out)
    assert.matches("false", out, 1, true)
    a.stop()
  end)
end)
