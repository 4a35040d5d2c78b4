/**
 * The flow table's open flows, found by socket cookie (src/flow/by_cookie.ts:
 * no key text made per record), each lookup checking the flow's whole
 * identity: network namespace, cookie, and the records' begin time.
 *
 * @module
 */
import { ByCookie } from "./by_cookie.ts";
import type { Flow } from "./flow.ts";

export class OpenFlows {
  readonly #flows = new ByCookie<Flow>();

  /** Open flows now. */
  get size(): number {
    return this.#flows.size;
  }

  /** The open flow of this socket identity (`beginNs`: the records' own, `Flow.keyNs`). */
  get(netns: number, cookie: number, beginNs: number): Flow | undefined {
    return this.#flows.find(netns, cookie, beginNs);
  }

  /** Adds a flow not open yet (the caller checked with {@link get}). */
  add(flow: Flow): void {
    this.#flows.add(flow);
  }

  /** Removes an open flow (one {@link get} or {@link oldest} gave). */
  delete(flow: Flow): void {
    this.#flows.delete(flow);
  }

  /** The flow open longest (by its cookie's first flow), to evict when the table is full. */
  oldest(): Flow | undefined {
    return this.#flows.first();
  }

  /** Every open flow; one may be deleted while this runs. */
  [Symbol.iterator](): Iterator<Flow> {
    return this.#flows[Symbol.iterator]();
  }
}
