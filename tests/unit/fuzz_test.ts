// Issue 23 point 5: the record decoder, the DNS parser and the TCP DNS
// reassembly each take 100,000+ generated inputs (fast-check). Each property
// checks two things: nothing throws (except DnsFormatError where that is the
// contract) and every table stays within its bound; and what was valid comes
// out exact, so a decoder that emits nothing or a table that drops ends fails.
import assert from "node:assert/strict";
import fc from "npm:fast-check@3.23.2";
import dnsPacket from "npm:dns-packet@5.6.1";
import { formatIPv4, formatIPv6 } from "../../src/bpf/addr.ts";
import { type DnsMessage, RecordDecoder } from "../../src/bpf/records.ts";
import { KIND_BEGIN, LAYOUT } from "../../src/bpf/layout.ts";
import { MIN_MAX_BYTES } from "../../src/dns/cache.ts";
import { DnsNames, MAX_PENDING, MAX_STREAMS } from "../../src/dns/names.ts";
import {
  DnsFormatError,
  MAX_CHAIN,
  MAX_TTL_S,
  parseAnswer,
  questionHash,
} from "../../src/dns/parse.ts";
import type { FlowEvent } from "../../src/events.ts";
import { FlowTable } from "../../src/flow/state.ts";
import { dnsMessage } from "../helpers/records.ts";

const F = LAYOUT.nf_flow.fields;
const H = LAYOUT.nf_header.fields;
const D = LAYOUT.nf_dns.fields;
const FLOW_SIZE = LAYOUT.nf_flow.size;
const NOW_MS = 1_700_000_000_000;
const clock = () => NOW_MS;

