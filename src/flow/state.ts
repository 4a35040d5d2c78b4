/**
 * The TCP flow state machine: the kernel's socket records in, flow events out.
 * Pure: no I/O, no clock but the records' own timestamps. Durations are
 * differences of the kernel's monotonic times (`timeNs`), never of two
 * wall-clock conversions: a clock step between a begin and its end changes
 * the events' `time`, not their `duration_ms`.
 *
 * The kernel decides what a flow is (bpf/netflow.bpf.c): a begin record when
 * a TCP socket reaches ESTABLISHED, one end record when it leaves the open
 * states, each written once per socket. This table pairs them by socket
 * identity (network namespace and socket cookie, so a reused 4-tuple is a new
 * flow), orients and enriches the events, and stays correct when records are
 * duplicated, lost or evicted:
 *
 *   begin -> open -> end (the flow is forgotten, its key kept briefly so a
 *   duplicate record ends nothing twice)
 *
 * @module
 */
import {
  type FlowRecord,
  type OpenList,
  type SocketCounters,
  socketKey,
  type SocketOwner,
  type TcpPacket,
} from "../bpf/records.ts";
import {
  EVENT_BEGIN,
  EVENT_END,
  EVENT_FAIL,
  EVENT_UPDATE,
  type FlowBeginEvent,
  type FlowCounters,
  type FlowEndEvent,
  type FlowEvent,
  type FlowEventBase,
  type FlowFailEvent,
  type FlowUpdateEvent,
  formatTime,
} from "../events.ts";

/** What the flow table knows about a flow when it asks for its owner. */
export interface OwnerQuery {
  /** The socket's cookie. */
  cookie: number;
  netns: number;
  direction: "outgoing" | "incoming";
  localPort: number;
  /** The owner stamped into socket storage (the creator, or who called connect), if any. */
  creator: SocketOwner | null;
}

/** What the flow table asks of enrichment; every member has a neutral default. */
export interface FlowContext {
  /** Names the DNS cache of network namespace `netns` holds for an address. */
  names(addr: string, netns: number): readonly string[];
  /** The cgroup path (under the v2 root) and container id of a cgroup id. */
  cgroup(id: number): { path: string; containerId: string | null };
  /** The flow's owner, given what the kernel said (`creator`); by default the creator. */
  owner(query: OwnerQuery): SocketOwner | null;
}

export interface Endpoint {
  readonly addr: string;
  readonly port: number;
}

export interface FlowTableOptions {
  /** Open flows kept at most; the oldest is evicted (and counted) beyond it. */
  maxFlows?: number;
  /** Half-open attempts tracked at most (for fail events); the oldest is evicted beyond it. */
  maxHalfOpen?: number;
  /** Prefix of flow ids; unique per run by default. */
  idPrefix?: string;
  context?: Partial<FlowContext>;
  /**
   * Whether begin events are wanted (default true). Without them a begin is
   * still tracked (its names and time kept for the end) but no event object
   * is made for it (`--events net_flow_tcp_end`).
   */
  begins?: boolean;
}

export interface FlowStats {
  /** Open flows now. */
  open: number;
  /** Open flows dropped because the table was full. */
  evicted: number;
  /** Records that repeated a begin or an end already reported (ignored). */
  duplicates: number;
  /** Half-open attempts tracked now, and those dropped because that table was full. */
  halfOpen: number;
  halfOpenEvicted: number;
  /** Flows ended with reason unknown: their socket went away, its end record lost. */
  unknownEnds: number;
}

interface Flow {
  /** Made into the flow_id string only when an event is written. */
  readonly id: number;
  readonly direction: "outgoing" | "incoming";
  readonly local: Endpoint;
  readonly remote: Endpoint;
  readonly cgroupId: number;
  readonly netns: number;
  readonly cookie: number;
  readonly preexisting: boolean;
  /** When netflow reported the begin, as the kernel's monotonic ns; null when it did not. */
  readonly beginNs: number | null;
  owner: SocketOwner | null;
  /** The owner has been asked of the context (once per flow). */
  ownerResolved: boolean;
  /** Reconcile sweeps in a row that did not find its socket open. */
  missed: number;
  /**
   * The kernel's 32-bit counters (segs_in, segs_out, total_retrans) made
   * 64-bit: the last raw value seen and the wraps since; null until a record
   * of the flow gave them. When they were last seen (monotonic ns).
   */
  wide: WideCounters | null;
  wideNs: number;
  /** Names taken at begin, kept for the end event. */
  localNames: readonly string[] | null;
  remoteNames: readonly string[] | null;
}

