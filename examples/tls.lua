-- examples/tls.lua: wss:// on both sides.
--   lua5.4 examples/tls.lua server.pem server.key ca.pem
-- server.pem must be valid for 127.0.0.1 and signed by ca.pem (for a
-- throwaway set: see spec/helper.lua, certs()).
local jsonrpc = require "jsonrpc_websocket"

local cert, key, ca = arg[1], arg[2], arg[3]
if not (cert and key and ca) then
  io.stderr:write("usage: lua5.4 examples/tls.lua server.pem server.key ca.pem\n")
  os.exit(2)
end

local srv = jsonrpc.listen { port = 0, tls = { cert_file = cert, key_file = key } }
srv.add = function(a, b) return a + b end
local url = ("wss://127.0.0.1:%d/"):format(srv.port)

-- Trust our CA (in addition to the system's): the certificate is verified.
local server = jsonrpc.Server(url, { tls = { ca_file = ca }, timeout = 5 })
server:ws_connect()
print("over TLS:", server.add(1, 2))
server:close()

-- Without the CA the handshake fails, and says why.
local stranger = jsonrpc.Server(url, { timeout = 5 })
local ok, err = pcall(stranger.ws_connect, stranger)
print("unverified:", ok, jsonrpc.TransportError.is(err))
srv:close()
