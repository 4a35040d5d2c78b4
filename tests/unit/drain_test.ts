/**
 * DNS answers and flow records come through two rings; they are applied in
 * the kernel's time order. Recorded records replayed through two fake rings,
 * with the answer committed to the DNS ring while the flow ring is read (what
 * the old DNS-then-flows drain got wrong: the begin got no names).
 */
import assert from "node:assert/strict";
import dnsPacket from "npm:dns-packet@5.6.1";
import { BUSY_WAIT_MS, drainInOrder } from "../../src/bpf/drain.ts";
import { RecordDecoder } from "../../src/bpf/records.ts";
import { KIND_BEGIN, KIND_DNS, KIND_SYN, LAYOUT } from "../../src/bpf/layout.ts";
import type { KernelRecord } from "../../src/bpf/records.ts";
import type { RecordHandler } from "../../src/ffi/ringbuf.ts";
import { DnsNames } from "../../src/dns/names.ts";
import type { FlowBeginEvent } from "../../src/events.ts";
import { DnsEnricher } from "../../src/enrich/dns.ts";
import { EnrichedTable } from "../helpers/enriched.ts";
import { rawFlow } from "../helpers/records.ts";

/**
 * A ring holding recorded records; `beforeDrain` runs as a drain starts (a
 * commit racing it). A drain hands over at most `bound` records, and none
 * while `busyDrains` > 0 (the head record reserved by another CPU, not yet
 * committed: each drain that finds it so counts one down).
 */
class FakeRing {
  records: DataView[] = [];
  beforeDrain: () => void = () => {};
  bound = Infinity;
  busyDrains = 0;
  drain(onRecord: RecordHandler): number {
    this.beforeDrain();
    if (this.busyDrains > 0) {
      this.busyDrains--;
      return 0;
    }
    const taken = this.records.splice(0, this.bound);
    for (const view of taken) onRecord(view, 0, view.byteLength);
    return taken.length;
  }
  backlog(): boolean {
    return this.records.length > 0;
  }
}

const NETNS = 4026531840;

/** One nf_dns record: a UDP answer naming `address`, as the kernel copies it. */
function rawAnswer(tsNs: bigint, name: string, address: string): DataView {
  const D = LAYOUT.nf_dns.fields;
  const payload = new Uint8Array(dnsPacket.encode({
    type: "response",
    id: 7,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: "A", name }],
    answers: [{ type: "A", name, data: address, ttl: 60, class: "IN" }],
  }));
  const view = new DataView(new ArrayBuffer(D.payload + payload.length));
  view.setBigUint64(0, tsNs, true);
  view.setUint8(16, KIND_DNS);
  view.setUint8(18, 4);
  view.setUint32(D.netns, NETNS, true);
  view.setUint16(D.sport, 53, true);
  view.setUint16(D.payload_len, payload.length, true);
  view.setUint16(D.captured_len, payload.length, true);
  view.setUint16(D.query_id, 7, true);
  view.setUint8(D.transport, 17);
  new Uint8Array(view.buffer).set(payload, D.payload);
  return view;
}

/** The pipeline after the rings: names into the cache, flow records into the table. */
function pipeline() {
  const decoder = new RecordDecoder(1_700_000_000_000_000);
  const dns = new DnsNames({ now: () => 1000 });
  const table = new EnrichedTable({}, [new DnsEnricher(dns, {})]);
  const begins: FlowBeginEvent[] = [];
  const order: string[] = [];
  const decode = (v: DataView, o: number, l: number) => decoder.decode(v, o, l);
  const onFlow = (r: KernelRecord | undefined) => {
    assert.ok(r !== undefined && r.kind === "begin");
    order.push(`flow ${r.timeNs}`);
    const e = table.onRecord(r);
    if (e?.event === "net_flow_tcp_begin") begins.push(e);
  };
  const onDns = (r: KernelRecord | undefined) => {
    assert.ok(r?.kind === "dns");
    order.push(`dns ${r.timeNs}`);
    dns.onMessage(r);
  };
  return { decode, onFlow, onDns, begins, order };
}

