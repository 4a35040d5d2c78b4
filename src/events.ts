/**
 * The vocabulary every stage shares, importing nothing: the events netflow
 * reports (as JSON Lines and to library users: one begin and one end per local
 * TCP endpoint, a loopback connection has two, and, when asked for, updates,
 * failed attempts and raw control packets), the filter spec, how to read an
 * event's sides, and the {@link Sink} every output implements. The names and
 * fields follow Tracee's net_flow_tcp_begin / net_flow_tcp_end; docs/events.md
 * has the same reference with the table's columns.
 *
 * @example Which side of a flow is this host
 * ```ts
 * import type { FlowEvent } from "./events.ts";
 *
 * // A begin's src sent the SYN; an end's src closed; an update's and a
 * // fail's are oriented like the begin.
 * function localAddress(e: FlowEvent): string {
 *   const srcIsLocal = e.event === "net_flow_tcp_end"
 *     ? e.closed_by === "local"
 *     : e.conn_direction === "outgoing";
 *   return srcIsLocal ? `${e.src}:${e.src_port}` : `${e.dst}:${e.dst_port}`;
 * }
 * ```
 *
 * @module
 */

/** A connection reached ESTABLISHED (or was open when netflow started: `preexisting`). */
export const EVENT_BEGIN = "net_flow_tcp_begin";
/** A connection ended: FIN, RST, a kernel timeout, or unknown; exactly one per begin. */
export const EVENT_END = "net_flow_tcp_end";
/** One raw TCP control packet; for debugging, selected with --events. */
export const EVENT_PACKET = "net_packet_tcp";

/** An open flow's counters so far, once per --update-interval. */
export const EVENT_UPDATE = "net_flow_tcp_update";
/** A connection attempt that never established. */
export const EVENT_FAIL = "net_flow_tcp_fail";

/**
 * Every event name, in the order `--events` lists them; each also has a short
 * name (`begin`, `end`, `update`, `fail`, `packet`) that `--events` and the
 * library's `events` option accept.
 */
export const EVENT_NAMES: readonly [
  typeof EVENT_BEGIN,
  typeof EVENT_END,
  typeof EVENT_UPDATE,
  typeof EVENT_FAIL,
  typeof EVENT_PACKET,
] = [EVENT_BEGIN, EVENT_END, EVENT_UPDATE, EVENT_FAIL, EVENT_PACKET] as const;
/** One of {@link EVENT_NAMES}. */
export type EventName = typeof EVENT_NAMES[number];

/** Fields every flow event has. */
export interface FlowEventBase {
  /**
   * RFC 3339, UTC, with microseconds (`2026-12-01T10:05:30.059750Z`): when
   * the kernel saw the change that made the event; for a preexisting begin,
   * when netflow started.
   */
  time: string;
  /**
   * The same in a flow's begin, updates and end; unique per local endpoint
   * while one netflow runs (a random prefix per run, then a counter:
   * `c027fd-1`); not stable across runs.
   */
  flow_id: string;
  /** `outgoing`: the local side sent the SYN; `incoming`: the remote side did. */
  conn_direction: "outgoing" | "incoming";
  /**
   * An IP address: IPv4 dotted, IPv6 in RFC 5952 form, IPv4-mapped IPv6 as
   * IPv4. Which side it is depends on the event (see each event type).
   */
  src: string;
  /** The other side's IP address, in the same form as `src`. */
  dst: string;
  /** `src`'s TCP port. */
  src_port: number;
  /** `dst`'s TCP port. */
  dst_port: number;
  /**
   * Names the DNS cache of the socket's network namespace holds for `src`:
   * each queried name, then its CNAME chain, lowercased, each once; `[]` when
   * none.
   */
  src_dns: readonly string[];
  /** Names for `dst`, as `src_dns`. */
  dst_dns: readonly string[];
  /**
   * The process (thread group id) holding the local socket; for an incoming
   * flow the one that accepted it. Null when none could be found.
   */
  pid: number | null;
  /**
   * That process's command name when the event is written (at most 15 bytes;
   * may hold any character: the table strips control characters).
   */
  comm: string | null;
  /** That process's user id. */
  uid: number | null;
  /** The local socket's cgroup v2 id (the inode number of its directory). */
  cgroup_id: number;
  /**
   * The local socket's cgroup, as a path under the cgroup v2 root
   * (`/system.slice/nginx.service`); `""` when it was removed before netflow
   * could name it.
   */
  cgroup: string;
  /**
   * The 64-hex-digit container id in the cgroup path (docker, containerd,
   * cri-o, podman, kubepods), else null.
   */
  container_id: string | null;
  /** The local socket's network namespace (its inode, as `stat -L /proc/PID/ns/net` shows it). */
  netns: number;
  /** The connection was established before netflow started (found by the start snapshot). */
  preexisting: boolean;
}

