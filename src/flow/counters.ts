/**
 * A socket's counters as flow events carry them: the kernel's 32-bit ones
 * (segs_in, segs_out, total_retrans) widened to 64 bits across a flow's
 * records, the bytes sent and received at an end or an update, each exact in
 * JSON or null; and durations from the kernel's monotonic times.
 *
 * @module
 */
import { TCP_STATE } from "../bpf/abi.ts";
import type { FlowRecord, SocketCounters } from "../bpf/records.ts";
import type { FlowCounters, FlowEndEvent } from "../events.ts";

/** Counters are numbers in JSON: anything at or above 2^53 would not stay exact. */
const MAX_EXACT = Number.MAX_SAFE_INTEGER;

/**
 * An open flow's 32-bit counters are looked at least this often when the
 * kernel lists it (the monitor lists every 5 minutes even without updates):
 * at 100 Gbit/s of 1,448-byte segments segs_out wraps in about 8 minutes.
 */
export const WIDE_REFRESH_NS = 60e9;
const TWO_32 = 2 ** 32;

/**
 * Milliseconds (µs precision, as the events' times have) from one kernel
 * monotonic time to a later one; never negative.
 */
export function msBetween(fromNs: number, toNs: number): number {
  return Math.max(0, Math.floor(toNs / 1000) - Math.floor(fromNs / 1000)) / 1000;
}

/**
 * A flow's widening state, kept in the flow itself (no object per counter:
 * an open flow's entry stays small): each 32-bit counter's last raw value,
 * and when they were last seen; the wraps, which almost no flow has, in an
 * object made at the first.
 */
export interface Widened {
  segsInLast: number;
  segsOutLast: number;
  retransLast: number;
  /**
   * When they were last seen: the kernel's monotonic second, rounded up (a
   * small integer V8 keeps in the flow itself, where nanoseconds took a
   * 16-byte boxed number a flow); 0 until a record of the flow gave them.
   */
  wideS: number;
  /** How often each counter wrapped; undefined while none did. */
  wraps: Wraps | undefined;
}

/** The wraps of a flow's 32-bit counters. */
export interface Wraps {
  segsIn: number;
  segsOut: number;
  retrans: number;
}

/**
 * Whether a flow's 32-bit counters are due a look at `nowNs` (kernel
 * monotonic): not seen for WIDE_REFRESH_NS (to the second).
 */
export function countersDue(flow: Widened, nowNs: number): boolean {
  return nowNs - flow.wideS * 1e9 >= WIDE_REFRESH_NS;
}

/**
 * The record with its 32-bit counters extended to 64 bits from what this
 * flow's earlier records said (`flow`, updated): a raw value below the last
 * one wrapped.
 */
export function widenRecord(flow: Widened, r: FlowRecord): FlowRecord {
  const c = r.counters;
  // Kernel monotonic times are above 0, so a second rounded up is too: 0 has seen none yet.
  const seen = flow.wideS > 0;
  flow.wideS = Math.max(flow.wideS, Math.ceil(r.timeNs / 1e9));
  if (!seen) {
    flow.segsInLast = c.segsIn;
    flow.segsOutLast = c.segsOut;
    flow.retransLast = c.totalRetrans;
    return r;
  }
  const segsIn = c.segsIn < flow.segsInLast ? 1 : 0;
  const segsOut = c.segsOut < flow.segsOutLast ? 1 : 0;
  const retrans = c.totalRetrans < flow.retransLast ? 1 : 0;
  flow.segsInLast = c.segsIn;
  flow.segsOutLast = c.segsOut;
  flow.retransLast = c.totalRetrans;
  if (segsIn + segsOut + retrans > 0) {
    const w = flow.wraps ??= { segsIn: 0, segsOut: 0, retrans: 0 };
    w.segsIn += segsIn;
    w.segsOut += segsOut;
    w.retrans += retrans;
  }
  const w = flow.wraps;
  // Almost always nothing wrapped: the record as it is (no copy per end).
  if (w === undefined) return r;
  return {
    ...r,
    counters: {
      ...c,
      segsIn: w.segsIn * TWO_32 + c.segsIn,
      segsOut: w.segsOut * TWO_32 + c.segsOut,
      totalRetrans: w.retrans * TWO_32 + c.totalRetrans,
    },
  };
}

