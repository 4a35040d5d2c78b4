/**
 * The TCP flow state machine: control packets in, flow events out. Pure: no
 * I/O, no clock but the packets' own timestamps.
 *
 * A flow is keyed by its local endpoint (cgroup, local and remote address and
 * port), never by socket: on the server side the SYN, the SYN+ACK and the
 * handshake ACK carry the listener socket. Each flow moves through
 *
 *   pending (SYN seen) -> open (SYN+ACK seen: begin) -> closed (first FIN/RST: end)
 *
 * and is then kept briefly as a tombstone so that the FIN the other way, a
 * retransmitted FIN or a RST after the FIN produce nothing.
 *
 * @module
 */
import { type SocketOwner, TcpFlags, type TcpPacket } from "../bpf/records.ts";
import {
  EVENT_BEGIN,
  EVENT_END,
  type FlowBeginEvent,
  type FlowEndEvent,
  type FlowEvent,
  type FlowEventBase,
  formatTime,
} from "./events.ts";

/** What the flow table knows about a flow when it asks for its owner. */
export interface OwnerQuery {
  /** The cookie of the socket the packet came through. */
  cookie: number;
  direction: "outgoing" | "incoming";
  localPort: number;
  /** The creator stamped into socket storage (a listener's, for accepted sockets), if any. */
  creator: SocketOwner | null;
}

/** What the flow table asks of enrichment; every member has a neutral default. */
export interface FlowContext {
  /** Names the DNS cache holds for an address (queried name first, then CNAMEs). */
  names(addr: string): readonly string[];
  /** The cgroup path (under the v2 root) and container id of a cgroup id. */
  cgroup(id: number): { path: string; containerId: string | null };
  /** The flow's owner, given what the packets said (`creator`); by default the creator. */
  owner(query: OwnerQuery): SocketOwner | null;
}

export interface Endpoint {
  readonly addr: string;
  readonly port: number;
}

export interface FlowTableOptions {
  /** Open flows kept at most; the oldest is evicted (and counted) beyond it. */
  maxFlows?: number;
  /** How long a handshake may wait for its SYN+ACK. */
  pendingTtlMs?: number;
  /** How long an ended flow swallows late FINs and RSTs. */
  closedTtlMs?: number;
  /** Prefix of flow ids; unique per run by default. */
  idPrefix?: string;
  context?: Partial<FlowContext>;
}

export interface FlowStats {
  /** Open flows now. */
  open: number;
  /** Open flows dropped because the table was full. */
  evicted: number;
  /** Handshakes that never completed (no SYN+ACK within the TTL) or were crowded out. */
  abandoned: number;
}

interface Flow {
  /** Made into the flow_id string only when an event is written. */
  readonly id: number;
  readonly direction: "outgoing" | "incoming";
  readonly local: Endpoint;
  readonly remote: Endpoint;
  readonly cgroupId: number;
  /** Times in µs since the Unix epoch, from the packets. */
  readonly createdUs: number;
  beginUs: number | null;
  localIsn: number | null;
  remoteIsn: number | null;
  owner: SocketOwner | null;
  /** The owner has been asked of the context (once per flow). */
  ownerResolved: boolean;
  /** The cookie of the socket that made the flow (for the context's owner lookup). */
  readonly cookie: number;
  /** Names taken at begin, kept for the end event. */
  localNames: readonly string[] | null;
  remoteNames: readonly string[] | null;
}

const { FIN, SYN, RST, ACK } = TcpFlags;
// Socket states that mean "never established": a RST there is a refusal, not an end.
const TCP_SYN_SENT = 2, TCP_SYN_RECV = 3, TCP_LISTEN = 10, TCP_NEW_SYN_RECV = 12;
const NOT_ESTABLISHED = new Set([TCP_SYN_SENT, TCP_SYN_RECV, TCP_LISTEN, TCP_NEW_SYN_RECV]);
const US_PER_MS = 1000;
const NO_NAMES: readonly string[] = Object.freeze([]);
/** Expired handshakes and tombstones are swept at most this often. */
const SWEEP_EVERY_US = 1_000_000;

