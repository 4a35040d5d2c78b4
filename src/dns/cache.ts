/**
 * One network namespace's passive DNS cache: address -> the names that
 * namespace resolved to it (src/dns/names.ts keeps one per namespace).
 *
 * Each address holds up to {@link MAX_GROUPS} name chains (one per distinct
 * query that led to it), each with its own expiry: TTL plus a grace period.
 * The cache is bounded by address count; the least recently used address goes
 * first, and evictions are counted.
 *
 * @module
 */
import { boottimeMs } from "../ffi/libbpf.ts";

/** The size and expiry of a DNS cache (one per network namespace). */
export interface DnsCacheOptions {
  /** Addresses kept at most (default 65536). */
  maxEntries?: number;
  /** Kept this long past an answer's TTL (default 5000 ms). */
  graceMs?: number;
  /**
   * The clock expiry uses, in ms. Default: CLOCK_BOOTTIME, which neither steps
   * with the wall clock nor stops during suspend.
   */
  now?: () => number;
}

export interface DnsCacheStats {
  /** Addresses cached now. */
  entries: number;
  /** Addresses dropped because the cache was full. */
  evicted: number;
}

interface Group {
  names: string[];
  expiresMs: number;
}

/** What names() returns for an address without names: one shared, frozen list. */
const NO_NAMES: readonly string[] = Object.freeze([]);

/** Name chains kept per address; the oldest goes first. */
export const MAX_GROUPS = 8;
const SWEEP_EVERY_MS = 10_000;

export class DnsCache {
  readonly #entries = new Map<string, Group[]>();
  readonly #maxEntries: number;
  readonly #graceMs: number;
  readonly #now: () => number;
  #evicted = 0;
  #lastSweepMs = 0;

  constructor(options: DnsCacheOptions = {}) {
    this.#maxEntries = Math.max(1, options.maxEntries ?? 65_536);
    this.#graceMs = Math.max(0, options.graceMs ?? 5000);
    this.#now = options.now ?? boottimeMs;
  }

  get stats(): DnsCacheStats {
    return { entries: this.#entries.size, evicted: this.#evicted };
  }

  /** Records that `address` was reached through `names` (chain order) for `ttl` seconds. */
  add(address: string, names: string[], ttl: number, nowMs = this.#now()): void {
    const expiresMs = nowMs + ttl * 1000 + this.#graceMs;
    const groups = this.#entries.get(address) ?? [];
    this.#entries.delete(address); // re-inserted last: most recently used
    const same = groups.find((g) => sameNames(g.names, names));
    if (same) {
      same.expiresMs = Math.max(same.expiresMs, expiresMs);
    } else {
      groups.push({ names, expiresMs });
      if (groups.length > MAX_GROUPS) groups.shift();
    }
    this.#entries.set(address, groups);
    while (this.#entries.size > this.#maxEntries) {
      this.#entries.delete(this.#entries.keys().next().value!);
      this.#evicted++;
    }
    if (nowMs - this.#lastSweepMs >= SWEEP_EVERY_MS) this.purge(nowMs);
  }

  /** The unexpired names for `address`, each once, chains in the order they were learned. */
  names(address: string, nowMs = this.#now()): readonly string[] {
    const groups = this.#entries.get(address);
    if (groups === undefined) return NO_NAMES;
    const live = groups.filter((g) => g.expiresMs > nowMs);
    this.#entries.delete(address);
    if (live.length === 0) return NO_NAMES;
    this.#entries.set(address, live);
    return [...new Set(live.flatMap((g) => g.names))];
  }

  /** Drops every expired chain, and addresses left with none. */
  purge(nowMs = this.#now()): void {
    this.#lastSweepMs = nowMs;
    for (const [address, groups] of this.#entries) {
      const live = groups.filter((g) => g.expiresMs > nowMs);
      if (live.length === 0) this.#entries.delete(address);
      else if (live.length !== groups.length) this.#entries.set(address, live);
    }
  }
}

function sameNames(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}
