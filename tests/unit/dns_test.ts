import assert from "node:assert/strict";
import dnsPacket from "npm:dns-packet@5.6.1";
import { RecordDecoder } from "../../src/bpf/records.ts";
import { KIND_DNS, LAYOUT } from "../../src/bpf/layout.ts";
import type { DnsMessage } from "../../src/bpf/records.ts";
import { DnsCache, MAX_GROUPS, MAX_NAMES } from "../../src/dns/cache.ts";
import { DnsNames } from "../../src/dns/names.ts";
import { MAX_TTL_S, parseAnswer, questionHash } from "../../src/dns/parse.ts";
import { dnsMessage as message } from "../helpers/records.ts";
import { heapWorkload } from "../helpers/workload.ts";

type Answer = { type: "A" | "AAAA" | "CNAME"; name: string; data: string; ttl: number };

function response(question: string, answers: Answer[], rcode = 0, id = 7): Uint8Array {
  return new Uint8Array(dnsPacket.encode({
    type: "response",
    id,
    flags: dnsPacket.RECURSION_DESIRED | rcode,
    questions: [{ type: "A", name: question }],
    answers: answers.map((a) => ({ ...a, class: "IN" })),
  }));
}

const NOW_MS = 1_700_000_000_000;
const clock = () => NOW_MS;

function resolve(msg: Uint8Array) {
  return parseAnswer(msg).resolutions;
}

Deno.test("parseAnswer follows a two-level CNAME chain in order, to the asked type only", () => {
  const msg = response("WWW.Example.test", [
    { type: "CNAME", name: "www.example.test", data: "mid.example.test", ttl: 300 },
    { type: "CNAME", name: "mid.example.test", data: "end.example.test", ttl: 60 },
    { type: "A", name: "end.example.test", data: "192.0.2.10", ttl: 600 },
    { type: "AAAA", name: "end.example.test", data: "2001:db8:0:0::10", ttl: 30 },
  ]);
  assert.deepEqual(resolve(msg), [
    {
      address: "192.0.2.10",
      names: ["www.example.test", "mid.example.test", "end.example.test"],
      ttl: 60,
    },
  ]);
});

Deno.test("parseResponses ignores answers off the chain, errors and CNAME loops", () => {
  const offChain = response("a.test", [{
    type: "A",
    name: "other.test",
    data: "192.0.2.1",
    ttl: 5,
  }]);
  assert.deepEqual(resolve(offChain), []);
  const nx = response("a.test", [{ type: "A", name: "a.test", data: "192.0.2.1", ttl: 5 }], 3);
  assert.deepEqual(resolve(nx), []);
  const loop = response("a.test", [
    { type: "CNAME", name: "a.test", data: "b.test", ttl: 5 },
    { type: "CNAME", name: "b.test", data: "a.test", ttl: 5 },
  ]);
  assert.deepEqual(resolve(loop), []);
});

Deno.test("parseAnswer hashes the question as the kernel does, whatever its case", () => {
  const msg = response("WWW.Example.test", []);
  const lower = response("www.example.test", []);
  assert.equal(parseAnswer(msg).question, parseAnswer(lower).question);
  // FNV-1a 64 of 3 "www" 7 "example" 4 "test" then type A (0 1) and class IN (0 1),
  // computed by hand from the definition.
  let h = 0xcbf29ce484222325n;
  const wire = [3, ..."www", 7, ..."example", 4, ..."test"].map((c) =>
    typeof c === "number" ? c : c.charCodeAt(0)
  );
  for (const b of [...wire, 0, 1, 0, 1]) {
    h = ((h ^ BigInt(b)) * 0x100000001b3n) & ((1n << 64n) - 1n);
  }
  assert.equal(questionHash(lower).hash, h);
  assert.notEqual(parseAnswer(response("www.example.tesu", [])).question, h);
});

Deno.test("parseAnswer rejects huge header counts before reading any record, cheaply", () => {
  const msg = response("a.test", [{ type: "A", name: "a.test", data: "192.0.2.1", ttl: 5 }]);
  const lying = new Uint8Array(msg);
  lying.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 6); // 65535 of each section
  assert.throws(() => parseAnswer(lying), /more records than the message can hold/);
  const start = performance.now();
  for (let i = 0; i < 10_000; i++) assert.throws(() => parseAnswer(lying));
  const perMessageUs = (performance.now() - start) * 1000 / 10_000;
  console.log(`huge counts rejected in ${perMessageUs.toFixed(2)} µs per message`);
});

