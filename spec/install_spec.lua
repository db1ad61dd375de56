-- The rockspec builds and installs offline, and the installed module works
-- from any directory.
local helper = require "helper"

describe("luarocks install", function()
  it("builds with luarocks make and works from another directory", function()
    local tree = os.tmpname()
    os.remove(tree)
    local build = io.popen(("luarocks --lua-version=5.4 make --deps-mode=none --tree=%s "
      .. "jsonrpc-websocket-scm-1.rockspec 2>&1"):format(tree))
    local out = build:read("a")
    assert.is_true(build:close(), out)
    local script = ([[
      local jsonrpc = require "jsonrpc_websocket"
      assert(package.searchpath("jsonrpc_websocket.core", package.cpath):find(%q, 1, true))
      local s = jsonrpc.Server(%q)
      s:ws_connect()
      print(s.add(40, 2))
      s:close()
    ]]):format(tree, helper.peer().url())
    local run = io.popen(("cd / && eval \"$(luarocks --lua-version=5.4 --tree=%s path)\" "
      .. "&& timeout 20 lua5.4 -e %q 2>&1"):format(tree, script))
    local got = run:read("a")
    local ok = run:close()
    os.execute("rm -rf " .. tree)
    assert.is_true(ok, got)
    assert.matches("^42", got)
  end)
end)
