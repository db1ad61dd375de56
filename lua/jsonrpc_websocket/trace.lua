--- Tracing: the `trace` option of `Server()` and `listen()`, and the
-- `JSONRPC_WS_DEBUG` environment variable.
--
-- A trace hook is `function(direction, text [, peer])`, called with "out"
-- for every message as it is queued to go (calls, notifications, batches,
-- replies, including the ones the C core writes itself) and "in" for every
-- message as it arrives (including the responses the core reads itself).
-- `peer` is given on a listener's connections. The hook runs inside the
-- library: it must not yield (no calls, no sleep); an error in it is
-- written to stderr and changes nothing else.
-- @module jsonrpc_websocket.trace

local M = {}

local function debug_wanted()
  local v = os.getenv("JSONRPC_WS_DEBUG")
  return v ~= nil and v ~= "" and v ~= "0"
end

--- A hook that writes every message to stderr, one line each:
-- `jsonrpc_websocket <where> > text` going out, `< text` coming in
-- (`where`: the URL, or on a listener the peer).
function M.stderr(where)
  return function(direction, text, peer)
    local who = peer and ("peer #%d %s"):format(peer.id, peer.address) or where
    io.stderr:write("jsonrpc_websocket ", who, direction == "out" and " > " or " < ",
      text, "\n")
  end
end

--- The hook for an options table: opts.trace, else the stderr hook when
-- JSONRPC_WS_DEBUG is set (and not "0"), else nil. `where` names the
-- connection in stderr lines; `level` is passed to error().
function M.option(opts, where, level)
  local fn = opts.trace
  if fn ~= nil then
    if type(fn) ~= "function" then
      error("option 'trace' must be a function(direction, text)", level + 1)
    end
    return fn
  end
  if debug_wanted() then return M.stderr(where) end
  return nil
end

return M
