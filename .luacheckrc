-- luacheck (Debian: lua-check): `make lint` runs it over lua/ bin/ spec/ examples/.
std = "lua54"
max_line_length = 100
include_files = { "lua/**/*.lua", "bin/jsonrpc-ws", "spec/**/*.lua", "examples/**/*.lua" }
exclude_files = { "spec/node/**" }

files["spec/**/*.lua"] = { std = "+busted" }
