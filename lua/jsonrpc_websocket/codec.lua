--- The JSON seam and the JSON-RPC message shapes.
-- Every encode/decode goes through a codec: any module with `encode` and
-- `decode`. The default is the built-in codec (`codec.builtin`, written in
-- C: src/json.c), exact both ways and the same on every machine; with it
-- the core also writes simple params and reads simple responses itself.
-- lua-cjson (or any other) plugs in as `json = require("cjson").new()`.
-- Request ids are written by us, never by the codec.
-- @module jsonrpc_websocket.codec

local core = require "jsonrpc_websocket.core"
local options = require "jsonrpc_websocket.options"
local simple_params, simple_list, message_text =
  core.simple_params, core.simple_list, core.message_text

local type, next, select, pairs = type, next, select, pairs
local math_type = math.type

local M = {}

--- JSON null: the light userdata NULL (the same value as cjson.null).
M.null = core.json_null

--- The metatable that makes a table encode as a JSON array, also when it
-- is empty (decoded empty arrays have it).
M.array_mt = core.json_array_mt

--- The built-in codec.
M.builtin = {
  encode = core.json_encode,
  decode = core.json_decode_raising,
  null = core.json_null,
  array_mt = core.json_array_mt,
}
local builtin = M.builtin

--- Whether `json` is the built-in codec (whose number and string rules
-- the core's own writing and reading of simple messages follow).
function M.is_builtin(json) return json == builtin end

--- The codec used when the options name none: the built-in one.
function M.default() return builtin end

-- Decoders that return nil, err instead of raising, by codec.
local safe_decoders = setmetatable({ [builtin] = core.json_decode }, { __mode = "k" })

--- decode(text) -> value | nil, err for any codec.
function M.safe_decoder(json)
  local safe = safe_decoders[json]
  if safe then return safe end
  local decode = json.decode
  safe = function(text)
    local ok, value = pcall(decode, text)
    if ok then return value end
    return nil, value
  end
  safe_decoders[json] = safe
  return safe
end

-- The length of t as a list (its largest key) when every key is a positive
-- integer, else nil.
local function list_length(t)
  local max, count = 0, 0
  for k in pairs(t) do
    if math_type(k) ~= "integer" or k < 1 then return nil end
    if k > max then max = k end
    count = count + 1
  end
  return max, count
end

local function is_record(t)
  if next(t) == nil then return false end
  for k in pairs(t) do
    if type(k) ~= "string" then return false end
  end
  return true
end

--- Encodes a positional list whose holes (nil) become null.
local function encode_list(json, null, n, list)
  if n == 0 then return "[]" end
  for i = 1, n do
    if list[i] == nil then list[i] = null end
  end
  return json.encode(list)
end

-- The n arguments `...` as a positional params array.
local function positional(json, null, n, ...)
  if json == builtin then -- numbers, strings, ...: written in C (src/encode.c)
    local text = simple_params(...)
    if text then return text end
  end
  return encode_list(json, null, n, { ... })
end

--- Params from the arguments of a proxy call `server.foo(...)`: none → no
-- params; one table with only string keys → named; else positional.
-- Returns the JSON text or nil for "no params member".
function M.params_from_args(json, null, ...)
  local n = select("#", ...)
  if n == 0 then return nil end
  local first = ...
  if n == 1 and type(first) == "table" and getmetatable(first) == nil
    and is_record(first) then
    return json.encode(first)
  end
  return positional(json, null, n, ...)
end

--- Params from the arguments of a proxy call on a connection with
-- `named_params = false`: always positional (none → no params).
function M.positional_params_from_args(json, null, ...)
  local n = select("#", ...)
  if n == 0 then return nil end
  return positional(json, null, n, ...)
end

-- The JSON text of explicit params (see params_from_table), nil for
-- none; or nil and why the value cannot be params (a usage error). The
-- codec's encode failures raise.
local function table_params(json, null, params)
  if params == nil then return nil end
  if type(params) ~= "table" then
    return nil, "params must be a table (sequence or record) or nil"
  end
  if json == builtin then -- a list of numbers, strings, ...: written in C
    local text = simple_list(params)
    if text then return text end
  end
  local n = params.n
  if math_type(n) == "integer" then
    local list = {}
    for i = 1, n do list[i] = params[i] end
    return encode_list(json, null, n, list)
  end
  local len, count = list_length(params)
  if len and len == count then return encode_list(json, null, len, params) end
  if len then -- holes: copy, so the caller's table is left as it was
    return encode_list(json, null, len, table.move(params, 1, len, 1, {}))
  end
  if is_record(params) then return json.encode(params) end
  return nil, "params mixes array and record keys"
end

--- Params given explicitly to `server:call(method, params)`: nil → none; a
-- sequence (or a table with an integer `n`, as from table.pack) → array;
-- a record → object. Anything else is a usage error.
function M.params_from_table(json, null, params)
  local text, why = table_params(json, null, params)
  if why then error(why, 3) end
  return text
end

local function encodes(json, value)
  return value == nil or pcall(json.encode, value)
end

--- Raises, at the caller's line, why the params of a call to `method`
-- could not be encoded and which of them: `why` is the codec's error,
-- `...` the call's arguments (a proxy call) or, with `params_table` true,
-- its one params table (server:call).
function M.params_error(json, why, method, params_table, ...)
  why = tostring(why):gsub("^[^%s:]+:%d+: ", "")
  local where = ""
  if params_table then
    local params = ...
    for k, v in pairs(type(params) == "table" and params or {}) do
      if not encodes(json, v) then
        where = type(k) == "string" and ("params.%s: "):format(k) or ("params[%s]: "):format(k)
        break
      end
    end
  else
    for i = 1, select("#", ...) do
      if not encodes(json, (select(i, ...))) then where = ("argument #%d: "):format(i) break end
    end
  end
  error(("cannot encode the params of '%s': %s%s"):format(method, where, why),
    options.caller_level())
end

--- params_from_table for a call of `method`, with its misuse and encode
-- failures raised at the caller's line, naming the method and the param.
function M.call_params(json, null, params, method)
  local ok, text, why = pcall(table_params, json, null, params)
  if not ok then M.params_error(json, text, method, true, params) end
  if why then error(why, options.caller_level()) end -- not a sequence or record
  return text
end

--- `from_args(json, null, ...)` (params_from_args or its positional twin)
-- for a call of `method`, with encode failures raised as call_params does.
function M.args_params(from_args, json, null, method, ...)
  local ok, text = pcall(from_args, json, null, ...)
  if ok then return text end
  M.params_error(json, text, method, false, ...)
end

--- The fixed head of a request or notification for `method`, ending where
-- params (if any) and the id follow.
function M.method_prefix(json, method)
  return '{"jsonrpc":"2.0","method":' .. json.encode(method)
end

--- request(prefix, params, id): a whole request message (params: JSON
-- text, or nil for none). Built in C: src/encode.c.
M.request = core.message_text

--- A whole notification message.
function M.notification(prefix, params) return message_text(prefix, params) end

return M
