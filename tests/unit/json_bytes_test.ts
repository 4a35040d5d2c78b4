// The JSON lines written as bytes (src/output/json_bytes.ts, src/output/line_bytes.ts) against
// formatJson's string, encoded (which output_test and lean_format_test compare with
// JSON.stringify's): every flow event kind, any text in any field
// (non-ASCII where netflow writes only ASCII, names and comms to escape), any number a field can
// hold (fractions, past 2^53, negative, -0), nulls, and lines past the buffer's size.
import assert from "node:assert/strict";
import fc from "npm:fast-check@3.23.2";
import type { NetflowEvent } from "../../src/events.ts";
import { CommunityIds } from "../../src/output/community_id.ts";
import { formatJson } from "../../src/output/json.ts";
import { JsonBytes } from "../../src/output/json_bytes.ts";
import { LineBytes } from "../../src/output/line_bytes.ts";
import { flowEvent, packetEvent } from "../helpers/events.ts";

const encode = (s: string) => new TextEncoder().encode(s);

/** What `write` puts into a fresh buffer. */
function written(write: (out: LineBytes) => void): Uint8Array {
  const out = new LineBytes();
  write(out);
  return out.written().slice();
}

Deno.test("numbers are written as String() writes them", () => {
  const numbers = [
    0,
    -0,
    7,
    10,
    65_535,
    2 ** 31 - 1,
    2 ** 31,
    4_026_531_840,
    2 ** 32,
    9_007_199_254_740_984,
    Number.MAX_SAFE_INTEGER,
    2 ** 53,
    2 ** 64,
    1e21,
    -1,
    -(2 ** 31),
    0.523,
    1.25e-7,
    123456.789,
    Number.MAX_VALUE,
    -Number.MAX_VALUE,
  ];
  for (const n of [...numbers, ...Array.from({ length: 2000 }, (_, i) => i * 7919 + (i % 3))]) {
    assert.deepEqual(written((out) => out.num(n)), encode(String(n)), String(n));
  }
  assert.deepEqual(written((out) => out.numOrNull(null)), encode("null"));
});

Deno.test("text is written in UTF-8 from any character on", () => {
  for (const s of ["", "10.0.0.1", "ü", "a名前b", "\u{1F600}x", "\ud800x", "abc".repeat(30_000)]) {
    assert.deepEqual(written((out) => out.text(s)), encode(s));
    assert.deepEqual(written((out) => out.text(s, 1)), encode(s.slice(1)));
  }
});

const text = fc.oneof(
  fc.constantFrom("", "curl", 'we"ird\\', "ü".repeat(15), "名前", "\u{1F600}", "\ud800x", "a\nb"),
  fc.string({ maxLength: 20 }),
  fc.fullUnicodeString({ maxLength: 8 }),
);
const number = fc.oneof(
  fc.nat(),
  fc.maxSafeNat(),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(-0, 2 ** 53, 2 ** 64, 0.523),
);
const orNull = fc.option(number);
const netflowText = fc.oneof(text, fc.constantFrom("10.0.0.1", "2001:db8::1", "f-1"));

/** A flow event of any kind with any values (each field's type as the contract says). */
const anyFlowEvent = fc.record({
  event: fc.constantFrom(
    "net_flow_tcp_begin",
    "net_flow_tcp_end",
    "net_flow_tcp_update",
    "net_flow_tcp_fail",
  ),
  time: fc.oneof(fc.constant("2026-12-01T10:00:00.123456Z"), text),
  flow_id: netflowText,
  conn_direction: fc.oneof(fc.constantFrom("outgoing", "incoming"), text),
  src: netflowText,
  dst: netflowText,
  src_port: number,
  dst_port: number,
  src_dns: fc.array(text, { maxLength: 3 }),
  dst_dns: fc.array(text, { maxLength: 3 }),
  pid: orNull,
  comm: fc.option(text),
  uid: orNull,
  cgroup_id: number,
  cgroup: text,
  container_id: fc.option(text),
  netns: number,
  preexisting: fc.boolean(),
  closed_by: fc.oneof(fc.constantFrom("local", "remote"), text),
  reason: fc.oneof(
    fc.constantFrom("fin", "rst", "timeout", "unknown", "refused", "reset", "constructor"),
    text,
  ),
  duration_ms: orNull,
  bytes_sent: orNull,
  bytes_received: orNull,
  packets_sent: orNull,
  packets_received: orNull,
  rtt_us: orNull,
  retransmits: orNull,
}).map((o) => {
  // Only the fields of its kind, in the contract's order.
  const { closed_by, reason, duration_ms, ...rest } = o;
  const {
    bytes_sent,
    bytes_received,
    packets_sent,
    packets_received,
    rtt_us,
    retransmits,
    ...base
  } = rest;
  const counters = {
    bytes_sent,
    bytes_received,
    packets_sent,
    packets_received,
    rtt_us,
    retransmits,
  };
  switch (o.event) {
    case "net_flow_tcp_begin":
      return flowEvent(base);
    case "net_flow_tcp_fail":
      return flowEvent({ ...base, reason, duration_ms });
    case "net_flow_tcp_update":
      return flowEvent({ ...base, duration_ms, ...counters });
    default:
      return flowEvent({ ...base, closed_by, reason, duration_ms, ...counters });
  }
});

Deno.test("a flow event's bytes are formatJson's line, whatever its fields hold", () => {
  fc.assert(
    fc.property(fc.array(anyFlowEvent, { minLength: 1, maxLength: 20 }), (events) => {
      const ids = new CommunityIds();
      const writer = new JsonBytes(ids);
      const out = new LineBytes();
      const lines: string[] = [];
      for (const e of events) {
        const id = `1:${e.flow_id.length}`; // any ID: the writer takes what CommunityIds gives
        writer.write(e, out, id);
        out.byte(10);
        lines.push(formatJson(e, id));
      }
      assert.deepEqual(out.written(), encode(lines.map((l) => `${l}\n`).join("")));
    }),
    { numRuns: 400 },
  );
});

Deno.test("each flow's Community ID and a packet's line, as the string writer gives them", () => {
  const writer = new JsonBytes();
  const ids = new CommunityIds();
  const events: NetflowEvent[] = [
    flowEvent({ flow_id: "a" }),
    flowEvent({ event: "net_flow_tcp_end", flow_id: "a", src: "10.0.0.2", dst: "10.0.0.1" }),
    packetEvent({ comm: "名前" }),
    flowEvent({ event: "net_flow_tcp_fail", src: "2001:db8::1", dst: "2001:db8::2" }),
  ];
  for (const e of events) {
    assert.deepEqual(written((out) => writer.write(e, out)), encode(formatJson(e, ids.of(e))));
  }
});
