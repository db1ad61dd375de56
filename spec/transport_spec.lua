-- What crosses the wire: fragments, sizes, frame types, closing, exit.
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"

local function connected(opts) return helper.connected(nil, opts) end

-- Polls the peer until it has seen one more closed connection.
local function next_close(s, before)
  for _ = 1, 100 do
    local closes = s.closes()
    if #closes > before then return closes[#closes] end
    jsonrpc.sleep(0.02)
  end
end

describe("transport", function()
  local s
  before_each(function() s = connected() end)
  after_each(function() s:close() end)

  it("reassembles messages however the peer fragments them", function()
    local text = ("abcdefghij"):rep(1000)
    assert.equal(text, s.fragmented(text, 7))
    assert.equal("é", s.fragmented("é", 1))
  end)

  it("receives multi-megabyte messages", function()
    assert.equal(5 * 1024 * 1024, #s.big(5 * 1024 * 1024))
  end)

  it("sends 4 MiB params whole", function()
    local big = ("0123456789abcdef"):rep(256 * 1024)
    assert.equal(#big, s.len(big))
    assert.equal(big, s.echo(big)[1])
  end)

  -- Small messages that wait together leave in one write, framed and
  -- masked by the core (src/frame.c): every length class of the frame
  -- header, and every remainder of the 8-byte masking, must arrive intact.
  it("sends messages of every frame length intact, alone and together", function()
    local lengths = {}
    for n = 0, 140 do lengths[#lengths + 1] = n end
    for _, n in ipairs { 65400, 65536 - 60, 65536, 70000 } do lengths[#lengths + 1] = n end
    local function text(n) return ("0123456789abcdef\"\\\n"):rep(n // 19 + 1):sub(1, n) end
    for _, n in ipairs(lengths) do -- one at a time
      assert.equal(text(n), s.echo(text(n))[1])
    end
    local got = {}
    jsonrpc.run(function() -- all at once: gathered
      for i, n in ipairs(lengths) do
        jsonrpc.spawn(function() got[i] = s.echo(text(n))[1] end)
      end
    end)
    for i, n in ipairs(lengths) do assert.equal(text(n), got[i], "length " .. n) end
  end)

  it("accepts binary frames carrying JSON", function()
    assert.same({ 1, "two" }, s.binary({ 1, "two" }))
  end)

  it("sends text frames", function()
    s.add(1, 2)
    local got = s.received()
    assert.equal("text", got[#got].type)
  end)

  it("fails with TransportError on a message over max_message_size", function()
    local small = connected({ max_message_size = 1000 })
    assert.equal(900, #small.big(900))
    local before = #s.closes()
    local ok, err = pcall(small.big, 5000)
    assert.is_false(ok)
    assert.is_true(jsonrpc.TransportError.is(err))
    assert.equal("incoming message larger than max_message_size (1000 bytes), "
      .. "connection closed (1009)", err.cause)
    assert.is_false(small.connected)
    assert.equal(1009, next_close(s, before)[1])
  end)

  it("refuses to send a message over max_message_size, and stays open", function()
    local small = connected({ max_message_size = 1000 })
    local before = #small.received()
    local ok, err = pcall(small.echo, ("x"):rep(2000))
    assert.is_false(ok)
    assert.is_true(jsonrpc.TransportError.is(err))
    assert.equal("Message too large.", err.message)
    assert.matches("^outgoing message of %d+ bytes is larger than max_message_size "
      .. "%(1000 bytes%), not sent$", err.cause)
    assert.equal("echo", err.method)
    ok, err = pcall(small.notify, small, "log", ("x"):rep(2000))
    assert.is_false(ok)
    assert.equal("Message too large.", err.message)
    assert.is_true(small.connected)
    assert.equal(before + 1, #small.received(), "nothing of the large messages was sent")
    small:close()
  end)

  it("closes a collected Server", function()
    local before = #s.closes()
    do
      local c = jsonrpc.Server(helper.peer().url())
      c:ws_connect()
    end
    collectgarbage()
    collectgarbage()
    local closed = next_close(s, before)
    assert.is_not_nil(closed, "the peer never saw the collected connection close")
    assert.equal(1001, closed[1])
  end)

  it("lets a script exit with a connection open, promptly", function()
    local ok, out, seconds = helper.run_lua(([[
      local jsonrpc = require "jsonrpc_websocket"
      local s = jsonrpc.Server(%q)
      s:ws_connect()
      print(s.add(20, 22))
      jsonrpc.spawn(function() s.never() end)
    ]]):format(helper.peer().url()))
    assert.is_true(ok, out)
    assert.matches("^42", out)
    assert.is_true(seconds < 5)
  end)

  it("lets a script exit with os.exit while calls wait", function()
    local ok, out, seconds = helper.run_lua(([[
      local jsonrpc = require "jsonrpc_websocket"
      local s = jsonrpc.Server(%q)
      s:ws_connect()
      jsonrpc.run(function()
        jsonrpc.spawn(function() pcall(s.never) end)
        jsonrpc.sleep(0.05)
        os.exit(0, true)
      end)
    ]]):format(helper.peer().url()))
    assert.is_true(ok, out)
    assert.is_true(seconds < 5)
  end)
end)
