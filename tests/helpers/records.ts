/**
 * Synthetic kernel records for unit tests: flow records for the flow state
 * machine, DNS messages for the names cache.
 *
 * @module
 */
import {
  type DnsMessage,
  type EndHow,
  type FlowRecord,
  type OpenList,
  type SocketCounters,
  socketKey,
} from "../../src/bpf/records.ts";
import { LAYOUT } from "../../src/bpf/layout.ts";
import { parseIPInto } from "../../src/bpf/addr.ts";
import { HolderRows, type SocketHolder } from "../../src/bpf/holders.ts";

export interface Side {
  addr: string;
  port: number;
}

const EPOCH_US = 1_700_000_000_000_000;
/** The kernel's monotonic clock at the records' epoch: 1000 s after boot. */
const BOOT_NS = 1_000_000_000_000;

/** A record of the socket at `local` talking to `remote`. */
export function record(
  kind: FlowRecord["kind"],
  local: Side,
  remote: Side,
  opts: {
    cookie?: number;
    netns?: number;
    ms?: number;
    outgoing?: boolean;
    preexisting?: boolean;
    end?: EndHow;
    counters?: Partial<SocketCounters>;
    owner?: FlowRecord["owner"];
  } = {},
): FlowRecord {
  const outgoing = opts.outgoing ?? false;
  return {
    kind,
    timeUs: Math.round((opts.ms ?? 0) * 1000) + EPOCH_US,
    timeNs: Math.round((opts.ms ?? 0) * 1e6) + BOOT_NS,
    beginUs: EPOCH_US,
    beginNs: BOOT_NS,
    cgroupId: 42,
    netns: opts.netns ?? 4026531840,
    netnsCookie: 0,
    cookie: opts.cookie ?? 1,
    family: local.addr.includes(":") ? 6 : 4,
    localAddr: local.addr,
    localPort: local.port,
    remoteAddr: remote.addr,
    remotePort: remote.port,
    outgoing,
    preexisting: opts.preexisting ?? false,
    synAcked: outgoing,
    end: kind === "end" ? opts.end ?? "local-fin" : null,
    oldState: 1,
    newState: 1,
    skErr: 0,
    owner: opts.owner ?? null,
    counters: {
      bytesAcked: 0,
      bytesReceived: 0,
      sndUna: 0,
      writeSeq: 0,
      srttUs: 0,
      segsIn: 0,
      segsOut: 0,
      totalRetrans: 0,
      ...opts.counters,
    },
  };
}

/** One connection as the kernel reports it on `local`'s socket: a begin, then an end. */
export function connection(
  local: Side,
  remote: Side,
  opts: { cookie?: number; netns?: number; outgoing?: boolean; end?: EndHow; endMs?: number } = {},
): [FlowRecord, FlowRecord] {
  return [
    record("begin", local, remote, { ...opts, ms: 0 }),
    record("end", local, remote, { ...opts, ms: opts.endMs ?? 10 }),
  ];
}

/** An open-flow list (what the update iterator gives) of `records`. */
export function openList(records: readonly FlowRecord[]): OpenList[] {
  const keys = new Map(records.map((r, i) => [socketKey(r.netns, r.cookie, r.beginNs), i]));
  return [{ keys, record: (at) => records[at] }];
}

/** The time `ms` after the records' epoch, as onOpenList takes it (wall µs, monotonic ns). */
export function atMs(ms: number): { us: number; ns: number } {
  return { us: EPOCH_US + ms * 1000, ns: BOOT_NS + ms * 1e6 };
}

/** What {@link rawFlow} writes into an nf_flow record (the rest is zero). */
export interface RawFlow {
  kind: number;
  tsNs: bigint;
  beginNs: bigint;
  cookie?: bigint;
  outgoing?: boolean;
  /** enum nf_end: 1 local FIN, 2 remote FIN, ... */
  end?: number;
  local?: [string, number];
  remote?: [string, number];
  bytesAcked?: bigint;
  bytesReceived?: bigint;
  segsIn?: number;
  segsOut?: number;
  totalRetrans?: number;
}

