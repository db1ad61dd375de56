--- Error objects raised by jsonrpc_websocket.
-- Each class is callable to make an error and has `Class.is(value)`.
-- `TimeoutError` is a kind of `TransportError`.
-- @module jsonrpc_websocket.errors

local M = {}

local function describe(e)
  if e.method then
    local what = e.cause or e.message
    if e.code ~= nil then
      what = ("%s (code %s)"):format(e.message, tostring(e.code))
    end
    return ("Error calling method '%s': %s"):format(e.method, what)
  end
  if e.code ~= nil then
    return ("%s (code %s)"):format(e.message, tostring(e.code))
  end
  return tostring(e.message)
end

--- Makes an error class. `parent` (optional) is the class it is a kind of.
local function class(name, parent, init)
  local cls = { __name = "jsonrpc_websocket." .. name, parent = parent }
  cls.__index = cls
  cls.__tostring = describe
  function cls.is(value)
    local mt = getmetatable(value)
    while type(mt) == "table" do
      if mt == cls then return true end
      mt = rawget(mt, "parent")
    end
    return false
  end
  return setmetatable(cls, {
    __call = function(_, ...) return setmetatable(init(...), cls) end,
    __tostring = function() return cls.__name end,
  })
end

local function transport_fields(message, cause, method)
  if type(message) == "table" then return message end
  return { message = message, cause = cause or message, method = method }
end

--- TransportError(message [, cause [, method]]) or TransportError{...}:
-- the connection failed underneath. Fields `message`, `cause`, `method`.
M.TransportError = class("TransportError", nil, transport_fields)

--- TimeoutError(message [, method]): a call or connect took too long.
M.TimeoutError = class("TimeoutError", M.TransportError, function(message, method)
  return transport_fields(message, message, method)
end)

--- ProtocolError(code, message [, data [, response]]): the peer answered
-- with an error (or broke the protocol). Fields `code`, `message`, `data`,
-- `response`.
M.ProtocolError = class("ProtocolError", nil, function(code, message, data, response)
  if type(code) == "table" then return code end
  return { code = code, message = message, data = data, response = response }
end)

--- OverflowError(message, limit): a stream or queue with overflow =
-- "error" got more items than it may hold. Fields `message`, `limit`.
M.OverflowError = class("OverflowError", nil, function(message, limit)
  return { message = message, limit = limit }
end)

return M
