-- Subscriptions against ganache, a real Ethereum dev node (spec/node,
-- installed by `make deps`): newHeads while blocks are mined, logs of a
-- contract, two subscriptions at once, eth_unsubscribe on close. One node
-- per file. (A restart of the node cannot be on the same port at once: it
-- leaves its server sockets in TIME_WAIT, and ganache does not reuse the
-- address. Reconnecting subscriptions are specified against our own
-- server standing in for it, in streams_spec.lua.)
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