/** A listening socket, from the start snapshot: it orients the flows found beside it. */
export interface Listener {
  readonly netns: number;
  readonly addr: string;
  readonly port: number;
}

/** A half-open attempt is forgotten after this long (the kernel's SYN-ACK retries end sooner). */
const HALF_OPEN_TTL_NS = 120e9;
/**
 * How long an ended flow's key is kept to ignore a repeat of its records
 * (a copy from the kernel's store, a sweep that missed it: seconds later).
 * Only the count bound (maxFlows) held it before: at 25 ends a second the
 * keys grew by ~150 KB a minute for an hour and a half (the soak's heap).
 */
export const ENDED_KEEP_NS = 600e9;
const NO_NAMES: readonly string[] = Object.freeze([]);
/** Open flows tracked at most unless told (`--max-flows`). */
export const DEFAULT_MAX_FLOWS = 131_072;

/** Counters are numbers in JSON: anything at or above 2^53 would not stay exact. */
const MAX_EXACT = Number.MAX_SAFE_INTEGER;

const DEFAULT_CONTEXT: FlowContext = {
  names: () => NO_NAMES,
  cgroup: () => ({ path: "", containerId: null }),
  owner: (q) => q.creator,
};

export class FlowTable {
  readonly #open = new Map<string, Flow>();
  /** Keys of flows that ended recently, by when (kernel ns), oldest first: a repeat is ignored. */
  readonly #ended = new Map<string, number>();
  /** SYNs that reached a listener: key -> when (monotonic ns), until it establishes or fails. */
  readonly #halfOpen = new Map<string, number>();
  readonly #maxFlows: number;
  readonly #maxHalfOpen: number;
  readonly #idPrefix: string;
  readonly #context: FlowContext;
  readonly #begins: boolean;
  #nextId = 1;
  #evicted = 0;
  #duplicates = 0;
  #halfOpenEvicted = 0;
  #unknownEnds = 0;

  constructor(options: FlowTableOptions = {}) {
    this.#maxFlows = options.maxFlows ?? DEFAULT_MAX_FLOWS;
    this.#maxHalfOpen = options.maxHalfOpen ?? 65_536;
    this.#idPrefix = options.idPrefix ?? Math.floor(Math.random() * 0xffffff).toString(16);
    this.#context = { ...DEFAULT_CONTEXT, ...options.context };
    this.#begins = options.begins ?? true;
  }

  get stats(): FlowStats {
    return {
      open: this.#open.size,
      evicted: this.#evicted,
      duplicates: this.#duplicates,
      halfOpen: this.#halfOpen.size,
      halfOpenEvicted: this.#halfOpenEvicted,
      unknownEnds: this.#unknownEnds,
    };
  }

  /** Whether the flow of this record is open (its begin was seen and no end yet). */
  isOpen(r: FlowRecord): boolean {
    return this.#open.has(flowKey(r));
  }

  /** Feeds one kernel record; returns the event it makes, if any. */
  onRecord(r: FlowRecord): FlowEvent | undefined {
    if (r.kind === "begin") {
      if (!r.outgoing) this.#halfOpen.delete(tupleKey(r.netns, r));
      return this.#begin(r, r.outgoing ? "outgoing" : "incoming");
    }
    if (r.kind === "end") return this.#end(r);
    if (r.kind === "fail") return this.#fail(r);
    return undefined;
  }