const DEFAULT_CONTEXT: FlowContext = {
  names: () => NO_NAMES,
  cgroup: () => ({ path: "", containerId: null }),
  owner: (q) => q.creator,
};

export class FlowTable {
  readonly #pending = new Map<string, Flow>();
  readonly #open = new Map<string, Flow>();
  /** Tombstones: key -> when the flow ended. */
  readonly #closed = new Map<string, number>();
  readonly #maxFlows: number;
  readonly #pendingTtlUs: number;
  readonly #closedTtlUs: number;
  readonly #idPrefix: string;
  readonly #context: FlowContext;
  #nextId = 1;
  #lastSweepUs = -Infinity;
  #evicted = 0;
  #abandoned = 0;

  constructor(options: FlowTableOptions = {}) {
    this.#maxFlows = options.maxFlows ?? 131_072;
    this.#pendingTtlUs = (options.pendingTtlMs ?? 180_000) * US_PER_MS;
    this.#closedTtlUs = (options.closedTtlMs ?? 60_000) * US_PER_MS;
    this.#idPrefix = options.idPrefix ?? Math.floor(Math.random() * 0xffffff).toString(16);
    this.#context = { ...DEFAULT_CONTEXT, ...options.context };
  }

  get stats(): FlowStats {
    return { open: this.#open.size, evicted: this.#evicted, abandoned: this.#abandoned };
  }

  /** Feeds one control packet; returns the event it completes, if any. */
  onPacket(p: TcpPacket): FlowEvent | undefined {
    if (p.timeUs - this.#lastSweepUs >= SWEEP_EVERY_US) this.#expire(p.timeUs);
    const egress = p.direction === "egress";
    const local = egress ? { addr: p.src, port: p.srcPort } : { addr: p.dst, port: p.dstPort };
    const remote = egress ? { addr: p.dst, port: p.dstPort } : { addr: p.src, port: p.srcPort };
    const key = `${p.cgroupId}|${local.addr}|${local.port}|${remote.addr}|${remote.port}`;
    if (p.flags & SYN) {
      if (p.flags & ACK) return this.#synAck(p, key, local, remote);
      this.#syn(p, key, local, remote);
      return undefined;
    }
    if (p.flags & (FIN | RST)) return this.#end(p, key, local, remote);
    return undefined;
  }

  /** A SYN opens a handshake; a retransmitted one changes nothing. */
  #syn(p: TcpPacket, key: string, local: Endpoint, remote: Endpoint): void {
    if (this.#pending.has(key)) return;
    // The endpoint is reused: whatever was there before is over.
    this.#closed.delete(key);
    if (this.#open.delete(key)) this.#evicted++;
    const flow = this.#newFlow(
      p,
      local,
      remote,
      p.direction === "egress" ? "outgoing" : "incoming",
    );
    if (p.direction === "egress") flow.localIsn = p.seq;
    else flow.remoteIsn = p.seq;
    if (this.#pending.size >= this.#maxFlows) this.#dropOldest(this.#pending);
    this.#pending.set(key, flow);
  }

  /** The SYN+ACK establishes the flow: egress means the local side accepted. */
  #synAck(
    p: TcpPacket,
    key: string,
    local: Endpoint,
    remote: Endpoint,
  ): FlowBeginEvent | undefined {
    if (this.#open.has(key)) return undefined; // a retransmitted SYN+ACK
    const egress = p.direction === "egress";
    const flow = this.#pending.get(key) ??
      this.#newFlow(p, local, remote, egress ? "incoming" : "outgoing");
    this.#pending.delete(key);
    this.#closed.delete(key);
    // The SYN+ACK acknowledges the initiator's ISN and carries the acceptor's.
    if (egress) [flow.localIsn, flow.remoteIsn] = [p.seq, (p.ack - 1) >>> 0];
    else [flow.remoteIsn, flow.localIsn] = [p.seq, (p.ack - 1) >>> 0];
    flow.beginUs = p.timeUs;
    flow.owner = p.owner ?? flow.owner;
    if (this.#open.size >= this.#maxFlows) {
      this.#dropOldest(this.#open);
      this.#evicted++;
    }
    this.#open.set(key, flow);
    return this.#beginEvent(flow, p);
  }

  /** The first FIN or RST ends an open flow; anything after it is a duplicate. */
  #end(p: TcpPacket, key: string, local: Endpoint, remote: Endpoint): FlowEndEvent | undefined {
    if (this.#closed.has(key)) return undefined;
    // A RST (or FIN) during the handshake: refused or aborted, never a flow.
    if (this.#pending.delete(key)) return undefined;
    let flow = this.#open.get(key);
    if (flow) {
      this.#open.delete(key);
    } else {
      // A flow whose begin netflow did not see: it predates netflow, or was evicted.
      if (NOT_ESTABLISHED.has(p.sockState)) return undefined;
      flow = this.#newFlow(p, local, remote, p.localPortListens ? "incoming" : "outgoing");
    }
    if (this.#closed.size >= this.#maxFlows) this.#closed.delete(this.#closed.keys().next().value!);
    this.#closed.set(key, p.timeUs);
    return this.#endEvent(flow, p);
  }

  #newFlow(p: TcpPacket, local: Endpoint, remote: Endpoint, direction: Flow["direction"]): Flow {
    return {
      id: this.#nextId++,
      direction,
      local,
      remote,
      cgroupId: p.cgroupId,
      createdUs: p.timeUs,
      beginUs: null,
      localIsn: null,
      remoteIsn: null,
      owner: p.owner,
      ownerResolved: false,
      cookie: p.cookie,
      localNames: null,
      remoteNames: null,
    };
  }

  #beginEvent(flow: Flow, p: TcpPacket): FlowBeginEvent {
    flow.localNames = this.#context.names(flow.local.addr);
    flow.remoteNames = this.#context.names(flow.remote.addr);
    // In a begin event src is the initiator.
    return this.#event(flow, p, EVENT_BEGIN, flow.direction === "outgoing");
  }

  #endEvent(flow: Flow, p: TcpPacket): FlowEndEvent {
    flow.localNames ??= this.#context.names(flow.local.addr);
    flow.remoteNames ??= this.#context.names(flow.remote.addr);
    flow.owner ??= p.owner;
    // In an end event src is the side that sent this FIN or RST.
    const egress = p.direction === "egress";
    const end = this.#event(flow, p, EVENT_END, egress) as unknown as FlowEndEvent;
    const counters = endCounters(flow, p);
    end.closed_by = egress ? "local" : "remote";
    end.reason = p.flags & RST ? "rst" : "fin";
    end.duration_ms = flow.beginUs === null ? null : (p.timeUs - flow.beginUs) / US_PER_MS;
    end.bytes_sent = counters.bytesSent;
    end.bytes_received = counters.bytesReceived;
    end.packets_sent = counters.packetsSent;
    end.packets_received = counters.packetsReceived;
    end.rtt_us = counters.rttUs;
    end.retransmits = counters.retransmits;
    return end;
  }

  /** The fields every flow event has; `localIsSrc` orients it. */
  #event<E extends typeof EVENT_BEGIN | typeof EVENT_END>(
    flow: Flow,
    p: TcpPacket,
    event: E,
    localIsSrc: boolean,
  ): FlowEventBase & { event: E } {
    const owner = this.#owner(flow);
    const cgroup = this.#context.cgroup(flow.cgroupId);
    const [src, dst] = localIsSrc ? [flow.local, flow.remote] : [flow.remote, flow.local];
    const localNames = flow.localNames ?? NO_NAMES, remoteNames = flow.remoteNames ?? NO_NAMES;
    return {
      time: formatTime(p.timeUs),
      event,
      flow_id: `${this.#idPrefix}-${flow.id}`,
      conn_direction: flow.direction,
      src: src.addr,
      dst: dst.addr,
      src_port: src.port,
      dst_port: dst.port,
      src_dns: localIsSrc ? localNames : remoteNames,
      dst_dns: localIsSrc ? remoteNames : localNames,
      pid: owner?.pid ?? null,
      comm: owner?.comm ?? null,
      uid: owner?.uid ?? null,
      cgroup_id: flow.cgroupId,
      cgroup: cgroup.path,
      container_id: cgroup.containerId,
    };
  }

  /** Asks the context once per flow, with what the packets said. */
  #owner(flow: Flow): SocketOwner | null {
    if (!flow.ownerResolved) {
      flow.ownerResolved = true;
      flow.owner = this.#context.owner({
        cookie: flow.cookie,
        direction: flow.direction,
        localPort: flow.local.port,
        creator: flow.owner,
      });
    }
    return flow.owner;
  }

  /** Drops handshakes and tombstones older than their TTL (maps are in insertion order). */
  #expire(nowUs: number): void {
    this.#lastSweepUs = nowUs;
    for (const [key, flow] of this.#pending) {
      if (nowUs - flow.createdUs < this.#pendingTtlUs) break;
      this.#pending.delete(key);
      this.#abandoned++;
    }
    for (const [key, closedUs] of this.#closed) {
      if (nowUs - closedUs < this.#closedTtlUs) break;
      this.#closed.delete(key);
    }
  }

  #dropOldest(map: Map<string, Flow>): void {
    const oldest = map.keys().next();
    if (oldest.done) return;
    map.delete(oldest.value);
    if (map === this.#pending) this.#abandoned++;
  }
}