/** The counters an event carries when they could not be read (an unknown end): all null. */
export function setNoCounters(e: Partial<FlowCounters>): void {
  // One by one, in the contract's order: each store adds the field after the last.
  e.bytes_sent = null;
  e.bytes_received = null;
  e.packets_sent = null;
  e.packets_received = null;
  e.rtt_us = null;
  e.retransmits = null;
}

/**
 * An open flow's counters for an update: what was acknowledged and received
 * so far, which the end can only equal or exceed (it adds what is queued).
 */
export function setUpdateCounters(
  e: Partial<FlowCounters>,
  r: FlowRecord,
  outgoing: boolean,
): void {
  setSocketCounters(e, r, outgoing, 0, 0);
}

/** A counter as JSON can carry it exactly, or null. */
function exact(n: number): number | null {
  return Number.isSafeInteger(n) && n >= 0 && n <= MAX_EXACT ? n : null;
}

/**
 * The local endpoint's counters at the end, from the socket itself at the
 * state change that ended it:
 *
 * - bytes_sent: payload the application handed to TCP up to the end. At the
 *   first FIN (either side) that is everything acknowledged plus what is still
 *   queued (write_seq - snd_una), all of which TCP will deliver before its FIN;
 *   after a reset or a timeout, only what the peer acknowledged. The active
 *   opener's bytes_acked counts its SYN: removed.
 * - bytes_received: payload received in order; at the peer's FIN the kernel
 *   has already counted the FIN's sequence number: removed.
 */
export function setEndCounters(
  e: Partial<FlowCounters>,
  r: FlowRecord,
  outgoing = r.synAcked,
): void {
  const c = r.counters;
  // The peer's FIN found data unacknowledged: the kernel wrote the end when
  // the socket closed (bpf/sockops.bpf.h), when bytes_acked is all that
  // arrived; our own FIN is in it when LAST_ACK closed without an error.
  const lateFin = r.end === "remote-fin" && r.newState === TCP_STATE.CLOSE;
  const atFin = (r.end === "local-fin" || r.end === "remote-fin") && !lateFin;
  const ownFin = lateFin && r.oldState === TCP_STATE.LAST_ACK && r.skErr === 0 ? 1 : 0;
  const queued = atFin ? (c.writeSeq - c.sndUna) >>> 0 : -ownFin;
  const fin = r.end === "remote-fin" && c.bytesReceived > 0 ? 1 : 0;
  setSocketCounters(e, r, outgoing, queued, fin);
}

/**
 * The socket's counters, stored into an event: `queued` bytes added to those
 * sent, the peer's `fin` (0 or 1) taken from those received, and the active
 * opener's SYN taken from bytes_acked (the kernel flags it when it saw
 * connect(); the snapshot's outgoing flows had one too).
 */
function setSocketCounters(
  e: Partial<FlowCounters>,
  r: FlowRecord,
  outgoing: boolean,
  queued: number,
  fin: number,
): void {
  const c: SocketCounters = r.counters;
  // A socket restored in repair mode sent no SYN.
  const syn = (r.synAcked || outgoing) && !r.repaired && c.bytesAcked > 0 ? 1 : 0;
  // Stored one by one, in the contract's order (no object of them to copy from).
  e.bytes_sent = exact(c.bytesAcked - syn + queued);
  e.bytes_received = exact(c.bytesReceived - fin);
  e.packets_sent = exact(c.segsOut);
  e.packets_received = exact(c.segsIn);
  e.rtt_us = exact(c.srttUs);
  e.retransmits = exact(c.totalRetrans);
}

/** Who ended a flow (`local`: this side, src of the end event) and how, from its end record. */
export function endOf(r: FlowRecord): { local: boolean; reason: FlowEndEvent["reason"] } {
  const how = r.end ?? "local-rst";
  const local = how === "local-fin" || how === "local-rst" || how === "timeout" ||
    how === "repair";
  // A socket closed in repair mode (a checkpoint) sent nothing: how the connection ends is not known.
  const reason = how === "timeout"
    ? "timeout"
    : how === "repair"
    ? "unknown"
    : how.endsWith("fin")
    ? "fin"
    : "rst";
  return { local, reason };
}
