--- A Lua-level profile: where the Lua VM spends its instructions.
--
--    lua5.4 vmprof.lua SCRIPT [ARGS...]
--
-- Runs SCRIPT with a count hook that samples the running Lua function every
-- PERIOD VM instructions (in every coroutine too), then prints, to
-- stderr, the share of instructions per Lua function and per line. perf
-- and callgrind only see luaV_execute; this says which Lua code it ran.
-- Used by profile.sh.

local PERIOD = 97 -- a prime, so the samples do not beat with loops

local script = arg[1]
if not script then
  io.stderr:write("usage: lua5.4 vmprof.lua SCRIPT [ARGS...]\n")
  os.exit(2)
end

local by_function, by_line, total = {}, {}, 0
local getinfo = debug.getinfo

local function sample()
  local info = getinfo(2, "Sl")
  if not info then return end
  local f = info.short_src .. ":" .. info.linedefined
  local l = info.short_src .. ":" .. info.currentline
  by_function[f] = (by_function[f] or 0) + 1
  by_line[l] = (by_line[l] or 0) + 1
  total = total + 1
end

-- The name a function has in its source, read from the line defining it.
local sources = {}
local function name_of(key)
  local file, line = key:match("^(.*):(%d+)$")
  line = tonumber(line)
  if line == 0 then return "(main chunk)" end
  local lines = sources[file]
  if not lines then
    lines = {}
    local f = io.open(file)
    if f then
      for text in f:lines() do lines[#lines + 1] = text end
      f:close()
    end
    sources[file] = lines
  end
  local text = lines[line] or ""
  return text:match("function%s+([%w_.:]+)")
    or text:match("([%w_.:%[%]]+)%s*=%s*function")
    or "(anonymous)"
end

local function top(counts, n, label)
  local list = {}
  for k, v in pairs(counts) do list[#list + 1] = { k, v } end
  table.sort(list, function(a, b) return a[2] > b[2] end)
  local out = {}
  for i = 1, math.min(n, #list) do
    out[#out + 1] = ("%6.2f%%  %-40s %s"):format(100 * list[i][2] / total,
      list[i][1], label and label(list[i][1]) or "")
  end
  return table.concat(out, "\n")
end

local script_arg = {}
for i = 1, #arg do script_arg[i - 1] = arg[i] end
arg = script_arg -- luacheck: ignore (the script sees its own arguments)

-- A Lua hook set with debug.sethook belongs to one coroutine (new ones
-- inherit the C side but find no Lua function): hook each new coroutine.
-- Installed before the script runs, so modules that keep a local copy of
-- coroutine.create get this one.
local co_create = coroutine.create
function coroutine.create(fn) -- luacheck: ignore (hooks every coroutine)
  local co = co_create(fn)
  debug.sethook(co, sample, "", PERIOD)
  return co
end
function coroutine.wrap(fn) -- luacheck: ignore
  local co = coroutine.create(fn)
  return function(...)
    local res = table.pack(coroutine.resume(co, ...))
    if not res[1] then error(res[2], 0) end
    return table.unpack(res, 2, res.n)
  end
end

debug.sethook(sample, "", PERIOD)
local ok, err = pcall(dofile, script)
debug.sethook()
if not ok then io.stderr:write("vmprof: ", tostring(err), "\n") end

io.stderr:write(("VMPROF instructions=%d\n"):format(total * PERIOD))
io.stderr:write("-- by function (file:line defined)\n", top(by_function, 20, name_of), "\n")
io.stderr:write("-- by line\n", top(by_line, 25), "\n")
