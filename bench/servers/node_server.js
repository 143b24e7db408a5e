#!/usr/bin/env node
// node_server: the Node.js baseline for the storm and idle benchmarks.
// Standard library only (net). What a careful Node server does for
// liveness: socket.setKeepAlive(true, idle) for kernel keepalive and
// socket.setTimeout(ms) as the application idle deadline (destroy on
// 'timeout'). Node has no TCP_USER_TIMEOUT and no heartbeat of its own.
//
// It speaks just enough of both benchmark protocols (the first byte picks
// the protocol), like bare_server.c:
//   vigil frames  PING -> PONG with the same token, GOODBYE -> end;
//   MQTT 3.1.1    CONNECT -> CONNACK 0, PINGREQ -> PINGRESP,
//                 SUBSCRIBE -> SUBACK (QoS 0), DISCONNECT -> end.
//
//   node node_server.js --listen 127.0.0.1:0 [--idle-timeout MS]
// prints "listening on HOST:PORT"; SIGINT/SIGTERM exit.
'use strict';
const net = require('net');

let host = '127.0.0.1';
let port = 0;
let idleMs = 90000; // 1.5 x a 60 s keep-alive, as an MQTT server would
for (let i = 2; i < process.argv.length; i += 2) {
  const flag = process.argv[i];
  const v = process.argv[i + 1];
  if (flag === '--listen' && v) {
    const colon = v.lastIndexOf(':');
    host = v.slice(0, colon);
    port = Number(v.slice(colon + 1));
  } else if (flag === '--idle-timeout' && v) {
    idleMs = Number(v);
  } else {
    console.error('usage: node node_server.js [--listen HOST:PORT] [--idle-timeout MS]');
    process.exit(2);
  }
}

const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const PINGRESP = Buffer.from([0xd0, 0x00]);

// Returns the length of the packet at buf[off..], 0 if incomplete, and
// acts on it; -1 asks to end the connection.
function vigilFrame(sock, buf, off) {
  if (buf.length - off < 8) return 0;
  const type = buf[off + 2];
  const len = buf.readUInt32BE(off + 4);
  if (type === 0x05) return -1; // GOODBYE
  if (buf.length - off < 8 + len) return 0;
  if (type === 0x02) { // PING -> PONG with the same token
    const pong = Buffer.from(buf.subarray(off, off + 8 + len));
    pong[2] = 0x03;
    sock.write(pong);
  }
  return 8 + len;
}

function mqttPacket(sock, buf, off) {
  let len = 0;
  let mult = 1;
  let i = off + 1;
  for (;; i++) {
    if (i >= buf.length) return 0;
    if (i - off > 4) return -1;
    len += (buf[i] & 0x7f) * mult;
    mult *= 128;
    if (!(buf[i] & 0x80)) break;
  }
  const total = i + 1 + len - off;
  if (buf.length - off < total) return 0;
  switch (buf[off] >> 4) {
    case 1: sock.write(CONNACK); break;
    case 8: sock.write(Buffer.from([0x90, 0x03, buf[i + 1], buf[i + 2], 0x00])); break;
    case 12: sock.write(PINGRESP); break;
    case 14: return -1;
    default: break;
  }
  return total;
}

const server = net.createServer((sock) => {
  sock.setKeepAlive(true, 60000);
  sock.setNoDelay(true);
  sock.setTimeout(idleMs, () => sock.destroy());
  let pending = null;
  sock.on('data', (chunk) => {
    let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
    let off = 0;
    while (off < buf.length) {
      const n = buf[off] === 0xf7 ? vigilFrame(sock, buf, off) : mqttPacket(sock, buf, off);
      if (n < 0) { sock.end(); pending = null; return; }
      if (n === 0) break;
      off += n;
    }
    pending = off < buf.length ? buf.subarray(off) : null;
    if (pending && pending.length > 1 << 20) sock.destroy();
  });
  sock.on('error', () => sock.destroy());
  sock.on('end', () => sock.end());
});
server.maxConnections = 1 << 20;
server.listen({ host, port, backlog: 511 } /* Node's default, as vigil's */, () => {
  const a = server.address();
  console.log(`listening on ${a.address}:${a.port}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
