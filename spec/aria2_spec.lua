-- Notification streams against aria2c, whose websocket RPC pushes
-- aria2.onDownloadStart / onDownloadError / ... notifications.
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"

-- Starts aria2c with its RPC on a free port; returns { url, stop() }.
local function start_aria2()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -m 700 " .. dir))
  local port = helper.closed_port()
  -- env -u LD_PRELOAD: under `make test-asan` the sanitizer runtime is
  -- preloaded for lua5.4, and aria2c started under it never listens
  local h = io.popen(("env -u LD_PRELOAD aria2c --enable-rpc --rpc-listen-port=%d --rpc-listen-all=false"
    .. " --no-conf --quiet --dir=%s --max-tries=1 --retry-wait=0 >/dev/null 2>&1 & echo $!")
    :format(port, dir))
  local pid = assert(tonumber(h:read("l")))
  h:close()
  local aria = { url = ("ws://127.0.0.1:%d/jsonrpc"):format(port) }
  function aria.stop()
    os.execute(("kill %d 2>/dev/null; rm -rf %s"):format(pid, dir))
  end
  return aria
end

-- Connects, retrying while aria2c starts.
local function connect(url)
  local deadline = jsonrpc.now() + 20
  while true do
    local s = jsonrpc.Server(url, { timeout = 10 })
    local ok, err = pcall(s.ws_connect, s)
    if ok then return s end
    if jsonrpc.now() > deadline then error(err) end
    jsonrpc.sleep(0.1)
  end
end

describe("server:notifications against aria2c", function()
  local aria, s
  setup(function() aria = start_aria2() end)
  teardown(function() aria.stop() end)
  before_each(function() s = connect(aria.url) end)
  after_each(function() s:close() end)

  it("yields aria2.onDownloadStart and onDownloadError for a download", function()
    local started = s:notifications("aria2.onDownloadStart")
    local failed = s:notifications("aria2.onDownloadError")
    local completed = s:notifications("aria2.onDownloadComplete")
    -- a URI where nothing listens: the download starts, then fails
    local gid = s.aria2.addUri({ ("http://127.0.0.1:%d/file"):format(helper.closed_port()) })
    assert.matches("^%x+$", gid)
    assert.same({ { gid = gid } }, started:next(20))
    assert.same({ { gid = gid } }, failed:next(20))
    assert.equal("error", s.aria2.tellStatus(gid, { "status" }).status)
    assert.equal(0, #completed)
  end)

  it("keeps what arrives while nobody reads, in order, and leaves handlers the rest", function()
    local started = s:notifications("aria2.onDownloadStart")
    local errors = {}
    s.aria2.onDownloadError = function(ev) errors[#errors + 1] = ev.gid end
    local gids = {}
    for i = 1, 3 do
      gids[i] = s.aria2.addUri({ ("http://127.0.0.1:%d/%d"):format(helper.closed_port(), i) })
    end
    for i = 1, 3 do assert.equal(gids[i], started:next(20)[1].gid) end
    assert.is_true(helper.eventually(function() return #errors == 3 end, 20))
    table.sort(errors)
    table.sort(gids)
    assert.same(gids, errors)
  end)
end)
