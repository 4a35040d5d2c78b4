/**
 * Decodes ring buffer records, laid out as bpf/netflow.h says (src/bpf/layout.ts;
 * the constants, src/bpf/abi.ts, are checked by tests/unit/abi_test.ts).
 *
 * @module
 */
import { NF_DIRECTION, NF_END, NF_FLOW, NF_SOCK } from "./abi.ts";
import { formatIPv4, formatIPv6 } from "./addr.ts";
import { Interned, type SocketOwner } from "./intern.ts";
import {
  KIND_BEGIN,
  KIND_DNS,
  KIND_FAIL,
  KIND_HS_RST,
  KIND_PACKET,
  KIND_REFUSED,
  KIND_SYN,
  KIND_UPDATE,
  LAYOUT,
  u64,
} from "./layout.ts";

/** nf_flow kinds, in enum nf_kind order from KIND_BEGIN. */
const FLOW_KINDS: readonly FlowRecord["kind"][] = [
  "begin",
  "end",
  "listen",
  "release",
  "update",
  "fail",
];
/** nf_packet kinds by enum nf_kind value. */
const PACKET_KINDS: Record<number, TcpPacket["kind"]> = {
  [KIND_PACKET]: "packet",
  [KIND_SYN]: "syn",
  [KIND_HS_RST]: "hs-rst",
  [KIND_REFUSED]: "refused",
};

export type { SocketOwner } from "./intern.ts";
export * from "./record_types.ts";
import type {
  DnsMessage,
  EndHow,
  FailHow,
  FlowRecord,
  KernelRecord,
  OpenList,
  TcpPacket,
} from "./record_types.ts";
import { socketKey } from "./record_types.ts";

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

const F = LAYOUT.nf_flow.fields;
const P = LAYOUT.nf_packet.fields;
const H = LAYOUT.nf_header.fields;
const D = LAYOUT.nf_dns.fields;

/**
 * Turns raw records into {@link KernelRecord}s. `clockOffsetUs` converts the
 * kernel's monotonic timestamps to Unix time. Records that are shorter than
 * their layout or of an unknown kind return `undefined` (the caller counts them).
 */
export class RecordDecoder {
  /** Realtime minus monotonic, re-read by the monitor (clock steps, suspend). */
  clockOffsetUs: number;
  /** Owners and IPv4 addresses shared by the records that name them. */
  readonly #interned = new Interned();
  /** Bytes over the buffer records were last read from (the ring's: one for all drains). */
  #bytes: Uint8Array = new Uint8Array(0);

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

  /**
   * Lets go of the buffer records were last read from: the start snapshot's
   * (src/flow/snapshot.ts), which would otherwise stay until the ring's first record.
   */
  forget(): void {
    this.#bytes = new Uint8Array(0);
  }

  /** A byte view over all of `view`'s buffer (made once per buffer, not per record). */
  #bytesOf(view: DataView): Uint8Array {
    if (this.#bytes.buffer !== view.buffer) this.#bytes = new Uint8Array(view.buffer);
    return this.#bytes;
  }

  /** The address at `at` (absolute in `bytes`) as text; IPv4 strings are interned. */
  #addr(bytes: Uint8Array, family: 4 | 6, at: number): string {
    return this.#interned.addr(bytes, family, at);
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
      outgoing: (flags & NF_FLOW.OUTGOING) !== 0,
      preexisting: (flags & NF_FLOW.PREEXISTING) !== 0,
      synAcked: (flags & NF_FLOW.SYN_ACKED) !== 0,
      end: END_HOW[view.getUint8(at + F.end)] ?? null,
      oldState: view.getUint8(at + F.old_state),
      newState: view.getUint8(at + F.new_state),
      skErr: view.getUint32(at + F.sk_err, true),
      owner: flags & NF_FLOW.OWNER
        ? this.#owner(view, bytes, at, base, F.pid, F.uid, F.comm)
        : null,
      ownerAtClose: (flags & NF_FLOW.OWNER_CLOSER) !== 0,
      mptcp: (flags & NF_FLOW.MPTCP) !== 0,
      beginLost: (flags & NF_FLOW.BEGIN_LOST) !== 0,
      repaired: (flags & NF_FLOW.REPAIRED) !== 0,
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
      direction: view.getUint8(at + H.direction) === NF_DIRECTION.EGRESS ? "egress" : "ingress",
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
      owner: sockFlags & NF_SOCK.OWNER
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
    return this.#interned.owner(pid, view.getUint32(at + uidAt, true), bytes, base + commAt);
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
      direction: view.getUint8(at + H.direction) === NF_DIRECTION.EGRESS ? "egress" : "ingress",
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
