/**
 * Decodes ring buffer records. Mirrors bpf/netflow.h: the offsets below are
 * checked against the BTF of the built object by tests/unit/records_test.ts,
 * the constants (src/bpf/abi.ts) by tests/unit/abi_test.ts.
 *
 * @module
 */
import { NF_DIRECTION, NF_END, NF_FLOW, NF_KIND, NF_SIZE, NF_SOCK } from "./abi.ts";
import { formatIPv4, formatIPv6 } from "./addr.ts";

/** Byte offsets of each record's fields, by the names netflow.h gives them. */
export const LAYOUT = {
  nf_header: {
    size: 24,
    fields: { ts_ns: 0, cgroup_id: 8, kind: 16, direction: 17, family: 18, pad: 19 },
  },
  nf_flow: {
    size: 160,
    fields: {
      hdr: 0,
      cookie: 24,
      begin_ns: 32,
      bytes_acked: 40,
      bytes_received: 48,
      netns_cookie: 56,
      laddr: 64,
      raddr: 80,
      netns: 96,
      snd_una: 100,
      write_seq: 104,
      srtt_us: 108,
      segs_in: 112,
      segs_out: 116,
      total_retrans: 120,
      sk_err: 124,
      pid: 128,
      uid: 132,
      lport: 136,
      rport: 138,
      flags: 140,
      end: 141,
      old_state: 142,
      new_state: 143,
      comm: 144,
    },
  },
  nf_packet: {
    size: 120,
    fields: {
      hdr: 0,
      sock_cookie: 24,
      netns_cookie: 32,
      saddr: 40,
      daddr: 56,
      seq: 72,
      ack_seq: 76,
      pid: 80,
      uid: 84,
      netns: 88,
      sport: 92,
      dport: 94,
      tcp_flags: 96,
      sock_flags: 97,
      sock_state: 98,
      pad: 99,
      comm: 104,
    },
  },
  nf_holder: {
    size: 80,
    fields: {
      cookie: 0,
      saddr: 8,
      daddr: 24,
      pid: 40,
      uid: 44,
      netns: 48,
      sport: 52,
      dport: 54,
      family: 56,
      state: 57,
      mptcp: 58,
      pad: 59,
      comm: 64,
    },
  },
  nf_config: {
    size: 164,
    fields: {
      forward_all: 0,
      snapshot_all: 1,
      report_fail: 2,
      filter_families: 3,
      self_pid: 4,
      filter_net: 8,
      filter_net_prefix: 136,
      filter_port: 144,
      filter_nets: 160,
      filter_ports: 161,
      filter_directions: 162,
      kernel_has: 163,
    },
  },
  nf_dns: {
    size: 1384,
    fields: {
      hdr: 0,
      question: 24,
      netns_cookie: 32,
      query_cgroup: 40,
      saddr: 48,
      daddr: 64,
      netns: 80,
      stream_off: 84,
      sport: 88,
      dport: 90,
      payload_len: 92,
      captured_len: 94,
      query_id: 96,
      transport: 98,
      pad: 99,
      payload: 104,
    },
  },
} as const;

export const KIND_PACKET = NF_KIND.PACKET;
export const KIND_DNS = NF_KIND.DNS;
export const KIND_BEGIN = NF_KIND.BEGIN;
export const KIND_END = NF_KIND.END;
export const KIND_LISTEN = NF_KIND.LISTEN;
export const KIND_RELEASE = NF_KIND.RELEASE;
export const KIND_UPDATE = NF_KIND.UPDATE;
export const KIND_FAIL = NF_KIND.FAIL;
export const KIND_SYN = NF_KIND.SYN;
export const KIND_HS_RST = NF_KIND.HS_RST;
export const KIND_REFUSED = NF_KIND.REFUSED;
/** nf_flow kinds, in enum nf_kind order from KIND_BEGIN. */
const FLOW_KINDS = ["begin", "end", "listen", "release", "update", "fail"] as const;
/** nf_packet kinds by enum nf_kind value. */
const PACKET_KINDS: Record<number, TcpPacket["kind"]> = {
  [KIND_PACKET]: "packet",
  [KIND_SYN]: "syn",
  [KIND_HS_RST]: "hs-rst",
  [KIND_REFUSED]: "refused",
};
const EGRESS = NF_DIRECTION.EGRESS;
const SOCK_OWNER = NF_SOCK.OWNER;
const FLOW_OUTGOING = NF_FLOW.OUTGOING;
const FLOW_PREEXISTING = NF_FLOW.PREEXISTING;
const FLOW_OWNER = NF_FLOW.OWNER;
const FLOW_SYN_ACKED = NF_FLOW.SYN_ACKED;
const FLOW_OWNER_CLOSER = NF_FLOW.OWNER_CLOSER;
const FLOW_MPTCP = NF_FLOW.MPTCP;
const FLOW_BEGIN_LOST = NF_FLOW.BEGIN_LOST;
const FLOW_REPAIRED = NF_FLOW.REPAIRED;
const COMM_LEN = NF_SIZE.COMM_LEN;

