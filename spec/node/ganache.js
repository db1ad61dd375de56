// A ganache dev node (a real Ethereum JSON-RPC server) for the specs: it
// listens on 127.0.0.1, on the port given as the argument or a free one
// (http and websockets on the same port), and prints "PORT <port> PID
// <pid>" once it answers. Usage: node ganache.js [port]
const ganache = require("ganache");

const server = ganache.server({
  logging: { quiet: true },
  wallet: { deterministic: true },
  server: { ws: true, wsBinary: false },
});
server.listen(Number(process.argv[2] || 0), "127.0.0.1", (err) => {
  if (err) {
    console.log("ERROR " + err.message);
    process.exit(1);
  }
  console.log(`PORT ${server.address().port} PID ${process.pid}`);
});
process.on("SIGTERM", () => process.exit(0));
