/**
 * The flows that ended recently, so that a repeat of their records (a copy
 * from the kernel's store, a sweep that missed the socket: seconds later) is
 * ignored instead of starting a flow again. Bounded in number and in time.
 *
 * Found by socket cookie (src/flow/by_cookie.ts: no key text made or hashed
 * per record, and every begin asks here), each entry checked against the
 * whole identity: network namespace, cookie, the records' begin time.
 *
 * @module
 */

import { ByCookie } from "./by_cookie.ts";

/**
 * How long an ended flow's key is kept. Only the count bound held it before:
 * at 25 ends a second the keys grew by ~150 KB a minute for an hour and a
 * half (the soak's heap).
 */
export const ENDED_KEEP_NS = 600e9;

interface Ended {
  readonly netns: number;
  readonly cookie: number;
  /** The records' begin time (ns). */
  readonly keyNs: number;
  /** When it ended (kernel monotonic ns). */
  readonly atNs: number;
  /** The next ended flow of the same cookie. */
  sameCookie: Ended | undefined;
  /** Forgotten, or added again since (a later entry stands for it). */
  gone: boolean;
}

export class EndedKeys {
  readonly #max: number;
  readonly #ended = new ByCookie<Ended>();
  /**
   * The entries in the order they ended, from `#head` on: the oldest are
   * found here, not by walking the map from its start (a map whose first
   * entries were deleted is walked past every hole they left: with 131,072
   * keys and one forgotten per end, that walk was most of the table's time).
   */
  #order: (Ended | undefined)[] = [];
  #head = 0;

  constructor(max: number) {
    this.#max = max;
  }

  /** Whether the flow of this socket identity ended (and is still remembered). */
  has(netns: number, cookie: number, beginNs: number): boolean {
    return this.#find(netns, cookie, beginNs) !== undefined;
  }

  /** Flows remembered now. */
  get size(): number {
    return this.#ended.size;
  }

  /** Remembers a flow as ended at `atNs`, forgetting the oldest past either bound. */
  add(netns: number, cookie: number, beginNs: number, atNs: number): void {
    // Added again: kept until its later place comes.
    const again = this.#find(netns, cookie, beginNs);
    if (again !== undefined) this.#forget(again);
    const entry: Ended = {
      netns,
      cookie,
      keyNs: beginNs,
      atNs,
      sameCookie: undefined,
      gone: false,
    };
    this.#ended.add(entry);
    this.#order.push(entry);
    const oldest = atNs - ENDED_KEEP_NS;
    while (this.#head < this.#order.length) {
      const old = this.#order[this.#head]!;
      if (!old.gone && this.#ended.size <= this.#max && old.atNs >= oldest) break;
      if (!old.gone) this.#forget(old);
      this.#order[this.#head++] = undefined;
    }
    if (this.#head >= 1024 && this.#head * 2 >= this.#order.length) {
      this.#order = this.#order.slice(this.#head);
      this.#head = 0;
    }
  }

  #find(netns: number, cookie: number, beginNs: number): Ended | undefined {
    return this.#ended.find(netns, cookie, beginNs);
  }

  /** Takes an entry out (its place in the order stays, marked gone). */
  #forget(entry: Ended): void {
    this.#ended.delete(entry);
    entry.gone = true;
  }
}
