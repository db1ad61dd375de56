-- Subscriptions against ganache, a real Ethereum dev node (spec/node,
-- installed by `make deps`): newHeads while blocks are mined, logs of a
-- contract, two subscriptions at once, eth_unsubscribe on close, and a
-- subscription going on across a reconnect. One node per file.
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"

-- A contract whose every call logs its calldata under TOPIC (LOG1):
--   runtime: CALLDATASIZE PUSH1 0 PUSH1 0 CALLDATACOPY
--            PUSH32 TOPIC CALLDATASIZE PUSH1 0 LOG1 STOP
--   init:    PUSH1 44 PUSH1 12 PUSH1 0 CODECOPY PUSH1 44 PUSH1 0 RETURN
local TOPIC = "0x" .. ("5a"):rep(32)
local RUNTIME = "366000600037" .. "7f" .. TOPIC:sub(3) .. "366000a100"
local INIT = "602c600c600039602c6000f3"
assert(#RUNTIME == 44 * 2)

local function number(hex) return tonumber(hex:sub(3), 16) end

describe("subscriptions against ganache", function()
  local node, s, account

  setup(function()
    node = helper.start_ganache()
  end)
  teardown(function() node.stop() end)

  before_each(function()
    s = jsonrpc.Server(node.url(), { timeout = 20 })
    s:ws_connect()
    account = account or s.eth_accounts()[1]
  end)
  after_each(function() s:close() end)

  local function deploy()
    local tx = s:call("eth_sendTransaction", { { from = account,
      data = "0x" .. INIT .. RUNTIME, gas = "0x100000" } })
    local receipt = s.eth_getTransactionReceipt(tx)
    assert.equal("0x1", receipt.status)
    return receipt.contractAddress
  end

  it("takes a transaction object through a proxy with named_params = false", function()
    local eth = jsonrpc.Server(node.url(), { timeout = 20, named_params = false })
    eth:ws_connect()
    local tx = eth.eth_sendTransaction { from = account, to = account, value = "0x1" }
    assert.matches("^0x%x+$", tx)
    assert.equal("0x1", eth.eth_getTransactionReceipt(tx).status)
    eth:close()
    -- the default rule sends one record as named params: ganache refuses them
    local ok, err = pcall(s.eth_sendTransaction, { from = account, to = account, value = "0x1" })
    assert.is_false(ok)
    assert.is_true(jsonrpc.ProtocolError.is(err), tostring(err))
  end)

  it("yields newHeads while blocks are mined with evm_mine", function()
    local heads = s:subscribe("eth_subscribe", { "newHeads" })
    assert.matches("^0x%x+$", heads.id)
    local got = {}
    jsonrpc.run(function()
      jsonrpc.spawn(function()
        for _ = 1, 3 do s.evm_mine() end
      end)
      got = helper.take(heads, 3)
    end)
    local last = number(s.eth_blockNumber())
    assert.same({ last - 2, last - 1, last },
      { number(got[1].number), number(got[2].number), number(got[3].number) })
    assert.equal(got[2].hash, got[3].parentHash)
    heads:close()
  end)

  it("yields the logs of a contract, and newHeads alongside", function()
    local address = deploy()
    local logs = s:subscribe("eth_subscribe", { "logs", { address = address } })
    local heads = s:subscribe("eth_subscribe", { "newHeads" })
    assert.are_not.equal(logs.id, heads.id)
    local tx = s:call("eth_sendTransaction", { { from = account, to = address,
      data = "0xdeadbeef", gas = "0x100000" } })
    local log = logs:next(20)
    assert.is_table(log)
    assert.equal(address:lower(), log.address:lower())
    assert.same({ TOPIC }, log.topics)
    assert.equal("0xdeadbeef", log.data)
    assert.equal(tx, log.transactionHash)
    local head = heads:next(20) -- the block that holds the transaction
    assert.equal(log.blockHash, head.hash)
    assert.equal(0, #logs)
  end)

  it("unsubscribes on close (ganache no longer knows the id)", function()
    local heads = s:subscribe("eth_subscribe", { "newHeads" })
    local id = heads.id
    s.evm_mine()
    assert.is_table(heads:next(20))
    assert.is_true(heads:close())
    assert.is_nil(heads:next(0))
    assert.is_false(s.eth_unsubscribe(id)) -- it is gone already
  end)

  it("leaves a handler the notifications of subscriptions it does not stream", function()
    local handled = {}
    s.eth_subscription = function(p) handled[#handled + 1] = p end
    local manual = s:call("eth_subscribe", { "newHeads" })
    local heads = s:subscribe("eth_subscribe", { "newHeads" })
    s.evm_mine()
    local head = heads:next(20)
    assert.is_true(jsonrpc.TimeoutError.is(select(2, heads:next(0.05))))
    assert.is_true(helper.eventually(function() return #handled == 1 end, 20))
    assert.equal(manual, handled[1].subscription)
    assert.equal(head.hash, handled[1].result.hash)
  end)
end)

describe("a subscription to ganache across a reconnect", function()
  -- The connection goes through a CONNECT proxy of ours, which is killed
  -- and started again on its port: the node stays (a node restarted on its
  -- port would find it in TIME_WAIT). Restarts of the server itself:
  -- streams_spec.lua.
  it("subscribes again, and the iteration goes on with the node's next blocks", function()
    local node = helper.start_ganache()
    local proxy = helper.start_proxy()
    local s = jsonrpc.Server(node.url(), { timeout = 20, on_error = function() end,
      proxy = ("http://127.0.0.1:%d"):format(proxy.port),
      reconnect = { initial = 0.05, max = 0.3, factor = 2, jitter = 0.1 } })
    local got, heads = {}, s:ws_connect():subscribe("eth_subscribe", { "newHeads" })
    local first_id = heads.id
    jsonrpc.run(function()
      jsonrpc.spawn(function()
        s.evm_mine()
        assert(helper.eventually(function() return #got == 1 end, 20))
        local port = proxy.port
        proxy.stop() -- the connection goes
        assert(helper.eventually(function() return not s.connected end, 20))
        proxy = helper.start_proxy("--port " .. port)
        assert(helper.eventually(function() return heads.resubscribed == 1 end, 20))
        s.evm_mine()
      end)
      for head in heads do
        got[#got + 1] = number(head.number)
        if #got == 2 then break end
      end
    end)
    assert.same({ got[1], got[1] + 1 }, got)
    assert.equal(1, heads.resubscribed)
    assert.are_not.equal(first_id, heads.id)
    heads:close()
    s:close()
    proxy.stop()
    node.stop()
  end)
end)