/** One nf_flow record as the kernel writes it into the ring (IPv4, netns 4026531840). */
export function rawFlow(r: RawFlow): DataView {
  const F = LAYOUT.nf_flow.fields;
  const view = new DataView(new ArrayBuffer(LAYOUT.nf_flow.size));
  const bytes = new Uint8Array(view.buffer);
  view.setBigUint64(0, r.tsNs, true);
  view.setBigUint64(8, 42n, true); // cgroup_id
  view.setUint8(16, r.kind);
  view.setUint8(18, 4);
  const [laddr, lport] = r.local ?? ["10.0.0.1", 40000];
  const [raddr, rport] = r.remote ?? ["10.0.0.2", 80];
  bytes.set(laddr.split(".").map(Number), F.laddr);
  bytes.set(raddr.split(".").map(Number), F.raddr);
  view.setUint16(F.lport, lport, true);
  view.setUint16(F.rport, rport, true);
  view.setBigUint64(F.cookie, r.cookie ?? 1n, true);
  view.setBigUint64(F.begin_ns, r.beginNs, true);
  view.setBigUint64(F.bytes_acked, r.bytesAcked ?? 0n, true);
  view.setBigUint64(F.bytes_received, r.bytesReceived ?? 0n, true);
  view.setUint32(F.netns, 4026531840, true);
  view.setUint32(F.segs_in, r.segsIn ?? 0, true);
  view.setUint32(F.segs_out, r.segsOut ?? 0, true);
  view.setUint32(F.total_retrans, r.totalRetrans ?? 0, true);
  view.setUint8(F.flags, (r.outgoing ?? true) ? 1 | 8 : 0); // outgoing, SYN acked
  view.setUint8(F.end, r.end ?? 0);
  return view;
}

/** A DnsMessage as the decoder gives it: a matched UDP answer, or one TCP segment. */
export function dnsMessage(payload: Uint8Array, more: Partial<DnsMessage> = {}): DnsMessage {
  return {
    kind: "dns",
    timeUs: 0,
    timeNs: 0,
    cgroupId: 1,
    direction: "ingress",
    transport: "udp",
    netns: 4026531840,
    netnsCookie: 0,
    queryCgroup: 1,
    src: "192.0.2.53",
    dst: "192.0.2.1",
    srcPort: 53,
    dstPort: 40000,
    queryId: 7,
    question: 0n,
    streamOffset: 0,
    length: payload.length,
    payload,
    ...more,
  };
}

/**
 * The task_file iterator's output for `holders` (nf_holder rows, as
 * src/bpf/holders.ts reads them); an owner without a cgroup id gets 0.
 */
export function holderRows(holders: readonly SocketHolder[]): HolderRows {
  const F = LAYOUT.nf_holder.fields, size = LAYOUT.nf_holder.size;
  const bytes = new Uint8Array(holders.length * size);
  const view = new DataView(bytes.buffer);
  holders.forEach((h, i) => {
    const at = i * size;
    view.setBigUint64(at + F.cookie, BigInt(h.cookie), true);
    parseIPInto(h.localAddr, bytes, at + F.saddr);
    view.setUint32(at + F.pid, h.owner.pid, true);
    view.setUint32(at + F.uid, h.owner.uid, true);
    view.setUint32(at + F.netns, h.netns, true);
    view.setUint16(at + F.sport, h.localPort, true);
    bytes[at + F.family] = h.family;
    bytes[at + F.state] = h.listening ? 10 : 1; // TCP_LISTEN, TCP_ESTABLISHED
    bytes.set(new TextEncoder().encode(h.owner.comm), at + F.comm);
    view.setBigUint64(at + F.cgroup_id, BigInt(h.owner.cgroupId ?? 0), true);
  });
  return new HolderRows(bytes);
}

/** One namespace's start snapshot (the tcp iterator's output): back-to-back records, then `tail` bytes of a torn one. */
export function snapshotPart(
  records: readonly Omit<RawFlow, "tsNs" | "beginNs">[],
  tail = 0,
): Uint8Array {
  const size = LAYOUT.nf_flow.size;
  const bytes = new Uint8Array(records.length * size + tail);
  records.forEach((r, i) => {
    const view = rawFlow({ tsNs: 1000n, beginNs: 1000n, ...r });
    bytes.set(new Uint8Array(view.buffer), i * size);
  });
  return bytes;
}
