/**
 * The keys of flows that ended recently, so that a repeat of their records
 * (a copy from the kernel's store, a sweep that missed the socket: seconds
 * later) is ignored instead of starting a flow again. Bounded in number and
 * in time.
 *
 * @module
 */

/**
 * How long an ended flow's key is kept. Only the count bound held it before:
 * at 25 ends a second the keys grew by ~150 KB a minute for an hour and a
 * half (the soak's heap).
 */
export const ENDED_KEEP_NS = 600e9;

export class EndedKeys {
  readonly #max: number;
  /** Key -> when it ended (kernel monotonic ns), oldest first. */
  readonly #at = new Map<string, number>();
  /** When the oldest key kept ended: a walk is needed only once it is due to go. */
  #oldestNs = Infinity;

  constructor(max: number) {
    this.#max = max;
  }

  has(key: string): boolean {
    return this.#at.has(key);
  }

  /** Remembers `key` as ended at `atNs`, forgetting the oldest past either bound. */
  add(key: string, atNs: number): void {
    this.#at.set(key, atNs);
    if (this.#at.size === 1) this.#oldestNs = atNs;
    // Most adds forget nothing: no walk (an iterator and an entry) for them.
    if (this.#at.size <= this.#max && this.#oldestNs >= atNs - ENDED_KEEP_NS) return;
    for (const [old, ns] of this.#at) {
      this.#oldestNs = ns;
      if (this.#at.size <= this.#max && ns >= atNs - ENDED_KEEP_NS) break;
      this.#at.delete(old);
    }
  }
}