/** xorshift32 from a generated seed: interleavings fast-check can replay. */
function rng(seed: number) {
  let x = seed | 1;
  return (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

function setU64(view: DataView, at: number, n: number) {
  view.setUint32(at, n % 4294967296, true);
  view.setUint32(at + 4, Math.floor(n / 4294967296), true);
}

// ---------------------------------------------------------------- records

/** One socket as the kernel reports it: a begin and an end (rst or timeout: no queued bytes). */
const conn = fc.record({
  family: fc.constantFrom(4, 6),
  laddr: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  raddr: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  lport: fc.integer({ min: 1, max: 65535 }),
  rport: fc.integer({ min: 1, max: 65535 }),
  netns: fc.integer({ min: 1, max: 0xffffffff }),
  bytesAcked: fc.oneof(fc.nat(), fc.maxSafeNat()),
  bytesReceived: fc.oneof(fc.nat(), fc.maxSafeNat()),
  end: fc.constantFrom(3, 4, 5), // local-rst, remote-rst, timeout
  loseBegin: fc.boolean(), // the ring dropped it: the end must still come out
});
type Conn = typeof conn extends fc.Arbitrary<infer T> ? T : never;

/** What the ring hands over besides: random bytes of any kind, or a real record mutated. */
const noise = fc.oneof(
  fc.record({
    bytes: fc.uint8Array({ maxLength: 2 * FLOW_SIZE }),
    kind: fc.integer({ min: 0, max: 15 }),
    short: fc.nat(),
  }),
  fc.record({
    of: fc.nat(),
    kind: fc.integer({ min: 0, max: 15 }),
    muts: fc.array(fc.tuple(fc.nat(FLOW_SIZE - 1), fc.nat(255)), { maxLength: 8 }),
  }),
);

function encodeFlow(c: Conn, kind: number, cookie: number): DataView {
  const view = new DataView(new ArrayBuffer(FLOW_SIZE));
  const bytes = new Uint8Array(view.buffer);
  setU64(view, H.ts_ns, 5_000_000 + cookie * 1000 + kind);
  setU64(view, H.cgroup_id, 7);
  view.setUint8(H.kind, kind);
  view.setUint8(H.family, c.family);
  setU64(view, F.cookie, cookie);
  setU64(view, F.begin_ns, 1_000_000 + cookie);
  setU64(view, F.bytes_acked, c.bytesAcked);
  setU64(view, F.bytes_received, c.bytesReceived);
  bytes.set(c.laddr, F.laddr);
  bytes.set(c.raddr, F.raddr);
  view.setUint32(F.netns, c.netns, true);
  view.setUint16(F.lport, c.lport, true);
  view.setUint16(F.rport, c.rport, true);
  view.setUint8(F.end, kind === KIND_BEGIN ? 0 : c.end);
  return view;
}

const addrOf = (c: Conn, a: Uint8Array) => c.family === 6 ? formatIPv6(a) : formatIPv4(a);

let recordsFed = 0;
Deno.test("fuzz: 100,000+ ring records through decoder and flow table; every socket ends once, exact", () => {
  const MAX_FLOWS = 16;
  fc.assert(
    fc.property(
      fc.array(conn, { minLength: 20, maxLength: 40 }),
      fc.array(noise, { minLength: 40, maxLength: 60 }),
      fc.integer(),
      (conns, noises, seed) => {
        const rand = rng(seed);
        type Item = { view: DataView; length: number; conn?: number; kind?: "begin" | "end" };
        const streams: Item[][] = conns.map((c, i) => {
          const items: Item[] = [];
          const cookie = i + 1;
          if (!c.loseBegin) {
            items.push({
              view: encodeFlow(c, 3, cookie),
              length: FLOW_SIZE,
              conn: i,
              kind: "begin",
            });
          }
          items.push({ view: encodeFlow(c, 4, cookie), length: FLOW_SIZE, conn: i, kind: "end" });
          return items;
        });
        for (const [k, n] of noises.entries()) {
          let view: DataView;
          let length: number;
          if ("bytes" in n) {
            const bytes = new Uint8Array(Math.max(n.bytes.length, H.kind + 1));
            bytes.set(n.bytes);
            bytes[H.kind] = n.kind;
            view = new DataView(bytes.buffer);
            length = n.short % 3 === 0 ? n.short % (bytes.length + 1) : bytes.length;
          } else {
            const base = conns[n.of % conns.length]!;
            view = encodeFlow(base, n.kind, 0);
            for (const [at, b] of n.muts) view.setUint8(at, b);
            setU64(view, F.cookie, 2 ** 40 + k); // never a generated socket's
            length = FLOW_SIZE;
          }
          streams.push([{ view, length }]);
        }
        // Interleave: any order across sockets, each socket's own in order.
        const order: Item[] = [];
        const live = streams.filter((s) => s.length > 0);
        while (live.length > 0) {
          const at = rand(live.length);
          order.push(live[at]!.shift()!);
          if (live[at]!.length === 0) live.splice(at, 1);
        }

        const decoder = new RecordDecoder(1_700_000_000_000_000);
        const table = new FlowTable({ maxFlows: MAX_FLOWS, maxHalfOpen: MAX_FLOWS });
        const ends = new Map<number, FlowEvent[]>();
        for (const item of order) {
          recordsFed++;
          const r = decoder.decode(item.view, 0, item.length);
          if (item.conn !== undefined) {
            const c = conns[item.conn]!;
            assert.ok(r !== undefined && r.kind === item.kind, `socket ${item.conn} ${item.kind}`);
            assert.equal(r.kind === "begin" || r.kind === "end", true);
            if (r.kind !== "begin" && r.kind !== "end") continue;
            assert.deepEqual(
              [r.cookie, r.netns, r.localAddr, r.localPort, r.remoteAddr, r.remotePort],
              [item.conn + 1, c.netns, addrOf(c, c.laddr), c.lport, addrOf(c, c.raddr), c.rport],
            );
            assert.deepEqual(
              [r.counters.bytesAcked, r.counters.bytesReceived],
              [c.bytesAcked, c.bytesReceived],
            );
          }
          if (r === undefined || (r.kind !== "begin" && r.kind !== "end" && r.kind !== "fail")) {
            continue;
          }
          const e = table.onRecord(r);
          const s = table.stats;
          assert.ok(s.open <= MAX_FLOWS && s.halfOpen <= MAX_FLOWS, `table ${JSON.stringify(s)}`);
          if (e === undefined || item.conn === undefined) continue;
          if (e.event === "net_flow_tcp_end") {
            ends.set(item.conn, [...(ends.get(item.conn) ?? []), e]);
          }
        }
        for (const [i, c] of conns.entries()) {
          const got = ends.get(i) ?? [];
          assert.equal(got.length, 1, `socket ${i}: ${got.length} ends`);
          const e = got[0]!;
          assert.equal(e.event, "net_flow_tcp_end");
          if (e.event !== "net_flow_tcp_end") continue;
          assert.deepEqual(
            [e.bytes_sent, e.bytes_received, [e.src_port, e.dst_port].sort()],
            [c.bytesAcked, c.bytesReceived, [c.lport, c.rport].sort()],
          );
        }
      },
    ),
    { numRuns: 1100 },
  );
  assert.ok(recordsFed >= 100_000, `${recordsFed} records`);
});

// ---------------------------------------------------------------- DNS

const label = fc.array(fc.constantFrom(..."abcdefghxyz0189-"), { minLength: 1, maxLength: 12 })
  .map((cs) => cs.join(""));
const dnsName = fc.array(label, { minLength: 1, maxLength: 4 }).map((ls) => ls.join("."));
const ttl = fc.oneof(fc.nat(0x7fffffff), fc.nat(0xffffffff));
/** As netflow keeps a TTL: 2^31 and up is 0 (RFC 2181 section 8), at most MAX_TTL_S. */
const kept = (t: number) => t >= 2 ** 31 ? 0 : Math.min(t, MAX_TTL_S);

/** A NOERROR answer: question -> CNAME chain -> addresses, and records for names not asked. */
const answer = fc.record({
  id: fc.nat(0xffff),
  name: dnsName,
  v6: fc.boolean(),
  cnames: fc.array(ttl, { maxLength: 4 }),
  addrs: fc.array(fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), ttl), {
    minLength: 1,
    maxLength: 4,
  }),
  others: fc.array(fc.tuple(dnsName, fc.uint8Array({ minLength: 4, maxLength: 4 })), {
    maxLength: 3,
  }),
}).map((g) => {
  const chain = [g.name, ...g.cnames.map((_, i) => `c${i}.${g.name}`)];
  const last = chain.at(-1)!;
  const type = g.v6 ? "AAAA" : "A";
  const fmt = (a: Uint8Array) => g.v6 ? formatIPv6(a) : formatIPv4(a);
  const records = [
    ...g.cnames.map((t, i) => ({ type: "CNAME", name: chain[i]!, data: chain[i + 1]!, ttl: t })),
    ...g.addrs.map(([a, t]) => ({ type, name: last, data: fmt(a), ttl: t })),
    // Not on the chain: ignored (the name gets a prefix no chain name has).
    ...g.others.map(([n, a]) => ({
      type: "A",
      name: `notonthechain.${n}`,
      data: formatIPv4(a),
      ttl: 60,
    })),
  ];
  const message = new Uint8Array(dnsPacket.encode({
    type: "response",
    id: g.id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name: g.name }],
    answers: records.map((r) => ({ ...r, class: "IN" })),
  } as dnsPacket.Packet));
  const chainTtl = Math.min(Number.MAX_SAFE_INTEGER, ...g.cnames.map(kept));
  const resolutions = g.addrs.map(([a, t]) => ({
    address: fmt(a),
    names: chain,
    ttl: Math.min(chainTtl, kept(t)),
  }));
  return { message, id: g.id, resolutions };
});
type Generated = typeof answer extends fc.Arbitrary<infer T> ? T : never;

