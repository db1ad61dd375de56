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

  it("packs a source rock that installs offline into an empty tree, CLI included", function()
    -- The rockspec's source is the public repository; here it is this
    -- checkout (its files as they are now, tracked or new), as an archive.
    local dir = os.tmpname()
    os.remove(dir)
    local script = table.concat({
      "set -e",
      "mkdir -p " .. dir .. "/jsonrpc-websocket",
      "git ls-files -co --exclude-standard | tar -cf - -T - | tar -xf - -C "
        .. dir .. "/jsonrpc-websocket",
      "cd " .. dir,
      "tar -czf src.tar.gz jsonrpc-websocket && rm -rf jsonrpc-websocket",
      ("sed 's|^  url = .*|  url = \"file://%s/src.tar.gz\", dir = \"jsonrpc-websocket\",|' "
        .. "%s/jsonrpc-websocket-scm-1.rockspec > jsonrpc-websocket-scm-1.rockspec")
        :format(dir, io.popen("pwd"):read("l")),
      "luarocks --lua-version=5.4 pack jsonrpc-websocket-scm-1.rockspec",
      "rm src.tar.gz jsonrpc-websocket-scm-1.rockspec",
      "luarocks --lua-version=5.4 install --deps-mode=none --tree=" .. dir
        .. "/tree jsonrpc-websocket-scm-1.src.rock",
    }, "\n")
    local build = io.popen("(" .. script .. ") 2>&1")
    local out = build:read("a")
    local built = build:close()
    local env = ("cd / && export LUA_PATH_5_4='%s/tree/share/lua/5.4/?.lua;"
      .. "%s/tree/share/lua/5.4/?/init.lua;;' LUA_CPATH_5_4='%s/tree/lib/lua/5.4/?.so;;' && ")
      :format(dir, dir, dir)
    local run = io.popen(env .. ("timeout 20 %s/tree/bin/jsonrpc-ws call %s add 40 2 2>&1 && "
      .. "timeout 20 lua5.4 -e %q 2>&1"):format(dir, helper.peer().url(),
      "print(package.searchpath('jsonrpc_websocket.core', package.cpath))"))
    local got = run:read("a")
    local ok = run:close()
    os.execute("rm -rf " .. dir)
    assert.is_true(built, out)
    assert.matches("jsonrpc%-websocket%-scm%-1%.src%.rock", out)
    assert.is_true(ok, got)
    assert.equal("42\n" .. dir .. "/tree/lib/lua/5.4/jsonrpc_websocket/core.so\n", got)
  end)
end)