/**
 * The local endpoint's counters at the end. The socket's 64-bit counters are
 * the base; what is in flight comes from the sequence space: bytes sent but not
 * yet acknowledged, and the payload of the closing packet itself (the ingress
 * hook runs before TCP counts it). Without socket counters, the sequence and
 * acknowledgement numbers against the handshake's ISNs give 32-bit counts.
 */
function endCounters(flow: Flow, p: TcpPacket): {
  bytesSent: number | null;
  bytesReceived: number | null;
  packetsSent: number | null;
  packetsReceived: number | null;
  rttUs: number | null;
  retransmits: number | null;
} {
  const egress = p.direction === "egress";
  const c = p.counters;
  if (c) {
    const inFlight = egress ? p.seq + p.payloadLength - c.sndUna : c.sndNxt - c.sndUna;
    // The active opener's bytes_acked counts its SYN (snd_una moves past it in
    // tcp_ack); an accepted socket is created with snd_una already past it.
    const syn = flow.direction === "outgoing" && c.bytesAcked > 0 ? 1 : 0;
    return {
      bytesSent: c.bytesAcked - syn + (inFlight >>> 0),
      bytesReceived: c.bytesReceived + (egress ? 0 : p.payloadLength),
      packetsSent: c.segsOut,
      packetsReceived: c.segsIn + (egress ? 0 : 1),
      rttUs: c.srttUs,
      retransmits: c.totalRetrans,
    };
  }
  const known = flow.localIsn !== null && flow.remoteIsn !== null;
  const localEnd = egress ? p.seq + p.payloadLength : p.ack;
  const remoteEnd = egress ? p.ack : p.seq + p.payloadLength;
  // Without ACK the packet says nothing of the other side's sequence space.
  const hasAck = (p.flags & ACK) !== 0;
  return {
    bytesSent: known && (egress || hasAck) ? (localEnd - flow.localIsn! - 1) >>> 0 : null,
    bytesReceived: known && (!egress || hasAck) ? (remoteEnd - flow.remoteIsn! - 1) >>> 0 : null,
    packetsSent: null,
    packetsReceived: null,
    rttUs: null,
    retransmits: null,
  };
}