/** TCP header flag bits, as in the tcp_flags byte. */
export const TcpFlags = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

export type Direction = "ingress" | "egress";

/** A process, as socket storage or the task_file iterator name it. */
export interface SocketOwner {
  readonly pid: number;
  readonly uid: number;
  readonly comm: string;
}

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
const END_HOW: Readonly<Record<number, EndHow | FailHow>> = {
  [NF_END.END_LOCAL_FIN]: "local-fin",
  [NF_END.END_REMOTE_FIN]: "remote-fin",
  [NF_END.END_LOCAL_RST]: "local-rst",
  [NF_END.END_REMOTE_RST]: "remote-rst",
  [NF_END.END_TIMEOUT]: "timeout",
  [NF_END.FAIL_REFUSED]: "refused",
  [NF_END.FAIL_TIMEOUT]: "timeout",
  [NF_END.END_REPAIR]: "repair",
};

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
  readonly kind: typeof FLOW_KINDS[number];
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

const F = LAYOUT.nf_flow.fields;
const P = LAYOUT.nf_packet.fields;
const H = LAYOUT.nf_header.fields;
const D = LAYOUT.nf_dns.fields;
const utf8 = new TextDecoder();

/** A u64 field as a number: exact below 2^53, which counters and ids stay under. */
function u64(view: DataView, at: number): number {
  return view.getUint32(at + 4, true) * 4294967296 + view.getUint32(at, true);
}

/**
 * Turns raw records into {@link KernelRecord}s. `clockOffsetUs` converts the
 * kernel's monotonic timestamps to Unix time. Records that are shorter than
 * their layout or of an unknown kind return `undefined` (the caller counts them).
 */
export class RecordDecoder {
  /** Realtime minus monotonic, re-read by the monitor (clock steps, suspend). */
  clockOffsetUs: number;
  /**
   * One owner object per process, shared by its records (and the flows that
   * keep them), with the raw comm bytes it was made from: a record whose pid,
   * uid and comm bytes match takes it without making a string.
   */
  readonly #owners = new Map<number, { owner: SocketOwner; comm: Uint8Array }>();
  /** Bytes over the buffer records were last read from (the ring's: one for all drains). */
  #bytes: Uint8Array = new Uint8Array(0);
  /** One string per IPv4 address (u32 key): shared by every record that names it. */
  readonly #ipv4 = new Map<number, string>();

  constructor(clockOffsetUs: number) {
    this.clockOffsetUs = clockOffsetUs;
  }

  decode(view: DataView, offset: number, length: number): KernelRecord | undefined {
    if (length < LAYOUT.nf_header.size) return undefined;
    const kind = view.getUint8(offset + H.kind);
    if (kind >= KIND_BEGIN && kind <= KIND_FAIL) {
      return length >= LAYOUT.nf_flow.size ? this.flow(view, offset) : undefined;
    }
    if (PACKET_KINDS[kind] !== undefined && length >= LAYOUT.nf_packet.size) {
      return this.#packet(view, offset);
    }
    if (kind === KIND_DNS && length >= D.payload) return this.#dns(view, offset, length);
    return undefined;
  }

  /** A byte view over all of `view`'s buffer (made once per buffer, not per record). */
  #bytesOf(view: DataView): Uint8Array {
    if (this.#bytes.buffer !== view.buffer) this.#bytes = new Uint8Array(view.buffer);
    return this.#bytes;
  }

