/**
 * The enrichment stage, between the flow table and the filter: the table
 * makes bare events (identity, orientation, counters, kernel times) and each
 * enricher, in order, fills its own fields: the owner (src/enrich/owner.ts),
 * the cgroup and container (src/enrich/cgroups.ts), the DNS names
 * (src/enrich/dns.ts). What must be the same on a flow's begin, updates and
 * end (its names, its owner unless the end names who closed it) each keeps
 * until the flow's last event on the table's flow (`facts.flow`), which goes
 * with the flow.
 *
 * A new enrichment (a Kubernetes pod name, say) is one new file with a class
 * that implements {@link Filling} (or {@link Enricher} if it must hold
 * events), its fields in the event types (src/events.ts) and the formats,
 * and one line in the monitor's list.
 *
 * @module
 */
import type { FlowRecord } from "../bpf/records.ts";
import type { FlowEvent } from "../events.ts";
import type { FlowFacts } from "../flow/state.ts";

/** A flow event on its way through the enrichers, with what the table knows beside it. */
export interface Enriching {
  readonly event: FlowEvent;
  readonly facts: FlowFacts;
}

/**
 * One enrichment. Most fill their fields and pass the event on at once
 * (`fill`: no array per event); one that must wait for what it adds (the
 * owner: who accepts a connection) holds events, a flow's in order (`push`),
 * and gives them back from `settle`.
 */
export interface Enricher extends EnricherHooks {
  /** Takes one event; returns the events it passes on now, in order (usually just this one, filled). */
  push(item: Enriching, nowMs: number): readonly Enriching[];
}

/** An enricher that never holds an event: it fills its fields in place and the event goes on. */
export interface Filling extends EnricherHooks {
  fill(item: Enriching, nowMs: number): void;
}

/** What either kind may also do. */
export interface EnricherHooks {
  /** A kernel record that made no event (a socket's release): the events it lets go. */
  observe?(record: FlowRecord, nowMs: number): readonly Enriching[];
  /** The held events whose wait is over; `final`: all of them (netflow stops). */
  settle?(nowMs: number, final: boolean): readonly Enriching[];
  /** When `settle` has work, in ms from `nowMs`; null when nothing is held. */
  wakeInMs?(nowMs: number): number | null;
  /** Periodic upkeep (letting go of what belongs to namespaces that are gone). */
  tick?(nowMs: number): void;
}

const NOTHING: readonly Enriching[] = Object.freeze([]);

/** The enrichers in order: what one passes on goes to the next. */
export class Enrichers {
  readonly #list: readonly (Enricher | Filling)[];

  constructor(list: readonly (Enricher | Filling)[]) {
    this.#list = list;
  }

  /**
   * A table's event through every enricher: the events that come out now, in
   * order (an enricher's own array, or `[item]` when none holds events).
   */
  push(item: Enriching, nowMs: number): readonly Enriching[] {
    const list = this.#list;
    let passed: readonly Enriching[] | undefined;
    for (let i = 0; i < list.length; i++) {
      const e = list[i]!;
      if ("fill" in e) {
        e.fill(item, nowMs);
        continue;
      }
      const out = e.push(item, nowMs);
      if (out.length !== 1 || out[0] !== item) return this.#from(i + 1, out, nowMs);
      passed = out; // passed on at once: still this one
    }
    return passed ?? [item];
  }

  /** A record that made no event, shown to each enricher (the events it lets go continue). */
  observe(record: FlowRecord, nowMs: number): readonly Enriching[] {
    return this.#each(record, nowMs, false);
  }

  /** What the enrichers let go now (`final`: everything held). */
  settle(nowMs: number, final = false): readonly Enriching[] {
    return this.#each(undefined, nowMs, final);
  }

  /**
   * What each enricher lets go (observing `record`, or settling when there is
   * none), through the enrichers after it; none: no array made (observe runs
   * once per flow, at its release).
   */
  #each(record: FlowRecord | undefined, nowMs: number, final: boolean): readonly Enriching[] {
    let out: Enriching[] | undefined;
    for (let i = 0; i < this.#list.length; i++) {
      const e = this.#list[i]!;
      const let_go = record === undefined ? e.settle?.(nowMs, final) : e.observe?.(record, nowMs);
      if (let_go === undefined || let_go.length === 0) continue;
      const passed = this.#from(i + 1, let_go, nowMs);
      if (out === undefined) out = [...passed];
      else out.push(...passed);
    }
    return out ?? NOTHING;
  }

  /** When {@link settle} has work, in ms from `nowMs`; null when nothing is held. */
  wakeInMs(nowMs: number): number | null {
    let soonest: number | null = null;
    for (const e of this.#list) {
      const ms = e.wakeInMs?.(nowMs) ?? null;
      if (ms !== null && (soonest === null || ms < soonest)) soonest = ms;
    }
    return soonest;
  }

  tick(nowMs: number): void {
    for (const e of this.#list) e.tick?.(nowMs);
  }

  #from(index: number, items: readonly Enriching[], nowMs: number): readonly Enriching[] {
    let current = items;
    for (let i = index; i < this.#list.length && current.length > 0; i++) {
      const e = this.#list[i]!;
      if ("fill" in e) {
        for (let j = 0; j < current.length; j++) e.fill(current[j]!, nowMs);
        continue;
      }
      if (current.length === 1) {
        current = e.push(current[0]!, nowMs);
        continue;
      }
      const next: Enriching[] = [];
      for (const item of current) next.push(...e.push(item, nowMs));
      current = next;
    }
    return current;
  }
}