Deno.test("parseAnswer keeps the complete records of a cut message, and only those", () => {
  const answers: Answer[] = Array.from({ length: 100 }, (_, i) => ({
    type: "A",
    name: "big.test",
    data: `10.0.${i >> 8}.${i & 255}`,
    ttl: 60,
  }));
  const msg = response("big.test", answers);
  assert.ok(msg.length > 1280);
  const cut = parseAnswer(msg.subarray(0, 1280), msg.length);
  assert.equal(cut.complete, false);
  // Question 14 bytes; dns-packet does not compress, so each record is 10 + 10 + 4.
  const fit = Math.floor((1280 - 12 - 14) / 24);
  assert.equal(cut.resolutions.length, fit);
  assert.deepEqual(cut.resolutions.at(-1), {
    address: `10.0.0.${fit - 1}`,
    names: ["big.test"],
    ttl: 60,
  });
  // The same bytes claiming to be whole are malformed, not a shorter answer.
  assert.throws(() => parseAnswer(msg.subarray(0, 1280)));
});

Deno.test("parseAnswer keeps names with control characters (the table sanitizes them)", () => {
  const msg = response("a\u0007b.test", [
    { type: "A", name: "a\u0007b.test", data: "192.0.2.3", ttl: 5 },
  ]);
  assert.deepEqual(resolve(msg)[0]?.names, ["a\u0007b.test"]);
});

Deno.test("parseAnswer ignores answers for names that were not asked, and other types", () => {
  const msg = response("asked.test", [
    { type: "A", name: "other.test", data: "192.0.2.7", ttl: 5 },
    { type: "AAAA", name: "asked.test", data: "2001:db8::7", ttl: 5 },
    { type: "A", name: "asked.test", data: "192.0.2.8", ttl: 5 },
  ]);
  assert.deepEqual(resolve(msg).map((r) => r.address), ["192.0.2.8"]);
});

Deno.test("DnsNames keeps one cache per network namespace", () => {
  const names = new DnsNames({ now: clock });
  const one = response("same.test", [{ type: "A", name: "same.test", data: "192.0.2.1", ttl: 60 }]);
  const two = response("same.test", [{ type: "A", name: "same.test", data: "192.0.2.2", ttl: 60 }]);
  names.onMessage(message(one, { netns: 1 }));
  names.onMessage(message(two, { netns: 2 }));
  assert.deepEqual(names.names(1, "192.0.2.1"), ["same.test"]);
  assert.deepEqual(names.names(1, "192.0.2.2"), []);
  assert.deepEqual(names.names(2, "192.0.2.2"), ["same.test"]);
  assert.deepEqual(names.names(3, "192.0.2.1"), []);
});

Deno.test("DnsNames keeps the names of 110 network namespaces (a full Kubernetes node) within its budget", () => {
  const names = new DnsNames({ now: clock });
  for (let ns = 1; ns <= 110; ns++) {
    for (let a = 0; a < 100; a++) {
      const addr = `10.${ns}.${a >> 8}.${a & 255}`;
      const msg = response(`svc${a}.pod${ns}.test`, [
        { type: "A", name: `svc${a}.pod${ns}.test`, data: addr, ttl: 60 },
      ]);
      names.onMessage(message(msg, { netns: 4026530000 + ns }));
    }
  }
  // Every namespace's every name is still there, nothing evicted.
  for (let ns = 1; ns <= 110; ns++) {
    for (const a of [0, 99]) {
      assert.deepEqual(
        names.names(4026530000 + ns, `10.${ns}.${a >> 8}.${a & 255}`),
        [`svc${a}.pod${ns}.test`],
        `namespace ${ns}`,
      );
    }
  }
  const stats = names.stats;
  assert.deepEqual([names.namespaces(), stats.entries, stats.evicted], [110, 11_000, 0]);
  assert.ok(stats.bytes > 0 && stats.bytes <= 64 << 20, `${stats.bytes} bytes`);
});

Deno.test("DnsNames bounds the whole cache in bytes, whatever the namespace, and counts evictions", () => {
  const names = new DnsNames({ now: clock, maxBytes: 65_536 });
  for (let i = 0; i < 2000; i++) {
    const msg = response(`host${i}.test`, [
      { type: "A", name: `host${i}.test`, data: `10.0.${i >> 8}.${i & 255}`, ttl: 60 },
    ]);
    names.onMessage(message(msg, { netns: 1 + (i % 7) }));
    assert.ok(names.stats.bytes <= 65_536);
  }
  const stats = names.stats;
  assert.ok(stats.evicted > 0 && stats.entries + stats.evicted === 2000, JSON.stringify(stats));
  // The newest are kept.
  assert.deepEqual(names.names(1 + (1999 % 7), "10.0.7.207"), ["host1999.test"]);
});

