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
 * flow), orients the events, and stays correct when records are duplicated,
 * lost or evicted. Its events are bare: identity, orientation, counters and
 * the kernel's times; the owner, cgroup path and names are the enrichers'
 * (src/enrich/enricher.ts), which take each event with its {@link FlowFacts}:
 *
 *   begin -> open -> end (the flow is forgotten, its key kept briefly so a
 *   duplicate record ends nothing twice)
 *
 * @module
 */
import {
  type FlowRecord,
  type OpenList,
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
  type FlowEndEvent,
  type FlowEvent,
  type FlowEventBase,
  type FlowFailEvent,
  type FlowUpdateEvent,
  formatTime,
} from "../events.ts";
import {
  countersDue,
  endOf,
  msBetween,
  setEndCounters,
  setNoCounters,
  setUpdateCounters,
  widenRecord,
} from "./counters.ts";
import { EndedKeys } from "./ended.ts";
import { OpenFlows } from "./open_flows.ts";
import { bareEvent, type Flow, makeFlow } from "./flow.ts";
import { type Endpoint, HalfOpen, listening, tupleKey } from "./handshake.ts";

/** What the table knows beside an event, for the enrichers ({@link FlowTable.factsOf}). */
export interface FlowFacts {
  /** The socket's cookie (with the event's `netns`, the socket); 0 for an attempt that made none. */
  readonly cookie: number;
  /** The kernel record behind it (begin, end, fail, the update's); none for unknown ends, handshakes. */
  readonly record: FlowRecord | undefined;
  /** The process the kernel stamped on it (null: none known; a refused attempt has no process). */
  readonly stamp: SocketOwner | null;
  /** The table's flow behind it: what the enrichers keep for the flow's later events lives here. */
  readonly flow: Flow;
}

export interface FlowTableOptions {
  /** Open flows kept at most; the oldest is evicted (and counted) beyond it. */
  maxFlows?: number;
  /** Half-open attempts tracked at most (for fail events); the oldest is evicted beyond it. */
  maxHalfOpen?: number;
  /** Prefix of flow ids; unique per run by default. */
  idPrefix?: string;
  /**
   * Begins are not reported, only given to the enrichers (`--events` without
   * net_flow_tcp_begin): their `time` is left "" (no time made into text).
   */
  untimedBegins?: boolean;
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

export { ENDED_KEEP_NS } from "./ended.ts";
/** Open flows tracked at most unless told (`--max-flows`). */
export const DEFAULT_MAX_FLOWS = 131_072;

export class FlowTable {
  readonly #open = new OpenFlows();
  /** Keys of flows that ended recently: a repeat of their records is ignored. */
  readonly #ended: EndedKeys;
  readonly #halfOpen: HalfOpen;
  readonly #maxFlows: number;
  readonly #idPrefix: string;
  readonly #untimedBegins: boolean;
  /**
   * What the events of the table's last call need beside them, for the
   * enrichers: the last one's in two fields (a call makes one event but for
   * lists), the others' in a map emptied at the next call. Not a WeakMap of
   * every event: its entries live until a collection and cost each scavenge.
   */
  #lastEvent: FlowEvent | undefined;
  #lastFacts: FlowFacts | undefined;
  readonly #moreFacts = new Map<FlowEvent, FlowFacts>();
  #nextId = 1;
  #evicted = 0;
  #duplicates = 0;
  #unknownEnds = 0;

  constructor(options: FlowTableOptions = {}) {
    this.#maxFlows = options.maxFlows ?? DEFAULT_MAX_FLOWS;
    this.#ended = new EndedKeys(this.#maxFlows);
    this.#halfOpen = new HalfOpen(options.maxHalfOpen ?? 65_536);
    this.#idPrefix = options.idPrefix ?? Math.floor(Math.random() * 0xffffff).toString(16);
    this.#untimedBegins = options.untimedBegins ?? false;
  }

  get stats(): FlowStats {
    return {
      open: this.#open.size,
      evicted: this.#evicted,
      duplicates: this.#duplicates,
      halfOpen: this.#halfOpen.size,
      halfOpenEvicted: this.#halfOpen.evicted,
      unknownEnds: this.#unknownEnds,
    };
  }

  /**
   * What the table knows beside one of the events its last call made (for the
   * enrichers); ask before the next call (onRecord, onOpenList, onSnapshot,
   * onHandshake) into the table.
   */
  factsOf(event: FlowEvent): FlowFacts {
    const facts = event === this.#lastEvent ? this.#lastFacts : this.#moreFacts.get(event);
    if (facts === undefined) {
      throw new Error(`not an event of this table's last call: ${event.flow_id}`);
    }
    return facts;
  }

  /** A new call: the last call's facts are let go. */
  #call(): void {
    this.#lastEvent = this.#lastFacts = undefined;
    if (this.#moreFacts.size > 0) this.#moreFacts.clear();
  }

