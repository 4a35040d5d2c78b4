import assert from "node:assert/strict";
import { parseIP } from "../../src/bpf/addr.ts";
import type { NetflowEvent } from "../../src/events.ts";
import { endEvent } from "../helpers/events.ts";
import {
  ELEMENT_TYPES_TEMPLATE,
  type FlowRecord,
  IpfixEncoder,
  NETFLOW_ELEMENTS,
  PEN_NETFLOW,
  PEN_REVERSE,
  TEMPLATES,
  UNKNOWN_ID,
} from "../../src/export/ipfix.ts";
import { RecordBuilder } from "../../src/export/record.ts";
import { parseCollectorUrl } from "../../src/export/url.ts";
import { UsageError } from "../../src/errors.ts";

/** The record without counters. */
function bare(r: FlowRecord, more: Partial<FlowRecord> = {}): FlowRecord {
  const { counters: _, ...rest } = r;
  return { ...rest, ...more };
}

const v6: FlowRecord = {
  srcAddr: parseIP("fd00::1")!,
  dstAddr: parseIP("fd00::2")!,
  srcPort: 40000,
  dstPort: 443,
  protocol: 6,
  startMs: 1_700_000_000_123,
  endMs: 1_700_000_002_456,
  endReason: 3,
  egress: true,
  counters: { octets: 2 ** 40 + 5, packets: 7, reverseOctets: 9, reversePackets: 11 },
  pid: 4242,
  uid: null,
  comm: "curl",
  containerId: null,
};

function u64(view: DataView, at: number): number {
  return view.getUint32(at) * 2 ** 32 + view.getUint32(at + 4);
}

Deno.test("IPFIX template message: templates with reverse and netflow PENs, then RFC 5610 element types", () => {
  const enc = new IpfixEncoder({ domain: 7 });
  const m = enc.templateMessage(1_700_000_000);
  const v = new DataView(m.buffer);
  assert.deepEqual(
    [v.getUint16(0), v.getUint16(2), v.getUint32(4), v.getUint32(8), v.getUint32(12)],
    [10, m.length, 1_700_000_000, 0, 7],
  );
  const templateSet = v.getUint16(18);
  assert.equal(v.getUint16(16), 2);
  // First template: id 256 (IPv4 with counters), 18 fields.
  assert.deepEqual([v.getUint16(20), v.getUint16(22)], [256, 18]);
  const fields: string[] = [];
  let at = 24;
  for (let i = 0; i < 18; i++) {
    const id = v.getUint16(at), len = v.getUint16(at + 2);
    at += 4;
    if (id & 0x8000) {
      fields.push(`${v.getUint32(at)}/${id & 0x7fff}:${len}`);
      at += 4;
    } else fields.push(`${id}:${len}`);
  }
  assert.deepEqual(fields, [
    "152:8",
    "153:8",
    "8:4",
    "12:4",
    "7:2",
    "11:2",
    "4:1",
    "136:1",
    "61:1",
    "239:1",
    "1:8",
    "2:8",
    `${PEN_REVERSE}/1:8`,
    `${PEN_REVERSE}/2:8`,
    `${PEN_NETFLOW}/1:4`,
    `${PEN_NETFLOW}/2:4`,
    `${PEN_NETFLOW}/3:65535`,
    `${PEN_NETFLOW}/4:65535`,
  ]);
  assert.deepEqual([v.getUint16(at), v.getUint16(at + 2)], [TEMPLATES[1].id, 18]);
  // Then the RFC 5610 options template (scope: PEN and element id) and its records.
  let o = 16 + templateSet;
  assert.deepEqual([v.getUint16(o), v.getUint16(o + 4), v.getUint16(o + 6), v.getUint16(o + 8)], [
    3,
    ELEMENT_TYPES_TEMPLATE,
    9,
    2,
  ]);
  const spec = Array.from({ length: 9 }, (_, i) => v.getUint16(o + 10 + 4 * i));
  assert.deepEqual(spec, [346, 303, 339, 344, 345, 342, 343, 341, 340]);
  o += v.getUint16(o + 2);
  assert.equal(v.getUint16(o), ELEMENT_TYPES_TEMPLATE);
  assert.equal(o + v.getUint16(o + 2), m.length);
  const names: string[] = [];
  for (let r = o + 4; r < m.length;) {
    assert.equal(v.getUint32(r), PEN_NETFLOW);
    const id = v.getUint16(r + 4), type = m[r + 6]!;
    r += 4 + 2 + 1 + 1 + 2 + 16;
    const name = new TextDecoder().decode(m.subarray(r + 1, r + 1 + m[r]!));
    r += 1 + m[r]!;
    r += 1 + m[r]!;
    names.push(`${id} ${name} ${type}`);
  }
  assert.deepEqual(names, [
    "1 netflowProcessId 3",
    "2 netflowUserId 3",
    "3 netflowProcessName 13",
    "4 netflowContainerId 13",
  ]);
  assert.equal(enc.sequence, NETFLOW_ELEMENTS.length, "the element records count as data records");
});

