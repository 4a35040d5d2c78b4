/**
 * Flow events to IPFIX records: which events become records (every end, and
 * every update once updates exist), oriented initiator to responder, with the
 * counters as deltas since the flow's previous record.
 *
 * @module
 */
import { parseIP } from "../bpf/addr.ts";
import { initiatorIsSrc, IPPROTO_TCP, type NetflowEvent, sideCounters, timeUs } from "../events.ts";
import { END_REASON, type FlowRecord } from "./ipfix.ts";

const UPDATE = "net_flow_tcp_update";

/** flowEndReason per end reason; anything else an end can say is lackOfResources. */
const END_REASONS: Record<string, number> = {
  fin: END_REASON.endOfFlow,
  rst: END_REASON.endOfFlow,
  // The kernel gave up on an idle or unanswered connection.
  timeout: END_REASON.idleTimeout,
  // netflow ended the flow itself (e.g. at shutdown).
  forced: END_REASON.forcedEnd,
  // Its records were lost: netflow cannot tell how it ended.
  unknown: END_REASON.lackOfResources,
};

type Totals = [octets: number, packets: number, reverseOctets: number, reversePackets: number];

/** Turns events into records; remembers what each open flow reported last (for deltas). */
export class RecordBuilder {
  readonly #reported = new Map<string, Totals>();
  readonly #max: number;

  constructor(maxFlows = 131072) {
    this.#max = maxFlows;
  }

  /** The record for `e`, or undefined for events that are not exported (begins, packets). */
  build(e: NetflowEvent): FlowRecord | undefined {
    if (e.event === "net_packet_tcp" || e.event === "net_flow_tcp_begin") return undefined;
    const isUpdate = (e.event as string) === UPDATE;
    if (!isUpdate && e.event !== "net_flow_tcp_end") return undefined;
    const forward = initiatorIsSrc(e) ?? true;
    const [src, dst] = forward ? [e.src, e.dst] : [e.dst, e.src];
    const [srcPort, dstPort] = forward ? [e.src_port, e.dst_port] : [e.dst_port, e.src_port];
    const srcAddr = parseIP(src), dstAddr = parseIP(dst);
    if (!srcAddr || !dstAddr || srcAddr.length !== dstAddr.length) return undefined;
    const endUs = timeUs(e.time);
    const duration = "duration_ms" in e ? e.duration_ms : null;
    const startUs = duration === null ? endUs : endUs - Math.round(duration * 1000);
    const record: FlowRecord = {
      srcAddr,
      dstAddr,
      srcPort,
      dstPort,
      protocol: IPPROTO_TCP,
      startMs: Math.floor(startUs / 1000),
      endMs: Math.floor(endUs / 1000),
      endReason: e.event === "net_flow_tcp_end"
        ? END_REASONS[e.reason] ?? 5
        : END_REASON.activeTimeout,
      egress: e.conn_direction === "outgoing",
      pid: e.pid,
      uid: e.uid,
      comm: e.comm,
      containerId: e.container_id,
    };
    const totals = this.#totals(e, forward);
    const last = this.#reported.get(e.flow_id);
    if (isUpdate) {
      if (last === undefined && this.#reported.size >= this.#max) {
        this.#reported.delete(this.#reported.keys().next().value!);
      }
      if (totals) this.#reported.set(e.flow_id, totals);
    } else {
      this.#reported.delete(e.flow_id);
    }
    if (totals) {
      const base = last ?? [0, 0, 0, 0];
      // Counters never decrease within a flow; max() keeps a delta from going negative anyway.
      const d = (i: number) => Math.max(0, totals[i]! - base[i]!);
      record.counters = { octets: d(0), packets: d(1), reverseOctets: d(2), reversePackets: d(3) };
    }
    return record;
  }

  /** Cumulative counters initiator-first, when the kernel gave all four. */
  #totals(e: NetflowEvent, forward: boolean): Totals | undefined {
    const c = sideCounters(e);
    if (!c) return undefined;
    const { srcBytes, srcPackets, dstBytes, dstPackets } = c;
    if (srcBytes === null || srcPackets === null || dstBytes === null || dstPackets === null) {
      return undefined;
    }
    return forward
      ? [srcBytes, srcPackets, dstBytes, dstPackets]
      : [dstBytes, dstPackets, srcBytes, srcPackets];
  }
}

/** True for events that `RecordBuilder.build` turns into records. */
export function isExported(e: NetflowEvent): boolean {
  return e.event === "net_flow_tcp_end" || (e.event as string) === UPDATE;
}
