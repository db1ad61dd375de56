// An independent JSON-RPC server (ws + json-rpc-2.0) for the specs.
//   node spec/node/server.js      prints "PORT <n> PID <pid>" once listening
// on 127.0.0.1. Answers add, echo; on "call_me" it calls the client's
// "client_method" and returns the answer; "notify_me" sends a "note"
// notification. Exits after 60 s (or when killed).
"use strict";
const WebSocket = require("ws");
const { JSONRPCServer, JSONRPCClient, JSONRPCServerAndClient } = require("json-rpc-2.0");

const wss = new WebSocket.Server({ host: "127.0.0.1", port: 0 });
wss.on("connection", (ws) => {
  const peer = new JSONRPCServerAndClient(
    new JSONRPCServer(),
    new JSONRPCClient((request) => {
      try { ws.send(JSON.stringify(request)); return Promise.resolve(); }
      catch (e) { return Promise.reject(e); }
    })
  );
  peer.addMethod("add", ([a, b]) => a + b);
  peer.addMethod("echo", (params) => params);
  peer.addMethod("call_me", async ([a, b]) => peer.request("client_method", [a, b]));
  peer.addMethod("notify_me", ([text]) => { peer.notify("note", [text]); return true; });
  ws.on("message", (data) => peer.receiveAndSend(JSON.parse(data.toString())));
  ws.on("close", () => peer.rejectAllPendingRequests("closed"));
});
wss.on("listening", () => console.log("PORT " + wss.address().port + " PID " + process.pid));
setTimeout(() => process.exit(0), 60000);
