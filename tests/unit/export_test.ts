/**
 * The IPFIX transports against sockets on loopback: what a collector
 * receives, in what order, and what is counted when it is away.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import net from "node:net";
import { endEvent } from "../helpers/events.ts";
import { TcpExporter } from "../../src/export/tcp.ts";
import { UdpExporter } from "../../src/export/udp.ts";
import { parseCollectorUrl } from "../../src/export/url.ts";

const end = endEvent({
  time: "2023-11-14T22:13:22.500000Z",
  flow_id: "x-1",
  uid: 1000,
  duration_ms: 5,
  bytes_sent: 100,
  bytes_received: 5000,
  packets_sent: 4,
  packets_received: 6,
  rtt_us: 10,
});

const ends = (n: number, from = 0) =>
  Array.from({ length: n }, (_, i) => ({ ...end, flow_id: `x-${from + i}`, src_port: from + i }));

/** [set id, sequence number, source ports of IPv4 records] per message in a byte stream. */
function messages(bytes: Uint8Array): [number, number, number[]][] {
  const out: [number, number, number[]][] = [];
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at < bytes.length;) {
    const length = v.getUint16(at + 2);
    const setId = v.getUint16(at + 16);
    const ports: number[] = [];
    if (setId === 256) {
      const setEnd = at + 16 + v.getUint16(at + 18);
      // Fixed part of template 256: 32 bytes, counters 32, pid and uid 8; then two names.
      for (let r = at + 20; r < setEnd;) {
        ports.push(v.getUint16(r + 24));
        r += 72;
        r += 1 + bytes[r]!;
        r += 1 + bytes[r]!;
      }
    }
    out.push([setId, v.getUint32(at + 8), ports]);
    at += length;
  }
  return out;
}

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

