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
  /** Key -> when it ended (kernel monotonic ns). */
  readonly #at = new Map<string, number>();
  /**
   * The keys in the order they ended, from `#head` on: the oldest are found
   * here, not by walking the map from its start (a map whose first entries
   * were deleted is walked past every hole they left: with 131,072 keys and
   * one forgotten per end, that walk was most of the table's time).
   */
  #order: (string | undefined)[] = [];
  #times: number[] = [];
  #head = 0;

  constructor(max: number) {
    this.#max = max;
  }

  has(key: string): boolean {
    return this.#at.has(key);
  }

  /** Keys kept now. */
  get size(): number {
    return this.#at.size;
  }

  /** Remembers `key` as ended at `atNs`, forgetting the oldest past either bound. */
  add(key: string, atNs: number): void {
    this.#at.set(key, atNs);
    this.#order.push(key);
    this.#times.push(atNs);
    const oldest = atNs - ENDED_KEEP_NS;
    while (
      this.#head < this.#order.length &&
      (this.#at.size > this.#max || this.#times[this.#head]! < oldest)
    ) {
      const old = this.#order[this.#head]!;
      // A key added again since is kept until its later place comes.
      if (this.#at.get(old) === this.#times[this.#head]) this.#at.delete(old);
      this.#order[this.#head++] = undefined;
    }
    if (this.#head >= 1024 && this.#head * 2 >= this.#order.length) {
      this.#order = this.#order.slice(this.#head);
      this.#times = this.#times.slice(this.#head);
      this.#head = 0;
    }
  }
}
