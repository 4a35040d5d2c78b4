/**
 * The records the kernel writes, as TypeScript sees them once decoded
 * (src/bpf/records.ts decodes them; bpf/netflow.h lays them out).
 *
 * @module
 */
import type { SocketOwner } from "./intern.ts";

/** TCP header flag bits, as in the tcp_flags byte. */
export const TcpFlags = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

export type Direction = "ingress" | "egress";

/** How an established socket ended (enum nf_end), from its own state change. */
export type EndHow =
  | "local-fin"
  | "remote-fin"
  | "local-rst"
  | "remote-rst"
  | "timeout"
  /** closed in TCP repair mode (a CRIU checkpoint): nothing went on the wire */
  | "repair";
/** How a connect() failed (enum nf_end, fail records). */
export type FailHow = "refused" | "timeout";
/** The socket's own counters at the moment of the record. */
export interface SocketCounters {
  /** tcp_sock.bytes_acked: sequence space acknowledged by the peer (64-bit). */
  readonly bytesAcked: number;
  /** tcp_sock.bytes_received: sequence space received in order (64-bit). */
  readonly bytesReceived: number;
  readonly sndUna: number;
  readonly writeSeq: number;
  readonly srttUs: number;
  readonly segsIn: number;
  readonly segsOut: number;
  readonly totalRetrans: number;
}

/**
 * One TCP socket event from the kernel: it reached ESTABLISHED (`begin`), it
 * ended (`end`), its connect() failed (`fail`), or, from an iterator, it
 * listens (`listen`, the start snapshot) or is open (`update`); `release`:
 * a socket whose end was already written was closed by its last holder
 * (`owner`; cookie, netns and kind are the only other fields set).
 */
export interface FlowRecord {
  readonly kind: "begin" | "end" | "listen" | "release" | "update" | "fail";
  /** When the kernel saw it, in µs since the Unix epoch (converted at decoding: for display). */
  readonly timeUs: number;
  /**
   * The same, as the kernel wrote it: CLOCK_MONOTONIC ns (bpf_ktime_get_ns).
   * Durations are differences of these, never of two wall-clock conversions.
   */
  readonly timeNs: number;
  /** When the socket reached ESTABLISHED (or was snapshotted), µs since the epoch; null if unknown. */
  readonly beginUs: number | null;
  /** The same, as the kernel's monotonic ns (0 when unknown): exact, part of the flow's identity. */
  readonly beginNs: number;
  readonly cgroupId: number;
  readonly netns: number;
  /** The network namespace's cookie (never reused; 0 where the kernel has none). */
  readonly netnsCookie: number;
  readonly cookie: number;
  readonly family: 4 | 6;
  readonly localAddr: string;
  readonly localPort: number;
  readonly remoteAddr: string;
  readonly remotePort: number;
  /** The local socket called connect(). */
  readonly outgoing: boolean;
  /** Established before netflow started (found by the start snapshot). */
  readonly preexisting: boolean;
  /** bytes_acked counts this side's SYN (the active opener's). */
  readonly synAcked: boolean;
  /** How it ended (end records) or failed (fail records). */
  readonly end: EndHow | FailHow | null;
  readonly oldState: number;
  readonly newState: number;
  readonly skErr: number;
  readonly owner: SocketOwner | null;
  /** `owner` was stamped by the process closing the socket, in its own context. */
  readonly ownerAtClose?: boolean;
  /** A subflow of an MPTCP socket (its owner is that socket's). */
  readonly mptcp?: boolean;
  /** The ring was full at its begin: the kernel never wrote the begin record (`beginNs` is set). */
  readonly beginLost?: boolean;
  /** Restored in TCP repair mode (CRIU): no handshake, so who opened it is not known. */
  readonly repaired?: boolean;
  readonly counters: SocketCounters;
}

/** A socket's identity across its records: namespace, cookie and the kernel's begin time. */
export function socketKey(netns: number, cookie: number, beginNs: number): string {
  return `${netns}|${cookie}|${beginNs}`;
}

/**
 * The open-flow list (the update iterator's output): each socket's key and
 * where its record is, so a sweep over 100,000 flows decodes only the records
 * it reports on.
 */
export interface OpenList {
  readonly keys: ReadonlyMap<string, number>;
  record(at: number): FlowRecord | undefined;
}

/**
 * One TCP control packet (SYN, FIN or RST): the net_packet_tcp debug view
 * (`packet`), or a handshake packet of an attempt that made no socket: a SYN
 * reaching a listener (`syn`), a RST reaching one (`hs-rst`), this host
 * answering a SYN with RST for a port nobody listens on (`refused`).
 */
export interface TcpPacket {
  readonly kind: "packet" | "syn" | "hs-rst" | "refused";
  readonly timeUs: number;
  /** The kernel's CLOCK_MONOTONIC ns. */
  readonly timeNs: number;
  readonly cgroupId: number;
  /** egress: sent by this host; ingress: received by it. */
  readonly direction: Direction;
  readonly family: 4 | 6;
  readonly src: string;
  readonly dst: string;
  readonly srcPort: number;
  readonly dstPort: number;
  readonly seq: number;
  readonly ack: number;
  readonly flags: number;
  /** The packet's full TCP socket's cookie, 0 when it has none (raw, reset or no socket). */
  readonly cookie: number;
  /** That socket's TCP state, 0 when none. */
  readonly sockState: number;
  /** The network namespace of the packet's socket (the reset socket's for `refused`). */
  readonly netns: number;
  /** That namespace's cookie (0 when none, or where the kernel has none). */
  readonly netnsCookie: number;
  readonly owner: SocketOwner | null;
}

/**
 * One DNS answer the kernel matched to a query of the same network namespace
 * (UDP: the whole message; TCP: one segment of the answer's stream).
 */
export interface DnsMessage {
  readonly kind: "dns";
  readonly timeUs: number;
  /** The kernel's CLOCK_MONOTONIC ns. */
  readonly timeNs: number;
  readonly cgroupId: number;
  readonly direction: Direction;
  readonly transport: "udp" | "tcp";
  /** Inode of the network namespace that asked (as `stat -L /proc/PID/ns/net` prints). */
  readonly netns: number;
  /** That namespace's cookie (never reused; 0 where the kernel has none). */
  readonly netnsCookie: number;
  /** cgroup v2 id of the socket that sent the query (0: its query was not seen leaving). */
  readonly queryCgroup: number;
  /** The packet's addresses and ports: src is the server. */
  readonly src: string;
  readonly dst: string;
  readonly srcPort: number;
  readonly dstPort: number;
  /** The query's transaction id, and the hash of its question (see src/dns/parse.ts). */
  readonly queryId: number;
  readonly question: bigint;
  /** TCP: where this segment starts in the answer stream (0: its 2-byte length). */
  readonly streamOffset: number;
  /** UDP: the message's length on the wire; TCP: the segment's. More than payload.length when cut. */
  readonly length: number;
  readonly payload: Uint8Array;
}

export type KernelRecord = FlowRecord | TcpPacket | DnsMessage;
