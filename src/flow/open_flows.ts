/**
 * The flow table's open flows, found by socket cookie: a number, so the
 * records of a flow make no key text and no string hashing to find it (the
 * text key, `Flow.key`, is made once, at the flow's begin). Cookies are
 * unique per socket on a host, but a flow's identity is its network
 * namespace, cookie and begin time (a socket can connect again; tests reuse
 * cookies across namespaces): flows that share a cookie are chained behind
 * the first (`sameCookie`).
 *
 * @module
 */
import type { Flow } from "./flow.ts";

export class OpenFlows {
  readonly #byCookie = new Map<number, Flow>();
  #size = 0;

  /** Open flows now. */
  get size(): number {
    return this.#size;
  }

  /** The open flow of this socket identity (`beginNs`: the records' own, `Flow.keyNs`). */
  get(netns: number, cookie: number, beginNs: number): Flow | undefined {
    let flow = this.#byCookie.get(cookie);
    while (flow !== undefined && (flow.netns !== netns || flow.keyNs !== beginNs)) {
      flow = flow.sameCookie;
    }
    return flow;
  }

  /** Adds a flow not open yet (the caller checked with {@link get}). */
  add(flow: Flow): void {
    let last = this.#byCookie.get(flow.cookie);
    if (last === undefined) this.#byCookie.set(flow.cookie, flow);
    else {
      while (last.sameCookie !== undefined) last = last.sameCookie;
      last.sameCookie = flow;
    }
    this.#size++;
  }

  /** Removes an open flow (one {@link get} or {@link oldest} gave). */
  delete(flow: Flow): void {
    const head = this.#byCookie.get(flow.cookie);
    if (head === flow) {
      if (flow.sameCookie === undefined) this.#byCookie.delete(flow.cookie);
      else this.#byCookie.set(flow.cookie, flow.sameCookie);
    } else {
      let before = head;
      while (before !== undefined && before.sameCookie !== flow) before = before.sameCookie;
      if (before === undefined) return; // not open
      before.sameCookie = flow.sameCookie;
    }
    flow.sameCookie = undefined;
    this.#size--;
  }

  /** The flow open longest (by its cookie's first flow), to evict when the table is full. */
  oldest(): Flow | undefined {
    return this.#byCookie.values().next().value;
  }

  /** Every open flow; one may be deleted while this runs (the next is read before it is given). */
  *[Symbol.iterator](): Generator<Flow, void, undefined> {
    for (const head of this.#byCookie.values()) {
      let flow: Flow | undefined = head;
      while (flow !== undefined) {
        const next: Flow | undefined = flow.sameCookie;
        yield flow;
        flow = next;
      }
    }
  }
}