Deno.test("IPFIX data record: every element at its offset, sequence counts records", () => {
  const enc = new IpfixEncoder();
  const [msg, ...rest] = enc.dataMessages([v6, bare(v6, { comm: null })], 5);
  assert.equal(rest.length, 0);
  assert.equal(msg!.records, 2);
  const m = msg!.bytes, v = new DataView(m.buffer);
  assert.deepEqual([v.getUint16(0), v.getUint16(2), v.getUint32(8), v.getUint32(12)], [
    10,
    m.length,
    0,
    1,
  ]);
  // Set of template 257 (IPv6 with counters).
  assert.equal(v.getUint16(16), 257);
  const r = 20;
  assert.equal(u64(v, r), v6.startMs);
  assert.equal(u64(v, r + 8), v6.endMs);
  assert.deepEqual([...m.subarray(r + 16, r + 32)], [...v6.srcAddr]);
  assert.deepEqual([...m.subarray(r + 32, r + 48)], [...v6.dstAddr]);
  assert.deepEqual(
    [v.getUint16(r + 48), v.getUint16(r + 50), m[r + 52], m[r + 53], m[r + 54], m[r + 55]],
    [40000, 443, 6, 3, 1, 1],
  );
  assert.deepEqual([u64(v, r + 56), u64(v, r + 64), u64(v, r + 72), u64(v, r + 80)], [
    2 ** 40 + 5,
    7,
    9,
    11,
  ]);
  assert.deepEqual([v.getUint32(r + 88), v.getUint32(r + 92)], [4242, UNKNOWN_ID]);
  assert.deepEqual([m[r + 96], new TextDecoder().decode(m.subarray(r + 97, r + 101))], [4, "curl"]);
  assert.equal(m[r + 101], 0); // container id: empty
  const setLength = v.getUint16(18);
  assert.equal(setLength, 4 + 96 + 6); // 96 fixed bytes, then 1 + 4 and 1 + 0
  // Then a set of template 259 (IPv6, no counters): 56 + 8 + 2 bytes.
  const s2 = 16 + setLength;
  assert.deepEqual([v.getUint16(s2), v.getUint16(s2 + 2)], [259, 4 + 66]);
  assert.equal(s2 + 4 + 66, m.length);
  // The next message starts at sequence 2.
  const next = enc.dataMessages([v6], 6)[0]!.bytes;
  assert.equal(new DataView(next.buffer).getUint32(8), 2);
  enc.reset();
  assert.equal(new DataView(enc.dataMessages([v6], 6)[0]!.bytes.buffer).getUint32(8), 0);
});

Deno.test("IPFIX messages stay within the size limit and keep every record", () => {
  const enc = new IpfixEncoder({ maxMessageBytes: 512 });
  const records = Array.from({ length: 40 }, (_, i) => ({
    ...v6,
    srcPort: i,
    containerId: "c".repeat(i * 5),
  }));
  const messages = enc.dataMessages(records, 1);
  assert.ok(messages.length > 5);
  let seq = 0;
  for (const m of messages) {
    const v = new DataView(m.bytes.buffer);
    assert.ok(m.bytes.length <= 512, `${m.bytes.length}`);
    assert.equal(v.getUint16(2), m.bytes.length);
    assert.equal(v.getUint32(8), seq);
    seq += m.records;
  }
  assert.equal(seq, 40);
  assert.equal(enc.sequence, 40);
  // A 254-byte name still fits, with the one-byte length form; a longer one is cut on a character.
  const long = enc.dataMessages([bare(v6, { comm: "é".repeat(200) })], 1)[0]!;
  const at = 20 + 56 + 8;
  assert.equal(long.bytes[at], 254);
});