/** A message broken: bytes changed, pointers aimed anywhere, counts lied about, cut. */
const mutation = fc.record({
  muts: fc.array(fc.tuple(fc.nat(), fc.nat(255), fc.nat(3)), { minLength: 1, maxLength: 8 }),
  cut: fc.option(fc.nat(), { freq: 3 }),
});

function mutate(msg: Uint8Array, m: typeof mutation extends fc.Arbitrary<infer T> ? T : never) {
  let out = new Uint8Array(msg);
  for (const [at, b, how] of m.muts) {
    const i = at % out.length;
    if (how === 0) out[i] = b;
    else if (how === 1) out.set([0xc0, b % out.length], Math.min(i, out.length - 2));
    else if (how === 2) out[4 + (b % 8)] = at & 0xff;
    else out[i] = b & 0x3f;
  }
  if (m.cut !== null) out = out.subarray(0, m.cut % (out.length + 1));
  return out;
}

function parseOrFormatError(msg: Uint8Array, wire: number) {
  try {
    return parseAnswer(msg, wire);
  } catch (err) {
    if (!(err instanceof DnsFormatError)) throw err; // anything else escaped
    return undefined;
  }
}

/** The cache within its bounds (addresses, bytes charged), and the reassembly within its own. */
function assertBounded(names: DnsNames, maxEntries: number, maxBytes: number) {
  const s = names.stats;
  const r = names.reassembly();
  assert.ok(s.entries <= maxEntries, `entries ${s.entries}`);
  assert.ok(s.bytes <= maxBytes, `cache bytes ${s.bytes}`);
  assert.ok(r.streams <= MAX_STREAMS, `streams ${r.streams}`);
  // A stream holds its message (2 + 65535 bytes) and MAX_PENDING segments of one record each.
  const perStream = 2 + 65535 + MAX_PENDING * (LAYOUT.nf_dns.size - D.payload);
  assert.ok(r.bytes <= r.streams * perStream, `stream bytes ${r.bytes}`);
}

