-- JSON, exact both ways: the built-in codec (src/json.c) on its own, then
-- round trips through real peers (our own server, the Python peer), with
-- the built-in codec and with lua-cjson plugged in where cjson allows.
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"
local core = require "jsonrpc_websocket.core"
local sh = require "serve_helper"

local encode, decode = core.json_encode, core.json_decode

-- Under the aggressive collector (make test-gc, which hunts lifetime bugs)
-- the random samples and the deep round trips are smaller: every
-- allocation steps the collector there.
local GC_RUN = os.getenv("JSONRPC_GC") == "aggressive"
local function samples(n) return GC_RUN and n // 20 or n end
local DEEP_OURS, DEEP_PYTHON = GC_RUN and 100 or 997, GC_RUN and 100 or 500

-- Serves until pred() holds; fails after about 10 s.
local function wait_for(pred)
  for _ = 1, 1000 do
    if pred() then return end
    jsonrpc.sleep(0.01)
  end
  error("condition not reached in time")
end
local null, array_mt = jsonrpc.null, jsonrpc.array_mt

-- Values whose exact type and bits must survive: math.type and, for
-- floats, the sign of zero.
local function same_number(a, b)
  return math.type(a) == math.type(b) and a == b and 1 / a == 1 / b
end

local INTEGERS = { 0, 1, -1, math.maxinteger, math.mininteger, (1 << 53) - 1, 1 << 53,
  (1 << 53) + 1, -(1 << 53) - 1, 1795962246707123 }
local FLOATS = { 0.1, 1e300, 5e-324, -0.0, 0.0, 2.0, 1 / 3, 2.0 ^ 53, 2.0 ^ 53 + 2,
  1.7976931348623157e308, 2.2250738585072014e-308, -1.5e-7, 123456789.125, 1e15, 1e16, 1e22 }
local SHORTEST = { -- float -> the text the built-in codec writes
  { 0.1, "0.1" }, { 1e300, "1e+300" }, { 5e-324, "5e-324" }, { -0.0, "-0.0" },
  { 2.0, "2.0" }, { 1 / 3, "0.3333333333333333" }, { 1e22, "1e+22" },
  { 2.0 ^ 53, "9007199254740992.0" }, { 1.7976931348623157e308, "1.7976931348623157e+308" },
  { 100.5, "100.5" }, { -1.5e-7, "-1.5e-07" },
}
-- Every escape JSON has, control characters, and multi-byte characters up
-- to U+10FFFF.
local ESCAPES = '"\\/\b\f\n\r\t\0\1\31\127 é € \u{FFFF} \u{10FFFF} 😀 a\0b'

local function nested(depth)
  local v = "leaf"
  for _ = 1, depth do v = { v } end
  return v
end

local function depth_of(v)
  local d = 0
  while type(v) == "table" do v, d = v[1], d + 1 end
  return d, v
end

