--- make conformance JSON_TEST_SUITE=<checkout of nst/JSONTestSuite>:
-- serves with jsonrpc.listen (the built-in codec, or cjson with
-- CODEC=cjson) while bench/json_conformance.py sends it every document of
-- the suite's test_parsing/ through the real inbound path, and prints the
-- counts. Exits non-zero when a document went the wrong way.
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./build/?.so;" .. package.cpath
local jsonrpc = require "jsonrpc_websocket"

local suite = assert(arg[1], "usage: json_conformance.lua SUITE_DIR")
local json = os.getenv("CODEC") == "cjson" and require("cjson").new() or nil
local srv = jsonrpc.listen { json = json, on_error = function() end }
local out = os.tmpname()
local done = out .. ".done"
os.execute(("(/usr/bin/python3 bench/json_conformance.py ws://127.0.0.1:%d/ '%s' > %s 2>&1; "
  .. "echo $? > %s) &"):format(srv.port, suite, out, done))
local status
while not status do
  jsonrpc.sleep(0.05)
  local f = io.open(done)
  if f then
    status = f:read("n")
    f:close()
  end
end
local f = io.open(out)
io.write(f:read("a"))
f:close()
os.remove(out)
os.remove(done)
srv:close()
os.exit(status == 0)
