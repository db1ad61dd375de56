--- The README's table of differences between the built-in codec and the
-- lua-cjson installed here (a private cjson.new(), default settings),
-- measured: what each writes for a Lua value, and what each reads back.
--    lua5.4 bench/json_differences.lua      (from the repo root)
package.cpath = "./build/?.so;" .. package.cpath
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
local jsonrpc = require "jsonrpc_websocket"
local cjson = require("cjson").new()
local ours = jsonrpc.json

-- Bytes as text: what is not printable ASCII as \xNN.
local function visible(s)
  return (s:gsub("[^\32-\126]", function(c) return ("\\x%02X"):format(c:byte()) end))
end

local ERROR = {}

local function show(v)
  if type(v) == "table" and v[ERROR] then return v[ERROR] end
  if type(v) == "string" then return 'string "' .. visible(v) .. '"' end
  if math.type(v) then return ("%s %s"):format(math.type(v), tostring(v)) end
  if v == jsonrpc.null then return "null" end
  if type(v) == "table" then
    return getmetatable(v) == jsonrpc.array_mt and "table (array_mt)" or "table"
  end
  return tostring(v)
end

local function try(f, ...)
  local ok, v = pcall(f, ...)
  if ok then return v end
  return { [ERROR] = "error: " .. tostring(v):gsub("^.-:%d+: ", "") }
end

local function cell(s) return (tostring(s):gsub("|", "\\|")) end

local WRITE = {
  { "math.maxinteger", math.maxinteger }, { "2^53 + 1 (integer)", (1 << 53) + 1 },
  { "1795962246707123 (µs timestamp)", 1795962246707123 }, { "0.1", 0.1 }, { "1/3", 1 / 3 },
  { "1e300", 1e300 }, { "5e-324", 5e-324 }, { "-0.0", -0.0 }, { "2.0", 2.0 },
  { "{}", {} }, { "setmetatable({}, jsonrpc.array_mt)", setmetatable({}, jsonrpc.array_mt) },
  { "{ [1] = 1, [20] = 2 } (sparse)", { [1] = 1, [20] = 2 } }, { '"a/b"', "a/b" },
  { '"\\xff" (not UTF-8)', "\xff" }, { "0/0", 0 / 0 }, { "1/0", 1 / 0 },
}
local READ = { "9223372036854775807", "9007199254740993", "12345678901234567890", "1.0", "-0",
  "1e400", "[]", "-2.", "2.e3", "-.123", "0x10", "NaN", '"\\ud800"', '"\xff"', '"a\tb"',
  ("["):rep(1001) .. ("]"):rep(1001) }

print("| value written | built-in | lua-cjson |")
print("|---|---|---|")
for _, w in ipairs(WRITE) do
  local a, b = try(ours.encode, w[2]), try(cjson.encode, w[2])
  local function text(v) return type(v) == "table" and v[ERROR] or "`" .. visible(v) .. "`" end
  print(("| `%s` | %s | %s |"):format(cell(w[1]), cell(text(a)), cell(text(b))))
end
print()
print("| text read | built-in | lua-cjson |")
print("|---|---|---|")
for _, text in ipairs(READ) do
  local a, b = try(ours.decode, text), try(cjson.decode, text)
  local shown = #text > 40 and text:sub(1, 8) .. "… (1,001 levels)" or visible(text)
  print(("| `%s` | %s | %s |"):format(cell(shown), cell(show(a)), cell(show(b))))
end
