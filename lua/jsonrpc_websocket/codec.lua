--- The JSON seam and the JSON-RPC message shapes.
-- Every encode/decode goes through a codec: any module with `encode` and
-- `decode` (default: a private `cjson.new()` instance, so the user's global
-- cjson settings are neither used nor changed). Request ids are written by
-- us, never by the codec, so they do not depend on its number handling.
-- @module jsonrpc_websocket.codec

local cjson = require "cjson"
local core = require "jsonrpc_websocket.core"
local simple_params, simple_list, message_text =
  core.simple_params, core.simple_list, core.message_text

local type, next, select, pairs = type, next, select, pairs
local math_type = math.type

local M = {}

M.null = cjson.null

-- Decoders that return nil, err instead of raising, by codec.
local safe_decoders = setmetatable({}, { __mode = "k" })
local defaults = setmetatable({}, { __mode = "k" }) -- codecs made by default()

--- Whether `json` is one of our default cjson instances (whose number and
-- string handling the fast response path reproduces).
function M.is_default(json) return defaults[json] == true end

--- The default codec: our own cjson instance (and a cjson.safe twin, so
-- decoding needs no pcall).
function M.default()
  local json = cjson.new()
  -- NaN, Infinity, 0x10, 01 are not JSON: decoding them would let a request
  -- id be echoed as a reply that is not JSON either (found by fuzz/).
  json.decode_invalid_numbers(false)
  local safe = require("cjson.safe").new()
  safe.decode_invalid_numbers(false)
  safe_decoders[json] = safe.decode
  defaults[json] = true
  return json
end

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

--- Params from the arguments of a proxy call `server.foo(...)`: none → no
-- params; one table with only string keys → named; else positional.
-- Returns the JSON text or nil for "no params member".
function M.params_from_args(json, null, ...)
  local n = select("#", ...)
  if n == 0 then return nil end
  if defaults[json] then -- numbers, strings, ...: written in C (src/encode.c)
    local text = simple_params(...)
    if text then return text end
  end
  local first = ...
  if n == 1 and type(first) == "table" and getmetatable(first) == nil
    and is_record(first) then
    return json.encode(first)
  end
  return encode_list(json, null, n, { ... })
end

--- Params given explicitly to `server:call(method, params)`: nil → none; a
-- sequence (or a table with an integer `n`, as from table.pack) → array;
-- a record → object. Anything else is a usage error.
function M.params_from_table(json, null, params)
  if params == nil then return nil end
  if type(params) ~= "table" then
    error("params must be a table (sequence or record) or nil", 3)
  end
  if defaults[json] then -- a list of numbers, strings, ...: written in C
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
  error("params mixes array and record keys", 3)
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
