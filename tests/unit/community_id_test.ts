import { createHash } from "node:crypto";
import assert from "node:assert/strict";
import { parseIP } from "../../src/bpf/addr.ts";
import { CommunityIds, communityIdV1, eventCommunityId } from "../../src/output/community_id.ts";
import { type FlowEndEvent, IPPROTO_TCP } from "../../src/events.ts";
import { beginEvent } from "../helpers/events.ts";

// From the specification's own baseline, corelight/community-id-spec
// baseline/baseline_deflt.json (seed 0), each in both directions.
const BASELINE = [
  [6, "128.232.110.120", 34855, "66.35.250.204", 80, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="],
  [6, "66.35.250.204", 80, "128.232.110.120", 34855, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="],
  [
    6,
    "2001:470:e5bf:dead:4957:2174:e82c:4887",
    63943,
    "2607:f8b0:400c:c03::1a",
    25,
    "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
  ],
  [
    6,
    "2607:f8b0:400c:c03::1a",
    25,
    "2001:470:e5bf:dead:4957:2174:e82c:4887",
    63943,
    "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
  ],
  [17, "192.168.1.52", 54585, "8.8.8.8", 53, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="],
  [17, "8.8.8.8", 53, "192.168.1.52", 54585, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="],
  [132, "192.168.170.8", 7, "192.168.170.56", 7, "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs="],
  [132, "192.168.170.56", 7, "192.168.170.8", 7, "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs="],
] as const;

Deno.test("communityIdV1 gives the specification's baseline values, both directions", () => {
  for (const [proto, saddr, sport, daddr, dport, want] of BASELINE) {
    assert.equal(communityIdV1(proto, saddr, sport, daddr, dport), want, `${saddr} ${daddr}`);
  }
});

Deno.test("communityIdV1 orders by port when the addresses are equal (loopback)", () => {
  const a = communityIdV1(IPPROTO_TCP, "127.0.0.1", 40000, "127.0.0.1", 8080);
  assert.equal(communityIdV1(IPPROTO_TCP, "127.0.0.1", 8080, "127.0.0.1", 40000), a);
  assert.notEqual(communityIdV1(IPPROTO_TCP, "127.0.0.1", 40001, "127.0.0.1", 8080), a);
  assert.throws(() => communityIdV1(6, "127.0.0.1", 1, "::1", 2), /one family/);
});

Deno.test("parseIP reads IPv4, compressed IPv6 and embedded IPv4, and refuses the rest", () => {
  assert.deepEqual([...parseIP("10.1.2.3")!], [10, 1, 2, 3]);
  assert.deepEqual([...parseIP("::1")!], [...new Array(15).fill(0), 1]);
  assert.deepEqual(
    [...parseIP("2607:f8b0:400c:c03::1a")!],
    [0x26, 0x07, 0xf8, 0xb0, 0x40, 0x0c, 0x0c, 0x03, 0, 0, 0, 0, 0, 0, 0, 0x1a],
  );
  assert.deepEqual([...parseIP("::ffff:1.2.3.4")!].slice(10), [0xff, 0xff, 1, 2, 3, 4]);
  assert.deepEqual([...parseIP("1:2:3:4:5:6:7:8")!].slice(14), [0, 8]);
  for (
    const bad of ["1.2.3", "1.2.3.256", "1::2::3", "1:2:3:4:5:6:7", "g::1", "1:2:3:4:5:6:7:8::"]
  ) {
    assert.equal(parseIP(bad), undefined, bad);
  }
});

const begin = beginEvent({
  time: "2026-11-23T12:34:56.123456Z",
  flow_id: "a-1",
  src: "128.232.110.120",
  dst: "66.35.250.204",
  src_port: 34855,
  dst_port: 80,
  pid: 1,
});

Deno.test("CommunityIds: one value per flow, the same at its begin and its end", () => {
  const ids = new CommunityIds(2);
  assert.equal(ids.of(begin), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
  assert.equal(ids.size, 1);
  // The end is oriented by who closed it: src and dst swapped, same ID.
  const end = {
    ...begin,
    event: "net_flow_tcp_end",
    src: begin.dst,
    dst: begin.src,
    src_port: 80,
    dst_port: 34855,
  } as unknown as FlowEndEvent;
  assert.equal(ids.of(end), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
  assert.equal(ids.size, 0, "an end takes its flow's entry out");
  // Bounded: the oldest entry goes, and its end computes the same value again.
  for (let i = 0; i < 5; i++) ids.of({ ...begin, flow_id: `b-${i}`, src_port: 1000 + i });
  assert.equal(ids.size, 2);
  assert.equal(
    ids.of({ ...end, flow_id: "b-0", dst_port: 1000 }),
    eventCommunityId({ ...begin, src_port: 1000 }),
  );
});

Deno.test("communityIdV1's own SHA-1 agrees with node:crypto on random IPv4 and IPv6 tuples", () => {
  const random = (n: number) => Math.floor(Math.random() * n);
  for (let i = 0; i < 2000; i++) {
    const v6 = i % 2 === 1;
    const a = v6
      ? Array.from({ length: 8 }, () => random(65536).toString(16)).join(":")
      : Array.from({ length: 4 }, () => random(256)).join(".");
    const b = v6
      ? Array.from({ length: 8 }, () => random(65536).toString(16)).join(":")
      : Array.from({ length: 4 }, () => random(256)).join(".");
    const [sp, dp, seed] = [random(65536), random(65536), random(65536)];
    assert.equal(communityIdV1(IPPROTO_TCP, a, sp, b, dp, seed), reference(a, sp, b, dp, seed));
  }
});

/** The specification's algorithm with node:crypto's SHA-1. */
function reference(a: string, sp: number, b: string, dp: number, seed: number): string {
  const bytes = (s: string) => {
    if (!s.includes(":")) return s.split(".").map(Number);
    return s.split(":").flatMap((h) => [parseInt(h, 16) >> 8, parseInt(h, 16) & 255]);
  };
  let [x, y, px, py] = [bytes(a), bytes(b), sp, dp];
  const cmp = x.findIndex((v, i) => v !== y[i]);
  if ((cmp >= 0 && x[cmp]! > y[cmp]!) || (cmp < 0 && px > py)) [x, y, px, py] = [y, x, py, px];
  const input = Uint8Array.from([
    seed >> 8,
    seed & 255,
    ...x,
    ...y,
    IPPROTO_TCP,
    0,
    px >> 8,
    px & 255,
    py >> 8,
    py & 255,
  ]);
  return `1:${createHash("sha1").update(input).digest("base64")}`;
}

Deno.test("CommunityIds: a stream of flows whose tuples repeat, either way round, gets each tuple's own ID", () => {
  // Few addresses and ports: tuples recur (both endpoints of a loopback connection) and near-misses
  // (one port or one address different, a port pair swapped without the addresses) are common.
  const addrs = ["127.0.0.1", "10.0.0.1", "10.0.0.2", "::1", "2001:db8::1"];
  const ports = [80, 8080, 30000, 30001];
  const pick = <T>(list: readonly T[]) => list[Math.floor(Math.random() * list.length)]!;
  const ids = new CommunityIds();
  for (let i = 0; i < 5000; i++) {
    const v6 = Math.random() < 0.3;
    const [src, dst] = [
      pick(addrs.slice(v6 ? 3 : 0, v6 ? 5 : 3)),
      pick(addrs.slice(v6 ? 3 : 0, v6 ? 5 : 3)),
    ];
    const e = beginEvent({
      flow_id: `r-${i}`,
      src,
      dst,
      src_port: pick(ports),
      dst_port: pick(ports),
    });
    const event = Math.random() < 0.5
      ? e
      : { ...e, event: "net_flow_tcp_end" } as unknown as FlowEndEvent;
    assert.equal(
      ids.of(event),
      communityIdV1(IPPROTO_TCP, src, e.src_port, dst, e.dst_port),
      `${i}`,
    );
  }
});