  /**
   * The open flows the kernel listed (the update iterator, `update` records)
   * at `now` (wall µs for the events' time, monotonic ns for durations): an update event for each flow open at least `updateEveryUs`
   * (none when null), and a `reason: unknown` end for each flow whose socket
   * was missing from two lists in a row (its end record was lost). Only the
   * namespaces in `listedNetns` were listed (all when not given): flows of
   * other namespaces are left alone.
   */
  onOpenList(
    lists: readonly OpenList[],
    now: { us: number; ns: number },
    updateEveryUs: number | null,
    listedNetns?: ReadonlySet<number>,
  ): FlowEvent[] {
    const out: FlowEvent[] = [];
    const where = (key: string): [OpenList, number] | undefined => {
      for (const list of lists) {
        const at = list.keys.get(key);
        if (at !== undefined) return [list, at];
      }
      return undefined;
    };
    for (const [key, flow] of this.#open) {
      if (listedNetns !== undefined && !listedNetns.has(flow.netns)) continue;
      const found = where(key);
      if (found === undefined) {
        if (++flow.missed < 2) continue;
        this.#open.delete(key);
        this.#remember(key, now.ns);
        this.#unknownEnds++;
        out.push(this.#unknownEnd(flow, now));
        continue;
      }
      flow.missed = 0;
      const everyNs = updateEveryUs === null ? null : updateEveryUs * 1000;
      const due = everyNs !== null && flow.beginNs !== null && now.ns - flow.beginNs >= everyNs;
      // Decode only what is reported on, or whose 32-bit counters are due a look.
      if (!due && now.ns - flow.wideNs < WIDE_REFRESH_NS) continue;
      const raw = found[0].record(found[1]);
      if (raw === undefined) continue;
      const r = this.#widen(flow, raw);
      // Due by the record's own time, which the duration is measured to.
      if (!due || r.timeNs - flow.beginNs! < everyNs!) continue;
      const update = this.#event(flow, r, EVENT_UPDATE, flow.direction === "outgoing") as
        & FlowEventBase
        & Partial<FlowUpdateEvent>;
      update.duration_ms = msBetween(flow.beginNs, r.timeNs);
      Object.assign(update, counterFields(updateCounters(r, flow.direction === "outgoing")));
      out.push(update as FlowUpdateEvent);
    }
    return out;
  }

  /** The network namespaces of the open flows. */
  namespaces(): Set<number> {
    const out = new Set<number>();
    for (const flow of this.#open.values()) out.add(flow.netns);
    return out;
  }

  /**
   * A handshake packet of an attempt that made no socket (fail events): a
   * SYN reaching a listener starts a half-open attempt; a RST reaching the
   * listener resets it; this host's RST for a closed port refuses one.
   */
  onHandshake(p: TcpPacket): FlowFailEvent | undefined {
    this.#expireHalfOpen(p.timeNs);
    // Ingress packets come from the remote side; the refusal leaves from the local one.
    const remote = p.kind === "refused"
      ? { addr: p.dst, port: p.dstPort }
      : { addr: p.src, port: p.srcPort };
    const local = p.kind === "refused"
      ? { addr: p.src, port: p.srcPort }
      : { addr: p.dst, port: p.dstPort };
    const key = tupleKey(p.netns, {
      localAddr: local.addr,
      localPort: local.port,
      remoteAddr: remote.addr,
      remotePort: remote.port,
    });
    if (p.kind === "syn") {
      if (this.#halfOpen.has(key)) return undefined; // a retransmitted SYN
      if (this.#halfOpen.size >= this.#maxHalfOpen) {
        this.#halfOpen.delete(this.#halfOpen.keys().next().value!);
        this.#halfOpenEvicted++;
      }
      this.#halfOpen.set(key, p.timeNs);
      return undefined;
    }
    let sinceNs = p.timeNs;
    if (p.kind === "hs-rst") {
      const syn = this.#halfOpen.get(key);
      if (syn === undefined) return undefined; // no attempt of ours: a stray RST
      this.#halfOpen.delete(key);
      sinceNs = syn;
    }
    const flow: Flow = {
      id: this.#nextId++,
      direction: "incoming",
      local,
      remote,
      cgroupId: p.cgroupId,
      netns: p.netns,
      cookie: p.cookie,
      preexisting: false,
      beginNs: null,
      // A refusal has no socket and so no process; a reset attempt reached the listener's.
      owner: p.kind === "refused" ? null : p.owner,
      ownerResolved: true,
      missed: 0,
      wide: null,
      wideNs: 0,
      localNames: this.#context.names(local.addr, p.netns),
      remoteNames: this.#context.names(remote.addr, p.netns),
    };
    const fail = this.#baseEvent(flow, p.timeUs, EVENT_FAIL, false) as
      & FlowEventBase
      & Partial<FlowFailEvent>;
    fail.reason = p.kind === "refused" ? "refused" : "reset";
    fail.duration_ms = msBetween(sinceNs, p.timeNs);
    return fail as FlowFailEvent;
  }

  #fail(r: FlowRecord): FlowFailEvent | undefined {
    const key = flowKey(r);
    if (this.#ended.has(key)) {
      this.#duplicates++;
      return undefined;
    }
    this.#remember(key, r.timeNs);
    const flow = this.#newFlow(r, "outgoing", null);
    this.#takeNames(flow);
    const fail = this.#event(flow, r, EVENT_FAIL, true) as FlowEventBase & Partial<FlowFailEvent>;
    fail.reason = r.end === "refused" ? "refused" : "timeout";
    fail.duration_ms = r.beginNs === 0 ? 0 : msBetween(r.beginNs, r.timeNs);
    return fail as FlowFailEvent;
  }

  #unknownEnd(flow: Flow, now: { us: number; ns: number }): FlowEndEvent {
    const end = this.#baseEvent(flow, now.us, EVENT_END, true) as unknown as FlowEndEvent;
    end.closed_by = "local";
    end.reason = "unknown";
    end.duration_ms = flow.beginNs === null ? null : msBetween(flow.beginNs, now.ns);
    Object.assign(end, counterFields(NO_COUNTERS));
    return end;
  }

  /** The names of the flow's addresses, taken once (at its first event) and kept. */
  #takeNames(flow: Flow): void {
    flow.localNames ??= this.#context.names(flow.local.addr, flow.netns);
    flow.remoteNames ??= this.#context.names(flow.remote.addr, flow.netns);
  }

