--- ws:// and wss:// URLs, handshake options, and failure causes in words.
-- @module jsonrpc_websocket.url

local options = require "jsonrpc_websocket.options"

local M = {}

--- The URL as it may be shown: a password in it (ws://user:pass@host/)
-- replaced by "***".
function M.redact(url)
  return (url:gsub("^(%a[%w+.-]*://)([^/?#]*)@", function(scheme, userinfo)
    local user = userinfo:match("^[^:]*")
    return scheme .. user .. (#user < #userinfo and ":***" or "") .. "@"
  end, 1))
end

local function percent_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- Splits a websocket URL; raises on anything that is not ws:// or wss://.
-- Credentials in it (ws://user:pass@host/, percent-encoded as needed)
-- come back as `user` and `password`.
function M.parse(url)
  local scheme, authority, rest = url:match("^(%a[%w+.-]*)://([^/?#]*)(.*)$")
  scheme = scheme and scheme:lower()
  if scheme ~= "ws" and scheme ~= "wss" then
    error(("invalid websocket URL '%s' (expected ws://host[:port]/path)")
      :format(M.redact(url)), 4)
  end
  local userinfo, hostport = authority:match("^(.*)@(.*)$")
  local user, password
  if userinfo then
    authority = hostport
    user, password = userinfo:match("^([^:]*):?(.*)$")
    user, password = percent_decode(user), percent_decode(password)
  end
  local host, port = authority:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host or host == "" then
    error(("invalid websocket URL '%s' (no host)"):format(M.redact(url)), 4)
  end
  local secure = scheme == "wss"
  local default_port = secure and 443 or 80
  port = tonumber(port) or default_port
  if port < 1 or port > 65535 then
    error(("invalid websocket URL '%s' (bad port)"):format(M.redact(url)), 4)
  end
  local path = rest:gsub("#.*$", "")
  if path == "" or path:sub(1, 1) == "?" then path = "/" .. path end
  local host_header = authority:find(":%d+$") and port ~= default_port
    and authority or authority:gsub(":%d*$", "")
  return { secure = secure, address = host, port = port, path = path,
    host = host_header, user = user, password = password }
end

local function header_list(headers)
  if headers == nil then return nil end
  if type(headers) ~= "table" then error("option 'headers' must be a table", 5) end
  local list = {}
  for name, value in pairs(headers) do
    if type(name) ~= "string" then error("header names must be strings", 5) end
    list[#list + 1] = { name, tostring(value) }
  end
  table.sort(list, function(a, b) return a[1] < b[1] end)
  return list
end

local function protocol_list(protocols)
  if protocols == nil then return nil end
  if type(protocols) == "string" then return protocols end
  if type(protocols) ~= "table" then error("option 'protocols' must be a list of strings", 5) end
  return table.concat(protocols, ",")
end


local function readable(path, what)
  if type(path) ~= "string" then error(("option '%s' must be a file name"):format(what), 6) end
  local f, why = io.open(path, "rb")
  if not f then error(("option '%s': cannot read %s"):format(what, why), 6) end
  f:close()
  return path
end

local TLS_KEYS = { ca_file = true, cert_file = true, key_file = true, verify = true }

--- tls = { ca_file, cert_file, key_file, verify }: checked here, so a
-- missing file is named at Server() rather than failing a connect.
local function tls_options(tls, out)
  if tls == nil then return end
  if type(tls) ~= "table" then error("option 'tls' must be a table", 5) end
  for k in pairs(tls) do
    if not TLS_KEYS[k] then error(("unknown tls option '%s'"):format(tostring(k)), 5) end
  end
  if tls.verify ~= nil and type(tls.verify) ~= "boolean" then
    error("option 'tls.verify' must be a boolean", 5)
  end
  if (tls.cert_file == nil) ~= (tls.key_file == nil) then
    error("options 'tls.cert_file' and 'tls.key_file' go together", 5)
  end
  out.ca_file = tls.ca_file and readable(tls.ca_file, "tls.ca_file")
  out.cert_file = tls.cert_file and readable(tls.cert_file, "tls.cert_file")
  out.key_file = tls.key_file and readable(tls.key_file, "tls.key_file")
  out.verify = tls.verify ~= false
end

--- proxy = "http://host:port" (or "host:port") -> "host:port".
local function proxy_address(proxy)
  if proxy == nil then return nil end
  if type(proxy) ~= "string" then error("option 'proxy' must be a string", 5) end
  local rest = proxy:gsub("^[hH][tT][tT][pP]://", "", 1):gsub("/$", "")
  local host, port = rest:match("^%[([^%]]+)%]:(%d+)$")
  if not host then host, port = rest:match("^([^:/@]+):(%d+)$") end
  port = tonumber(port)
  if not host or port < 1 or port > 65535 then
    error(("option 'proxy' must be http://host:port, got '%s'"):format(proxy), 5)
  end
  return host .. ":" .. port
end

--- The options core.connect takes, from a parsed URL and Server options.
-- Credentials in the URL are HTTP Basic, as `auth` is (which wins).
function M.connect_options(target, opts)
  local auth = opts.auth
  if auth ~= nil and (type(auth) ~= "table" or type(auth[1]) ~= "string"
      or type(auth[2]) ~= "string") then
    error("option 'auth' must be { user, password }", 4)
  end
  if auth == nil and target.user then auth = { target.user, target.password } end
  local max = options.positive_integer(opts, "max_message_size", 4)
  if opts.compress ~= nil and type(opts.compress) ~= "boolean" then
    error("option 'compress' must be a boolean", 4)
  end
  local o = {
    address = target.address, port = target.port, host = target.host,
    path = target.path, origin = opts.origin,
    protocols = protocol_list(opts.protocols),
    headers = header_list(opts.headers), auth = auth,
    max_message_size = max,
    secure = target.secure,
    keepalive = options.keepalive_seconds(opts, 4),
    compress = opts.compress == true,
    proxy = proxy_address(opts.proxy),
  }
  -- checked for ws:// too (a wrong file is a mistake either way), used for wss://
  tls_options(opts.tls, target.secure and o or {})
  return o
end

-- libwebsockets' failure strings, said the way a user reads them.
local causes = {
  { "Unable to connect", "connection refused" },
  { "ws upgrade unauthorized", "handshake rejected: HTTP 401" },
  { "ws upgrade response not 101", "handshake rejected" },
  { "getaddrinfo", "could not resolve host" },
  { "timed out", "timed out" },
  { "no handshake response", "no answer to the websocket handshake" },
  { "closed before established", "connection closed during the handshake" },
  { "read failed", "connection closed during the handshake" },
  { "proxy", "the HTTP proxy refused the tunnel" },
  { "SSL", "TLS handshake failed" },
  { "ssl", "TLS handshake failed" },
}

function M.explain(failure, address)
  if failure == nil or failure == "connect failed" then
    return address and ("could not resolve host '%s'"):format(address)
      or "connect failed"
  end
  for _, c in ipairs(causes) do
    if failure:find(c[1], 1, true) then return c[2] end
  end
  return failure
end

return M
