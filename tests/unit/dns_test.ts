import assert from "node:assert/strict";
import dnsPacket from "dns-packet";
import { DnsCache, MAX_GROUPS } from "../../src/dns/cache.ts";
import { parseResponses } from "../../src/dns/parse.ts";

type Answer = { type: "A" | "AAAA" | "CNAME"; name: string; data: string; ttl: number };

function response(question: string, answers: Answer[], rcode = 0): Uint8Array {
  return new Uint8Array(dnsPacket.encode({
    type: "response",
    id: 7,
    flags: dnsPacket.RECURSION_DESIRED | rcode,
    questions: [{ type: "A", name: question }],
    answers: answers.map((a) => ({ ...a, class: "IN" })),
  }));
}

const NOW_US = 1_700_000_000_000_000;
const NOW_MS = 1_700_000_000_000;

Deno.test("parseResponses follows a two-level CNAME chain in order", () => {
  const msg = response("WWW.Example.test", [
    { type: "CNAME", name: "www.example.test", data: "mid.example.test", ttl: 300 },
    { type: "CNAME", name: "mid.example.test", data: "end.example.test", ttl: 60 },
    { type: "A", name: "end.example.test", data: "192.0.2.10", ttl: 600 },
    { type: "AAAA", name: "end.example.test", data: "2001:db8:0:0::10", ttl: 30 },
  ]);
  assert.deepEqual(parseResponses(msg, "udp"), [
    {
      address: "192.0.2.10",
      names: ["www.example.test", "mid.example.test", "end.example.test"],
      ttl: 60,
    },
    {
      address: "2001:db8::10",
      names: ["www.example.test", "mid.example.test", "end.example.test"],
      ttl: 30,
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
  assert.deepEqual(parseResponses(offChain, "udp"), []);
  const nx = response("a.test", [{ type: "A", name: "a.test", data: "192.0.2.1", ttl: 5 }], 3);
  assert.deepEqual(parseResponses(nx, "udp"), []);
  const loop = response("a.test", [
    { type: "CNAME", name: "a.test", data: "b.test", ttl: 5 },
    { type: "CNAME", name: "b.test", data: "a.test", ttl: 5 },
  ]);
  assert.deepEqual(parseResponses(loop, "udp"), []);
});

Deno.test("parseResponses reads length-prefixed messages over TCP and rejects cut ones", () => {
  const msg = response("t.test", [{ type: "A", name: "t.test", data: "192.0.2.9", ttl: 5 }]);
  const framed = new Uint8Array(msg.length + 2);
  framed.set([msg.length >> 8, msg.length & 0xff]);
  framed.set(msg, 2);
  assert.deepEqual(parseResponses(framed, "tcp").map((r) => r.address), ["192.0.2.9"]);
  assert.throws(
    () => parseResponses(framed.subarray(0, 20), "tcp"),
    /longer than the captured segment/,
  );
});

Deno.test("DnsCache gives an address the names of every query that reached it", () => {
  const cache = new DnsCache();
  for (const q of ["one.test", "two.test", "one.test"]) {
    cache.addMessage(response(q, [{ type: "A", name: q, data: "192.0.2.5", ttl: 60 }]), NOW_US);
  }
  assert.deepEqual(cache.names("192.0.2.5", NOW_MS), ["one.test", "two.test"]);
  assert.deepEqual(cache.names("192.0.2.6", NOW_MS), []);
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
  assert.deepEqual(cache.stats, { entries: 2, responses: 0, malformed: 0, evicted: 1 });
});

Deno.test("DnsCache keeps a bounded number of chains per address", () => {
  const cache = new DnsCache();
  for (let i = 0; i < MAX_GROUPS + 5; i++) cache.add("192.0.2.1", [`n${i}.test`], 60, NOW_MS);
  const names = cache.names("192.0.2.1", NOW_MS);
  assert.equal(names.length, MAX_GROUPS);
  assert.equal(names.at(-1), `n${MAX_GROUPS + 4}.test`);
});

Deno.test("DnsCache counts malformed messages and never throws", () => {
  const cache = new DnsCache();
  cache.addMessage(new Uint8Array([1, 2, 3]), NOW_US);
  cache.addMessage(new Uint8Array(0), NOW_US);
  assert.deepEqual([cache.stats.responses, cache.stats.malformed], [2, 2]);
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

Deno.test("fuzz: 50,000 random and mutated messages through parser and cache", () => {
  const rand = rng(0x6e6574);
  const cache = new DnsCache({ maxEntries: 1000 });
  const seeds = [
    response("www.example.test", [
      { type: "CNAME", name: "www.example.test", data: "mid.example.test", ttl: 300 },
      { type: "CNAME", name: "mid.example.test", data: "end.example.test", ttl: 60 },
      { type: "A", name: "end.example.test", data: "192.0.2.10", ttl: 600 },
      { type: "AAAA", name: "end.example.test", data: "2001:db8::10", ttl: 30 },
    ]),
    response("a.test", [{ type: "A", name: "a.test", data: "192.0.2.1", ttl: 1 }]),
  ];
  const start = performance.now();
  for (let i = 0; i < 50_000; i++) {
    let msg: Uint8Array;
    const mode = rand(4);
    if (mode === 0) {
      msg = new Uint8Array(rand(600)).map(() => rand(256)); // noise
    } else {
      msg = new Uint8Array(seeds[rand(seeds.length)]!);
      for (let m = 0, n = 1 + rand(8); m < n; m++) {
        const at = rand(msg.length);
        // Flip bytes, point names at themselves, lie about counts, or cut.
        if (mode === 1) msg[at] = rand(256);
        else if (mode === 2) [msg[at], msg[at + 1]] = [0xc0, rand(msg.length)];
        else msg[4 + rand(8)] = rand(256);
      }
      if (rand(4) === 0) msg = msg.subarray(0, rand(msg.length));
    }
    cache.addMessage(msg, NOW_US + i * 1000, rand(8) === 0 ? "tcp" : "udp");
  }
  const stats = cache.stats;
  assert.equal(stats.responses, 50_000);
  assert.ok(stats.malformed > 10_000, `malformed ${stats.malformed}`);
  assert.ok(stats.entries <= 1000);
  // No hang: generous bound that only a pathological loop would exceed.
  assert.ok(performance.now() - start < 60_000);
});

Deno.test("fuzz: a flood of distinct answers keeps the cache at its bound", () => {
  const cache = new DnsCache({ maxEntries: 5000 });
  for (let i = 0; i < 100_000; i++) {
    const addr = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    cache.add(addr, [`host${i}.flood.test`], 3600, NOW_MS);
  }
  assert.deepEqual([cache.stats.entries, cache.stats.evicted], [5000, 95_000]);
});