  /** Bounded in number, and in time: a repeat comes within seconds (the kernel's store, a sweep). */
  #remember(key: string, atNs: number): void {
    this.#ended.set(key, atNs);
    for (const [old, ns] of this.#ended) {
      if (this.#ended.size <= this.#maxFlows && ns >= atNs - ENDED_KEEP_NS) break;
      this.#ended.delete(old);
    }
  }

  #expireHalfOpen(nowNs: number): void {
    for (const [key, since] of this.#halfOpen) {
      if (nowNs - since < HALF_OPEN_TTL_NS) break;
      this.#halfOpen.delete(key);
    }
  }

  /**
   * The start snapshot: begin events for the sockets established before
   * netflow started. Who sent the SYN is not recorded for them: a socket
   * whose local address and port a listener of its namespace serves was
   * accepted (incoming), any other connected out.
   */
  onSnapshot(records: readonly FlowRecord[]): FlowBeginEvent[] {
    const listeners = new Set<string>();
    for (const r of records) {
      if (r.kind === "listen") listeners.add(`${r.netns}|${r.localAddr}|${r.localPort}`);
    }
    const wildcard = (r: FlowRecord) => (r.family === 4 ? "0.0.0.0" : "::");
    const listens = (r: FlowRecord) =>
      listeners.has(`${r.netns}|${r.localAddr}|${r.localPort}`) ||
      listeners.has(`${r.netns}|${wildcard(r)}|${r.localPort}`) ||
      // A dual-stack listener on [::] also accepts IPv4.
      listeners.has(`${r.netns}|::|${r.localPort}`);
    const out: FlowBeginEvent[] = [];
    for (const r of records) {
      if (r.kind !== "begin") continue;
      const direction = r.outgoing ? "outgoing" : listens(r) ? "incoming" : "outgoing";
      const event = this.#begin(r, direction);
      if (event !== undefined) out.push(event);
    }
    return out;
  }

  #begin(r: FlowRecord, direction: Flow["direction"]): FlowBeginEvent | undefined {
    const key = flowKey(r);
    if (this.#open.has(key) || this.#ended.has(key)) {
      this.#duplicates++;
      return undefined;
    }
    const flow = this.#newFlow(r, direction, r.timeNs);
    if (this.#open.size >= this.#maxFlows) {
      const oldest = this.#open.keys().next();
      if (!oldest.done) {
        this.#open.delete(oldest.value);
        this.#evicted++;
      }
    }
    this.#open.set(key, flow);
    this.#widen(flow, r);
    this.#takeNames(flow);
    if (!this.#begins) return undefined;
    // In a begin event src is the initiator.
    return this.#event(flow, r, EVENT_BEGIN, direction === "outgoing");
  }

  /**
   * The record with its 32-bit counters extended to 64 bits from what this
   * flow's earlier records said: a raw value below the last one wrapped.
   */
  #widen(flow: Flow, r: FlowRecord): FlowRecord {
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

  #end(r: FlowRecord): FlowEndEvent | undefined {
    const key = flowKey(r);
    if (this.#ended.has(key)) {
      this.#duplicates++;
      return undefined;
    }
    // Not open: its begin record was lost or evicted; the kernel still knows how it ended.
    const flow = this.#open.get(key) ??
      this.#newFlow(r, r.outgoing ? "outgoing" : "incoming", null);
    this.#open.delete(key);
    r = this.#widen(flow, r);
    this.#remember(key, r.timeNs);
    this.#takeNames(flow);
    // The end record names the holder at close when it is known (src/enrich/owners.ts).
    if (r.owner !== null) {
      flow.owner = r.owner;
      flow.ownerResolved = true;
    }
    const how = r.end ?? "local-rst";
    const local = how === "local-fin" || how === "local-rst" || how === "timeout";
    // In an end event src is the side that terminated the connection.
    const end = this.#event(flow, r, EVENT_END, local) as unknown as FlowEndEvent;
    const c = endCounters(r, flow.direction === "outgoing");
    end.closed_by = local ? "local" : "remote";
    end.reason = how === "timeout" ? "timeout" : how.endsWith("fin") ? "fin" : "rst";
    end.duration_ms = flow.beginNs === null ? null : msBetween(flow.beginNs, r.timeNs);
    Object.assign(end, counterFields(c));
    return end;
  }

  #newFlow(r: FlowRecord, direction: Flow["direction"], beginNs: number | null): Flow {
    return {
      id: this.#nextId++,
      direction,
      local: { addr: r.localAddr, port: r.localPort },
      remote: { addr: r.remoteAddr, port: r.remotePort },
      cgroupId: r.cgroupId,
      netns: r.netns,
      cookie: r.cookie,
      preexisting: r.preexisting,
      beginNs,
      owner: r.owner,
      ownerResolved: false,
      missed: 0,
      wide: null,
      wideNs: 0,
      localNames: null,
      remoteNames: null,
    };
  }

  /** The fields every flow event has, at a record's time; `localIsSrc` orients it. */
  #event<E extends FlowEvent["event"]>(
    flow: Flow,
    r: FlowRecord,
    event: E,
    localIsSrc: boolean,
  ): FlowEventBase & { event: E } {
    return this.#baseEvent(flow, r.timeUs, event, localIsSrc);
  }

  #baseEvent<E extends FlowEvent["event"]>(
    flow: Flow,
    timeUs: number,
    event: E,
    localIsSrc: boolean,
  ): FlowEventBase & { event: E } {
    const owner = this.#owner(flow);
    const cgroup = this.#context.cgroup(flow.cgroupId);
    const [src, dst] = localIsSrc ? [flow.local, flow.remote] : [flow.remote, flow.local];
    const localNames = flow.localNames ?? NO_NAMES, remoteNames = flow.remoteNames ?? NO_NAMES;
    return {
      time: formatTime(timeUs),
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
      netns: flow.netns,
      preexisting: flow.preexisting,
    };
  }

  /** Asks the context once per flow, with what the kernel said. */
  #owner(flow: Flow): SocketOwner | null {
    if (!flow.ownerResolved) {
      flow.ownerResolved = true;
      flow.owner = this.#context.owner({
        cookie: flow.cookie,
        netns: flow.netns,
        direction: flow.direction,
        localPort: flow.local.port,
        creator: flow.owner,
      });
    }
    return flow.owner;
  }
}