describe("the built-in codec", function()
  it("keeps integers as Lua integers, exactly, to 64 bits", function()
    for _, n in ipairs(INTEGERS) do
      local text = encode(n)
      assert.equal(("%d"):format(n), text)
      assert.is_true(same_number(n, decode(text)), text)
    end
    assert.equal("integer", math.type(decode("[1]")[1]))
    assert.equal("integer", math.type(decode('{"code":-32602}').code))
  end)

  it("reads a JSON integer beyond 64 bits as the nearest float", function()
    assert.is_true(same_number(2.0 ^ 63, decode("9223372036854775808")))
    assert.is_true(same_number(-2.0 ^ 64, decode("-18446744073709551616")))
    assert.is_true(same_number(1e30, decode("1000000000000000000000000000000")))
  end)

  it("writes floats as the shortest text that reads back as the same float", function()
    for _, case in ipairs(SHORTEST) do
      assert.equal(case[2], encode(case[1]))
    end
    for _, x in ipairs(FLOATS) do
      assert.is_true(same_number(x, decode(encode(x))), encode(x))
    end
    for _ = 1, samples(2000) do -- random bit patterns, every exponent
      local x = string.unpack("d", string.pack("i8", math.random(math.mininteger, math.maxinteger)))
      if x == x and x ~= math.huge and x ~= -math.huge then
        local text = encode(x)
        assert.is_true(same_number(x, decode(text)), text)
        local digits = text:gsub("e.*", ""):gsub("%D", ""):gsub("^0+", ""):gsub("0+$", "")
        assert.is_true(#digits <= 17, text)
      end
    end
  end)

  it("reads numbers as strtod does and writes floats as the shortest printf text", function()
    -- the reference: the fewest of 15, 16, 17 digits (any for a subnormal)
    -- that read back, then ".0" when the text would read as an integer
    local function shortest(x)
      local s
      for p = math.abs(x) < 2.2250738585072014e-308 and 1 or 15, 17 do
        s = ("%." .. p .. "g"):format(x)
        if tonumber(s) == x then break end
      end
      return s:find("[^%d%-]") and s or s .. ".0"
    end
    for i = 1, samples(20000) do
      local x = math.random(-10 ^ 15, 10 ^ 15) / 10.0 ^ math.random(0, 18)
      if i % 2 == 0 then
        x = string.unpack("d", string.pack("i8", math.random(math.mininteger, math.maxinteger)))
      end
      if x == x and math.abs(x) ~= math.huge then
        assert.equal(shortest(x), encode(x))
        local text = ("%.17g"):format(x)
        if text:find("^%-?%d+$") then text = text .. ".0" end
        assert.is_true(same_number(tonumber(text), decode(text)), text)
        text = ("%de%d"):format(math.random(-10 ^ 16, 10 ^ 16), math.random(-40, 40))
        assert.is_true(same_number(tonumber(text) + 0.0, decode(text)), text)
      end
    end
  end)

  it("decodes every escape, surrogate pairs, and lone surrogates as U+FFFD", function()
    assert.equal('"\\/\b\f\n\r\t', decode('"\\"\\\\\\/\\b\\f\\n\\r\\t"'))
    assert.equal("a\0b", decode('"a\\u0000b"'))
    assert.equal("é€", decode('"\\u00e9\\u20AC"'))
    assert.equal("😀", decode('"\\ud83d\\ude00"'))
    assert.equal("\u{10FFFF}", decode('"\\uDBFF\\uDFFF"'))
    assert.equal("\u{FFFD}x", decode('"\\ud800x"'))
    assert.equal("\u{FFFD}", decode('"\\udc00"'))
    assert.equal("\u{FFFD}\u{FFFD}", decode('"\\ud800\\ud800"'))
    assert.equal(ESCAPES, decode(encode(ESCAPES)))
    assert.equal('"\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u0001\\u001f\127"',
      encode('"\\/\b\f\n\r\t\0\1\31\127'))
  end)

  it("finds every byte that needs care at any offset in a long string", function()
    for _, c in ipairs { '"', "\\", "\n", "\0", "\31", "\127", "é", "\u{10FFFF}" } do
      for at = 0, 24 do
        local text = ("a"):rep(at) .. c .. ("b"):rep(24 - at)
        local json = encode(text)
        assert.equal(text, decode(json))
        assert.is_nil(json:find("[%z\1-\31]"))
        if c:byte() < 32 then -- raw, it is refused
          assert.is_nil(decode('"' .. text .. '"'))
        end
      end
    end
    for at = 0, 24 do
      assert.is_nil(decode('"' .. ("a"):rep(at) .. "\xff" .. ("b"):rep(24 - at) .. '"'))
      assert.has_error(function() encode(("a"):rep(at) .. "\xc3") end)
    end
  end)

  it("rejects what RFC 8259 does not allow, naming where", function()
    local invalid = { "1,", "[1,]", '{"a":1,}', "-2.", "2.e3", "-.123", ".5", "01", "-01", "+1",
      "1e", "1e+", "0x10", "NaN", "Infinity", "-Infinity", "tru", "nul", "[1 2]", '{"a" 1}',
      "{a:1}", "'a'", '"a\nb"', '"a\tb"', '"\1"', "1\0", '"a"\0', "[1]x", "", " ", "[", "{",
      '"abc', '"\\x"', '"\\u12"', '"\\uXYZW"', '"\xff"', '"\xc0\x80"', '"\xed\xa0\x80"',
      '"\xf4\x90\x80\x80"', '"\xe2\x82"', "[1]]", "{}}", '{"a":}', "[,1]", "[1,,2]",
      "1e400", "-1e400", "[" .. ("9"):rep(400) .. "]" }
    for _, text in ipairs(invalid) do
      local v, err = decode(text)
      assert.is_nil(v, ("%q"):format(text))
      assert.matches("^invalid JSON: ", err)
    end
    assert.equal("invalid JSON: bad number: no digit after '.' at the end of the text",
      select(2, decode("-2.")))
    assert.equal("invalid JSON: unexpected text after the value at byte 2 (byte value 0)",
      select(2, decode("1\0")))
    assert.equal("invalid JSON: control character in string at byte 3 (byte value 10)",
      select(2, decode('"a\nb"')))
    local ok, err = pcall(jsonrpc.json.decode, "[1,]")
    assert.is_false(ok)
    assert.matches("invalid JSON: unexpected character at byte 4", err)
  end)

  it("accepts every kind of valid text", function()
    assert.same({ 1, -2.5, "x", true, false, null, {}, { a = { b = {} } } },
      decode(' [ 1 , -2.5e0 , "x" , true , false , null , [ ] , { "a" : { "b" : { } } } ] '))
    assert.equal(null, decode("null"))
    assert.equal(false, decode("false"))
    assert.equal("", decode('""'))
    assert.equal(2, decode('{"a":1,"a":2}').a) -- the last of a repeated key
    assert.is_true(same_number(-0.0, decode("-0.0")))
    assert.is_true(same_number(0, decode("-0")))
    assert.is_true(same_number(100.0, decode("1E2")))
    assert.is_true(same_number(0.0, decode("1e-400"))) -- the nearest double
    assert.equal("invalid JSON: number out of range at byte 2 ('1')", select(2, decode("[1e400]")))
  end)

  it("decodes nesting up to 1,000 levels; deeper is a clear error, not a crash", function()
    assert.equal(1000, depth_of(decode(("["):rep(1000) .. ("]"):rep(1000))))
    local v, err = decode(("["):rep(1001) .. ("]"):rep(1001))
    assert.is_nil(v)
    assert.equal("invalid JSON: nested deeper than 1000 levels at byte 1001 ('[')", err)
    assert.is_nil(decode(("["):rep(100000)))
    assert.is_nil(decode(('{"a":'):rep(100000)))
    assert.equal(1000, depth_of(decode(encode(nested(1000)))))
    assert.has_error(function() encode(nested(1001)) end,
      "cannot encode tables nested deeper than 1000 levels")
  end)

  it("says what cannot be encoded", function()
    local t = {}
    t.self = t
    local cases = {
      { t, "cannot encode a table that contains itself (a cycle)" },
      { { a = { b = { t } } }, "cannot encode a table that contains itself (a cycle)" },
      { 0 / 0, "cannot encode NaN: JSON numbers are finite" },
      { { x = math.huge }, "cannot encode inf: JSON numbers are finite" },
      { { -math.huge }, "cannot encode -inf: JSON numbers are finite" },
      { { f = print }, "cannot encode a value of type function" },
      { { [true] = 1 }, "cannot encode a table key of type boolean" },
      { { [100] = 1 }, "cannot encode a sparse array (1 items, keys up to 100): "
        .. "fill its holes with jsonrpc.null" },
      { "ok\xff", "cannot encode a string that is not valid UTF-8 (byte 3 is 0xFF)" },
      { { k = "\xed\xa0\x80" }, "cannot encode a string that is not valid UTF-8 (byte 1 is 0xED)" },
      { io.stdout, "cannot encode a value of type userdata" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(encode, case[1])
      assert.is_false(ok)
      assert.equal(case[2], err)
    end
  end)

  it("writes tables: arrays with holes, {} and [], keys as strings, metatables ignored", function()
    assert.equal("{}", encode({}))
    assert.equal("[]", encode(setmetatable({}, array_mt)))
    assert.equal("[]", encode(decode("[]")))
    assert.equal('{"a":[]}', encode(decode('{"a":[]}')))
    assert.equal("{}", encode(decode("{}")))
    assert.equal("[1,null,3]", encode({ 1, nil, 3 }))
    assert.equal("[null,null,null,null,null,null,null,null,null,1]", encode({ [10] = 1 }))
    assert.equal("[1,2]", encode(setmetatable({ 1, 2 }, { __index = function() return 0 end })))
    assert.equal('{"1":true}', encode({ [1.0 + 0] = nil, [1] = nil, ["1"] = true }))
    assert.equal('{"0":1}', encode({ [0] = 1 }))
    assert.equal('{"1.5":1}', encode({ [1.5] = 1 }))
    assert.equal("null", encode(nil))
    assert.equal("[null]", encode({ null }))
    local mixed = decode(encode({ 1, 2, x = 3 }))
    assert.same({ ["1"] = 1, ["2"] = 2, x = 3 }, mixed)
  end)

  it("is what the module uses by default, exposed as jsonrpc.json", function()
    assert.equal(require("cjson").null, jsonrpc.null)
    assert.equal(encode, jsonrpc.json.encode)
    assert.equal(jsonrpc.null, jsonrpc.json.null)
    assert.equal(array_mt, jsonrpc.json.array_mt)
  end)
end)

-- The values a round trip must keep, exactly: name -> value.
local function round_trip_values(max_depth)
  local values = {}
  for i, n in ipairs(INTEGERS) do values["int" .. i] = n end
  for i, x in ipairs(FLOATS) do values["float" .. i] = x end
  values.escapes = ESCAPES
  values.deep = nested(max_depth)
  values.record = { id = 9007199254740993, amount = 0.1, list = { 1, 2.5, "x", true }, none = null }
  return values
end

local function assert_same_value(expected, got, what)
  if type(expected) == "number" then
    assert.is_true(same_number(expected, got),
      ("%s: sent %s (%s), got %s (%s)"):format(what, expected, math.type(expected),
        tostring(got), math.type(got)))
  elseif type(expected) == "table" then
    assert.equal("table", type(got), what)
    local n = 0
    for k, v in pairs(expected) do
      assert_same_value(v, got[k], what .. "." .. tostring(k))
      n = n + 1
    end
    for _ in pairs(got) do n = n - 1 end
    assert.equal(0, n, what .. ": extra keys")
  else
    assert.equal(expected, got, what)
  end
end

describe("round trips through our own server", function()
  local srv, reported, told
  local function serve(opts)
    reported = {}
    opts.on_error = function(e) reported[#reported + 1] = e end
    srv = jsonrpc.listen(opts)
    srv.echo = function(...) return { ... } end
    srv.echo1 = function(x) return x end
    srv.tell = function(x) told = x end
  end
  after_each(function() srv:close() end)

  local function client(opts)
    opts = opts or {}
    opts.timeout = 10
    local c = jsonrpc.Server(("ws://127.0.0.1:%d/"):format(srv.port), opts)
    c:ws_connect()
    return c
  end

  it("keeps every value exactly, as params, results, notifications and in batches", function()
    serve {}
    local c = client()
    -- a handler result nested 997 levels deep is 998 with the reply around it
    for name, v in pairs(round_trip_values(DEEP_OURS)) do
      assert_same_value(v, c.echo1(v), name .. " (proxy)")
      assert_same_value({ v }, c.echo(v), name .. " (echo)")
      assert_same_value(v, c:call("echo", { v })[1], name .. " (call)")
      assert_same_value(v, c.echo1 { k = v }.k, name .. " (named)")
      local r = c:batch(function(b) b.echo1(v) b:call("echo", { 1, v }) end)
      assert_same_value(v, r[1].result, name .. " (batch)")
      assert_same_value(v, r[2].result[2], name .. " (batch call)")
    end
    c:notify("tell", math.maxinteger)
    wait_for(function() return told end)
    assert.is_true(same_number(math.maxinteger, told))
    assert.same({}, reported)
    c:close()
  end)

  it("keeps integers in notify_all and in calls from the server to the client", function()
    serve {}
    local c = client()
    local got
    c.tick = function(...) got = table.pack(...) end
    c.back = function(x) return { x, x + 1 } end
    assert.equal(1, c.echo1(1)) -- connected and known to the server
    local peer = srv:peers()[1]
    srv:notify_all("tick", math.maxinteger, { 1, { 2 } }, 0.1)
    wait_for(function() return got end)
    assert_same_value({ n = 3, math.maxinteger, { 1, { 2 } }, 0.1 }, got, "notify_all")
    assert_same_value({ 1 << 62, (1 << 62) + 1 }, peer.back(1 << 62), "server to client")
    c:close()
  end)

  it("keeps integers in errors: codes and data", function()
    serve {}
    srv.fail = function(n) error(jsonrpc.ProtocolError(-32099, "custom", { n = n, f = 0.1 })) end
    local c = client()
    local ok, err = pcall(c.fail, math.mininteger)
    assert.is_false(ok)
    assert.is_true(same_number(-32099, err.code))
    assert.is_true(same_number(math.mininteger, err.data.n))
    assert.is_true(same_number(0.1, err.data.f))
    c:close()
  end)

  it("never answers with bytes that are not UTF-8", function()
    serve {}
    srv.bad_result = function() return { ok = "\xff" } end
    srv.bad_error = function() error("\xff\xfe") end
    srv.bad_data = function() error(jsonrpc.ProtocolError(-32099, "custom", "\xc3")) end
    local c = client()
    local ok, err = pcall(c.bad_result)
    assert.is_false(ok)
    assert.same({ -32603, "Internal error" }, { err.code, err.message })
    assert.matches("not valid UTF%-8", tostring(reported[1]))
    ok, err = pcall(c.bad_error)
    assert.same({ false, -32603, "Internal error" }, { ok, err.code, err.message })
    ok, err = pcall(c.bad_data)
    assert.same({ false, -32099, "custom" }, { ok, err.code, err.message })
    assert.is_nil(err.data) -- dropped: it cannot be written
    assert.equal(3, c.echo1(3))
    c:close()
  end)

  it("answers nesting past the limit with -32700, and serves on", function()
    serve {}
    local heard = {}
    local c = client { on_error = function(e) heard[#heard + 1] = e end }
    c:notify("echo1", nested(999)) -- 1,001 levels with the message around it
    wait_for(function() return #heard > 0 end)
    assert.equal(-32700, heard[1].code) -- the server could not read it: an id-null error
    assert.matches("Parse error", heard[1].message)
    assert.equal(-32700, reported[1].code)
    assert.matches("nested deeper than 1000 levels", reported[1].message)
    assert.equal(3, c.echo1(3))
    c:close()
  end)

  it("does the same with lua-cjson plugged in on both ends, where cjson can", function()
    local cjson = require("cjson").new()
    serve { json = cjson }
    local c = client { json = cjson }
    -- Debian's cjson (mpx 2.1.0) writes 14 significant digits and reads
    -- every number as a float: what survives is what 14 digits hold.
    local r = c.echo1 { 1, 2.5, ESCAPES, { a = { b = true } }, null }
    assert.same({ 1, 2.5, ESCAPES, { a = { b = true } }, null }, r)
    assert.equal(1000 - 3, depth_of(c.echo1(nested(1000 - 3))))
    c:close()
  end)
end)

describe("round trips through the Python peer", function()
  local s
  before_each(function() s = helper.connected(nil, { timeout = 10 }) end)
  after_each(function() s:close() end)

  it("keeps every value exactly, both ways", function()
    -- Python's json recurses: 500 levels stay clear of its limit
    for name, v in pairs(round_trip_values(DEEP_PYTHON)) do
      assert_same_value({ v, 1 }, s.echo(v, 1), name)
      assert_same_value({ 1, v }, s:call("echo", { 1, v }), name .. " (call)")
      assert_same_value({ k = v }, s.echo { k = v }, name .. " (named)")
    end
  end)

  it("keeps what cjson can hold with lua-cjson plugged in", function()
    local cjson = require("cjson").new()
    local c = helper.connected(nil, { timeout = 10, json = cjson })
    -- Debian's cjson (mpx 2.1.0): 14 significant digits, every number a float
    local v = { 1, -2, 2 ^ 40, 0.1, 1e300, 1.5e-7, ESCAPES, { a = { b = true } }, null }
    assert.same({ v, 1 }, c.echo(v, 1))
    assert.same({ k = v }, c.echo { k = v })
    assert.equal(500, depth_of(c.echo(nested(500), 1)[1]))
    c:close()
  end)

  it("needs no lua-cjson at all", function()
    local ok, out = helper.run_lua(([[
      package.preload.cjson = function() error("no cjson here") end
      package.preload["cjson.safe"] = package.preload.cjson
      local jsonrpc = require "jsonrpc_websocket"
      local s = jsonrpc.Server(%q)
      s:ws_connect()
      local r = s.echo(math.maxinteger, 0.1, { a = { 1 } })
      print(math.type(r[1]), r[1], r[2], r[3].a[1], package.loaded.cjson)
      s:close()
    ]]):format(helper.peer().url()))
    assert.is_true(ok, out)
    assert.equal("integer\t9223372036854775807\t0.1\t1\tnil\n", out)
  end)

  it("sends one spelling of a number whichever path writes it", function()
    s.echo(0.1, { 0.1 }, math.maxinteger, { math.maxinteger }, -0.0, { -0.0 })
    local got = s.received()
    assert.equal('[0.1,[0.1],9223372036854775807,[9223372036854775807],-0.0,[-0.0]]',
      got[#got].data:match('"params":(%b[])'))
  end)

  it("reports each invalid message the peer sends to on_error, and stays connected", function()
    local reported = {}
    s:on("error", function(e) reported[#reported + 1] = e end)
    -- (ids nobody waits for: an answer to a waiting call would settle it)
    local invalid = {}
    for _, result in ipairs { "1,}", '1 "x":1}', "-2.}", "2.e3}", "-.123}", '"a\nb"}', "1}\0" } do
      invalid[#invalid + 1] = '{"jsonrpc":"2.0","id":424242,"result":' .. result
    end
    for _, text in ipairs { '[{"jsonrpc":"2.0","id":424242,"result":1},]',
      '{"jsonrpc":"2.0","method":"x","params":[1,]}', "[1,]" } do
      invalid[#invalid + 1] = text
    end
    for _, text in ipairs(invalid) do s.send_raw(text) end
    wait_for(function() return #reported >= #invalid end)
    for i, err in ipairs(reported) do
      assert.equal(-32700, err.code, invalid[i])
      assert.matches("not JSON: invalid JSON", err.message)
    end
    assert.equal(3, s.add(1, 2))
  end)
end)

describe("parse errors at our server", function()
  local srv
  before_each(function()
    srv = jsonrpc.listen { on_error = function() end }
    srv.echo1 = function(x) return x end
  end)
  after_each(function() srv:close() end)

  it("are answered with -32700 and id null, in valid text frames; the connection stays", function()
    local url = ("ws://127.0.0.1:%d/"):format(srv.port)
    -- a binary frame whose string is not UTF-8 (the server must not echo it
    -- in a text frame), then the issue's invalid texts, then a good call
    local job = sh.pyclient(url, "--expect", "9",
      "--binary-hex", ('{"jsonrpc":"2.0","id":1,"method":"echo1","params":["\xff"]}')
        :gsub(".", function(c) return ("%02x"):format(c:byte()) end),
      "--binary-hex", "3100", -- 1 then NUL
      "--", "[1,]", "-2.", "2.e3", "-.123", '["a\nb"]',
      '{"jsonrpc":"2.0","id":5,"method":"echo1","params":[1],}',
      '{"jsonrpc":"2.0","id":7,"method":"echo1","params":[0.1]}')
    local out = job.wait(30)
    local got = sh.received(out)
    assert.equal(9, #got, out)
    assert.is_nil(out:find("CLOSED", 1, true), out)
    for i = 1, 8 do
      assert.equal('{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}',
        got[i].text)
    end
    assert.equal('{"jsonrpc":"2.0","id":7,"result":0.1}', got[9].text)
  end)
end)

describe("named_params = false", function()
  it("sends a single table argument as one positional value, on every call", function()
    local s = helper.connected(nil, { named_params = false })
    assert.same({ { a = 1 } }, s.echo { a = 1 })
    s:notify("log", { b = 2 })
    s:batch(function(b) b.echo { c = 3 } end)
    local got = s.received()
    assert.equal('[{"a":1}]', got[#got - 2].data:match('"params":(%b[])'))
    assert.equal('[{"b":2}]', got[#got - 1].data:match('"params":(%b[])'))
    assert.matches('"params":%[{"c":3}%]', got[#got].data)
    assert.same({ 1, 2 }, s.echo(1, 2))
    s:close()
    local named = helper.connected()
    assert.same({ a = 1 }, named.echo { a = 1 })
    named:close()
    assert.has_error(function() jsonrpc.Server("ws://127.0.0.1:1/", { named_params = "no" }) end,
      "option 'named_params' must be a boolean")
  end)
end)
