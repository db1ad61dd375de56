-- luacheck (Debian: lua-check): `make lint` runs it over lua/ bin/ spec/ bench/ examples/.
std = "lua54"
max_line_length = 100
include_files = { "lua/**/*.lua", "bin/jsonrpc-ws", "spec/**/*.lua", "bench/**/*.lua", "examples/**/*.lua" }
exclude_files = { "spec/node/**" }

-- Specs and benchmarks quote long commands, messages and test names.
files["spec/**/*.lua"] = { std = "+busted", max_line_length = 125 }
files["bench/**/*.lua"] = { max_line_length = 125 }
files["examples/*_spec.lua"] = { std = "+busted" }