  /** The address at `at` (absolute in `bytes`) as text; IPv4 strings are interned. */
  #addr(bytes: Uint8Array, family: 4 | 6, at: number): string {
    if (family === 6) return formatIPv6(bytes, at);
    const key = ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) |
      bytes[at + 3]!) >>> 0;
    let text = this.#ipv4.get(key);
    if (text === undefined) {
      if (this.#ipv4.size >= 65536) this.#ipv4.clear();
      text = formatIPv4(bytes, at);
      this.#ipv4.set(key, text);
    }
    return text;
  }

  #timeUs(view: DataView, at: number): number {
    return this.#usFromNs(u64(view, at + H.ts_ns));
  }

  #usFromNs(ns: number): number {
    return Math.floor(ns / 1000) + this.clockOffsetUs;
  }

  /** One nf_flow record (ring buffer or tcp iterator); the caller checked its length. */
  flow(view: DataView, at: number): FlowRecord | undefined {
    const kind = FLOW_KINDS[view.getUint8(at + H.kind) - KIND_BEGIN];
    if (kind === undefined) return undefined;
    const bytes = this.#bytesOf(view), base = view.byteOffset + at;
    const family = view.getUint8(at + H.family) === 6 ? 6 : 4;
    const flags = view.getUint8(at + F.flags);
    const beginNs = u64(view, at + F.begin_ns);
    return {
      kind,
      timeUs: this.#timeUs(view, at),
      timeNs: u64(view, at + H.ts_ns),
      beginUs: beginNs === 0 ? null : this.#usFromNs(beginNs),
      beginNs,
      cgroupId: u64(view, at + H.cgroup_id),
      netns: view.getUint32(at + F.netns, true),
      netnsCookie: u64(view, at + F.netns_cookie),
      cookie: u64(view, at + F.cookie),
      family,
      localAddr: this.#addr(bytes, family, base + F.laddr),
      localPort: view.getUint16(at + F.lport, true),
      remoteAddr: this.#addr(bytes, family, base + F.raddr),
      remotePort: view.getUint16(at + F.rport, true),
      outgoing: (flags & FLOW_OUTGOING) !== 0,
      preexisting: (flags & FLOW_PREEXISTING) !== 0,
      synAcked: (flags & FLOW_SYN_ACKED) !== 0,
      end: END_HOW[view.getUint8(at + F.end)] ?? null,
      oldState: view.getUint8(at + F.old_state),
      newState: view.getUint8(at + F.new_state),
      skErr: view.getUint32(at + F.sk_err, true),
      owner: flags & FLOW_OWNER ? this.#owner(view, bytes, at, base, F.pid, F.uid, F.comm) : null,
      ownerAtClose: (flags & FLOW_OWNER_CLOSER) !== 0,
      mptcp: (flags & FLOW_MPTCP) !== 0,
      beginLost: (flags & FLOW_BEGIN_LOST) !== 0,
      repaired: (flags & FLOW_REPAIRED) !== 0,
      counters: {
        bytesAcked: u64(view, at + F.bytes_acked),
        bytesReceived: u64(view, at + F.bytes_received),
        sndUna: view.getUint32(at + F.snd_una, true),
        writeSeq: view.getUint32(at + F.write_seq, true),
        srttUs: view.getUint32(at + F.srtt_us, true),
        segsIn: view.getUint32(at + F.segs_in, true),
        segsOut: view.getUint32(at + F.segs_out, true),
        totalRetrans: view.getUint32(at + F.total_retrans, true),
      },
    };
  }

  #packet(view: DataView, at: number): TcpPacket {
    const bytes = this.#bytesOf(view), base = view.byteOffset + at;
    const family = view.getUint8(at + H.family) === 6 ? 6 : 4;
    const sockFlags = view.getUint8(at + P.sock_flags);
    return {
      kind: PACKET_KINDS[view.getUint8(at + H.kind)]!,
      timeUs: this.#timeUs(view, at),
      timeNs: u64(view, at + H.ts_ns),
      cgroupId: u64(view, at + H.cgroup_id),
      direction: view.getUint8(at + H.direction) === EGRESS ? "egress" : "ingress",
      family,
      src: this.#addr(bytes, family, base + P.saddr),
      dst: this.#addr(bytes, family, base + P.daddr),
      srcPort: view.getUint16(at + P.sport, true),
      dstPort: view.getUint16(at + P.dport, true),
      seq: view.getUint32(at + P.seq, true),
      ack: view.getUint32(at + P.ack_seq, true),
      flags: view.getUint8(at + P.tcp_flags),
      cookie: u64(view, at + P.sock_cookie),
      sockState: view.getUint8(at + P.sock_state),
      netns: view.getUint32(at + P.netns, true),
      netnsCookie: u64(view, at + P.netns_cookie),
      owner: sockFlags & SOCK_OWNER
        ? this.#owner(view, bytes, at, base, P.pid, P.uid, P.comm)
        : null,
    };
  }

  /** The record's owner (`at`: in `view`; `base`: the same place in `bytes`). */
  #owner(
    view: DataView,
    bytes: Uint8Array,
    at: number,
    base: number,
    pidAt: number,
    uidAt: number,
    commAt: number,
  ): SocketOwner {
    const pid = view.getUint32(at + pidAt, true);
    const uid = view.getUint32(at + uidAt, true);
    const known = this.#owners.get(pid);
    if (
      known !== undefined && known.owner.uid === uid && sameBytes(known.comm, bytes, base + commAt)
    ) {
      return known.owner;
    }
    const comm = cString(bytes, base + commAt, COMM_LEN);
    if (this.#owners.size >= 4096) this.#owners.clear();
    const owner = Object.freeze({ pid, uid, comm });
    this.#owners.set(pid, { owner, comm: bytes.slice(base + commAt, base + commAt + COMM_LEN) });
    return owner;
  }

  /** The update iterator's output as an {@link OpenList}. */
  openList(bytes: Uint8Array): OpenList {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const keys = new Map<string, number>();
    for (let at = 0; at + LAYOUT.nf_flow.size <= bytes.length; at += LAYOUT.nf_flow.size) {
      if (view.getUint8(at + H.kind) !== KIND_UPDATE) continue;
      const key = socketKey(
        view.getUint32(at + F.netns, true),
        u64(view, at + F.cookie),
        u64(view, at + F.begin_ns),
      );
      keys.set(key, at);
    }
    return { keys, record: (at: number) => this.flow(view, at) };
  }

  /** Decodes the tcp iterator's output: back-to-back nf_flow records. */
  snapshot(bytes: Uint8Array): FlowRecord[] {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out: FlowRecord[] = [];
    for (let at = 0; at + LAYOUT.nf_flow.size <= bytes.length; at += LAYOUT.nf_flow.size) {
      const record = this.flow(view, at);
      if (record !== undefined) out.push(record);
    }
    return out;
  }

  #dns(view: DataView, at: number, length: number): DnsMessage {
    const captured = Math.min(view.getUint16(at + D.captured_len, true), length - D.payload);
    const start = view.byteOffset + at + D.payload;
    const bytes = new Uint8Array(view.buffer, view.byteOffset + at, D.payload);
    const addr = view.getUint8(at + H.family) === 6 ? formatIPv6 : formatIPv4;
    return {
      kind: "dns",
      timeUs: this.#timeUs(view, at),
      timeNs: u64(view, at + H.ts_ns),
      cgroupId: u64(view, at + H.cgroup_id),
      direction: view.getUint8(at + H.direction) === EGRESS ? "egress" : "ingress",
      transport: view.getUint8(at + D.transport) === 6 ? "tcp" : "udp",
      netns: view.getUint32(at + D.netns, true),
      netnsCookie: u64(view, at + D.netns_cookie),
      queryCgroup: u64(view, at + D.query_cgroup),
      src: addr(bytes, D.saddr),
      dst: addr(bytes, D.daddr),
      srcPort: view.getUint16(at + D.sport, true),
      dstPort: view.getUint16(at + D.dport, true),
      queryId: view.getUint16(at + D.query_id, true),
      question: view.getBigUint64(at + D.question, true),
      streamOffset: view.getUint32(at + D.stream_off, true),
      length: view.getUint16(at + D.payload_len, true),
      // A copy: the ring's memory is reused once the record is consumed.
      payload: new Uint8Array(view.buffer.slice(start, start + Math.max(0, captured))),
    };
  }
}

