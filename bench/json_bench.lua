--- The JSON codec against lua-cjson (make bench, or make -C bench json):
-- decode and encode of three realistic messages, MB/s and messages/s, the
-- built-in codec (src/json.c) beside a private cjson.new() with its
-- default settings. Prints a markdown table (also to out/json.txt).
--    lua5.4 json_bench.lua [seconds per measurement, default 0.5]
package.cpath = "../build/?.so;" .. package.cpath
package.path = "../lua/?.lua;../lua/?/init.lua;" .. package.path
local jsonrpc = require "jsonrpc_websocket"
local cjson = require("cjson").new()
local ours = jsonrpc.json
local now = jsonrpc.now
local SECONDS = tonumber(arg[1]) or tonumber(os.getenv("JSON_SECONDS")) or 0.5

local function hex(n, seed)
  local t, x = { "0x" }, seed
  for i = 2, n + 1 do
    x = (x * 1103515245 + 12345) % 2147483648
    t[i] = ("%x"):format(x % 16)
  end
  return table.concat(t)
end

-- An eth_getBlockByNumber answer with full transactions, about 10 KB.
local function block()
  local txs = {}
  for i = 1, 14 do
    txs[i] = {
      blockHash = hex(64, 1), blockNumber = "0x10d4f3", from = hex(40, i), gas = "0x5208",
      gasPrice = "0x4a817c800", hash = hex(64, 100 + i), input = hex(136, 200 + i),
      nonce = ("0x%x"):format(i * 7), to = hex(40, 300 + i), transactionIndex = ("0x%x"):format(i - 1),
      value = "0xde0b6b3a7640000", v = "0x25", r = hex(64, 400 + i), s = hex(64, 500 + i),
      type = "0x2", chainId = "0x1",
    }
  end
  return { jsonrpc = "2.0", id = 42, result = {
    number = "0x10d4f3", hash = hex(64, 2), parentHash = hex(64, 3), nonce = "0x0000000000000000",
    sha3Uncles = hex(64, 4), logsBloom = hex(512, 5), transactionsRoot = hex(64, 6),
    stateRoot = hex(64, 7), receiptsRoot = hex(64, 8), miner = hex(40, 9), difficulty = "0x0",
    totalDifficulty = "0xc70d815d562d3cfa955", extraData = "0x", size = "0x2a8f",
    gasLimit = "0x1c9c380", gasUsed = "0xa4b2e1", timestamp = "0x6553f100",
    baseFeePerGas = "0x3b9aca00", transactions = txs, uncles = setmetatable({}, jsonrpc.array_mt),
  } }
end

-- A result that is an array of small objects, about 1 MB.
local function records()
  local list = {}
  for i = 1, 12500 do
    list[i] = { id = i, name = "user" .. i, score = i * 0.25, active = i % 3 == 0, tags = { "a", "bc" } }
  end
  return { jsonrpc = "2.0", id = 7, result = list }
end

-- A binary tree 14 levels deep (16,383 nodes).
local function tree(depth, n)
  if depth == 0 then return { value = n } end
  return { value = n, left = tree(depth - 1, 2 * n), right = tree(depth - 1, 2 * n + 1) }
end

local MESSAGES = {
  { "Ethereum block, full transactions", block() },
  { "1 MB array of small objects", records() },
  { "deep tree (binary, 14 levels)", { jsonrpc = "2.0", id = 1, result = tree(13, 1) } },
}

-- Calls f(x) for about SECONDS; returns calls per second.
local function rate(f, x)
  local n, t0 = 0, now()
  local batch = 1
  repeat
    for _ = 1, batch do f(x) end
    n = n + batch
    batch = batch * 2
  until now() - t0 >= SECONDS
  return n / (now() - t0)
end

local lines = {
  "| message | bytes | decode built-in MB/s (msg/s) | decode cjson MB/s (msg/s) | built-in/cjson"
    .. " | encode built-in MB/s (msg/s) | encode cjson MB/s (msg/s) | built-in/cjson |",
  "|---|--:|--:|--:|--:|--:|--:|--:|",
}
for _, m in ipairs(MESSAGES) do
  local text = ours.encode(m[2])
  local mine, theirs = ours.decode(text), cjson.decode(text)
  local bytes = #text
  local d_ours, d_cjson = rate(ours.decode, text), rate(cjson.decode, text)
  local e_ours, e_cjson = rate(ours.encode, mine), rate(cjson.encode, theirs)
  local function cell(r) return ("%.0f (%.0f)"):format(r * bytes / 1e6, r) end
  lines[#lines + 1] = ("| %s | %d | %s | %s | %.2f× | %s | %s | %.2f× |"):format(m[1], bytes,
    cell(d_ours), cell(d_cjson), d_ours / d_cjson, cell(e_ours), cell(e_cjson), e_ours / e_cjson)
end
local out = table.concat(lines, "\n") .. "\n"
io.write(out)
os.execute("mkdir -p out")
local f = io.open("out/json.txt", "w")
if f then f:write(out) f:close() end
