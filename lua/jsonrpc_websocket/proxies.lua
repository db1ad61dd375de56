--- `listen{ trusted_proxies = { ... } }`: the client's address behind a
-- load balancer (issue 16).
--
-- `peer.address` is the socket's peer unless that peer is one of the
-- trusted proxies; then it is the rightmost hop of `X-Forwarded-For`
-- that is not a trusted proxy (hops to its left could be written by the
-- client itself), else the leftmost hop when every hop is trusted, else
-- `X-Real-IP`, else the socket's peer. Without `trusted_proxies` the
-- headers are never read.
-- @module jsonrpc_websocket.proxies

local M = {}

--- Checks opts.trusted_proxies: nil or a list of address strings.
function M.check(opts, level)
  local list = opts.trusted_proxies
  if list == nil then return end
  local ok = type(list) == "table"
  if ok then
    for i = 1, #list do ok = ok and type(list[i]) == "string" end
  end
  if not ok then
    error("option 'trusted_proxies' must be a list of addresses ({ \"127.0.0.1\" })", level + 1)
  end
end

--- The set of trusted addresses, or nil when none are given. An IPv4
-- address also trusts its IPv4-mapped IPv6 form (a dual-stack socket's).
function M.trusted(opts)
  local list = opts.trusted_proxies
  if not list or #list == 0 then return nil end
  local set = {}
  for i = 1, #list do
    set[list[i]] = true
    if list[i]:match("^[%d.]+$") then set["::ffff:" .. list[i]] = true end
  end
  return set
end

local function trim(s)
  return s:match("^%s*(.-)%s*$")
end

--- The client's address from the core's accept address, which with
-- trusted proxies is "peer\nx-forwarded-for\nx-real-ip".
function M.client_address(trusted, raw)
  local addr, xff, xri = raw:match("^([^\n]*)\n([^\n]*)\n([^\n]*)$")
  if not addr then return raw end
  if not trusted[addr] then return addr end
  local hops = {}
  for hop in xff:gmatch("[^,]+") do
    hop = trim(hop)
    if hop ~= "" then hops[#hops + 1] = hop end
  end
  for i = #hops, 1, -1 do
    if not trusted[hops[i]] then return hops[i] end
  end
  if hops[1] then return hops[1] end
  xri = trim(xri)
  if xri ~= "" then return xri end
  return addr
end

return M