Deno.test("TcpExporter: collector down at start, then up: queued records arrive after the templates", async () => {
  const port = await freePort();
  const warnings: string[] = [];
  const exp = new TcpExporter(parseCollectorUrl(`tcp://127.0.0.1:${port}`), {
    maxQueuedRecords: 3,
    warn: (l) => warnings.push(l),
  });
  exp.write(ends(5)); // returns at once: nobody listens
  assert.deepEqual(exp.stats, { sent: 0, dropped: 2, queued: 3 });
  await until("the unreachable warning", () => warnings.length > 0);
  assert.match(
    warnings[0]!,
    /^netflow: warning: IPFIX collector tcp:\/\/127\.0\.0\.1:\d+: unreachable \(ECONNREFUSED\); retrying/,
  );
  let received = new Uint8Array(0);
  let peer: net.Socket | undefined;
  const server = net.createServer((sock) => {
    peer = sock;
    sock.on("data", (d) => received = new Uint8Array([...received, ...d]));
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  try {
    await until("the queued records", () => exp.stats.sent === 3);
    await until("their bytes", () => messages(received).some(([id]) => id === 256));
    assert.deepEqual(messages(received), [[2, 0, []], [256, 4, [2, 3, 4]]]);
    assert.match(warnings[1]!, /connected again/);
    // The collector goes away: records wait again, and the next session starts over.
    peer!.destroy();
    await until("the lost-connection warning", () => warnings.length > 2);
    assert.match(warnings[2]!, /connection lost/);
    received = new Uint8Array(0);
    exp.write(ends(2, 10));
    await until("the records after reconnecting", () => exp.stats.sent === 5);
    await until("their bytes", () => messages(received).some(([id]) => id === 256));
    assert.deepEqual(messages(received), [[2, 0, []], [256, 4, [10, 11]]]);
  } finally {
    await exp.close();
    await new Promise((r) => server.close(r));
  }
  assert.deepEqual(exp.stats, { sent: 5, dropped: 2, queued: 0 });
});

Deno.test("TcpExporter: what never reached a collector counts as dropped at close", async () => {
  const port = await freePort();
  const exp = new TcpExporter(parseCollectorUrl(`tcp://127.0.0.1:${port}`), { warn: () => {} });
  exp.write(ends(4));
  await exp.close();
  assert.deepEqual(exp.stats, { sent: 0, dropped: 4, queued: 0 });
  assert.equal(exp.summary(), `tcp://127.0.0.1:${port}: 0 IPFIX records sent, 4 dropped`);
});

Deno.test("UdpExporter: templates first, again every N messages and after the interval", async () => {
  const server = dgram.createSocket("udp4");
  const got: [number, number, number[]][] = [];
  server.on("message", (m) => got.push(...messages(new Uint8Array(m))));
  await new Promise<void>((r) => server.bind(0, "127.0.0.1", r));
  const port = server.address().port;
  let now = 1_700_000_000_000;
  const exp = new UdpExporter(parseCollectorUrl(`udp://127.0.0.1:${port}`), {
    templateEveryMessages: 3,
    templateIntervalMs: 10_000,
    now: () => now,
  });
  try {
    exp.write(ends(1, 1));
    exp.write(ends(1, 2));
    exp.write(ends(1, 3)); // the template message was the first of three
    now += 10_000;
    exp.write(ends(1, 4));
    await until("five datagrams... and more", () => got.length === 7);
  } finally {
    await exp.close();
    server.close();
  }
  assert.deepEqual(got, [
    // Each template message carries 4 RFC 5610 records, counted in the sequence.
    [2, 0, []],
    [256, 4, [1]],
    [256, 5, [2]],
    [2, 6, []],
    [256, 10, [3]],
    [2, 11, []],
    [256, 15, [4]],
  ]);
  assert.deepEqual(exp.stats, { sent: 4, dropped: 0, queued: 0 });
});

Deno.test("TcpExporter: a collector that stops reading costs records, counted, never the caller's time", async () => {
  let received: Uint8Array[] = [];
  let peer: net.Socket | undefined;
  const server = net.createServer((sock) => {
    peer = sock;
    sock.pause(); // a stuck collector: it accepted, and reads nothing
    sock.on("data", (d) => received.push(new Uint8Array(d)));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  const exp = new TcpExporter(parseCollectorUrl(`tcp://127.0.0.1:${port}`), {
    maxQueuedRecords: 1000,
    warn: () => {},
  });
  let written = 0;
  try {
    await until("the connection", () => exp.connected && peer !== undefined);
    // Keep writing until the kernel's buffers and the socket's own are full and
    // records start to be dropped. write() is synchronous: it cannot wait on the collector.
    for (let i = 0; i < 2000 && exp.stats.dropped === 0; i++) {
      assert.equal(exp.write(ends(1000, written)), true);
      written += 1000;
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 0)); // let the socket flush
    }
    const stuck = exp.stats;
    assert.ok(stuck.dropped > 0, "records were dropped once the queue was full");
    assert.equal(stuck.queued, 1000);
    assert.equal(stuck.sent + stuck.dropped + stuck.queued, written);
    // The collector catches up: the queue drains and nothing more is lost.
    peer!.resume();
    await until("the queue to drain", () => exp.stats.queued === 0, 30_000);
  } finally {
    await exp.close();
  }
  await until("the last bytes", () => {
    const bytes = new Uint8Array(received.reduce((n, b) => n + b.length, 0));
    let at = 0;
    for (const b of received) {
      bytes.set(b, at);
      at += b.length;
    }
    received = [bytes];
    const v = new DataView(bytes.buffer);
    // Whole messages only, then count the records they hold.
    let end = 0;
    while (end + 4 <= bytes.length && end + v.getUint16(end + 2) <= bytes.length) {
      end += v.getUint16(end + 2);
    }
    const got = messages(bytes.subarray(0, end)).reduce((n, [, , ports]) => n + ports.length, 0);
    return got === exp.stats.sent;
  });
  await new Promise((r) => server.close(r));
  const s = exp.stats;
  assert.equal(s.sent + s.dropped, written);
  assert.equal(s.queued, 0);
});
