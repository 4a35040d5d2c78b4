/**
 * Entries found by socket cookie, a number: a flow's records make no key
 * text and hash none to find its entry. Cookies are unique per socket on a
 * host, but a flow's identity is its network namespace, cookie and begin time
 * (a socket can connect again; tests reuse cookies across namespaces):
 * entries that share a cookie are chained behind the first (`sameCookie`),
 * and a lookup checks the whole identity.
 *
 * @module
 */

/** An entry of a {@link ByCookie}: its socket's identity, and the next entry with its cookie. */
export interface Chained<T> {
  readonly netns: number;
  readonly cookie: number;
  /** The records' begin time (ns): a socket that connects again begins again. */
  readonly keyNs: number;
  sameCookie: T | undefined;
}

export class ByCookie<T extends Chained<T>> {
  readonly #heads = new Map<number, T>();
  #size = 0;

  /** Entries now. */
  get size(): number {
    return this.#size;
  }

  /** The entry of this socket identity. */
  find(netns: number, cookie: number, keyNs: number): T | undefined {
    let entry = this.#heads.get(cookie);
    while (entry !== undefined && (entry.netns !== netns || entry.keyNs !== keyNs)) {
      entry = entry.sameCookie;
    }
    return entry;
  }

  /** Adds an entry (last of its cookie's). */
  add(entry: T): void {
    let last = this.#heads.get(entry.cookie);
    if (last === undefined) this.#heads.set(entry.cookie, entry);
    else {
      while (last.sameCookie !== undefined) last = last.sameCookie;
      last.sameCookie = entry;
    }
    this.#size++;
  }

  /** Removes an entry; false when it is not here. */
  delete(entry: T): boolean {
    const head = this.#heads.get(entry.cookie);
    if (head === entry) {
      if (entry.sameCookie === undefined) this.#heads.delete(entry.cookie);
      else this.#heads.set(entry.cookie, entry.sameCookie);
    } else {
      let before = head;
      while (before !== undefined && before.sameCookie !== entry) before = before.sameCookie;
      if (before === undefined) return false;
      before.sameCookie = entry.sameCookie;
    }
    entry.sameCookie = undefined;
    this.#size--;
    return true;
  }

  /** The first cookie's first entry (the map's insertion order). */
  first(): T | undefined {
    return this.#heads.values().next().value;
  }

  /** Every entry; the loop may delete the one it was given (the next is read before). */
  *[Symbol.iterator](): Generator<T, void, undefined> {
    for (const head of this.#heads.values()) {
      let entry: T | undefined = head;
      while (entry !== undefined) {
        const next: T | undefined = entry.sameCookie;
        yield entry;
        entry = next;
      }
    }
  }
}