/** A connection was established: `src` sent the SYN, `dst` accepted it. */
export interface FlowBeginEvent extends FlowEventBase {
  /** `net_flow_tcp_begin` */
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
  /** TCP payload bytes this endpoint received in order (the kernel's `bytes_received`). */
  bytes_received: number | null;
  /** Segments sent (the kernel's `segs_out`: retransmissions and pure ACKs included). */
  packets_sent: number | null;
  /** Segments received (the kernel's `segs_in`). */
  packets_received: number | null;
  /**
   * The smoothed round-trip time (the kernel's srtt, as `ss -i` shows it) in
   * microseconds, when read: not the minimum.
   */
  rtt_us: number | null;
  /** Segments retransmitted over the connection's life (the kernel's `total_retrans`). */
  retransmits: number | null;
}

/**
 * A connection ended: `src` sent the first FIN or the RST (for a timeout or
 * an unknown end, the local side).
 */
export interface FlowEndEvent extends FlowEventBase, FlowCounters {
  /** `net_flow_tcp_end` */
  event: typeof EVENT_END;
  /** Who sent the first FIN or the RST: this host (`local`) or the peer; `local` for a timeout. */
  closed_by: "local" | "remote";
  /**
   * fin, rst; timeout: the kernel gave up (retransmission, keepalive or user
   * timeout, no FIN or RST on the wire); unknown: the socket went away and its
   * end record was lost (counters null).
   */
  reason: "fin" | "rst" | "timeout" | "unknown";
  /**
   * Milliseconds since the begin, with microsecond precision (`0.523`); null
   * when the begin was not seen.
   */
  duration_ms: number | null;
}

/**
 * An open flow's cumulative counters (with --update-interval), oriented like
 * its begin. Counters never decrease from update to update to the end; bytes
 * sent are those acknowledged so far.
 */
export interface FlowUpdateEvent extends FlowEventBase, FlowCounters {
  /** `net_flow_tcp_update` */
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
  /** `net_flow_tcp_fail` */
  event: typeof EVENT_FAIL;
  /** How the attempt failed (see the type's description). */
  reason: "refused" | "timeout" | "reset";
  /** From the first SYN. */
  duration_ms: number;
}

/** Any flow event; narrow it on `event`. */
export type FlowEvent = FlowBeginEvent | FlowEndEvent | FlowUpdateEvent | FlowFailEvent;

/** A TCP control packet as netflow saw it (--events net_packet_tcp). */
export interface PacketEvent {
  /** When the packet passed the cgroup_skb hook (RFC 3339 UTC, microseconds). */
  time: string;
  /** `net_packet_tcp` */
  event: typeof EVENT_PACKET;
  /** `egress`: the packet left a watched socket; `ingress`: it arrived at one. */
  direction: "ingress" | "egress";
  /** The packet's source address. */
  src: string;
  /** The packet's destination address. */
  dst: string;
  /** The packet's source port. */
  src_port: number;
  /** The packet's destination port. */
  dst_port: number;
  /** Set TCP flags, e.g. "SYN|ACK". */
  flags: string;
  /** The socket's cgroup v2 id. */
  cgroup_id: number;
  /** The socket's owner, where known. */
  pid: number | null;
  /** The owner's command name, where known. */
  comm: string | null;
}

/** Any event netflow writes. */
export type NetflowEvent = FlowEvent | PacketEvent;

let cachedSecond = -1;
/** The date and time to the second, and the dot: `2026-11-23T12:34:56.` */
let cachedPrefix = "";
/** "000" to "999": a time's microseconds are two of these (no number made into text per event). */
const DIGITS3: readonly string[] = Array.from(
  { length: 1000 },
  (_, i) => String(i).padStart(3, "0"),
);

/** Formats Unix-epoch microseconds as RFC 3339 UTC with microseconds. */
export function formatTime(us: number): string {
  const second = Math.floor(us / 1e6);
  if (second !== cachedSecond) {
    // The date part changes once a second: build it once per second.
    cachedSecond = second;
    cachedPrefix = `${new Date(second * 1000).toISOString().slice(0, 19)}.`; // 2026-11-23T12:34:56.
  }
  const micro = us - second * 1e6;
  if (!Number.isInteger(micro)) return `${cachedPrefix}${String(micro).padStart(6, "0")}Z`;
  const milli = Math.floor(micro / 1000);
  return `${cachedPrefix}${DIGITS3[milli]}${DIGITS3[micro - milli * 1000]}Z`;
}

