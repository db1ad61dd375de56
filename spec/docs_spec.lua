-- The reference manual (docs/api/jsonrpc_websocket.lua, LDoc) documents
-- every public function: the public tables are walked at run time and each
-- function must have a doc comment there with an @usage example.
local jsonrpc = require "jsonrpc_websocket"
local client = require "jsonrpc_websocket.client"
local listen = require "jsonrpc_websocket.listen"
local queue = require "jsonrpc_websocket.queue"
local stream = require "jsonrpc_websocket.stream"
local subscription = require "jsonrpc_websocket.subscription"

local REFERENCE = "docs/api/jsonrpc_websocket.lua"

-- Not for users, so not in the reference (with the reason).
local INTERNAL = {
  ["Stream.finish"] = "how the library ends a stream (Queue:finish is public)",
}

-- name ("Server:call", "run", "TransportError.is") -> its doc comment.
local function documented()
  local docs, block = {}, {}
  for line in io.lines(REFERENCE) do
    if line:match("^%-%-") then
      if line:match("^%-%-%-") then block = {} end
      block[#block + 1] = line
    else
      local name = line:match("^function ([%w_.:]+)%(")
      if name then docs[name:gsub(":", ".")] = table.concat(block, "\n") end
      block = {}
    end
  end
  return docs
end

local CLASSES = {
  Server = client.methods, Listener = listen.listener_methods, Peer = listen.peer_methods,
  Queue = queue.Queue, Event = queue.Event, Stream = stream.Stream,
  Subscription = subscription.Subscription, Loop = getmetatable(jsonrpc.loop).__index,
  TransportError = jsonrpc.TransportError, TimeoutError = jsonrpc.TimeoutError,
  ProtocolError = jsonrpc.ProtocolError, OverflowError = jsonrpc.OverflowError,
}

-- Every public function, as "Class.name" (or "name" for the module's).
local function public()
  local names = {}
  local function add(prefix, t)
    for k, v in pairs(t) do
      if type(v) == "function" and type(k) == "string" and not k:match("^__") then
        names[#names + 1] = prefix and prefix .. "." .. k or k
      end
    end
  end
  add(nil, jsonrpc)
  for _, class in ipairs { "Server", "Listener", "Peer", "Queue", "Event", "Stream",
    "Subscription", "Loop" } do
    add(class, CLASSES[class])
  end
  for _, class in ipairs { "TransportError", "TimeoutError", "ProtocolError", "OverflowError" } do
    names[#names + 1] = class .. ".is"
  end
  table.sort(names)
  return names
end

describe("the reference", function()
  local docs = documented()

  it("documents every public function with a summary and an @usage example", function()
    local missing = {}
    for _, name in ipairs(public()) do
      local doc = docs[name]
      if not INTERNAL[name] and not (doc and doc:match("^%-%-%- %S") and doc:match("@usage")) then
        missing[#missing + 1] = name
      end
    end
    assert.same({}, missing)
  end)

  it("documents nothing that does not exist", function()
    local stale = {}
    for name in pairs(docs) do -- inherited methods (a Stream's next) count
      local class, key = name:match("^(%w+)%.([%w_]+)$")
      local value
      if class then value = CLASSES[class] and CLASSES[class][key] else value = jsonrpc[name] end
      if type(value) ~= "function" then stale[#stale + 1] = name end
    end
    table.sort(stale)
    assert.same({}, stale)
  end)

  it("walks what it should: the module, Server methods, the loop", function()
    local names = {}
    for _, name in ipairs(public()) do names[name] = true end
    for _, name in ipairs { "run", "Server", "listen", "Server.call", "Listener.notify_all",
      "Peer.subscription", "Queue.next", "Event.wait", "Loop.step", "ProtocolError.is" } do
      assert.is_true(names[name], name)
    end
  end)
end)

describe("make docs", function()
  it("builds the reference with LDoc and no warnings", function()
    local dir = os.tmpname()
    os.remove(dir)
    local h = io.popen(("ldoc --dir %s . 2>&1"):format(dir))
    local out = h:read("a")
    h:close()
    local f = io.open(dir .. "/index.html")
    assert.is_not_nil(f, out)
    local html = f:read("a")
    f:close()
    os.execute("rm -rf " .. dir)
    local noise = out:gsub("reading configuration from config.ld\n", "")
      :gsub("output written to [^\n]*\n", "")
    assert.equal("", noise)
    assert.matches("Server:call", html, 1, true)
  end)
end)