/** A process holding a TCP socket, from the task_file iterator. */
export interface SocketHolder {
  /** The socket's cookie (an MPTCP socket's: its first subflow's). */
  readonly cookie: number;
  readonly netns: number;
  readonly family: 4 | 6;
  readonly localAddr: string;
  readonly localPort: number;
  readonly listening: boolean;
  readonly owner: SocketOwner;
}

/** Decodes the task_file iterator's output (back-to-back nf_holder records). */
export function decodeHolders(bytes: Uint8Array): SocketHolder[] {
  const F = LAYOUT.nf_holder.fields, size = LAYOUT.nf_holder.size;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: SocketHolder[] = [];
  for (let at = 0; at + size <= bytes.length; at += size) {
    const family = view.getUint8(at + F.family) === 6 ? 6 : 4;
    out.push({
      cookie: u64(view, at + F.cookie),
      netns: view.getUint32(at + F.netns, true),
      family,
      localAddr: (family === 6 ? formatIPv6 : formatIPv4)(bytes, at + F.saddr),
      localPort: view.getUint16(at + F.sport, true),
      listening: view.getUint8(at + F.state) === TCP_LISTEN,
      owner: {
        pid: view.getUint32(at + F.pid, true),
        uid: view.getUint32(at + F.uid, true),
        comm: cString(bytes, at + F.comm, COMM_LEN),
      },
    });
  }
  return out;
}

const TCP_LISTEN = 10;

/** Whether `bytes` at `at` starts with all of `known`. */
function sameBytes(known: Uint8Array, bytes: Uint8Array, at: number): boolean {
  for (let i = 0; i < known.length; i++) if (known[i] !== bytes[at + i]) return false;
  return true;
}

/** A NUL-terminated string of at most `max` bytes; ASCII without a decoder call. */
function cString(bytes: Uint8Array, at: number, max: number): string {
  let out = "";
  for (let i = at; i < at + max; i++) {
    const b = bytes[i]!;
    if (b === 0) return out;
    if (b >= 0x80) {
      const end = bytes.subarray(at, at + max).indexOf(0);
      return utf8.decode(bytes.subarray(at, end < 0 ? at + max : at + end));
    }
    out += String.fromCharCode(b);
  }
  return out;
}
