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

return M
