// A minimal socket.io room-broadcast server, a peer for loadtests/race.py (not Switchboard).
//
//     node server.js PORT
//
// Clients emit `join` (room name, acknowledged) and `send` ({room, text}); every `send` is
// broadcast as `msg` ({room, id, from, text}) to everyone in the room, the sender included.
// Nothing is persisted. WebSocket transport only, no compression, the keepalive pushed out
// so the benchmark client (which stops parsing frames while it counts) is never dropped.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node server.js PORT");
  process.exit(2);
}

const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  pingInterval: 300000,
  pingTimeout: 300000,
  maxHttpBufferSize: 1e6,
});

let nextId = 0;

io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    if (typeof room !== "string") return;
    socket.join(room);
    if (typeof ack === "function") ack({ room });
  });
  socket.on("send", (data) => {
    if (!data || typeof data.room !== "string" || !socket.rooms.has(data.room)) return;
    nextId += 1;
    io.to(data.room).emit("msg", { room: data.room, id: nextId, from: socket.id, text: data.text });
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`listening on 127.0.0.1:${port}`);
});

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    io.close();
    process.exit(0);
  });
}
