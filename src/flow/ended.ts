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
/** An entry's numbers in the ring: namespace, cookie, begin time, end time, its table slot. */
const ENTRY = 5, NETNS = 0, COOKIE = 1, KEY_NS = 2, AT_NS = 3, SLOT = 4;
const EMPTY = -1;
const TWO_32 = 2 ** 32;

export class EndedKeys {
  readonly #max: number;
  /**
   * Keys in the order they ended: entry `seq` (a count of adds) at
   * `seq & (ring size - 1)`, its namespace, cookie, begin time and end time side by side.
   */
  #entries = new Float64Array(FIRST_RING * ENTRY);
  /** 1: forgotten, or added again since (a later entry stands for it). */
  #gone = new Uint8Array(FIRST_RING);
  /** The oldest entry still in the ring, and the next one's seq. */
  #head = 0;
  #tail = 0;
  /**
   * The table: per slot an entry's seq (or EMPTY) and its cookie; twice as
   * many slots as the ring has entries (at most half full).
   */
  #slots = emptySlots(2 * FIRST_RING);
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
      const live = this.#gone[at] === 0;
      if (live && this.#size < this.#max && this.#entries[at * ENTRY + AT_NS]! >= oldest) break;
      if (live) this.#forget(this.#entries[at * ENTRY + SLOT]!);
      this.#head++;
    }
    if (this.#tail - this.#head === this.#ring()) this.#grow();
    const seq = this.#tail++, at = seq & (this.#ring() - 1), e = this.#entries;
    e[at * ENTRY + NETNS] = netns;
    e[at * ENTRY + COOKIE] = cookie;
    e[at * ENTRY + KEY_NS] = beginNs;
    e[at * ENTRY + AT_NS] = atNs;
    this.#gone[at] = 0;
    this.#insert(seq, cookie);
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
    return h & ((this.#slots.length >> 1) - 1);
  }

  /** The slot holding this identity's entry, or EMPTY. */
  #find(netns: number, cookie: number, keyNs: number): number {
    const slots = this.#slots, mask = (slots.length >> 1) - 1, ringMask = this.#ring() - 1;
    const e = this.#entries;
    for (let i = this.#home(cookie);; i = (i + 1) & mask) {
      const seq = slots[2 * i]!;
      if (seq === EMPTY) return EMPTY;
      if (slots[2 * i + 1] !== cookie) continue; // the entry itself only for a cookie's own
      const at = (seq & ringMask) * ENTRY;
      if (e[at + NETNS] === netns && e[at + KEY_NS] === keyNs) return i;
    }
  }

  #insert(seq: number, cookie: number): void {
    const slots = this.#slots, mask = (slots.length >> 1) - 1;
    let i = this.#home(cookie);
    while (slots[2 * i] !== EMPTY) i = (i + 1) & mask;
    slots[2 * i] = seq;
    slots[2 * i + 1] = cookie;
    this.#entries[(seq & (this.#ring() - 1)) * ENTRY + SLOT] = i;
  }

  /** Takes the entry in slot `i` out (its place in the ring stays, marked gone). */
  #forget(i: number): void {
    const slots = this.#slots, mask = (slots.length >> 1) - 1;
    this.#gone[slots[2 * i]! & (this.#ring() - 1)] = 1;
    this.#size--;
    // Backward shift: the entries after it in its run move up where their probe allows.
    for (let j = (i + 1) & mask;; j = (j + 1) & mask) {
      if (slots[2 * j] === EMPTY) break;
      const home = this.#home(slots[2 * j + 1]!);
      // Movable to i when its home is not in (i, j] (cyclically).
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        const seq = slots[2 * j]!;
        slots[2 * i] = seq;
        slots[2 * i + 1] = slots[2 * j + 1]!;
        this.#entries[(seq & (this.#ring() - 1)) * ENTRY + SLOT] = i;
        i = j;
      }
    }
    slots[2 * i] = EMPTY;
  }

  /** Twice the ring (its entries where their seq puts them now) and the table. */
  #grow(): void {
    const size = 2 * this.#ring(), old = this.#ring() - 1, mask = size - 1;
    const entries = new Float64Array(size * ENTRY), gone = new Uint8Array(size);
    for (let s = this.#head; s < this.#tail; s++) {
      const from = (s & old) * ENTRY, to = (s & mask) * ENTRY;
      for (let k = 0; k < ENTRY; k++) entries[to + k] = this.#entries[from + k]!;
      gone[s & mask] = this.#gone[s & old]!;
    }
    this.#entries = entries;
    this.#gone = gone;
    this.#slots = emptySlots(2 * size);
    for (let s = this.#head; s < this.#tail; s++) {
      if (gone[s & mask] === 0) this.#insert(s, entries[(s & mask) * ENTRY + COOKIE]!);
    }
  }
}

/** A table of `count` empty slots (seq EMPTY, cookie 0). */
function emptySlots(count: number): Float64Array {
  const slots = new Float64Array(2 * count);
  for (let i = 0; i < slots.length; i += 2) slots[i] = EMPTY;
  return slots;
}