let messagesParsed = 0;
Deno.test("fuzz: 100,000+ DNS answers (generated and broken) through the parser and caches", () => {
  // The address bound binds here (8 addresses; bytes ample for them).
  const ENTRIES = 8, BYTES = MIN_MAX_BYTES;
  const names = new DnsNames({ maxEntries: ENTRIES, maxBytes: BYTES, now: clock });
  let valid = 0;
  fc.assert(
    fc.property(
      fc.array(fc.tuple(answer, mutation, fc.integer({ min: 1, max: 5 })), {
        minLength: 25,
        maxLength: 25,
      }),
      (batch) => {
        for (const [g, m, netns] of batch) {
          // The generated answer reads exactly as generated.
          messagesParsed++;
          const a = parseAnswer(g.message);
          assert.deepEqual([a.id, a.complete, a.resolutions], [g.id, true, g.resolutions]);
          names.onMessage(udp(g.message, netns));
          for (const r of g.resolutions) {
            assert.ok(names.names(netns, r.address).includes(r.names[0]!), r.address);
          }
          valid++;
          // Broken: a DnsFormatError or an answer, never anything else.
          messagesParsed++;
          const broken = mutate(g.message, m);
          const wire = m.cut === null ? broken.length : g.message.length;
          const b = parseOrFormatError(broken, wire);
          if (b !== undefined) {
            for (const r of b.resolutions) assert.ok(r.names.length <= MAX_CHAIN && r.ttl >= 0);
          }
          names.onMessage(udp(broken, netns, wire));
          assertBounded(names, ENTRIES, BYTES);
        }
      },
    ),
    { numRuns: 2000 },
  );
  assert.ok(messagesParsed >= 100_000, `${messagesParsed} messages`);
  assert.ok(names.stats.evicted > 0, "the bounds were reached");
  assert.ok(names.stats.malformed > 10_000 && valid >= 50_000, JSON.stringify(names.stats));
});

function udp(payload: Uint8Array, netns: number, length = payload.length): DnsMessage {
  return dnsMessage(payload, { netns, queryId: 0, length });
}

