/**
 * The events netflow reports, field for field as in ARCHITECTURE.md (the
 * names follow Tracee's net_flow_tcp_begin / net_flow_tcp_end).
 *
 * @module
 */

export const EVENT_BEGIN = "net_flow_tcp_begin";
export const EVENT_END = "net_flow_tcp_end";
/** One raw TCP control packet; for debugging, selected with --events. */
export const EVENT_PACKET = "net_packet_tcp";

/** An open flow's counters so far, once per --update-interval. */
export const EVENT_UPDATE = "net_flow_tcp_update";
/** A connection attempt that never established. */
export const EVENT_FAIL = "net_flow_tcp_fail";

export const EVENT_NAMES = [
  EVENT_BEGIN,
  EVENT_END,
  EVENT_UPDATE,
  EVENT_FAIL,
  EVENT_PACKET,
] as const;
export type EventName = typeof EVENT_NAMES[number];

/** Fields every flow event has. */
export interface FlowEventBase {
  /** RFC 3339 UTC with microseconds: when the packet that caused the event was seen. */
  time: string;
  /** The same in a flow's begin and end, unique per local endpoint while netflow runs. */
  flow_id: string;
  /** `outgoing`: the local side sent the SYN; `incoming`: the remote side did. */
  conn_direction: "outgoing" | "incoming";
  src: string;
  dst: string;
  src_port: number;
  dst_port: number;
  /** Names the DNS cache holds for `src` (queried name, then its CNAME chain). */
  src_dns: readonly string[];
  dst_dns: readonly string[];
  pid: number | null;
  comm: string | null;
  uid: number | null;
  cgroup_id: number;
  /** The local socket's cgroup, as a path under the cgroup v2 root. */
  cgroup: string;
  container_id: string | null;
  /** The local socket's network namespace (its inode, as `stat -L /proc/PID/ns/net` shows it). */
  netns: number;
  /** The connection was established before netflow started (found by the start snapshot). */
  preexisting: boolean;
}

/** A connection was established: `src` sent the SYN, `dst` accepted it. */
export interface FlowBeginEvent extends FlowEventBase {
  event: typeof EVENT_BEGIN;
}

/** The socket counters every end and update carries. */
export interface FlowCounters {
  /**
   * The local endpoint's view, from the socket: payload bytes sent (at an end
   * by FIN: acknowledged plus still queued; after a RST or timeout, and in
   * updates: acknowledged) and received in order; segments out and in. Null
   * when a value could not be carried exactly, or the end is unknown.
   */
  bytes_sent: number | null;
  bytes_received: number | null;
  packets_sent: number | null;
  packets_received: number | null;
  rtt_us: number | null;
  retransmits: number | null;
}

/**
 * A connection ended: `src` sent the first FIN or the RST (for a timeout or
 * an unknown end, the local side).
 */
export interface FlowEndEvent extends FlowEventBase, FlowCounters {
  event: typeof EVENT_END;
  closed_by: "local" | "remote";
  /**
   * fin, rst; timeout: the kernel gave up (retransmission, keepalive or user
   * timeout, no FIN or RST on the wire); unknown: the socket went away and its
   * end record was lost (counters null).
   */
  reason: "fin" | "rst" | "timeout" | "unknown";
  /** Since the begin event; null when the begin was not seen. */
  duration_ms: number | null;
}

/**
 * An open flow's cumulative counters (with --update-interval), oriented like
 * its begin. Counters never decrease from update to update to the end; bytes
 * sent are those acknowledged so far.
 */
export interface FlowUpdateEvent extends FlowEventBase, FlowCounters {
  event: typeof EVENT_UPDATE;
  /** Since the begin. */
  duration_ms: number;
}

/**
 * A connection attempt that never established, oriented like a begin (`src`
 * sent the SYN). `refused`: answered by RST (incoming: this host had no
 * listener, `pid` null); `timeout`: no answer before the kernel or the
 * application gave up; `reset`: reset during the handshake (a SYN scan).
 */
export interface FlowFailEvent extends FlowEventBase {
  event: typeof EVENT_FAIL;
  reason: "refused" | "timeout" | "reset";
  /** From the first SYN. */
  duration_ms: number;
}

export type FlowEvent = FlowBeginEvent | FlowEndEvent | FlowUpdateEvent | FlowFailEvent;

/** A TCP control packet as netflow saw it (--events net_packet_tcp). */
export interface PacketEvent {
  time: string;
  event: typeof EVENT_PACKET;
  direction: "ingress" | "egress";
  src: string;
  dst: string;
  src_port: number;
  dst_port: number;
  /** Set TCP flags, e.g. "SYN|ACK". */
  flags: string;
  cgroup_id: number;
  pid: number | null;
  comm: string | null;
}

export type NetflowEvent = FlowEvent | PacketEvent;

let cachedSecond = -1;
let cachedPrefix = "";

/** Formats Unix-epoch microseconds as RFC 3339 UTC with microseconds. */
export function formatTime(us: number): string {
  const second = Math.floor(us / 1e6);
  if (second !== cachedSecond) {
    // The date part changes once a second: build it once per second.
    cachedSecond = second;
    cachedPrefix = new Date(second * 1000).toISOString().slice(0, 19); // 2026-11-23T12:34:56
  }
  return `${cachedPrefix}.${String(us - second * 1e6).padStart(6, "0")}Z`;
}
