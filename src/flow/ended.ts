/**
 * The flows that ended recently, so that a repeat of their records (a copy
 * from the kernel's store, a sweep that missed the socket: seconds later) is
 * ignored instead of starting a flow again. Bounded in number and in time.
 *
 * Kept in typed arrays, not an object per key: at the bound (the table's
 * --max-flows, 131,072, reached within seconds in a storm) the keys were
 * ~170 bytes each on the V8 heap, long-lived enough to be promoted and traced
 * by every mark-compact, and replaced one per end; the arrays hold ~45 bytes a
 * key off the heap, where the collector does not look. A ring holds the keys
 * in the order they ended (the oldest are forgotten first); an open-addressing
 * table over the socket cookie (linear probing, deletion by backward shift)
 * finds them, each checked against the whole identity: network namespace,
 * cookie, the records' begin time.
 *
 * @module
 */

/**
 * How long an ended flow's key is kept. Only the count bound held it before:
 * at 25 ends a second the keys grew by ~150 KB a minute for an hour and a
 * half (the soak's heap).
 */
export const ENDED_KEEP_NS = 600e9;

const FIRST_RING = 1024;
const EMPTY = -1;
const TWO_32 = 2 ** 32;

export class EndedKeys {
  readonly #max: number;
  /** Keys in the order they ended: entry `seq` (a count of adds) at `seq & (ring size - 1)`. */
  #netns = new Float64Array(FIRST_RING);
  #cookie = new Float64Array(FIRST_RING);
  #keyNs = new Float64Array(FIRST_RING);
  #atNs = new Float64Array(FIRST_RING);
  /** 1: forgotten, or added again since (a later entry stands for it). */
  #gone = new Uint8Array(FIRST_RING);
  /** The oldest entry still in the ring, and the next one's seq. */
  #head = 0;
  #tail = 0;
  /** The table: the seq of an entry, or EMPTY; twice the ring's size (at most half full). */
  #slots = new Float64Array(2 * FIRST_RING).fill(EMPTY);
  #size = 0;

  constructor(max: number) {
    this.#max = max;
  }

  /** Whether the flow of this socket identity ended (and is still remembered). */
  has(netns: number, cookie: number, beginNs: number): boolean {
    return this.#find(netns, cookie, beginNs) !== EMPTY;
  }

  /** Flows remembered now. */
  get size(): number {
    return this.#size;
  }

  /** Remembers a flow as ended at `atNs`, forgetting the oldest past either bound. */
  add(netns: number, cookie: number, beginNs: number, atNs: number): void {
    // Added again: kept until its later place comes.
    const again = this.#find(netns, cookie, beginNs);
    if (again !== EMPTY) this.#forget(again);
    // The oldest first (the new one is the newest: it stays), then room in the ring.
    const oldest = atNs - ENDED_KEEP_NS;
    while (this.#head < this.#tail) {
      const at = this.#head & (this.#ring() - 1);
      if (this.#gone[at] === 0 && this.#size < this.#max && this.#atNs[at]! >= oldest) break;
      if (this.#gone[at] === 0) this.#forget(this.#slotOf(this.#head));
      this.#head++;
    }
    if (this.#tail - this.#head === this.#ring()) this.#grow();
    const seq = this.#tail++, at = seq & (this.#ring() - 1);
    this.#netns[at] = netns;
    this.#cookie[at] = cookie;
    this.#keyNs[at] = beginNs;
    this.#atNs[at] = atNs;
    this.#gone[at] = 0;
    this.#insert(seq);
    this.#size++;
  }

  #ring(): number {
    return this.#gone.length;
  }

  /** The table's first slot for `cookie`. */
  #home(cookie: number): number {
    const lo = cookie >>> 0, hi = (cookie / TWO_32) >>> 0;
    let h = Math.imul(lo ^ Math.imul(hi, 0x27d4eb2d), 0x9e3779b1);
    h ^= h >>> 15;
    return h & (this.#slots.length - 1);
  }

  /** The slot holding this identity's entry, or EMPTY. */
  #find(netns: number, cookie: number, keyNs: number): number {
    const slots = this.#slots, mask = slots.length - 1, ringMask = this.#ring() - 1;
    for (let i = this.#home(cookie);; i = (i + 1) & mask) {
      const seq = slots[i]!;
      if (seq === EMPTY) return EMPTY;
      const at = seq & ringMask;
      if (
        this.#cookie[at] === cookie && this.#netns[at] === netns && this.#keyNs[at] === keyNs
      ) return i;
    }
  }

  /** The slot holding entry `seq` (which is in the table). */
  #slotOf(seq: number): number {
    const slots = this.#slots, mask = slots.length - 1;
    let i = this.#home(this.#cookie[seq & (this.#ring() - 1)]!);
    while (slots[i] !== seq) i = (i + 1) & mask;
    return i;
  }

  #insert(seq: number): void {
    const slots = this.#slots, mask = slots.length - 1;
    let i = this.#home(this.#cookie[seq & (this.#ring() - 1)]!);
    while (slots[i] !== EMPTY) i = (i + 1) & mask;
    slots[i] = seq;
  }

  /** Takes the entry in slot `i` out (its place in the ring stays, marked gone). */
  #forget(i: number): void {
    const slots = this.#slots, mask = slots.length - 1, ringMask = this.#ring() - 1;
    this.#gone[slots[i]! & ringMask] = 1;
    this.#size--;
    // Backward shift: the entries after it in its run move up where their probe allows.
    for (let j = (i + 1) & mask;; j = (j + 1) & mask) {
      const seq = slots[j]!;
      if (seq === EMPTY) break;
      const home = this.#home(this.#cookie[seq & ringMask]!);
      // Movable to i when its home is not in (i, j] (cyclically).
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        slots[i] = seq;
        i = j;
      }
    }
    slots[i] = EMPTY;
  }

  /** Twice the ring (its entries where their seq puts them now) and the table. */
  #grow(): void {
    const size = 2 * this.#ring(), from = this.#head, to = this.#tail;
    this.#netns = moved(this.#netns, new Float64Array(size), from, to);
    this.#cookie = moved(this.#cookie, new Float64Array(size), from, to);
    this.#keyNs = moved(this.#keyNs, new Float64Array(size), from, to);
    this.#atNs = moved(this.#atNs, new Float64Array(size), from, to);
    this.#gone = moved(this.#gone, new Uint8Array(size), from, to);
    this.#slots = new Float64Array(2 * size).fill(EMPTY);
    for (let s = from; s < to; s++) if (this.#gone[s & (size - 1)] === 0) this.#insert(s);
  }
}

/** `into` (twice `ring`'s size) with the entries `from` to `to` of `ring` where their seq puts them. */
function moved<A extends Float64Array | Uint8Array>(ring: A, into: A, from: number, to: number): A {
  const old = ring.length - 1, mask = into.length - 1;
  for (let s = from; s < to; s++) into[s & mask] = ring[s & old]!;
  return into;
}