/** A TCP answer stream as segments: offset 0 first, the rest reordered, some sent twice. */
function segmentsOf(
  g: Generated,
  cuts: number[],
  rand: (n: number) => number,
  port: number,
  netns: number,
  hole: boolean,
): DnsMessage[] {
  const framed = new Uint8Array(g.message.length + 2);
  framed.set([g.message.length >> 8, g.message.length & 0xff]);
  framed.set(g.message, 2);
  const bounds = [...new Set([0, ...cuts.map((c) => c % framed.length), framed.length])]
    .sort((a, b) => a - b);
  const question = questionHash(g.message).hash;
  const segs = bounds.slice(1).map((end, i): DnsMessage => ({
    ...udp(framed.subarray(bounds[i]!, end), netns),
    transport: "tcp",
    src: "192.0.2.53",
    dstPort: port,
    queryId: g.id,
    question,
    streamOffset: bounds[i]!,
  }));
  if (hole && segs.length > 1) {
    const at = 1 + rand(segs.length - 1); // the kernel copied only part of this one
    const s = segs[at]!;
    segs[at] = { ...s, payload: s.payload.subarray(0, rand(s.payload.length)) };
  }
  const rest = segs.slice(1);
  for (let i = rest.length - 1; i > 0; i--) {
    const j = rand(i + 1);
    [rest[i], rest[j]] = [rest[j]!, rest[i]!];
  }
  if (rest.length > 0 && rand(3) === 0) rest.splice(rand(rest.length), 0, rest[rand(rest.length)]!);
  return [segs[0]!, ...rest];
}

let segmentsFed = 0;
Deno.test("fuzz: 100,000+ TCP DNS segments (split, reordered, repeated, cut, stray) reassemble within bounds", () => {
  // The byte bound binds here (the smallest allowed, 64 KiB: a few hundred addresses).
  const ENTRIES = 100_000, BYTES = MIN_MAX_BYTES;
  const names = new DnsNames({ maxEntries: ENTRIES, maxBytes: BYTES, now: clock });
  let run = 0, complete = 0;
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          g: answer,
          cuts: fc.array(fc.nat(), { maxLength: 12 }),
          hole: fc.boolean(),
        }),
        { minLength: 1, maxLength: 4 },
      ),
      fc.array(
        fc.record({
          port: fc.integer({ min: 1, max: 30000 }),
          offset: fc.oneof(fc.constant(0), fc.nat(70_000)),
          bytes: fc.uint8Array({ maxLength: 64 }),
          length: fc.nat(0xffff),
          netns: fc.integer({ min: 1, max: 8 }),
        }),
        { minLength: 30, maxLength: 30 },
      ),
      fc.integer(),
      (streams, strays, seed) => {
        const rand = rng(seed);
        const netns = 1000 + (run++ % 16); // a fresh cache most runs: names are this run's
        const queues = streams.map((s, i) =>
          segmentsOf(s.g, s.cuts, rand, 40000 + i, netns, s.hole && s.g.message.length > 2)
        );
        for (const s of strays) {
          queues.push([{
            ...udp(s.bytes, s.netns, Math.max(s.length, s.bytes.length)),
            transport: "tcp",
            dstPort: s.port,
            streamOffset: s.offset,
            queryId: s.port,
          }]);
        }
        const cut = queues.map((q) => q.some((m) => m.length > m.payload.length));
        const live = queues.filter((q) => q.length > 0);
        while (live.length > 0) {
          const at = rand(live.length);
          segmentsFed++;
          names.onMessage(live[at]!.shift()!);
          if (live[at]!.length === 0) live.splice(at, 1);
        }
        assertBounded(names, ENTRIES, BYTES);
        // Each whole stream's answer was read: its addresses name the question.
        for (const [i, s] of streams.entries()) {
          if (cut[i]) continue;
          complete++;
          for (const r of s.g.resolutions) {
            assert.ok(names.names(netns, r.address).includes(r.names[0]!), `stream ${i}`);
          }
        }
      },
    ),
    { numRuns: 2500 },
  );
  assert.ok(segmentsFed >= 100_000, `${segmentsFed} segments`);
  assert.ok(complete > 1000 && names.stats.streamsDropped > 0, `${complete} complete`);
  assert.ok(names.stats.evicted > 0, "the byte bound was reached");
});