  /** The begin the full ring lost, to write just before this end (the kernel says when and how). */
  lostBegin(r: FlowRecord): FlowRecord | undefined {
    if (r.kind !== "end" || !r.beginLost || this.#openOf(r) !== undefined) return undefined;
    return { ...r, kind: "begin", timeUs: r.beginUs ?? r.timeUs, end: null };
  }

  /** Feeds one kernel record; returns the event it makes, if any. */
  onRecord(r: FlowRecord): FlowEvent | undefined {
    this.#call();
    if (r.kind === "begin") {
      // Half-open attempts are tracked only with fail events asked for (the kernel's SYNs).
      if (!r.outgoing && this.#halfOpen.size > 0) this.#halfOpen.established(tupleKey(r.netns, r));
      return this.#begin(r, r.outgoing ? "outgoing" : "incoming");
    }
    if (r.kind === "end") return this.#end(r);
    if (r.kind === "fail") return this.#fail(r);
    return undefined;
  }

  /**
   * The open flows the kernel listed (the update iterator, `update` records)
   * at `now` (wall µs for the events' time, monotonic ns for durations): an
   * update event for each flow open at least `updateEveryUs` (none when
   * null), and a `reason: unknown` end for each flow whose socket
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
    this.#call();
    const out: FlowEvent[] = [];
    const where = (key: string): [OpenList, number] | undefined => {
      for (const list of lists) {
        const at = list.keys.get(key);
        if (at !== undefined) return [list, at];
      }
      return undefined;
    };
    for (const flow of this.#open) {
      if (listedNetns !== undefined && !listedNetns.has(flow.netns)) continue;
      const found = where(socketKey(flow.netns, flow.cookie, flow.keyNs));
      if (found === undefined) {
        if (++flow.missed < 2) continue;
        this.#open.delete(flow);
        this.#ended.add(flow.netns, flow.cookie, flow.keyNs, now.ns);
        this.#unknownEnds++;
        out.push(this.#unknownEnd(flow, now));
        continue;
      }
      flow.missed = 0;
      const everyNs = updateEveryUs === null ? null : updateEveryUs * 1000;
      const due = everyNs !== null && flow.beginNs !== null && now.ns - flow.beginNs >= everyNs;
      // Decode only what is reported on, or whose 32-bit counters are due a look.
      if (!due && !countersDue(flow, now.ns)) continue;
      const raw = found[0].record(found[1]);
      if (raw === undefined) continue;
      const r = widenRecord(flow, raw);
      // Due by the record's own time, which the duration is measured to.
      if (!due || r.timeNs - flow.beginNs! < everyNs!) continue;
      const outgoing = flow.direction === "outgoing";
      const update = this.#event(flow, r.timeUs, EVENT_UPDATE, outgoing, r) as FlowUpdateEvent;
      update.duration_ms = msBetween(flow.beginNs, r.timeNs);
      setUpdateCounters(update, r, outgoing);
      out.push(update);
    }
    return out;
  }

  /** The network namespaces of the open flows. */
  namespaces(): Set<number> {
    const out = new Set<number>();
    for (const flow of this.#open) out.add(flow.netns);
    return out;
  }

  /** A handshake packet of an attempt that made no socket: its fail event, if it fails one. */
  onHandshake(p: TcpPacket): FlowFailEvent | undefined {
    this.#call();
    const attempt = this.#halfOpen.onPacket(p);
    if (attempt === undefined) return undefined;
    const { local, remote, sinceNs } = attempt;
    const flow = this.#flow("incoming", local, remote, p, false, null);
    // A refusal has no socket and so no process; a reset attempt reached the listener's.
    const stamp = p.kind === "refused" ? null : p.owner;
    return Object.assign(this.#event(flow, p.timeUs, EVENT_FAIL, false, undefined, stamp), {
      reason: p.kind === "refused" ? "refused" as const : "reset" as const,
      duration_ms: msBetween(sinceNs, p.timeNs),
    });
  }

  #fail(r: FlowRecord): FlowFailEvent | undefined {
    if (this.#ended.has(r.netns, r.cookie, r.beginNs)) {
      this.#duplicates++;
      return undefined;
    }
    this.#ended.add(r.netns, r.cookie, r.beginNs, r.timeNs);
    const flow = this.#newFlow(r, "outgoing", null);
    return Object.assign(this.#event(flow, r.timeUs, EVENT_FAIL, true, r), {
      reason: r.end === "refused" ? "refused" as const : "timeout" as const,
      duration_ms: r.beginNs === 0 ? 0 : msBetween(r.beginNs, r.timeNs),
    });
  }

