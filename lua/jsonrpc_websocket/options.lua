--- Checks of option tables, shared by Server(), listen() and the URL
-- layer, so every misuse reads the same. `level` is passed to error().
-- @module jsonrpc_websocket.options

local M = {}

--- opts[key]: nil or a number of seconds >= 0.
function M.seconds(opts, key, level)
  local v = opts[key]
  if v ~= nil and (type(v) ~= "number" or v < 0) then
    error(("option '%s' must be a non-negative number of seconds"):format(key), level + 1)
  end
  return v
end

--- opts[key]: nil or an integer >= 1.
function M.positive_integer(opts, key, level)
  local v = opts[key]
  if v ~= nil and (math.type(v) ~= "integer" or v < 1) then
    error(("option '%s' must be a positive integer"):format(key), level + 1)
  end
  return v
end

local DEFAULT_KEEPALIVE, MAX_KEEPALIVE = 30, 32767 -- seconds

--- opts.keepalive in seconds, the same for Server() and listen(): 30 when
-- not given (or true), 0 (off) for false, else whole seconds 1..32767.
function M.keepalive_seconds(opts, level)
  local v = opts.keepalive
  if v == nil or v == true then return DEFAULT_KEEPALIVE end
  if v == false then return 0 end
  local n = math.type(v) == "float" and math.tointeger(v) or v
  if math.type(n) ~= "integer" or n < 1 or n > MAX_KEEPALIVE then
    error(("option 'keepalive' must be whole seconds (1..%d) or false")
      :format(MAX_KEEPALIVE), level + 1)
  end
  return n
end

--- The send queue's bound, the same for Server() and listen():
-- max_send_queue (bytes), max_send_messages, send_queue_timeout (seconds
-- a queue may stay full before the connection is dropped; 0 or false:
-- never). Returns { bytes, messages, timeout } for conn:queue_limits
-- (nil where the core's default stays: 16,384 messages, 30 s); bytes
-- default to `default_bytes`.
function M.send_queue(opts, level, default_bytes)
  local bytes = M.positive_integer(opts, "max_send_queue", level + 1) or default_bytes
  local count = M.positive_integer(opts, "max_send_messages", level + 1)
  local timeout = opts.send_queue_timeout
  if timeout == false then timeout = 0
  else timeout = M.seconds(opts, "send_queue_timeout", level + 1) end
  return { bytes, count, timeout }
end

--- The stack level, for error() in the function that calls this, of the
-- first function outside this library: the line a usage error should
-- name, however deep in the library it was found.
function M.caller_level()
  local level = 3
  while true do
    local info = debug.getinfo(level, "S")
    if not info then return 0 end
    if info.what ~= "C" and not info.source:find("jsonrpc_websocket/", 1, true) then
      return level - 1 -- as error() counts from its caller
    end
    level = level + 1
  end
end

-- Edit distance between two short strings (insert, delete, substitute).
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

--- The name in the set `names` nearest to `key`, if one is near enough
-- to be a misspelling of it.
function M.nearest(key, names)
  local best, best_d = nil, math.max(2, #key // 3) + 1
  for name in pairs(names) do
    local d = distance(key, name)
    if d < best_d or (d == best_d and best and name < best) then best, best_d = name, d end
  end
  return best
end

--- Raises for a key of `opts` that is not in the set `names`, naming the
-- nearest valid one: "unknown option 'tiemout' to Server (did you mean
-- 'timeout'?)". `what` names the function; `level` is passed to error().
function M.known(opts, names, what, level)
  for key in pairs(opts) do
    if not names[key] then
      local msg = ("unknown option '%s' to %s"):format(tostring(key), what)
      local near = type(key) == "string" and M.nearest(key, names)
      if near then msg = msg .. (" (did you mean '%s'?)"):format(near) end
      error(msg, level + 1)
    end
  end
end

--- A set of option names from a list.
function M.set(list)
  local set = {}
  for _, name in ipairs(list) do set[name] = true end
  return set
end

return M
