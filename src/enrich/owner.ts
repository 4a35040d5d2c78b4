/**
 * The owner enricher: `pid`, `comm` and `uid`, the process holding the local
 * socket. The kernel's stamps and the holders iterator say who that is; the
 * {@link OwnerResolver} (src/enrich/owners.ts) decides when an event must
 * wait for it (an incoming begin until its acceptor is known, an end until
 * its holder at close is) and how a wait that runs out is settled. Here the
 * events wait, a socket's in order: anything of a socket that has an event
 * waiting (an update, an unknown end) queues behind it.
 *
 * A flow keeps its begin's owner on its updates and end (on the table's flow:
 * no map of its own); an end that names who held the socket at close takes
 * that one.
 *
 * @module
 */
import type { FlowRecord, SocketOwner } from "../bpf/records.ts";
import type { Enricher, Enriching } from "./enricher.ts";
import type { OwnerResolver, OwnerStats, Settled } from "./owners.ts";

const NOTHING: readonly Enriching[] = Object.freeze([]);

interface Queued {
  readonly item: Enriching;
  /** The owner it takes, or undefined while the resolver holds its record. */
  readonly owner: SocketOwner | null | undefined;
}

export class OwnerEnricher implements Enricher {
  readonly #resolver: OwnerResolver;
  /** Events of sockets the resolver holds a record of, per socket (by cookie), in order. */
  readonly #queued = new Map<number, Queued[]>();
  /** What the resolver settles in one call (reused: no array per record). */
  readonly #settled: Settled[] = [];

  constructor(resolver: OwnerResolver) {
    this.#resolver = resolver;
  }

  get stats(): OwnerStats {
    return this.#resolver.stats;
  }

  push(item: Enriching, nowMs: number): readonly Enriching[] {
    const r = item.facts.record;
    // A flow record's begin, end or fail goes through the resolver; a begin
    // the kernel wrote only with its end (the ring was full) does not wait.
    if (r !== undefined && r.kind !== "update" && !(r.kind === "begin" && r.beginLost)) {
      if (r.kind === "begin" && r.preexisting) {
        // The start snapshot: whoever holds the socket now (holders refreshed just before).
        const holder = this.#resolver.ownerNow(r);
        return this.#after(item, holder ?? r.owner);
      }
      const settled = this.#settled;
      this.#resolver.pushInto(r, nowMs, settled);
      const key = r.cookie;
      // Passed at once, nothing of its socket before it: no queue.
      if (settled.length === 1 && settled[0] === r && !this.#queued.has(key)) {
        settled.length = 0;
        return [this.#fill(item, r.owner)];
      }
      const queue = this.#queued.get(key);
      const waiting: Queued = { item, owner: undefined };
      if (queue === undefined) this.#queued.set(key, [waiting]);
      else queue.push(waiting);
      return this.#release();
    }
    return this.#after(item, item.facts.stamp);
  }

  /** A socket's release record names who closed it: the events waiting for that let go. */
  observe(record: FlowRecord, nowMs: number): readonly Enriching[] {
    if (record.kind !== "release") return NOTHING;
    this.#resolver.pushInto(record, nowMs, this.#settled);
    return this.#release();
  }

  settle(nowMs: number, final: boolean): readonly Enriching[] {
    this.#resolver.settleInto(nowMs, final, this.#settled);
    return this.#release();
  }

  wakeInMs(nowMs: number): number | null {
    return this.#resolver.wakeInMs(nowMs);
  }

  /** An event that does not wait itself, behind whatever of its socket does. */
  #after(item: Enriching, owner: SocketOwner | null): readonly Enriching[] {
    const queue = this.#queued.get(item.facts.cookie);
    if (queue === undefined) return [this.#fill(item, owner)];
    queue.push({ item, owner });
    return [];
  }

  /** The events of the records the resolver settled, each with the events queued behind it. */
  #release(): readonly Enriching[] {
    const records = this.#settled;
    if (records.length === 0) return NOTHING;
    const out: Enriching[] = [];
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      const key = r.cookie;
      const queue = this.#queued.get(key);
      const head = queue?.shift();
      if (queue === undefined || head === undefined) continue; // not one of ours: cannot be
      out.push(this.#fill(head.item, r.owner));
      while (queue.length > 0 && queue[0]!.owner !== undefined) {
        const next = queue.shift()!;
        out.push(this.#fill(next.item, next.owner!));
      }
      if (queue.length === 0) this.#queued.delete(key);
    }
    records.length = 0;
    return out;
  }

  /**
   * The flow's first event here (its begin, as a rule) keeps its owner on the
   * flow; an incoming flow's cgroup is then its owner's where the kernel said
   * it (the acceptor's: the accepted socket is in its listener's), else the
   * flow's (as the resolver gives a settled begin's: src/enrich/owners.ts).
   */
  #fill(item: Enriching, owner: SocketOwner | null): Enriching {
    const e = item.event, flow = item.facts.flow;
    let kept = flow.owner;
    if (kept === undefined) kept = flow.owner = owner;
    // An end names who held the socket at close when that is known, else the begin's owner.
    const o = e.event === "net_flow_tcp_end" && owner !== null ? owner : kept;
    if (flow.direction === "incoming" && kept?.cgroupId) e.cgroup_id = kept.cgroupId;
    e.pid = o?.pid ?? null;
    e.comm = o?.comm ?? null;
    e.uid = o?.uid ?? null;
    return item;
  }
}
