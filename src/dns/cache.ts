/**
 * The passive DNS cache: key (src/dns/names.ts makes it from the network
 * namespace and the address) -> the names that namespace resolved to it.
 *
 * Each key holds up to {@link MAX_GROUPS} name chains (one per distinct query
 * that led to it), each with its own expiry: TTL plus a grace period. The
 * whole cache is bounded in bytes ({@link DnsCacheOptions.maxBytes}, an
 * estimate of the JavaScript heap its entries hold, on the safe side) and in
 * entries; the least recently used key goes first, and evictions are
 * counted. A lookup gives at most {@link MAX_NAMES} names.
 *
 * @module
 */
import { boottimeMs } from "../ffi/syscalls.ts";

/** The size and expiry of the DNS cache (one for all network namespaces). */
export interface DnsCacheOptions {
  /** Addresses kept at most, all namespaces together (default 262144). */
  maxEntries?: number;
  /**
   * Bytes of heap the cache may hold, all namespaces together (default 64
   * MiB, at least 65536): each entry is charged an upper estimate of what its
   * key, names and bookkeeping cost.
   */
  maxBytes?: number;
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
  /** The heap they are charged (bytes), never above maxBytes. */
  bytes: number;
  /** Addresses dropped because the cache was full (entries or bytes). */
  evicted: number;
}

interface Group {
  names: string[];
  expiresMs: number;
}

interface Entry {
  groups: Group[];
  bytes: number;
}

/** What names() returns for an address without names: one shared, frozen list. */
const NO_NAMES: readonly string[] = Object.freeze([]);

/** Name chains kept per address; the oldest goes first. */
export const MAX_GROUPS = 8;
/**
 * Names one lookup gives at most (so an event carries at most twice this,
 * `src_dns` and `dst_dns`): the newest chains first, each name once, shown
 * in the order they were learned.
 */
export const MAX_NAMES = 16;
export const DEFAULT_MAX_BYTES = 64 << 20;
export const DEFAULT_MAX_ENTRIES = 262_144;
export const MIN_MAX_BYTES = 65_536;
const SWEEP_EVERY_MS = 10_000;

/**
 * Upper estimates of V8's heap cost (64-bit, pointer compression off): a
 * string is a header plus up to 2 bytes a character; a Map entry, its entry
 * object and groups array; a group object and its names array.
 */
const STRING_BYTES = 32;
const ENTRY_BYTES = 160;
const GROUP_BYTES = 96;

function stringBytes(s: string): number {
  return STRING_BYTES + 2 * s.length;
}

function entryBytes(key: string, groups: readonly Group[]): number {
  let n = ENTRY_BYTES + stringBytes(key);
  for (const g of groups) {
    n += GROUP_BYTES + 8 * g.names.length;
    for (const name of g.names) n += stringBytes(name);
  }
  return n;
}

export class DnsCache {
  readonly #entries = new Map<string, Entry>();
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #graceMs: number;
  readonly #now: () => number;
  #bytes = 0;
  #evicted = 0;
  #lastSweepMs = 0;

  constructor(options: DnsCacheOptions = {}) {
    this.#maxEntries = Math.max(1, options.maxEntries ?? DEFAULT_MAX_ENTRIES);
    this.#maxBytes = Math.max(MIN_MAX_BYTES, options.maxBytes ?? DEFAULT_MAX_BYTES);
    this.#graceMs = Math.max(0, options.graceMs ?? 5000);
    this.#now = options.now ?? boottimeMs;
  }

  get stats(): DnsCacheStats {
    return { entries: this.#entries.size, bytes: this.#bytes, evicted: this.#evicted };
  }

  /** Addresses cached now, every namespace's. */
  get size(): number {
    return this.#entries.size;
  }

  /** Records that `key` was reached through `names` (chain order) for `ttl` seconds. */
  add(key: string, names: string[], ttl: number, nowMs = this.#now()): void {
    const expiresMs = nowMs + ttl * 1000 + this.#graceMs;
    const entry = this.#entries.get(key);
    const groups = entry?.groups ?? [];
    this.#entries.delete(key); // re-inserted last: most recently used
    const same = groups.find((g) => sameNames(g.names, names));
    if (same) {
      same.expiresMs = Math.max(same.expiresMs, expiresMs);
    } else {
      groups.push({ names, expiresMs });
      if (groups.length > MAX_GROUPS) groups.shift();
    }
    this.#set(key, groups, entry);
    while (this.#entries.size > this.#maxEntries || this.#bytes > this.#maxBytes) {
      const [oldest, old] = this.#entries.entries().next().value!;
      this.#entries.delete(oldest);
      this.#bytes -= old.bytes;
      this.#evicted++;
    }
    if (nowMs - this.#lastSweepMs >= SWEEP_EVERY_MS) this.purge(nowMs);
  }

  /**
   * The unexpired names for `key`, each once, chains in the order they were
   * learned; at most {@link MAX_NAMES}, the newest chains kept first.
   */
  names(key: string, nowMs?: number): readonly string[] {
    const entry = this.#entries.get(key);
    if (entry === undefined) return NO_NAMES;
    // The clock only for a hit: most flows' addresses have no names (a clock read is an FFI call).
    const now = nowMs ?? this.#now();
    const live = entry.groups.filter((g) => g.expiresMs > now);
    this.#entries.delete(key);
    if (live.length === 0) {
      this.#bytes -= entry.bytes;
      return NO_NAMES;
    }
    this.#set(key, live, entry);
    if (live.length === 1 && live[0]!.names.length <= MAX_NAMES) return live[0]!.names;
    // Newest chains first, until MAX_NAMES names; then in the order learned.
    const picked: string[][] = [];
    const seen = new Set<string>();
    for (let i = live.length - 1; i >= 0 && seen.size < MAX_NAMES; i--) {
      const chain = live[i]!.names.filter((n) => !seen.has(n)).slice(0, MAX_NAMES - seen.size);
      for (const n of chain) seen.add(n);
      picked.push(chain);
    }
    return picked.reverse().flat();
  }

  /** Drops the keys `drop` says, uncounted (their namespace is gone); returns how many. */
  dropWhere(drop: (key: string) => boolean): number {
    let n = 0;
    for (const [key, entry] of this.#entries) {
      if (!drop(key)) continue;
      this.#entries.delete(key);
      this.#bytes -= entry.bytes;
      n++;
    }
    return n;
  }

  /** The keys cached now (least recently used first). */
  keys(): IterableIterator<string> {
    return this.#entries.keys();
  }

  /** Drops every expired chain, and addresses left with none. */
  purge(nowMs = this.#now()): void {
    this.#lastSweepMs = nowMs;
    for (const [key, entry] of this.#entries) {
      const live = entry.groups.filter((g) => g.expiresMs > nowMs);
      if (live.length === 0) {
        this.#entries.delete(key);
        this.#bytes -= entry.bytes;
      } else if (live.length !== entry.groups.length) {
        const bytes = entryBytes(key, live);
        this.#bytes += bytes - entry.bytes;
        entry.groups = live;
        entry.bytes = bytes;
      }
    }
  }

  /** (Re)inserts `key` last, charging its bytes instead of what `old` was charged. */
  #set(key: string, groups: Group[], old: Entry | undefined): void {
    const bytes = entryBytes(key, groups);
    this.#bytes += bytes - (old?.bytes ?? 0);
    this.#entries.set(key, { groups, bytes });
  }
}

function sameNames(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}