Deno.test("a namespace's names go when the namespace is gone, others stay", () => {
  const names = new DnsNames({ now: clock });
  for (const ns of [1, 2, 3]) {
    const msg = response("n.test", [{ type: "A", name: "n.test", data: `192.0.2.${ns}`, ttl: 60 }]);
    names.onMessage(message(msg, { netns: ns }));
  }
  assert.equal(names.forgetNamespaces(new Set([2, 4])), 1);
  assert.deepEqual(names.names(2, "192.0.2.2"), []);
  assert.deepEqual(names.names(1, "192.0.2.1"), ["n.test"]);
  assert.deepEqual(names.names(3, "192.0.2.3"), ["n.test"]);
  assert.deepEqual([names.namespaces(), names.stats.namespaceGone], [2, 1]);
});

Deno.test("an address gives at most MAX_NAMES names: the newest chains, in the order learned", () => {
  const cache = new DnsCache({ now: clock });
  for (let c = 0; c < MAX_GROUPS; c++) {
    cache.add("192.0.2.1", Array.from({ length: 6 }, (_, k) => `c${c}-n${k}.test`), 60, NOW_MS);
  }
  const got = cache.names("192.0.2.1", NOW_MS);
  assert.equal(MAX_NAMES, 16);
  assert.equal(got.length, MAX_NAMES);
  // The newest chains (5, 6, 7: 18 names) are kept first, cut to 16, oldest of them first.
  assert.deepEqual(got.slice(-6), Array.from({ length: 6 }, (_, k) => `c7-n${k}.test`));
  assert.deepEqual(got.slice(0, 4), ["c5-n0.test", "c5-n1.test", "c5-n2.test", "c5-n3.test"]);
});

Deno.test("a flood of 600-byte answers with 15 CNAMEs stays within the byte budget (heap measured)", async () => {
  const budget = 8 << 20;
  const r = await heapWorkload("dns_heap.ts", "20000", String(budget)) as {
    answerBytes: number;
    bytes: number;
    growth: number;
    entries: number;
    evicted: number;
    lastNames: number;
  };
  console.log(`flood: ${JSON.stringify(r)}`);
  assert.ok(r.answerBytes >= 550 && r.answerBytes <= 700, `answers of ${r.answerBytes} bytes`);
  // What the cache says it holds, and what the heap grew by, stay within the budget.
  assert.ok(r.bytes <= budget, `charged ${r.bytes}`);
  assert.ok(r.growth <= budget, `heap grew by ${r.growth} bytes, budget ${budget}`);
  // Positive control: it still holds names, the newest answer's whole chain (16 names).
  assert.ok(r.entries > 1000 && r.evicted > 0, JSON.stringify(r));
  assert.equal(r.lastNames, 16);
});

/** A TCP answer stream: 2-byte length, then the message, as segments at the given cuts. */
function segments(msg: Uint8Array, cuts: number[], more: Partial<DnsMessage> = {}) {
  const framed = new Uint8Array(msg.length + 2);
  framed.set([msg.length >> 8, msg.length & 0xff]);
  framed.set(msg, 2);
  const { hash } = questionHash(msg);
  const bounds = [0, ...cuts, framed.length];
  return bounds.slice(1).map((end, i) =>
    message(framed.subarray(bounds[i]!, end), {
      transport: "tcp",
      question: hash,
      streamOffset: bounds[i]!,
      ...more,
    })
  );
}

Deno.test("DnsNames reassembles a TCP answer split anywhere, even reordered", () => {
  const msg = response("t.test", [{ type: "A", name: "t.test", data: "192.0.2.9", ttl: 60 }]);
  for (const cuts of [[1], [2], [7], [1, 2, 30], [msg.length]]) {
    const names = new DnsNames({ now: clock });
    const parts = segments(msg, cuts);
    for (const m of parts.slice(0, -1)) names.onMessage(m);
    assert.deepEqual(names.names(4026531840, "192.0.2.9"), [], `not before the end (${cuts})`);
    names.onMessage(parts.at(-1)!);
    assert.deepEqual(names.names(4026531840, "192.0.2.9"), ["t.test"], `cuts ${cuts}`);
    assert.deepEqual([names.stats.responses, names.stats.malformed], [1, 0]);
  }
  const names = new DnsNames({ now: clock });
  const [a, b, c] = segments(msg, [10, 20]);
  for (const m of [a!, c!, b!, b!]) names.onMessage(m); // reordered and retransmitted
  assert.deepEqual(names.names(4026531840, "192.0.2.9"), ["t.test"]);
});

