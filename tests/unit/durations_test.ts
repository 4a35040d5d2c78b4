/**
 * Durations come from the kernel's monotonic times in the records, never from
 * two wall-clock conversions: recorded nf_flow records decoded while the wall
 * clock steps between a flow's begin and its end.
 */
import assert from "node:assert/strict";
import { RecordDecoder } from "../../src/bpf/records.ts";
import { KIND_BEGIN, KIND_END, KIND_UPDATE } from "../../src/bpf/layout.ts";
import type { FlowRecord } from "../../src/bpf/records.ts";
import type { FlowEndEvent, FlowUpdateEvent } from "../../src/events.ts";
import { FlowTable } from "../../src/flow/state.ts";
import { RecordBuilder } from "../../src/export/record.ts";
import { ecsDocument } from "../../src/output/ecs.ts";
import { timeUs } from "../../src/events.ts";
import { LAYOUT } from "../../src/bpf/layout.ts";
import { rawFlow } from "../helpers/records.ts";

const HOUR_US = 3600e6;
/** Realtime minus monotonic before the step (µs): a host booted at 2026-12-06 10:00 UTC. */
const OFFSET_US = Date.parse("2026-12-06T10:00:00Z") * 1000;
const BOOT_NS = 5_000_000_000_000n; // 5000 s after boot
const BEGIN_NS = BOOT_NS + 123_456_789n;

function decode(decoder: RecordDecoder, view: DataView): FlowRecord {
  const r = decoder.decode(view, 0, LAYOUT.nf_flow.size);
  assert.ok(r !== undefined && r.kind !== "dns" && "counters" in r);
  return r;
}

for (const stepUs of [-HOUR_US, +HOUR_US, -3_598_000_000]) {
  Deno.test(`durations stay the kernel's when the wall clock steps ${stepUs / 1e6} s between begin and end`, () => {
    const decoder = new RecordDecoder(OFFSET_US);
    const table = new FlowTable();
    const begin = decode(decoder, rawFlow({ kind: KIND_BEGIN, tsNs: BEGIN_NS, beginNs: BEGIN_NS }));
    assert.equal(table.onRecord(begin)?.event, "net_flow_tcp_begin");
    // The clock steps (NTP, an admin's date -s): the monitor re-reads the offset at each drain.
    decoder.clockOffsetUs = OFFSET_US + stepUs;
    const update = decode(
      decoder,
      rawFlow({
        kind: KIND_UPDATE,
        tsNs: BEGIN_NS + 1_500_000_000n,
        beginNs: BEGIN_NS,
        bytesAcked: 11n,
        segsOut: 3,
      }),
    );
    const [u] = table.onOpenList(
      [{ keys: new Map([[`4026531840|1|${BEGIN_NS}`, 0]]), record: () => update }],
      { us: update.timeUs, ns: update.timeNs },
      1_000_000,
    ) as [FlowUpdateEvent];
    assert.equal(u.event, "net_flow_tcp_update");
    assert.equal(u.duration_ms, 1500);
    const end = decode(
      decoder,
      rawFlow({
        kind: KIND_END,
        tsNs: BEGIN_NS + 2_500_250_000n,
        beginNs: BEGIN_NS,
        end: 1,
        bytesAcked: 101n,
        bytesReceived: 50n,
        segsIn: 4,
        segsOut: 5,
      }),
    );
    const e = table.onRecord(end) as FlowEndEvent;
    assert.equal(e.event, "net_flow_tcp_end");
    // 2,500.25 ms as the kernel measured it, whatever the wall clock did.
    assert.equal(e.duration_ms, 2500.25);
    // The end's time is the wall clock's now (stepped), as it should be.
    assert.equal(
      timeUs(e.time),
      Math.floor(Number(BEGIN_NS + 2_500_250_000n) / 1000) + OFFSET_US + stepUs,
    );
    // ECS: event.duration in ns, start = end - duration.
    const doc = ecsDocument(e, "1:x", "h") as { event: Record<string, unknown> };
    assert.equal(doc.event.duration, 2_500_250_000);
    assert.equal(timeUs(doc.event.end as string) - timeUs(doc.event.start as string), 2_500_250);
    // IPFIX: flowStart/End 2.5 s apart (ms), start never after end.
    const record = new RecordBuilder().build(e)!;
    assert.equal(record.endMs - record.startMs, 2500);
  });
}

Deno.test("a duration is never negative, even for records out of order", () => {
  const decoder = new RecordDecoder(OFFSET_US);
  const table = new FlowTable();
  table.onRecord(decode(decoder, rawFlow({ kind: KIND_BEGIN, tsNs: BEGIN_NS, beginNs: BEGIN_NS })));
  const end = decode(
    decoder,
    rawFlow({ kind: KIND_END, tsNs: BEGIN_NS - 1000n, beginNs: BEGIN_NS, end: 1 }),
  );
  assert.equal((table.onRecord(end) as FlowEndEvent).duration_ms, 0);
});
