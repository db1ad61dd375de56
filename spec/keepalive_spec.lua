-- keepalive: pings on idle connections, a peer that stops answering is
-- declared dead and the calls waiting on it fail.
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"

describe("keepalive", function()
  it("keeps an idle connection that answers pings, drops a frozen peer", function()
    local idle = jsonrpc.Server(helper.peer().url(), { keepalive = 1 })
    local frozen = jsonrpc.Server(helper.peer().url(), { keepalive = 1 })
    idle:ws_connect()
    frozen:ws_connect()
    local ok, err, seconds
    jsonrpc.run(function()
      jsonrpc.spawn(function()
        local t0 = jsonrpc.now()
        ok, err = pcall(frozen.freeze, 10)
        seconds = jsonrpc.now() - t0
      end)
      jsonrpc.sleep(2.5) -- past the hangup deadline (2 s) of an unanswered ping
    end)
    assert.is_false(ok)
    assert.is_true(jsonrpc.TransportError.is(err), tostring(err))
    assert.equal("keepalive timeout", err.cause)
    assert.is_true(seconds > 1.5 and seconds < 2.5, "dead after " .. tostring(seconds))
    assert.is_false(frozen.connected)
    assert.is_true(idle.connected)
    assert.equal(3, idle.add(1, 2))
    idle:close()
  end)

  it("takes whole seconds or false", function()
    local url = helper.peer().url()
    assert.error_matches(function() jsonrpc.Server(url, { keepalive = 0.5 }) end,
      "option 'keepalive' must be whole seconds")
    assert.error_matches(function() jsonrpc.Server(url, { keepalive = 0 }) end,
      "option 'keepalive' must be whole seconds")
    local s = jsonrpc.Server(url, { keepalive = false })
    s:ws_connect()
    assert.equal(3, s.add(1, 2))
    s:close()
  end)
end)