Deno.test("DnsNames reads a TCP answer only if it is the query's id and question", () => {
  const msg = response("t.test", [{ type: "A", name: "t.test", data: "192.0.2.9", ttl: 60 }], 0, 9);
  const names = new DnsNames({ now: clock });
  for (const m of segments(msg, [5], { queryId: 8 })) names.onMessage(m);
  for (const m of segments(msg, [5], { question: 12345n, queryId: 9 })) names.onMessage(m);
  assert.deepEqual(names.names(4026531840, "192.0.2.9"), []);
  assert.deepEqual([names.stats.responses, names.stats.malformed], [2, 2]);
  for (const m of segments(msg, [5], { queryId: 9 })) names.onMessage(m);
  assert.deepEqual(names.names(4026531840, "192.0.2.9"), ["t.test"]);
});

Deno.test("DnsNames never reads across a hole: a TCP segment cut by the kernel", () => {
  const answers: Answer[] = Array.from({ length: 40 }, (_, i) => ({
    type: "A",
    name: "h.test",
    data: `10.1.0.${i}`,
    ttl: 60,
  }));
  const msg = response("h.test", answers);
  const [first, second] = segments(msg, [300]);
  const names = new DnsNames({ now: clock });
  // The kernel copied 200 of the first segment's 300 bytes.
  names.onMessage({ ...first!, length: 300, payload: first!.payload.subarray(0, 200) });
  names.onMessage(second!); // after the hole: ignored
  const got = Array.from({ length: 40 }, (_, i) => names.names(4026531840, `10.1.0.${i}`).length);
  const kept = Math.floor((200 - 2 - 12 - 12) / 22); // records of 8 + 10 + 4 bytes
  assert.deepEqual(got, [...Array(kept).fill(1), ...Array(40 - kept).fill(0)]);
  assert.deepEqual([names.stats.responses, names.stats.cut, names.stats.malformed], [1, 1, 0]);
});

Deno.test("a segment whose stream start was never seen is never read", () => {
  const msg = response("t.test", [{ type: "A", name: "t.test", data: "192.0.2.9", ttl: 60 }]);
  const names = new DnsNames({ now: clock });
  names.onMessage(segments(msg, [10])[1]!);
  assert.deepEqual([names.stats.responses, names.names(4026531840, "192.0.2.9")], [0, []]);
});

Deno.test("DnsCache expires answers after TTL plus grace, and purges them", () => {
  const cache = new DnsCache({ graceMs: 500 });
  cache.add("192.0.2.1", ["short.test"], 1, NOW_MS);
  cache.add("192.0.2.2", ["long.test"], 100, NOW_MS);
  assert.deepEqual(cache.names("192.0.2.1", NOW_MS + 1499), ["short.test"]);
  assert.deepEqual(cache.names("192.0.2.1", NOW_MS + 1500), []);
  cache.purge(NOW_MS + 2000);
  assert.equal(cache.stats.entries, 1);
});

Deno.test("DnsCache evicts the least recently used address and counts it", () => {
  const cache = new DnsCache({ maxEntries: 2 });
  cache.add("192.0.2.1", ["a.test"], 60, NOW_MS);
  cache.add("192.0.2.2", ["b.test"], 60, NOW_MS);
  cache.names("192.0.2.1", NOW_MS); // a is used: b is now the least recent
  cache.add("192.0.2.3", ["c.test"], 60, NOW_MS);
  assert.deepEqual(cache.names("192.0.2.2", NOW_MS), []);
  assert.deepEqual(cache.names("192.0.2.1", NOW_MS), ["a.test"]);
  assert.deepEqual([cache.stats.entries, cache.stats.evicted], [2, 1]);
});

Deno.test("DnsCache keeps a bounded number of chains per address", () => {
  const cache = new DnsCache({ now: clock });
  for (let i = 0; i < MAX_GROUPS + 5; i++) cache.add("192.0.2.1", [`n${i}.test`], 60, NOW_MS);
  const names = cache.names("192.0.2.1", NOW_MS);
  assert.equal(names.length, MAX_GROUPS);
  assert.equal(names.at(-1), `n${MAX_GROUPS + 4}.test`);
});

