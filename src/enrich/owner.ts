/**
 * The owner enricher: `pid`, `comm` and `uid`, the process holding the local
 * socket. The kernel's stamps and the holders iterator say who that is; the
 * {@link OwnerResolver} (src/enrich/owners.ts) decides when an event must
 * wait for it (an incoming begin until its acceptor is known, an end until
 * its holder at close is) and how a wait that runs out is settled. Here the
 * events wait, a socket's in order: anything of a socket that has an event
 * waiting (an update, an unknown end) queues behind it.
 *
 * A flow keeps its begin's owner on its updates and end; an end that names
 * who held the socket at close takes that one.
 *
 * @module
 */
import type { FlowRecord, SocketOwner } from "../bpf/records.ts";
import type { Enricher, Enriching } from "./enricher.ts";
import { PerFlow } from "./enricher.ts";
import type { OwnerResolver, OwnerStats } from "./owners.ts";

/** What a flow keeps from its begin: its owner, and its cgroup (an incoming flow's: the acceptor's). */
interface Kept {
  readonly owner: SocketOwner | null;
  readonly cgroupId: number;
}

interface Queued {
  readonly item: Enriching;
  /** The owner it takes, or undefined while the resolver holds its record. */
  readonly owner: SocketOwner | null | undefined;
}

export class OwnerEnricher implements Enricher {
  readonly #resolver: OwnerResolver;
  readonly #kept: PerFlow<Kept>;
  /** Events of sockets the resolver holds a record of, per socket (by cookie), in order. */
  readonly #queued = new Map<number, Queued[]>();

  /** `maxFlows`: flows whose owner is kept at most (the flow table's bound). */
  constructor(resolver: OwnerResolver, maxFlows: number) {
    this.#resolver = resolver;
    this.#kept = new PerFlow(maxFlows);
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
        const settled = this.#resolver.snapshot([r])[0]!;
        return this.#after(item, settled.owner, settled.cgroupId);
      }
      const key = r.cookie;
      const queue = this.#queued.get(key);
      const waiting: Queued = { item, owner: undefined };
      if (queue === undefined) this.#queued.set(key, [waiting]);
      else queue.push(waiting);
      return this.#release(this.#resolver.push(r, nowMs));
    }
    return this.#after(item, item.facts.stamp);
  }

  /** A socket's release record names who closed it: the events waiting for that let go. */
  observe(record: FlowRecord, nowMs: number): readonly Enriching[] {
    return record.kind === "release" ? this.#release(this.#resolver.push(record, nowMs)) : [];
  }

  settle(nowMs: number, final: boolean): readonly Enriching[] {
    return this.#release(this.#resolver.settle(nowMs, final));
  }

  wakeInMs(nowMs: number): number | null {
    return this.#resolver.wakeInMs(nowMs);
  }

  /** An event that does not wait itself, behind whatever of its socket does. */
  #after(item: Enriching, owner: SocketOwner | null, cgroupId?: number): readonly Enriching[] {
    const queue = this.#queued.get(item.facts.cookie);
    if (queue === undefined) return [this.#fill(item, owner, cgroupId)];
    queue.push({ item, owner });
    return [];
  }

  /** The events of the records the resolver settled, each with the events queued behind it. */
  #release(records: readonly FlowRecord[]): Enriching[] {
    const out: Enriching[] = [];
    for (const r of records) {
      const key = r.cookie;
      const queue = this.#queued.get(key);
      const head = queue?.shift();
      if (queue === undefined || head === undefined) continue; // not one of ours: cannot be
      out.push(this.#fill(head.item, r.owner, r.kind === "begin" ? r.cgroupId : undefined));
      while (queue.length > 0 && queue[0]!.owner !== undefined) {
        const next = queue.shift()!;
        out.push(this.#fill(next.item, next.owner!));
      }
      if (queue.length === 0) this.#queued.delete(key);
    }
    return out;
  }

  /**
   * `cgroupId`: a settled begin's, which the resolver gives the acceptor's
   * cgroup when the kernel said it (the accepted socket is in its listener's):
   * kept for the flow's updates and end, and read by the cgroup enricher after.
   */
  #fill(item: Enriching, owner: SocketOwner | null, cgroupId?: number): Enriching {
    const e = item.event;
    const kept = this.#kept.take(e, () => ({ owner, cgroupId: cgroupId || e.cgroup_id }));
    // An end names who held the socket at close when that is known, else the begin's owner.
    const o = e.event === "net_flow_tcp_end" && owner !== null ? owner : kept.owner;
    e.cgroup_id = kept.cgroupId;
    e.pid = o?.pid ?? null;
    e.comm = o?.comm ?? null;
    e.uid = o?.uid ?? null;
    return item;
  }
}