  #unknownEnd(flow: Flow, now: { us: number; ns: number }): FlowEndEvent {
    const end = this.#event(flow, now.us, EVENT_END, true) as unknown as FlowEndEvent;
    end.closed_by = "local";
    end.reason = "unknown";
    end.duration_ms = flow.beginNs === null ? null : msBetween(flow.beginNs, now.ns);
    setNoCounters(end);
    return end;
  }

  /**
   * The start snapshot: begin events for the sockets established before
   * netflow started. Who sent the SYN is not recorded for them: a socket
   * whose local address and port a listener of its namespace serves was
   * accepted (incoming), any other connected out. `listens` says which
   * (default: from the listeners among `records`; the monitor hands the
   * snapshot on in batches, with every namespace's listeners scanned first).
   */
  onSnapshot(
    records: readonly FlowRecord[],
    listens: (r: FlowRecord) => boolean = listening(records),
  ): FlowBeginEvent[] {
    this.#call();
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
    if (this.#openOf(r) !== undefined || this.#ended.has(r.netns, r.cookie, r.beginNs)) {
      this.#duplicates++;
      return undefined;
    }
    const flow = this.#newFlow(r, direction, r.timeNs);
    if (this.#open.size >= this.#maxFlows) {
      const oldest = this.#open.oldest();
      if (oldest !== undefined) {
        this.#open.delete(oldest);
        this.#evicted++;
      }
    }
    this.#open.add(flow);
    widenRecord(flow, r);
    // In a begin event src is the initiator.
    return this.#event(flow, r.timeUs, EVENT_BEGIN, direction === "outgoing", r);
  }

  #end(r: FlowRecord): FlowEndEvent | undefined {
    // An open flow has not ended (a flow is ended only once it leaves the open ones).
    let flow = this.#openOf(r);
    if (flow !== undefined) this.#open.delete(flow);
    else {
      if (this.#ended.has(r.netns, r.cookie, r.beginNs)) {
        this.#duplicates++;
        return undefined;
      }
      // Not open: its begin record was lost or evicted; the kernel still knows how it ended.
      flow = this.#newFlow(r, r.outgoing ? "outgoing" : "incoming", null);
    }
    r = widenRecord(flow, r);
    this.#ended.add(r.netns, r.cookie, r.beginNs, r.timeNs);
    const { local, reason } = endOf(r);
    // In an end event src is the side that terminated the connection.
    // The end's fields stored one by one, in the contract's order (no objects to copy from).
    const end = this.#event(flow, r.timeUs, EVENT_END, local, r) as unknown as FlowEndEvent;
    end.closed_by = local ? "local" : "remote";
    end.reason = reason;
    end.duration_ms = flow.beginNs === null ? null : msBetween(flow.beginNs, r.timeNs);
    setEndCounters(end, r, flow.direction === "outgoing");
    return end;
  }

  #openOf(r: FlowRecord): Flow | undefined {
    return this.#open.get(r.netns, r.cookie, r.beginNs);
  }

  #newFlow(r: FlowRecord, direction: Flow["direction"], beginNs: number | null): Flow {
    const local = { addr: r.localAddr, port: r.localPort };
    const remote = { addr: r.remoteAddr, port: r.remotePort };
    // A socket restored in TCP repair mode carries on a connection opened before it.
    const preexisting = r.preexisting || r.repaired === true;
    return this.#flow(direction, local, remote, r, preexisting, beginNs, r.beginNs);
  }

  #flow(
    direction: Flow["direction"],
    local: Endpoint,
    remote: Endpoint,
    r: { readonly cgroupId: number; readonly netns: number; readonly cookie: number },
    preexisting: boolean,
    beginNs: number | null,
    keyNs = 0,
  ): Flow {
    const id = `${this.#idPrefix}-${this.#nextId++}`;
    const { cgroupId, netns, cookie } = r; // not a copy of the whole record
    return makeFlow(id, direction, local, remote, {
      cgroupId,
      netns,
      cookie,
      preexisting,
      beginNs,
      keyNs,
    });
  }

  /**
   * The fields every flow event has, at `timeUs`; `localIsSrc` orients it.
   * Its facts: the `record` behind it, and the kernel's owner `stamp`.
   */
  #event<E extends FlowEvent["event"]>(
    flow: Flow,
    timeUs: number,
    event: E,
    localIsSrc: boolean,
    record?: FlowRecord,
    stamp = record?.owner ?? null,
  ): FlowEventBase & { event: E } {
    const untimed = this.#untimedBegins && event === EVENT_BEGIN;
    const made = bareEvent(flow, untimed ? "" : formatTime(timeUs), event, localIsSrc);
    if (this.#lastEvent !== undefined) this.#moreFacts.set(this.#lastEvent, this.#lastFacts!);
    this.#lastEvent = made as FlowEvent;
    this.#lastFacts = { cookie: flow.cookie, record, stamp, flow };
    return made;
  }
}
