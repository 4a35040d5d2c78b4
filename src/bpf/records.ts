/**
 * Decodes ring buffer records. Mirrors bpf/netflow.h: the offsets below are
 * checked against the BTF of the built object by tests/unit/records_test.ts.
 *
 * @module
 */
import { formatIPv4, formatIPv6 } from "./addr.ts";

/** Byte offsets of each record's fields, by the names netflow.h gives them. */
export const LAYOUT = {
  nf_header: {
    size: 24,
    fields: { ts_ns: 0, cgroup_id: 8, kind: 16, direction: 17, family: 18, pad: 19 },
  },
  nf_tcp: {
    size: 152,
    fields: {
      hdr: 0,
      sock_cookie: 24,
      bytes_acked: 32,
      bytes_received: 40,
      saddr: 48,
      daddr: 64,
      seq: 80,
      ack_seq: 84,
      snd_una: 88,
      snd_nxt: 92,
      srtt_us: 96,
      segs_in: 100,
      segs_out: 104,
      total_retrans: 108,
      pid: 112,
      uid: 116,
      sport: 120,
      dport: 122,
      payload_len: 124,
      tcp_flags: 126,
      sock_flags: 127,
      sock_state: 128,
      pad: 129,
      comm: 136,
    },
  },
  nf_holder: {
    size: 72,
    fields: {
      cookie: 0,
      saddr: 8,
      daddr: 24,
      pid: 40,
      uid: 44,
      sport: 48,
      dport: 50,
      family: 52,
      state: 53,
      pad: 54,
      comm: 56,
    },
  },
  nf_config: {
    size: 8,
    fields: { forward_all: 0, pad: 1 },
  },
  nf_dns: {
    size: 1312,
    fields: { hdr: 0, payload_len: 24, captured_len: 26, transport: 28, pad: 29, payload: 32 },
  },
} as const;

export const KIND_TCP = 1;
export const KIND_DNS = 2;
const EGRESS = 1;
const SOCK_TCP = 1;
const SOCK_OWNER = 2;
const SOCK_LISTENER = 4;
const SOCK_LOCAL_LISTENS = 8;
const COMM_LEN = 16;

/** TCP header flag bits, as in the tcp_flags byte. */
export const TcpFlags = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

export type Direction = "ingress" | "egress";

/** The creating process, stamped into socket storage by cgroup/sock_create. */
export interface SocketOwner {
  readonly pid: number;
  readonly uid: number;
  readonly comm: string;
}

/** The kernel socket's own counters, read when a FIN or RST passes. */
export interface TcpCounters {
  readonly bytesAcked: number;
  readonly bytesReceived: number;
  readonly sndUna: number;
  readonly sndNxt: number;
  readonly srttUs: number;
  readonly segsIn: number;
  readonly segsOut: number;
  readonly totalRetrans: number;
}

/** One TCP control packet (SYN, FIN or RST) seen on a local socket. */
export interface TcpPacket {
  readonly kind: "tcp";
  /** When the kernel saw it, in µs since the Unix epoch (exact in a double). */
  readonly timeUs: number;
  readonly cgroupId: number;
  /** egress: sent by the local socket; ingress: received by it. */
  readonly direction: Direction;
  readonly family: 4 | 6;
  readonly src: string;
  readonly dst: string;
  readonly srcPort: number;
  readonly dstPort: number;
  readonly seq: number;
  readonly ack: number;
  readonly flags: number;
  readonly payloadLength: number;
  readonly cookie: number;
  /** The packet belongs to a listening socket (a handshake on the server side). */
  readonly listener: boolean;
  /** At FIN/RST: a listening socket owns the local port (the flow is likely incoming). */
  readonly localPortListens: boolean;
  /** The local socket's TCP state (1 established, 2 syn-sent, ...), 0 when unknown. */
  readonly sockState: number;
  readonly owner: SocketOwner | null;
  readonly counters: TcpCounters | null;
}

/** One DNS response message as the kernel copied it. */
export interface DnsMessage {
  readonly kind: "dns";
  readonly timeUs: number;
  readonly cgroupId: number;
  readonly direction: Direction;
  readonly transport: "udp" | "tcp";
  /** The message's length on the wire; more than payload.length when it was cut. */
  readonly length: number;
  readonly payload: Uint8Array;
}

export type KernelRecord = TcpPacket | DnsMessage;

