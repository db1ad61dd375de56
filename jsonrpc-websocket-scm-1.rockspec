rockspec_format = "3.0"
package = "jsonrpc-websocket"
version = "scm-1"
source = {
  url = "git+https://github.com/jsonrpc-websocket/jsonrpc-websocket-lua.git",
}
description = {
  summary = "JSON-RPC 2.0 over websockets for Lua 5.4, in C on libwebsockets",
  detailed = [[
    server.app.users.getUsers() calls "app.users.getUsers" on a JSON-RPC 2.0
    websocket server. Calls inside tasks yield until their answer, so
    thousands can be in flight on one connection; calls from plain code
    block. Structured errors, timeouts, fragmented and large messages.
  ]],
  homepage = "https://github.com/jsonrpc-websocket/jsonrpc-websocket-lua",
  license = "MIT",
}
dependencies = {
  "lua >= 5.4",
}
external_dependencies = {
  LIBWEBSOCKETS = { header = "libwebsockets.h", library = "websockets" },
  -- libuv, and at run time libwebsockets' libuv event library (Debian:
  -- libwebsockets-evlib-uv): the engine runs on a libuv loop
  LIBUV = { header = "uv.h", library = "uv" },
}
build = {
  type = "builtin",
  modules = {
    ["jsonrpc_websocket.core"] = {
      sources = { "src/core.c", "src/loop.c", "src/drive.c", "src/vhost.c", "src/opts.c", "src/conn.c", "src/connect.c", "src/send.c", "src/receive.c", "src/keepalive.c", "src/scan.c", "src/json.c", "src/encode.c", "src/frame.c", "src/server.c", "src/workers.c" },
      incdirs = { "$(LIBWEBSOCKETS_INCDIR)", "$(LIBUV_INCDIR)", "src" },
      libdirs = { "$(LIBWEBSOCKETS_LIBDIR)", "$(LIBUV_LIBDIR)" },
      libraries = { "websockets", "uv", "crypto", "m" },
    },
    ["jsonrpc_websocket"] = "lua/jsonrpc_websocket/init.lua",
    ["jsonrpc_websocket.batch"] = "lua/jsonrpc_websocket/batch.lua",
    ["jsonrpc_websocket.client"] = "lua/jsonrpc_websocket/client.lua",
    ["jsonrpc_websocket.codec"] = "lua/jsonrpc_websocket/codec.lua",
    ["jsonrpc_websocket.dispatch"] = "lua/jsonrpc_websocket/dispatch.lua",
    ["jsonrpc_websocket.errors"] = "lua/jsonrpc_websocket/errors.lua",
    ["jsonrpc_websocket.host"] = "lua/jsonrpc_websocket/host.lua",
    ["jsonrpc_websocket.link"] = "lua/jsonrpc_websocket/link.lua",
    ["jsonrpc_websocket.listen"] = "lua/jsonrpc_websocket/listen.lua",
    ["jsonrpc_websocket.workers"] = "lua/jsonrpc_websocket/workers.lua",
    ["jsonrpc_websocket.proxies"] = "lua/jsonrpc_websocket/proxies.lua",
    ["jsonrpc_websocket.options"] = "lua/jsonrpc_websocket/options.lua",
    ["jsonrpc_websocket.queue"] = "lua/jsonrpc_websocket/queue.lua",
    ["jsonrpc_websocket.scheduler"] = "lua/jsonrpc_websocket/scheduler.lua",
    ["jsonrpc_websocket.stream"] = "lua/jsonrpc_websocket/stream.lua",
    ["jsonrpc_websocket.subscription"] = "lua/jsonrpc_websocket/subscription.lua",
    ["jsonrpc_websocket.trace"] = "lua/jsonrpc_websocket/trace.lua",
    ["jsonrpc_websocket.url"] = "lua/jsonrpc_websocket/url.lua",
  },
  install = {
    bin = { ["jsonrpc-ws"] = "bin/jsonrpc-ws" },
  },
  copy_directories = { "examples" },
}
test = {
  type = "busted",
}
