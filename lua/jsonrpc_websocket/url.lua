--- ws:// and wss:// URLs, handshake options, and failure causes in words.
-- @module jsonrpc_websocket.url

local M = {}

--- Splits a websocket URL; raises on anything that is not ws:// or wss://.
function M.parse(url)
  local scheme, authority, rest = url:match("^(%a[%w+.-]*)://([^/?#]*)(.*)$")
  scheme = scheme and scheme:lower()
  if scheme ~= "ws" and scheme ~= "wss" then
    error(("invalid websocket URL '%s' (expected ws://host[:port]/path)"):format(url), 3)
  end
  authority = authority:gsub("^.*@", "")
  local host, port = authority:match("^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host or host == "" then
    error(("invalid websocket URL '%s' (no host)"):format(url), 3)
  end
  local secure = scheme == "wss"
  local default_port = secure and 443 or 80
  port = tonumber(port) or default_port
  if port < 1 or port > 65535 then
    error(("invalid websocket URL '%s' (bad port)"):format(url), 3)
  end
  local path = rest:gsub("#.*$", "")
  if path == "" or path:sub(1, 1) == "?" then path = "/" .. path end
  local host_header = authority:find(":%d+$") and port ~= default_port
    and authority or authority:gsub(":%d*$", "")
  return { secure = secure, address = host, port = port, path = path,
    host = host_header }
end

local function header_list(headers)
  if headers == nil then return nil end
  if type(headers) ~= "table" then error("option 'headers' must be a table", 4) end
  local list = {}
  for name, value in pairs(headers) do
    if type(name) ~= "string" then error("header names must be strings", 4) end
    list[#list + 1] = { name, tostring(value) }
  end
  table.sort(list, function(a, b) return a[1] < b[1] end)
  return list
end

local function protocol_list(protocols)
  if protocols == nil then return nil end
  if type(protocols) == "string" then return protocols end
  if type(protocols) ~= "table" then error("option 'protocols' must be a list of strings", 4) end
  return table.concat(protocols, ",")
end

--- The options core.connect takes, from a parsed URL and Server options.
function M.connect_options(target, opts)
  if target.secure then
    error("wss:// is not supported yet by this build (TLS support is planned)", 3)
  end
  local auth = opts.auth
  if auth ~= nil and (type(auth) ~= "table" or type(auth[1]) ~= "string"
      or type(auth[2]) ~= "string") then
    error("option 'auth' must be { user, password }", 3)
  end
  local max = opts.max_message_size
  if max ~= nil and (math.type(max) ~= "integer" or max < 1) then
    error("option 'max_message_size' must be a positive integer", 3)
  end
  return {
    address = target.address, port = target.port, host = target.host,
    path = target.path, origin = opts.origin,
    protocols = protocol_list(opts.protocols),
    headers = header_list(opts.headers), auth = auth,
    max_message_size = max,
  }
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