/** An outgoing begin at `tsNs` to 192.0.2.80:443, the address the tests' answers name. */
function beginToAnswered(tsNs: bigint): DataView {
  return rawFlow({
    kind: KIND_BEGIN,
    tsNs,
    beginNs: tsNs,
    outgoing: true,
    remote: ["192.0.2.80", 443],
  });
}

Deno.test("a begin whose answer was committed just before it gets its names, though the answer lands mid-drain", () => {
  const flows = new FakeRing(), dnsRing = new FakeRing();
  const p = pipeline();
  // The kernel: the answer at t=100 ns, the begin of the connection to that address at t=200.
  flows.records.push(
    beginToAnswered(200n),
  );
  // The answer's commit reaches the DNS ring only as the flow ring is being read.
  flows.beforeDrain = () => dnsRing.records.push(rawAnswer(100n, "www.example.test", "192.0.2.80"));
  assert.equal(drainInOrder(flows, dnsRing, p.decode, p.onFlow, p.onDns).records, 2);
  assert.deepEqual(p.order, ["dns 100", "flow 200"]);
  assert.equal(p.begins.length, 1);
  assert.deepEqual(p.begins[0]!.dst_dns, ["www.example.test"]);
});

Deno.test("records of both rings are handed over in the kernel's time order", () => {
  const flows = new FakeRing(), dnsRing = new FakeRing();
  const p = pipeline();
  for (const [ts, port] of [[20n, 1], [40n, 2], [60n, 3]] as const) {
    flows.records.push(
      rawFlow({ kind: KIND_BEGIN, tsNs: ts, beginNs: ts, cookie: ts, local: ["10.0.0.1", port] }),
    );
  }
  // Answers out of order in their ring (two CPUs), one after every flow record.
  for (const ts of [50n, 10n, 70n, 40n]) {
    dnsRing.records.push(rawAnswer(ts, `n${ts}.test`, `192.0.2.${Number(ts)}`));
  }
  assert.equal(drainInOrder(flows, dnsRing, p.decode, p.onFlow, p.onDns).records, 7);
  assert.deepEqual(p.order, [
    "dns 10",
    "flow 20",
    "dns 40",
    "flow 40",
    "dns 50",
    "flow 60",
    "dns 70",
  ]);
});

Deno.test("an answer behind one drain's bound (a flood of answers) is applied before the begin after it", () => {
  const flows = new FakeRing(), dnsRing = new FakeRing();
  const p = pipeline();
  dnsRing.bound = 2; // DRAIN_MAX, scaled down
  for (let ts = 10; ts <= 50; ts += 10) {
    dnsRing.records.push(rawAnswer(BigInt(ts), `flood${ts}.test`, `198.51.100.${ts}`));
  }
  dnsRing.records.push(rawAnswer(60n, "www.example.test", "192.0.2.80"));
  flows.records.push(
    beginToAnswered(70n),
  );
  const out = drainInOrder(flows, dnsRing, p.decode, p.onFlow, p.onDns);
  assert.deepEqual(out, { records: 7, unordered: 0 });
  assert.deepEqual(p.order.slice(-2), ["dns 60", "flow 70"]);
  assert.deepEqual(p.begins[0]!.dst_dns, ["www.example.test"]);
});

Deno.test("an answer committed behind a record another CPU is still writing is waited for", () => {
  const flows = new FakeRing(), dnsRing = new FakeRing();
  const p = pipeline();
  dnsRing.records.push(rawAnswer(60n, "www.example.test", "192.0.2.80"));
  dnsRing.busyDrains = 3; // the head record is committed after three looks
  flows.records.push(
    beginToAnswered(70n),
  );
  const out = drainInOrder(flows, dnsRing, p.decode, p.onFlow, p.onDns);
  assert.deepEqual(out, { records: 2, unordered: 0 });
  assert.deepEqual(p.order, ["dns 60", "flow 70"]);
  assert.deepEqual(p.begins[0]!.dst_dns, ["www.example.test"]);
});

