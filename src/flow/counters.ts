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

/** A 32-bit kernel counter made 64-bit: [last raw value, wraps seen]. */
type Wide = [last: number, wraps: number];

export interface WideCounters {
  segsIn: Wide;
  segsOut: Wide;
  totalRetrans: Wide;
}

/**
 * An open flow's 32-bit counters are looked at least this often when the
 * kernel lists it (the monitor lists every 5 minutes even without updates):
 * at 100 Gbit/s of 1,448-byte segments segs_out wraps in about 8 minutes.
 */
export const WIDE_REFRESH_NS = 60e9;
const TWO_32 = 2 ** 32;

/** `raw` (a u32 that only grows) as a 64-bit count, given what was seen before. */
function widen(w: Wide, raw: number): number {
  if (raw < w[0]) w[1]++;
  w[0] = raw;
  return w[1] * TWO_32 + raw;
}

/**
 * Milliseconds (µs precision, as the events' times have) from one kernel
 * monotonic time to a later one; never negative.
 */
export function msBetween(fromNs: number, toNs: number): number {
  return Math.max(0, Math.floor(toNs / 1000) - Math.floor(fromNs / 1000)) / 1000;
}

/** A flow's widening state: its counters as last seen, and when. */
export interface Widened {
  /** Null until a record of the flow gave them. */
  wide: WideCounters | null;
  /** When they were last seen (monotonic ns). */
  wideNs: number;
}

/**
 * The record with its 32-bit counters extended to 64 bits from what this
 * flow's earlier records said (`flow`, updated): a raw value below the last
 * one wrapped.
 */
export function widenRecord(flow: Widened, r: FlowRecord): FlowRecord {
  const c = r.counters;
  flow.wideNs = Math.max(flow.wideNs, r.timeNs);
  if (flow.wide === null) {
    flow.wide = {
      segsIn: [c.segsIn, 0],
      segsOut: [c.segsOut, 0],
      totalRetrans: [c.totalRetrans, 0],
    };
    return r;
  }
  const w = flow.wide;
  const segsIn = widen(w.segsIn, c.segsIn), segsOut = widen(w.segsOut, c.segsOut);
  const totalRetrans = widen(w.totalRetrans, c.totalRetrans);
  // Almost always nothing wrapped: the record as it is (no copy per end).
  if (segsIn === c.segsIn && segsOut === c.segsOut && totalRetrans === c.totalRetrans) return r;
  return { ...r, counters: { ...c, segsIn, segsOut, totalRetrans } };
}

/** A socket's counters, each exact in JSON or null. */
export interface Counters {
  bytesSent: number | null;
  bytesReceived: number | null;
  packetsSent: number | null;
  packetsReceived: number | null;
  rttUs: number | null;
  retransmits: number | null;
}

export const NO_COUNTERS: Counters = {
  bytesSent: null,
  bytesReceived: null,
  packetsSent: null,
  packetsReceived: null,
  rttUs: null,
  retransmits: null,
};

/** The event fields of a set of counters, in the contract's order. */
export function counterFields(c: Counters): FlowCounters {
  return {
    bytes_sent: c.bytesSent,
    bytes_received: c.bytesReceived,
    packets_sent: c.packetsSent,
    packets_received: c.packetsReceived,
    rtt_us: c.rttUs,
    retransmits: c.retransmits,
  };
}

/**
 * An open flow's counters for an update: what was acknowledged and received
 * so far, which the end can only equal or exceed (it adds what is queued).
 */
export function updateCounters(r: FlowRecord, outgoing: boolean): Counters {
  return socketCounters(r, outgoing, 0, 0);
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
export function endCounters(r: FlowRecord, outgoing = r.synAcked): Counters {
  const c = r.counters;
  // The peer's FIN found data unacknowledged: the kernel wrote the end when
  // the socket closed (bpf/sockops.bpf.h), when bytes_acked is all that
  // arrived; our own FIN is in it when LAST_ACK closed without an error.
  const lateFin = r.end === "remote-fin" && r.newState === TCP_STATE.CLOSE;
  const atFin = (r.end === "local-fin" || r.end === "remote-fin") && !lateFin;
  const ownFin = lateFin && r.oldState === TCP_STATE.LAST_ACK && r.skErr === 0 ? 1 : 0;
  const queued = atFin ? (c.writeSeq - c.sndUna) >>> 0 : -ownFin;
  const fin = r.end === "remote-fin" && c.bytesReceived > 0 ? 1 : 0;
  return socketCounters(r, outgoing, queued, fin);
}

/**
 * The socket's counters as events carry them: `queued` bytes added to those
 * sent, the peer's `fin` (0 or 1) taken from those received, and the active
 * opener's SYN taken from bytes_acked (the kernel flags it when it saw
 * connect(); the snapshot's outgoing flows had one too).
 */
function socketCounters(r: FlowRecord, outgoing: boolean, queued: number, fin: number): Counters {
  const c: SocketCounters = r.counters;
  // A socket restored in repair mode sent no SYN.
  const syn = (r.synAcked || outgoing) && !r.repaired && c.bytesAcked > 0 ? 1 : 0;
  return {
    bytesSent: exact(c.bytesAcked - syn + queued),
    bytesReceived: exact(c.bytesReceived - fin),
    packetsSent: exact(c.segsOut),
    packetsReceived: exact(c.segsIn),
    rttUs: exact(c.srttUs),
    retransmits: exact(c.totalRetrans),
  };
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