/** A 32-bit kernel counter made 64-bit: [last raw value, wraps seen]. */
type Wide = [last: number, wraps: number];

interface WideCounters {
  segsIn: Wide;
  segsOut: Wide;
  totalRetrans: Wide;
}

/**
 * An open flow's 32-bit counters are looked at least this often when the
 * kernel lists it (the monitor lists every 5 minutes even without updates):
 * at 100 Gbit/s of 1,448-byte segments segs_out wraps in about 8 minutes.
 */
const WIDE_REFRESH_NS = 60e9;
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
function msBetween(fromNs: number, toNs: number): number {
  return Math.max(0, Math.floor(toNs / 1000) - Math.floor(fromNs / 1000)) / 1000;
}

/** A socket's identity: its namespace, cookie, and when it began (a socket can connect again). */
function flowKey(r: FlowRecord): string {
  return socketKey(r.netns, r.cookie, r.beginNs);
}

/** A connection attempt's identity before it has a socket. */
function tupleKey(
  netns: number,
  t: { localAddr: string; localPort: number; remoteAddr: string; remotePort: number },
): string {
  return `${netns}|${t.localAddr}|${t.localPort}|${t.remoteAddr}|${t.remotePort}`;
}

/** A socket's counters, each exact in JSON or null. */
interface Counters {
  bytesSent: number | null;
  bytesReceived: number | null;
  packetsSent: number | null;
  packetsReceived: number | null;
  rttUs: number | null;
  retransmits: number | null;
}

const NO_COUNTERS: Counters = {
  bytesSent: null,
  bytesReceived: null,
  packetsSent: null,
  packetsReceived: null,
  rttUs: null,
  retransmits: null,
};

/** The event fields of a set of counters, in the contract's order. */
function counterFields(c: Counters): FlowCounters {
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
  const atFin = r.end === "local-fin" || r.end === "remote-fin";
  const queued = atFin ? (c.writeSeq - c.sndUna) >>> 0 : 0;
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
  const syn = (r.synAcked || outgoing) && c.bytesAcked > 0 ? 1 : 0;
  return {
    bytesSent: exact(c.bytesAcked - syn + queued),
    bytesReceived: exact(c.bytesReceived - fin),
    packetsSent: exact(c.segsOut),
    packetsReceived: exact(c.segsIn),
    rttUs: exact(c.srttUs),
    retransmits: exact(c.totalRetrans),
  };
}
