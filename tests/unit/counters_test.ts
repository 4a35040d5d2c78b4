/**
 * The kernel's segs_in, segs_out and total_retrans are u32 (tcp_sock): they
 * wrap. Recorded nf_flow records whose counters cross 2^32 between a flow's
 * updates and its end: the events' counters keep growing past 2^32, and the
 * IPFIX packet deltas add up.
 */
import assert from "node:assert/strict";
import { RecordDecoder } from "../../src/bpf/records.ts";
import { KIND_BEGIN, KIND_END, KIND_UPDATE, LAYOUT } from "../../src/bpf/layout.ts";
import type { FlowRecord } from "../../src/bpf/records.ts";
import type { FlowEndEvent, FlowEvent, FlowUpdateEvent } from "../../src/events.ts";
import { FlowTable } from "../../src/flow/state.ts";
import { RecordBuilder } from "../../src/export/record.ts";
import { type RawFlow, rawFlow } from "../helpers/records.ts";

const TWO_32 = 2 ** 32;
const BEGIN_NS = 9_000_000_000_000n;
const decoder = new RecordDecoder(1_700_000_000_000_000);

function decode(r: Omit<RawFlow, "beginNs">): FlowRecord {
  const out = decoder.decode(rawFlow({ ...r, beginNs: BEGIN_NS }), 0, LAYOUT.nf_flow.size);
  assert.ok(out !== undefined && "counters" in out);
  return out;
}

/** segs_out, segs_in, total_retrans as the kernel's u32 fields hold them at each record. */
const STEPS: [segsOut: number, segsIn: number, retrans: number][] = [
  [TWO_32 - 1000, TWO_32 - 5, TWO_32 - 2], // begin (a long-lived flow, or a preexisting one)
  [TWO_32 - 10, 3, TWO_32 - 1], // update: segs_in wrapped
  [500, 700, 4], // update: segs_out and total_retrans wrapped
  [1500, 900, 5], // update
  [2000, 1000, 6], // end
];

Deno.test("32-bit kernel counters that wrap keep growing across updates and the end", () => {
  const table = new FlowTable();
  const builder = new RecordBuilder();
  const events: FlowEvent[] = [];
  const at = (i: number) => BEGIN_NS + BigInt(i) * 2_000_000_000n;
  STEPS.forEach(([segsOut, segsIn, totalRetrans], i) => {
    const kind = i === 0 ? KIND_BEGIN : i === STEPS.length - 1 ? KIND_END : KIND_UPDATE;
    const r = decode({ kind, tsNs: at(i), segsOut, segsIn, totalRetrans, end: 1 });
    if (kind === KIND_UPDATE) {
      const list = { keys: new Map([[`4026531840|1|${BEGIN_NS}`, 0]]), record: () => r };
      events.push(...table.onOpenList([list], { us: r.timeUs, ns: r.timeNs }, 1_000_000));
    } else {
      events.push(table.onRecord(r)!);
    }
  });
  assert.deepEqual(events.map((e) => e.event), [
    "net_flow_tcp_begin",
    "net_flow_tcp_update",
    "net_flow_tcp_update",
    "net_flow_tcp_update",
    "net_flow_tcp_end",
  ]);
  const counted = events.slice(1) as (FlowUpdateEvent | FlowEndEvent)[];
  assert.deepEqual(counted.map((e) => [e.packets_sent, e.packets_received, e.retransmits]), [
    [TWO_32 - 10, TWO_32 + 3, TWO_32 - 1],
    [TWO_32 + 500, TWO_32 + 700, TWO_32 + 4],
    [TWO_32 + 1500, TWO_32 + 900, TWO_32 + 5],
    [TWO_32 + 2000, TWO_32 + 1000, TWO_32 + 6],
  ]);
  // IPFIX: each record's packet delta is what was sent since the last one, and they add up.
  const deltas = counted.map((e) => builder.build(e)!.counters!.packets);
  assert.deepEqual(deltas, [TWO_32 - 10, 510, 1000, 500]);
  assert.equal(deltas.reduce((a, b) => a + b), TWO_32 + 2000);
});

Deno.test("32-bit counters of a flow listed without updates are still followed across a wrap", () => {
  const table = new FlowTable();
  const begin = decode({ kind: KIND_BEGIN, tsNs: BEGIN_NS, segsOut: TWO_32 - 100 });
  table.onRecord(begin);
  // A list 90 s later (no updates asked for): the flow's counters are looked at.
  const mid = decode({ kind: KIND_UPDATE, tsNs: BEGIN_NS + 90_000_000_000n, segsOut: TWO_32 - 1 });
  const list = { keys: new Map([[`4026531840|1|${BEGIN_NS}`, 0]]), record: () => mid };
  assert.deepEqual(table.onOpenList([list], { us: mid.timeUs, ns: mid.timeNs }, null), []);
  const end = decode({ kind: KIND_END, tsNs: BEGIN_NS + 95_000_000_000n, segsOut: 50, end: 1 });
  assert.equal((table.onRecord(end) as FlowEndEvent).packets_sent, TWO_32 + 50);
});

Deno.test("a listed flow's counters are looked at once WIDE_REFRESH_NS has passed, not before", () => {
  const table = new FlowTable();
  table.onRecord(decode({ kind: KIND_BEGIN, tsNs: BEGIN_NS, segsOut: 100 }));
  const key = `4026531840|1|${BEGIN_NS}`;
  let looks = 0;
  const listAt = (afterNs: bigint, segsOut: number) => {
    const r = decode({ kind: KIND_UPDATE, tsNs: BEGIN_NS + afterNs, segsOut });
    const list = { keys: new Map([[key, 0]]), record: () => (looks++, r) };
    assert.deepEqual(table.onOpenList([list], { us: r.timeUs, ns: r.timeNs }, null), []);
  };
  listAt(30_000_000_000n, 200); // 30 s: not due
  assert.equal(looks, 0);
  listAt(61_000_000_000n, TWO_32 - 1); // 61 s: due, segs_out just below its wrap
  assert.equal(looks, 1);
  listAt(90_000_000_000n, TWO_32 - 1); // 29 s after that look: not due again
  assert.equal(looks, 1);
  // Without the look at 61 s, 150 after 100 would not be a wrap.
  const end = decode({ kind: KIND_END, tsNs: BEGIN_NS + 95_000_000_000n, segsOut: 150, end: 1 });
  assert.equal((table.onRecord(end) as FlowEndEvent).packets_sent, TWO_32 + 150);
});