const T = LAYOUT.nf_tcp.fields;
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
  readonly #clockOffsetUs: number;
  /** One owner object per process, shared by its packets (and the flows that keep them). */
  readonly #owners = new Map<number, SocketOwner>();

  constructor(clockOffsetUs: number) {
    this.#clockOffsetUs = clockOffsetUs;
  }

  decode(view: DataView, offset: number, length: number): KernelRecord | undefined {
    if (length < LAYOUT.nf_header.size) return undefined;
    const kind = view.getUint8(offset + H.kind);
    if (kind === KIND_TCP && length >= LAYOUT.nf_tcp.size) return this.#tcp(view, offset);
    if (kind === KIND_DNS && length >= D.payload) return this.#dns(view, offset, length);
    return undefined;
  }

  #timeUs(view: DataView, at: number): number {
    return Math.floor(u64(view, at + H.ts_ns) / 1000) + this.#clockOffsetUs;
  }

  #tcp(view: DataView, at: number): TcpPacket {
    const bytes = new Uint8Array(view.buffer, view.byteOffset + at, LAYOUT.nf_tcp.size);
    const family = view.getUint8(at + H.family) === 6 ? 6 : 4;
    const addr = family === 6 ? formatIPv6 : formatIPv4;
    const sockFlags = view.getUint8(at + T.sock_flags);
    return {
      kind: "tcp",
      timeUs: this.#timeUs(view, at),
      cgroupId: u64(view, at + H.cgroup_id),
      direction: view.getUint8(at + H.direction) === EGRESS ? "egress" : "ingress",
      family,
      src: addr(bytes, T.saddr),
      dst: addr(bytes, T.daddr),
      srcPort: view.getUint16(at + T.sport, true),
      dstPort: view.getUint16(at + T.dport, true),
      seq: view.getUint32(at + T.seq, true),
      ack: view.getUint32(at + T.ack_seq, true),
      flags: view.getUint8(at + T.tcp_flags),
      payloadLength: view.getUint16(at + T.payload_len, true),
      cookie: u64(view, at + T.sock_cookie),
      listener: (sockFlags & SOCK_LISTENER) !== 0,
      localPortListens: (sockFlags & SOCK_LOCAL_LISTENS) !== 0,
      sockState: view.getUint8(at + T.sock_state),
      owner: sockFlags & SOCK_OWNER ? this.#owner(view, bytes, at) : null,
      counters: sockFlags & SOCK_TCP
        ? {
          bytesAcked: u64(view, at + T.bytes_acked),
          bytesReceived: u64(view, at + T.bytes_received),
          sndUna: view.getUint32(at + T.snd_una, true),
          sndNxt: view.getUint32(at + T.snd_nxt, true),
          srttUs: view.getUint32(at + T.srtt_us, true),
          segsIn: view.getUint32(at + T.segs_in, true),
          segsOut: view.getUint32(at + T.segs_out, true),
          totalRetrans: view.getUint32(at + T.total_retrans, true),
        }
        : null,
    };
  }

  #owner(view: DataView, bytes: Uint8Array, at: number): SocketOwner {
    const pid = view.getUint32(at + T.pid, true);
    const uid = view.getUint32(at + T.uid, true);
    const comm = cString(bytes, T.comm, COMM_LEN);
    const known = this.#owners.get(pid);
    if (known !== undefined && known.uid === uid && known.comm === comm) return known;
    if (this.#owners.size >= 4096) this.#owners.clear();
    const owner = Object.freeze({ pid, uid, comm });
    this.#owners.set(pid, owner);
    return owner;
  }

  #dns(view: DataView, at: number, length: number): DnsMessage {
    const captured = Math.min(view.getUint16(at + D.captured_len, true), length - D.payload);
    const start = view.byteOffset + at + D.payload;
    return {
      kind: "dns",
      timeUs: this.#timeUs(view, at),
      cgroupId: u64(view, at + H.cgroup_id),
      direction: view.getUint8(at + H.direction) === EGRESS ? "egress" : "ingress",
      transport: view.getUint8(at + D.transport) === 6 ? "tcp" : "udp",
      length: view.getUint16(at + D.payload_len, true),
      // A copy: the ring's memory is reused once the record is consumed.
      payload: new Uint8Array(view.buffer.slice(start, start + Math.max(0, captured))),
    };
  }
}

/** A process holding a TCP socket, from the task_file iterator. */
export interface SocketHolder {
  readonly cookie: number;
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
    out.push({
      cookie: u64(view, at + F.cookie),
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
