-- wss://: verification against the system store or a given CA, host name
-- checks, verify = false, client certificates; causes in words.
local helper = require "helper"
local jsonrpc = require "jsonrpc_websocket"

local function connect_error(url, opts)
  local s = jsonrpc.Server(url, opts)
  local ok, err = pcall(s.ws_connect, s)
  assert.is_false(ok, "connected, but should not have")
  assert.is_true(jsonrpc.TransportError.is(err), tostring(err))
  return err
end

describe("tls", function()
  local certs, peer, mutual, self_signed
  setup(function()
    certs = helper.certs()
    peer = helper.start_tls_peer()
    mutual = helper.start_tls_peer("--client-ca " .. certs.ca)
    self_signed = helper.start_peer(("--tls %s %s"):format(certs.self_cert, certs.self_key))
  end)
  teardown(function()
    peer.stop()
    mutual.stop()
    self_signed.stop()
  end)

  it("verifies the server against ca_file, by IP address and by name", function()
    local s = jsonrpc.Server(peer.url(), { tls = { ca_file = certs.ca } })
    s:ws_connect()
    assert.equal(3, s.add(1, 2))
    s:close()
    local byname = jsonrpc.Server(("wss://localhost:%d/"):format(peer.port),
      { tls = { ca_file = certs.ca } })
    byname:ws_connect()
    assert.equal(3, byname.add(1, 2))
    byname:close()
  end)

  it("rejects a server the system store does not trust, saying why", function()
    local err = connect_error(peer.url())
    assert.equal("certificate verify failed: unable to get local issuer certificate", err.cause)
    assert.matches("^connect to wss://127%.0%.0%.1:%d+/ failed: certificate verify failed", err.message)
  end)

  it("rejects a self-signed certificate", function()
    local err = connect_error((self_signed.url():gsub("^ws:", "wss:")))
    assert.equal("certificate verify failed: self-signed certificate", err.cause)
  end)

  it("rejects a certificate for another host name", function()
    local err = connect_error((self_signed.url():gsub("^ws:", "wss:")),
      { tls = { ca_file = certs.self_cert } })
    assert.equal("certificate verify failed: IP address mismatch", err.cause)
  end)

  it("accepts anything with verify = false", function()
    for _, url in ipairs({ peer.url(), (self_signed.url():gsub("^ws:", "wss:")) }) do
      local s = jsonrpc.Server(url, { tls = { verify = false } })
      s:ws_connect()
      assert.equal(3, s.add(1, 2))
      s:close()
    end
  end)

  it("presents a client certificate when the server requires one", function()
    local err = connect_error(mutual.url(), { tls = { ca_file = certs.ca } })
    assert.matches("client certificate", err.cause)
    local s = jsonrpc.Server(mutual.url(), { tls = {
      ca_file = certs.ca, cert_file = certs.client_cert, key_file = certs.client_key } })
    s:ws_connect()
    assert.equal(3, s.add(1, 2))
    s:close()
  end)

  it("checks tls options when the Server is made", function()
    assert.error_matches(function()
      jsonrpc.Server(peer.url(), { tls = { ca_file = certs.dir .. "/nope.pem" } })
    end, "option 'tls.ca_file': cannot read")
    assert.error_matches(function()
      jsonrpc.Server(peer.url(), { tls = { cert_file = certs.client_cert } })
    end, "go together")
    assert.error_matches(function()
      jsonrpc.Server(peer.url(), { tls = { verfy = false } })
    end, "unknown tls option 'verfy'")
  end)

  it("keeps plain ws:// and wss:// connections side by side", function()
    local plain = jsonrpc.Server(helper.peer().url())
    local secure = jsonrpc.Server(peer.url(), { tls = { ca_file = certs.ca } })
    plain:ws_connect()
    secure:ws_connect()
    jsonrpc.run(function()
      local a, b
      jsonrpc.spawn(function() a = plain.sleep(0.05, "plain") end)
      jsonrpc.spawn(function() b = secure.sleep(0.05, "secure") end)
      jsonrpc.sleep(0.2)
      assert.same({ "plain", "secure" }, { a, b })
    end)
    plain:close()
    secure:close()
  end)
end)