/**
 * Which events to report (`--pid`, `--comm`, `--port`, `--container`, `--net`,
 * `--direction`, `-4`/`-6`): values of one kind are alternatives (OR), kinds
 * combine (AND); an absent or empty list does not filter (src/flow/filter.ts).
 */
export interface FlowFilter {
  /** The local process's pid. */
  pid?: readonly number[];
  /** The local process's name (comm, at most 15 characters), exactly. */
  comm?: readonly string[];
  /** Either side's TCP port. */
  port?: readonly number[];
  /** A container id or its prefix (docker's 12-character short ids work). */
  container?: readonly string[];
  /** CIDR blocks (or single addresses) the remote address is in. */
  net?: readonly string[];
  /** Who initiated the connection. */
  direction?: readonly ("incoming" | "outgoing")[];
  /** IP version. */
  family?: readonly (4 | 6)[];
}

/** TCP's IANA protocol number (IPFIX's protocolIdentifier, Community ID's proto). */
export const IPPROTO_TCP = 6;

// How to read an event beyond its fields, written against the contract only,
// so every event kind (begin, update, end, fail, packet) maps the same way.

let parsedPrefix = "";
let parsedSecondUs = 0;

/** Microseconds since the epoch from netflow's RFC 3339 time (the inverse of formatTime). */
export function timeUs(text: string): number {
  const prefix = text.slice(0, 19); // 2026-11-23T12:34:56
  if (prefix !== parsedPrefix) {
    parsedPrefix = prefix;
    parsedSecondUs = Date.parse(`${prefix}Z`) * 1000;
  }
  const dot = text.indexOf(".", 19);
  if (dot < 0) return parsedSecondUs;
  const digits = text.slice(dot + 1).replace(/\D.*$/, "");
  return parsedSecondUs + Number(digits.padEnd(6, "0").slice(0, 6));
}

/** True when the event's `src` is this host's endpoint. */
export function localIsSrc(e: NetflowEvent): boolean {
  if (e.event === "net_packet_tcp") return e.direction === "egress";
  // An end is oriented by who closed it; every other flow event like a begin.
  if ("closed_by" in e) return e.closed_by === "local";
  return e.conn_direction === "outgoing";
}

/** True when the event's `src` sent the SYN; undefined for a single packet. */
export function initiatorIsSrc(e: NetflowEvent): boolean | undefined {
  if (e.event === "net_packet_tcp") return undefined;
  return localIsSrc(e) === (e.conn_direction === "outgoing");
}

/** Bytes and packets each side sent, or null where the kernel gave none. */
export interface SideCounters {
  srcBytes: number | null;
  srcPackets: number | null;
  dstBytes: number | null;
  dstPackets: number | null;
}

/** The local counters of an event that has them, as `src` and `dst` sent them. */
export function sideCounters(e: NetflowEvent): SideCounters | undefined {
  if (!("bytes_sent" in e)) return undefined;
  const local = localIsSrc(e);
  return {
    srcBytes: local ? e.bytes_sent : e.bytes_received,
    srcPackets: local ? e.packets_sent : e.packets_received,
    dstBytes: local ? e.bytes_received : e.bytes_sent,
    dstPackets: local ? e.packets_received : e.packets_sent,
  };
}

/** "ipv4" or "ipv6", as the addresses were written. */
export function ipFamily(e: NetflowEvent): "ipv4" | "ipv6" {
  return e.src.includes(":") ? "ipv6" : "ipv4";
}

/**
 * Where events go: the stdout format, IPFIX exporters, flow metrics. Each
 * batch the monitor yields is handed to every sink in turn; a new output is a
 * new Sink, and no stage before it knows.
 */
export interface Sink {
  /**
   * Takes one batch. Never waits on the network (a slow or absent collector
   * costs records, counted, never the caller's time). Returns false when
   * this sink can take no more (stdout's reader has gone): the caller stops.
   */
  write(batch: readonly NetflowEvent[]): boolean;
  /** Flushes what it still holds (waiting a bounded time at most) and lets go of its resources. */
  close(): Promise<void>;
  /** Its counts for the exit summary, or undefined when it has none. */
  summary(): string | undefined;
}

/** Hands a batch to every sink; false when one of them can take no more. */
export function writeAll(sinks: readonly Sink[], batch: readonly NetflowEvent[]): boolean {
  let ok = true;
  for (const sink of sinks) ok = sink.write(batch) && ok;
  return ok;
}