Deno.test(`a record never committed holds a flow back at most ${BUSY_WAIT_MS} ms, and is counted`, () => {
  const flows = new FakeRing(), dnsRing = new FakeRing();
  const p = pipeline();
  dnsRing.records.push(rawAnswer(60n, "www.example.test", "192.0.2.80"));
  dnsRing.busyDrains = Infinity;
  for (const ts of [70n, 80n]) {
    flows.records.push(rawFlow({ kind: KIND_BEGIN, tsNs: ts, beginNs: ts, cookie: ts }));
  }
  const out = drainInOrder(flows, dnsRing, p.decode, p.onFlow, p.onDns);
  assert.deepEqual(out, { records: 2, unordered: 2 });
  assert.deepEqual(p.order, ["flow 70", "flow 80"]);
});

/** One nf_packet record of kind `kind` (a handshake packet) at `tsNs`. */
function rawPacket(tsNs: bigint, kind: number): DataView {
  const view = new DataView(new ArrayBuffer(LAYOUT.nf_packet.size));
  view.setBigUint64(0, tsNs, true);
  view.setUint8(16, kind);
  view.setUint8(18, 4);
  return view;
}

Deno.test("handshake packets come through their own ring, merged with the flow records by time", () => {
  const flows = new FakeRing(), dnsRing = new FakeRing(), packets = new FakeRing();
  const decoder = new RecordDecoder(1_700_000_000_000_000);
  const order: string[] = [];
  packets.bound = 2; // read on past a drain's bound, as the DNS ring is
  // 15 before 5 in the ring (two CPUs): one read is sorted by time.
  for (const ts of [15n, 5n, 35n]) packets.records.push(rawPacket(ts, KIND_SYN));
  for (const ts of [10n, 30n]) {
    flows.records.push(rawFlow({ kind: KIND_BEGIN, tsNs: ts, beginNs: ts, cookie: ts }));
  }
  dnsRing.records.push(rawAnswer(20n, "a.test", "192.0.2.1"));
  const out = drainInOrder(
    flows,
    dnsRing,
    (v, o, l) => decoder.decode(v, o, l),
    (r) => order.push(`${r?.kind} ${r?.timeNs}`),
    (r) => order.push(`${r?.kind} ${r?.timeNs}`),
    packets,
  );
  assert.deepEqual(out, { records: 6, unordered: 0 });
  assert.deepEqual(order, ["syn 5", "begin 10", "syn 15", "dns 20", "begin 30", "syn 35"]);
});

Deno.test("each flow record is handed over before the next one is decoded (not a drain's worth alive at once)", () => {
  const flows = new FakeRing(), dnsRing = new FakeRing();
  const decoder = new RecordDecoder(1_700_000_000_000_000);
  const order: string[] = [];
  for (const ts of [10n, 20n, 30n]) {
    flows.records.push(rawFlow({ kind: KIND_BEGIN, tsNs: ts, beginNs: ts, cookie: ts }));
  }
  dnsRing.records.push(rawAnswer(15n, "a.test", "192.0.2.1"));
  const decode = (v: DataView, o: number, l: number) => {
    const r = decoder.decode(v, o, l);
    order.push(`decode ${r?.kind} ${r?.timeNs}`);
    return r;
  };
  const out = drainInOrder(
    flows,
    dnsRing,
    decode,
    (r) => order.push(`${r?.kind} ${r?.timeNs}`),
    (r) => order.push(`${r?.kind} ${r?.timeNs}`),
  );
  assert.deepEqual(out, { records: 4, unordered: 0 });
  assert.deepEqual(order, [
    "decode begin 10",
    "decode dns 15",
    "begin 10",
    "decode begin 20",
    "dns 15",
    "begin 20",
    "decode begin 30",
    "begin 30",
  ]);
});
