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

return M