const end = endEvent({
  time: "2023-11-14T22:13:22.500000Z",
  flow_id: "x-1",
  // The server (remote) closed: it is src of the end.
  src: "10.0.0.2",
  dst: "10.0.0.1",
  src_port: 443,
  dst_port: 40000,
  uid: 1000,
  closed_by: "remote",
  duration_ms: 2000.4,
  bytes_sent: 100,
  bytes_received: 5000,
  packets_sent: 4,
  packets_received: 6,
  rtt_us: 10,
});

Deno.test("RecordBuilder orients ends initiator to responder with their counters", () => {
  const b = new RecordBuilder();
  const r = b.build(end)!;
  assert.deepEqual([[...r.srcAddr].join("."), r.srcPort, [...r.dstAddr].join("."), r.dstPort], [
    "10.0.0.1",
    40000,
    "10.0.0.2",
    443,
  ]);
  assert.deepEqual(r.counters, { octets: 100, packets: 4, reverseOctets: 5000, reversePackets: 6 });
  assert.deepEqual([r.startMs, r.endMs, r.endReason, r.egress], [
    1_700_000_000_499, // 2000.4 ms before the end, in whole milliseconds
    1_700_000_002_500,
    3,
    true,
  ]);
  // The incoming side of the same connection: local is the server, closed locally.
  const inc = b.build({
    ...end,
    conn_direction: "incoming",
    closed_by: "local",
    bytes_sent: 5000,
    bytes_received: 100,
    packets_sent: 6,
    packets_received: 4,
  })!;
  assert.deepEqual([[...inc.srcAddr].join("."), inc.srcPort, inc.egress], [
    "10.0.0.1",
    40000,
    false,
  ]);
  assert.deepEqual(inc.counters, r.counters);
  assert.equal(b.build({ ...end, reason: "rst" })!.endReason, 3);
  assert.equal(b.build({ ...end, bytes_sent: null })!.counters, undefined);
  assert.equal(
    b.build({ ...end, event: "net_flow_tcp_begin" } as unknown as NetflowEvent),
    undefined,
  );
});

Deno.test("RecordBuilder: updates carry deltas (active timeout), the end the rest", () => {
  const b = new RecordBuilder();
  // An update is oriented like a begin: src is the initiator.
  const update = (sent: number, received: number) =>
    ({
      ...end,
      event: "net_flow_tcp_update",
      src: "10.0.0.1",
      dst: "10.0.0.2",
      src_port: 40000,
      dst_port: 443,
      bytes_sent: sent,
      bytes_received: received,
      packets_sent: 1,
      packets_received: 1,
    }) as unknown as NetflowEvent;
  const u1 = b.build(update(10, 20))!;
  assert.deepEqual([u1.endReason, u1.counters?.octets, u1.counters?.reverseOctets], [2, 10, 20]);
  const u2 = b.build(update(15, 20))!;
  assert.deepEqual([u2.counters?.octets, u2.counters?.reverseOctets, u2.counters?.packets], [
    5,
    0,
    0,
  ]);
  const last = b.build(end)!;
  assert.deepEqual(last.counters, {
    octets: 85,
    packets: 3,
    reverseOctets: 4980,
    reversePackets: 5,
  });
  // The flow is forgotten at its end.
  assert.equal(b.build(end)!.counters?.octets, 100);
  for (const [reason, code] of [["timeout", 1], ["unknown", 5]] as const) {
    assert.equal(b.build({ ...end, reason } as unknown as NetflowEvent)!.endReason, code);
  }
});

Deno.test("parseCollectorUrl takes udp:// and tcp:// with a port, and says what is wrong", () => {
  assert.deepEqual(parseCollectorUrl("udp://127.0.0.1:4739"), {
    scheme: "udp",
    host: "127.0.0.1",
    port: 4739,
    text: "udp://127.0.0.1:4739",
  });
  assert.equal(parseCollectorUrl("tcp://[::1]:4739/").host, "::1");
  assert.equal(parseCollectorUrl("TCP://collector.example:9995").host, "collector.example");
  for (
    const [bad, why] of [
      ["http://h:1", /unknown scheme "http"/],
      ["udp://h", /HOST:PORT/],
      ["udp://h:0", /1 to 65535/],
      ["udp://h:70000", /1 to 65535/],
      ["h:4739", /no scheme/],
      ["udp://h:1/path", /HOST:PORT/],
      ["udp://user@h:1", /HOST:PORT/],
    ] as const
  ) {
    assert.throws(() => parseCollectorUrl(bad), (err: Error) => {
      assert.ok(err instanceof UsageError);
      assert.match(err.message, why);
      assert.equal(err.message.split("\n").length, 1);
      return true;
    });
  }
});
