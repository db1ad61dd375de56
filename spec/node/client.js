// An independent JSON-RPC client (ws + json-rpc-2.0) for the specs.
//   node spec/node/client.js ws://127.0.0.1:PORT/path
// Runs a fixed scenario against our server and prints one JSON line with
// what it saw; exits 1 on any failure.
"use strict";
const WebSocket = require("ws");
const { JSONRPCServer, JSONRPCClient, JSONRPCServerAndClient } = require("json-rpc-2.0");

const url = process.argv[2];
const ws = new WebSocket(url);
const peer = new JSONRPCServerAndClient(
  new JSONRPCServer(),
  new JSONRPCClient((request) => {
    try { ws.send(JSON.stringify(request)); return Promise.resolve(); }
    catch (e) { return Promise.reject(e); }
  })
);
const seen = { ticks: [] };
peer.addMethod("client_method", ([a, b]) => a * 10 + b);   // the server calls us
peer.addMethod("tick", (params) => { seen.ticks.push(params); }); // notifications

ws.on("message", (data) => peer.receiveAndSend(JSON.parse(data.toString())));
ws.on("close", () => peer.rejectAllPendingRequests("closed"));
ws.on("error", (e) => { console.error(String(e)); process.exit(1); });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

ws.on("open", async () => {
  try {
    seen.add = await peer.request("add", [1, 2]);
    seen.greet = await peer.request("greet", { name: "node" });
    seen.users = await peer.request("app.users.getUsers");
    try { await peer.request("no.such.method", []); }
    catch (e) { seen.missing = e.code; }
    try { await peer.request("fail", []); }
    catch (e) { seen.fail = { code: e.code, message: e.message }; }
    seen.ask_back = await peer.request("ask_back", [4, 2]);
    peer.notify("note", ["from node"]);
    await peer.request("subscribe", []);
    for (let i = 0; i < 50 && seen.ticks.length === 0; i++) await sleep(10);
    seen.noted = await peer.request("last_note", []);
    console.log(JSON.stringify(seen));
    ws.close(1000);
  } catch (e) {
    console.error("scenario failed:", e && e.message ? e.message : e);
    process.exit(1);
  }
});
