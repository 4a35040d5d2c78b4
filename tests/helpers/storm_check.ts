/**
 * The check of a storm (tests/workloads/storm.py against lifecycle.py) that
 * the ring tests share: every endpoint once, with exact bytes.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { FlowEndEvent, FlowEvent } from "../../mod.ts";

/** Every endpoint of the storm on `port`: one begin, one end, exact bytes. */
export function assertEveryEndpoint(events: FlowEvent[], port: number, want: number): void {
  const mine = events.filter((e) => e.src_port === port || e.dst_port === port);
  const byFlow = new Map<string, FlowEvent[]>();
  for (const e of mine) byFlow.set(e.flow_id, [...(byFlow.get(e.flow_id) ?? []), e]);
  assert.equal(byFlow.size, want, "one flow per endpoint");
  for (const [id, evs] of byFlow) {
    assert.deepEqual(evs.map((e) => e.event), ["net_flow_tcp_begin", "net_flow_tcp_end"], id);
    const end = evs[1] as FlowEndEvent;
    // The client sends 100 bytes and closes; the server reads them to EOF.
    const bytes = end.conn_direction === "outgoing" ? [100, 0] : [0, 100];
    assert.deepEqual([end.bytes_sent, end.bytes_received, end.reason], [...bytes, "fin"], id);
  }
}