Deno.test("DnsNames counts malformed messages and never throws", () => {
  const names = new DnsNames({ now: clock });
  names.onMessage(message(new Uint8Array([1, 2, 3])));
  names.onMessage(message(new Uint8Array(0)));
  assert.deepEqual([names.stats.responses, names.stats.malformed], [2, 2]);
});

Deno.test("DnsCache expiry follows its own clock, not the wall clock", () => {
  let now = 1000;
  const cache = new DnsCache({ graceMs: 0, now: () => now });
  cache.add("192.0.2.1", ["a.test"], 10);
  now += 9_999;
  assert.deepEqual(cache.names("192.0.2.1"), ["a.test"]);
  now += 1;
  assert.deepEqual(cache.names("192.0.2.1"), []);
});

/** xorshift32: a fixed seed makes the fuzz run the same every time. */
function rng(seed: number) {
  let x = seed;
  return (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}

const D = LAYOUT.nf_dns.fields;

/** An nf_dns record as the kernel writes it (offsetof(payload) + captured bytes). */
function record(payload: Uint8Array, fields: {
  transport: 6 | 17;
  netns: number;
  length: number;
  captured: number;
  streamOffset: number;
  queryId: number;
  question: bigint;
  family: 4 | 6;
}): DataView {
  const view = new DataView(new ArrayBuffer(D.payload + payload.length));
  view.setUint8(16, KIND_DNS);
  view.setUint8(18, fields.family);
  view.setBigUint64(D.question, fields.question, true);
  view.setUint32(D.netns, fields.netns, true);
  view.setUint32(D.stream_off, fields.streamOffset, true);
  view.setUint16(D.sport, 53, true);
  view.setUint16(D.payload_len, fields.length, true);
  view.setUint16(D.captured_len, fields.captured, true);
  view.setUint16(D.query_id, fields.queryId, true);
  view.setUint8(D.transport, fields.transport);
  new Uint8Array(view.buffer).set(payload, D.payload);
  return view;
}

Deno.test("fuzz: 50,000 kernel records (random, mutated, lying) through decoder, parser and caches", () => {
  const rand = rng(0x6e6574);
  const names = new DnsNames({ maxEntries: 1000, now: clock });
  const decoder = new RecordDecoder(0);
  const seeds = [
    response("www.example.test", [
      { type: "CNAME", name: "www.example.test", data: "mid.example.test", ttl: 300 },
      { type: "CNAME", name: "mid.example.test", data: "end.example.test", ttl: 60 },
      { type: "A", name: "end.example.test", data: "192.0.2.10", ttl: 600 },
      { type: "AAAA", name: "end.example.test", data: "2001:db8::10", ttl: 30 },
    ]),
    response("a.test", [{ type: "A", name: "a.test", data: "192.0.2.1", ttl: 1 }]),
  ];
  let undecoded = 0;
  for (let i = 0; i < 50_000; i++) {
    let msg: Uint8Array;
    const mode = rand(4);
    if (mode === 0) {
      msg = new Uint8Array(rand(600)).map(() => rand(256)); // noise
    } else {
      msg = new Uint8Array(seeds[rand(seeds.length)]!);
      for (let m = 0, n = 1 + rand(8); m < n; m++) {
        const at = rand(msg.length);
        // Flip bytes, point names at themselves or forward, or lie about counts.
        if (mode === 1) msg[at] = rand(256);
        else if (mode === 2) [msg[at], msg[at + 1]] = [0xc0, rand(msg.length)];
        else msg[4 + rand(8)] = rand(256);
      }
    }
    const tcp = rand(4) === 0;
    let payload = msg;
    if (tcp) {
      payload = new Uint8Array(msg.length + 2);
      payload.set([msg.length >> 8, msg.length & 0xff]);
      payload.set(msg, 2);
    }
    const whole = payload.length;
    if (rand(4) === 0) payload = payload.subarray(0, rand(payload.length + 1)); // the kernel's cut
    let question = 0n;
    try {
      question = questionHash(msg).hash;
    } catch { /* noise */ }
    const view = record(payload, {
      transport: tcp ? 6 : 17,
      netns: 1 + rand(12),
      length: rand(8) === 0 ? rand(65536) : whole, // sometimes a lie
      captured: rand(8) === 0 ? rand(65536) : payload.length, // sometimes a lie
      streamOffset: tcp && rand(4) === 0 ? rand(70_000) : 0,
      queryId: rand(3) === 0 ? rand(65536) : 7,
      question: rand(3) === 0 ? BigInt(rand(1 << 30)) : question,
      family: rand(2) === 0 ? 4 : 6,
    });
    // Sometimes the ring hands over fewer bytes than the record says it has.
    const length = rand(8) === 0 ? rand(view.byteLength + 1) : view.byteLength;
    const m = decoder.decode(view, 0, length);
    if (m === undefined || m.kind !== "dns") {
      undecoded++;
      continue;
    }
    assert.ok(m.payload.length <= length - D.payload);
    names.onMessage(m);
  }
  const stats = names.stats;
  assert.ok(stats.responses > 30_000, `responses ${stats.responses}`);
  assert.ok(stats.malformed > 10_000, `malformed ${stats.malformed}`);
  assert.ok(stats.responses - stats.malformed > 5_000, "valid answers still get through");
  assert.ok(stats.entries <= 1000);
  assert.ok(undecoded < 5_000);
});

Deno.test("fuzz: a flood of distinct answers keeps the cache at its bound", () => {
  const cache = new DnsCache({ maxEntries: 5000 });
  for (let i = 0; i < 100_000; i++) {
    const addr = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    cache.add(addr, [`host${i}.flood.test`], 3600, NOW_MS);
  }
  assert.deepEqual([cache.stats.entries, cache.stats.evicted], [5000, 95_000]);
});

Deno.test("parseAnswer refuses compression pointers that loop or point forward", () => {
  const msg = response("a.test", [{ type: "A", name: "a.test", data: "192.0.2.1", ttl: 5 }]);
  const at = 12 + 8 + 4; // the answer's owner name, after header and question
  const self = new Uint8Array(msg);
  self.set([0xc0, at], at); // a name that points at itself
  assert.throws(() => parseAnswer(self), /bad pointer/);
  const forward = new Uint8Array(msg);
  forward.set([0xc0, at + 2], at);
  assert.throws(() => parseAnswer(forward), /bad pointer/);
});

Deno.test("RecordDecoder converts kernel times with the offset it has now (re-read per drain)", () => {
  const D = LAYOUT.nf_dns.fields;
  const view = new DataView(new ArrayBuffer(D.payload));
  view.setUint8(16, KIND_DNS);
  view.setBigUint64(0, 2_000_000n, true); // 2 ms after boot
  const decoder = new RecordDecoder(1_000_000);
  assert.equal(decoder.decode(view, 0, D.payload)?.timeUs, 1_002_000);
  decoder.clockOffsetUs = 5_000_000; // the wall clock stepped (or the host slept)
  assert.equal(decoder.decode(view, 0, D.payload)?.timeUs, 5_002_000);
});

Deno.test("TTLs of 2^31 and more count as 0 (RFC 2181 s. 8), and none is kept past a day", () => {
  const ttlOf = (ttl: number) =>
    resolve(response("a.test", [{ type: "A", name: "a.test", data: "192.0.2.1", ttl }]))[0]!.ttl;
  assert.equal(ttlOf(2 ** 31), 0);
  assert.equal(ttlOf(2 ** 32 - 1), 0);
  assert.equal(ttlOf(2 ** 31 - 1), MAX_TTL_S);
  assert.equal(MAX_TTL_S, 86_400);
  assert.equal(ttlOf(86_401), 86_400);
  assert.equal(ttlOf(300), 300);
  // On a chain: the CNAME's huge TTL is 0, so the chain's is 0.
  const chain = response("www.a.test", [
    { type: "CNAME", name: "www.a.test", data: "a.test", ttl: 2 ** 32 - 1 },
    { type: "A", name: "a.test", data: "192.0.2.1", ttl: 300 },
  ]);
  assert.equal(resolve(chain)[0]!.ttl, 0);
  // In the cache: a top-bit TTL lasts only the grace period.
  let now = 1_000_000;
  const names = new DnsNames({ graceMs: 5000, now: () => now });
  names.onMessage(message(response("a.test", [
    { type: "A", name: "a.test", data: "192.0.2.9", ttl: 2 ** 31 + 5 },
  ])));
  assert.deepEqual(names.names(4026531840, "192.0.2.9"), ["a.test"]);
  now += 5001;
  assert.deepEqual(names.names(4026531840, "192.0.2.9"), []);
});
