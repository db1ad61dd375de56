-- The server's request path (issue 16): the core reads the common request
-- itself (src/scan.c jr_push_request) and handlers run at once in pooled
-- tasks; whatever the fast path does not take goes the general way. Both
-- must answer exactly alike: these send raw frames from an independent
-- client (spec/pyclient.py) and compare the reply texts byte for byte.
local jsonrpc = require "jsonrpc_websocket"
local sh = require "serve_helper"

local function url(srv) return ("ws://127.0.0.1:%d/"):format(srv.port) end

-- Sends the frames, waits for `expect` replies; returns their texts as a
-- set, and how many came. An error reply is entered as its text up to the
-- error object, then code and message (the object's key order is the
-- codec's business).
local function exchange(srv, expect, ...)
  local out = sh.pyclient(url(srv), "--expect", tostring(expect), ...).wait()
  local got, list = {}, sh.received(out)
  for _, r in ipairs(list) do
    local head = r.text:match('^(.-"error":){')
    if head then
      got[("%s%d %s"):format(head, r.msg.error.code, r.msg.error.message)] = true
    else
      got[r.text] = true
    end
  end
  return got, #list
end

describe("the server's request path", function()
  local srv, reported
  before_each(function()
    reported = {}
    srv = jsonrpc.listen { port = 0, on_error = function(e) reported[#reported + 1] = e end }
    srv.add = function(a, b) return a + b end
    srv.nargs = function(...) return select("#", ...) end
    srv.kind = function(p) return getmetatable(p) == jsonrpc.json.array_mt and "array" or type(p) end
    srv.who = function() return jsonrpc.peer().id end
  end)
  after_each(function() srv:close() end)

  it("echoes every kind of id byte for byte, members in any order", function()
    local got, n = exchange(srv, 5,
      '{"jsonrpc":"2.0","id":"a\\u0062","method":"add","params":[1,2]}',
      '{"params":[2,2],"id":-0.5e3,"method":"add","jsonrpc":"2.0"}',
      '{"jsonrpc":"2.0","id":12345678901234567890,"method":"add","params":[3,3]}',
      '{"method":"add","params":[4,4],"id":null}',
      ' { "jsonrpc" : "2.0" , "id" : 7 , "method" : "add" , "params" : [ 5 , 5 ] } ')
    assert.equal(5, n)
    assert.is_true(got['{"jsonrpc":"2.0","id":"a\\u0062","result":3}'])
    assert.is_true(got['{"jsonrpc":"2.0","id":-0.5e3,"result":4}'])
    assert.is_true(got['{"jsonrpc":"2.0","id":12345678901234567890,"result":6}'])
    assert.is_true(got['{"jsonrpc":"2.0","id":null,"result":8}'])
    assert.is_true(got['{"jsonrpc":"2.0","id":7,"result":10}'])
  end)

  it("passes params as the handler expects: none, [], {}, nulls", function()
    local got = exchange(srv, 7,
      '{"jsonrpc":"2.0","id":1,"method":"nargs"}',
      '{"jsonrpc":"2.0","id":2,"method":"nargs","params":[]}',
      '{"jsonrpc":"2.0","id":3,"method":"nargs","params":{}}',
      '{"jsonrpc":"2.0","id":4,"method":"nargs","params":[1,null]}',
      '{"jsonrpc":"2.0","id":5,"method":"nargs","params":[null]}',
      '{"jsonrpc":"2.0","id":6,"method":"kind","params":[[]]}',
      '{"jsonrpc":"2.0","id":7,"method":"kind","params":{"a":[]}}')
    for id, want in ipairs { 0, 0, 1, 2, 1, '"array"', '"table"' } do
      assert.is_true(got[('{"jsonrpc":"2.0","id":%d,"result":%s}'):format(id, want)], id)
    end
  end)

  it("passes many arguments, nulls among them, in order", function()
    srv.last = function(...) return select(select("#", ...), ...) end
    srv.list = function(...)
      local t, out = table.pack(...), {}
      for i = 1, t.n do out[i] = tostring(t[i]) end
      return table.concat(out, ",")
    end
    local got = exchange(srv, 5,
      '{"jsonrpc":"2.0","id":1,"method":"nargs","params":[1,2,3,4]}',
      '{"jsonrpc":"2.0","id":2,"method":"nargs","params":[1,2,3,4,5,null]}',
      '{"jsonrpc":"2.0","id":3,"method":"last","params":[null,null,null,null,null,7]}',
      '{"jsonrpc":"2.0","id":4,"method":"last","params":[1,2,3,[4,null]]}',
      '{"jsonrpc":"2.0","id":5,"method":"list","params":["a",null,"c",null,"e"]}')
    assert.is_true(got['{"jsonrpc":"2.0","id":1,"result":4}'])
    assert.is_true(got['{"jsonrpc":"2.0","id":2,"result":6}'])
    assert.is_true(got['{"jsonrpc":"2.0","id":3,"result":7}'])
    assert.is_true(got['{"jsonrpc":"2.0","id":4,"result":[4,null]}'])
    assert.is_true(got['{"jsonrpc":"2.0","id":5,"result":"a,nil,c,nil,e"}'])
  end)

  it("answers what the fast path leaves alone as the general path always did", function()
    local got, n = exchange(srv, 6,
      '{"jsonrpc":"2.0","id":1,"id":2,"method":"add","params":[1,2]}', -- duplicate: the last wins
      '{"jsonrpc":"2.0","id":3,"method":"ad\\u0064","params":[1,2]}',   -- an escaped method
      '{"jsonrpc":"2.0","id":4,"method":"add","params":[1,2],"x":1}',   -- an unknown member
      '{"jsonrpc":"2.0","id":true,"method":"add","params":[1,2]}',
      '{"jsonrpc":"2.0","id":5,"method":"add","params":5}',
      '{"jsonrpc":"2.0","id":6,"method":"nope","params":[1]}')
    assert.equal(6, n)
    assert.is_true(got['{"jsonrpc":"2.0","id":2,"result":3}'])
    assert.is_true(got['{"jsonrpc":"2.0","id":3,"result":3}'])
    assert.is_true(got['{"jsonrpc":"2.0","id":4,"result":3}'])
    assert.is_true(got['{"jsonrpc":"2.0","id":null,"error":-32600 Invalid Request'])
    assert.is_true(got['{"jsonrpc":"2.0","id":5,"error":-32602 Invalid params'])
    assert.is_true(got['{"jsonrpc":"2.0","id":6,"error":-32601 Method not found'])
  end)

  it("runs notifications without answering them", function()
    local seen = {}
    srv.note = function(x) seen[#seen + 1] = x end
    local _, n = exchange(srv, 2,
      '{"jsonrpc":"2.0","method":"note","params":["a"]}',
      '{"jsonrpc":"2.0","method":"note","params":{"b":1}}',
      '{"jsonrpc":"2.0","method":"unknown_note"}',
      '{"jsonrpc":"2.0","id":1,"method":"add","params":[1,1]}',
      '{"jsonrpc":"2.0","id":2,"method":"add","params":[2,2]}')
    assert.equal(2, n) -- only the two requests were answered
    assert.same({ "a", { b = 1 } }, seen)
  end)

  it("tells each handler its own peer, though tasks are reused", function()
    local a = exchange(srv, 1, '{"jsonrpc":"2.0","id":1,"method":"who"}')
    local b = exchange(srv, 1, '{"jsonrpc":"2.0","id":1,"method":"who"}')
    local ids = {}
    for text in pairs(a) do ids[1] = text end
    for text in pairs(b) do ids[2] = text end
    assert.are_not.equal(ids[1], ids[2])
    assert.is_nil(jsonrpc.peer()) -- nothing is left behind outside a handler
  end)

  it("keeps serving after handlers fail, yield bare, or wait", function()
    srv.boom = function() error("boom") end
    srv.bare = function(x) coroutine.yield() return x end
    srv.slow = function(x) jsonrpc.sleep(0.05) return x end
    local got, n = exchange(srv, 5,
      '{"jsonrpc":"2.0","id":1,"method":"boom"}',
      '{"jsonrpc":"2.0","id":2,"method":"bare","params":[2]}',
      '{"jsonrpc":"2.0","id":3,"method":"slow","params":[3]}',
      '{"jsonrpc":"2.0","id":4,"method":"boom"}',
      '{"jsonrpc":"2.0","id":5,"method":"add","params":[2,3]}')
    assert.equal(5, n)
    assert.is_true(got['{"jsonrpc":"2.0","id":2,"result":2}'])
    assert.is_true(got['{"jsonrpc":"2.0","id":3,"result":3}'])
    assert.is_true(got['{"jsonrpc":"2.0","id":5,"result":5}'])
    assert.is_true(got['{"jsonrpc":"2.0","id":4,"error":-32000 Server Error: boom'])
    assert.equal(2, #reported) -- both failures reported here
  end)

  it("counts handler_timeout while a handler waits", function()
    srv:close()
    srv = jsonrpc.listen { port = 0, handler_timeout = 0.1, on_error = function() end }
    srv.stuck = function() jsonrpc.sleep(30) end
    srv.add = function(a, b) return a + b end
    local got = exchange(srv, 2,
      '{"jsonrpc":"2.0","id":1,"method":"stuck"}',
      '{"jsonrpc":"2.0","id":2,"method":"add","params":[1,2]}')
    assert.is_true(got['{"jsonrpc":"2.0","id":2,"result":3}'])
    assert.is_true(got['{"jsonrpc":"2.0","id":1,"error":-32603 Internal error: handler timed out'])
  end)

  it("answers a long batch in full, max_concurrent elements a turn", function()
    srv:close()
    srv = jsonrpc.listen { port = 0, max_concurrent_requests = 2 }
    srv.add = function(a, b) return a + b end
    local elements = {}
    for i = 1, 25 do
      elements[i] = ('{"jsonrpc":"2.0","id":%d,"method":"add","params":[%d,1]}'):format(i, i)
    end
    local out = sh.pyclient(url(srv), "--expect", "2", "[" .. table.concat(elements, ",") .. "]",
      '{"jsonrpc":"2.0","id":"after","method":"add","params":[0,0]}').wait()
    local r = sh.received(out)
    assert.equal(2, #r)
    local batch = r[1].msg[1] and r[1].msg or r[2].msg
    assert.equal(25, #batch)
    for _, answer in ipairs(batch) do assert.equal(answer.id + 1, answer.result) end
  end)
end)
