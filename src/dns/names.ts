/**
 * The names each network namespace resolved: the kernel's matched DNS answers
 * in, `names(scope, address)` out.
 *
 * - Whose names: an answer from a server its namespace is configured to use
 *   (src/dns/resolvers.ts) names the address for the whole namespace; an
 *   answer from any other server only for the cgroup whose socket asked, so
 *   one local user's `dig @their-server` plants no name on other processes'
 *   flows. A flow gets its namespace's names and its own cgroup's.
 * - A namespace is its cookie, which the kernel never reuses (its inode is
 *   reused as soon as it is freed): a namespace that gets a dead one's inode
 *   starts without names. The dead one's names go when a record shows its
 *   inode with another cookie, or when the inode is gone
 *   ({@link DnsNames.forgetNamespaces}). Kernels without a netns cookie
 *   (before 5.12; they have no DNS names either, as they lack bpf_loop) would
 *   be keyed by inode.
 *
 * - One {@link DnsCache} for all network namespaces, keyed by namespace and
 *   address, so one container cannot name another's addresses, bounded in
 *   bytes as a whole (evictions counted): no namespace has a fixed share, and
 *   a node with hundreds of pods keeps every pod's names while they fit. A
 *   namespace's names go when the namespace does ({@link DnsNames.forgetNamespaces}).
 * - DNS over TCP arrives as the segments of one answer stream (the kernel
 *   copies only streams that carried a recorded query); they are reassembled
 *   here per namespace and 4-tuple, in a bounded buffer, and the message is
 *   read only if its transaction id and question are the query's. A stream
 *   with a hole (a segment longer than the kernel copies) gives the records
 *   before the hole and counts as cut; nothing is ever read across a hole.
 *
 * @module
 */
import type { DnsMessage } from "../bpf/records.ts";
import { DnsCache, type DnsCacheOptions, MAX_NAMES } from "./cache.ts";
import type { ResolverTrust } from "./resolvers.ts";
import { type Answer, parseAnswer } from "./parse.ts";
import { boottimeMs } from "../ffi/syscalls.ts";

/** The DNS cache's options (one cache, all namespaces). */
export type DnsNamesOptions = DnsCacheOptions;

/** Whose names a flow gets: its namespace (inode and cookie) and its socket's cgroup. */
export interface NameScope {
  readonly netns: number;
  /** 0 where the kernel has no netns cookie: the inode stands in. */
  readonly netnsCookie: number;
  readonly cgroupId: number;
}

/** A namespace's key in the cache: its cookie, or its inode where the kernel has no cookie. */
export function namespaceKey(netns: number, netnsCookie: number): string {
  return netnsCookie !== 0 ? `c${netnsCookie}` : `i${netns}`;
}

/** The namespace part of a cache key (`c12|addr`, `c12/345|addr`). */
function namespaceOf(key: string): string {
  const end = key.search(/[/|]/);
  return end < 0 ? key : key.slice(0, end);
}

export interface DnsNamesStats {
  /** Addresses all namespaces hold now. */
  entries: number;
  /** The heap the cache is charged (bytes; at most its maxBytes). */
  bytes: number;
  /** DNS answers handed over (a TCP answer counts once, when complete or cut). */
  responses: number;
  /** Answers that were not valid DNS, or (TCP) not the query's id and question. */
  malformed: number;
  /** Answers read only in part: cut by the kernel's copy, or a TCP stream with a hole. */
  cut: number;
  /** Addresses dropped because the cache was full (bytes or entries). */
  evicted: number;
  /** Addresses dropped because their network namespace was gone. */
  namespaceGone: number;
  /** TCP answer streams dropped unfinished (too many at once, or idle too long). */
  streamsDropped: number;
  /**
   * Answers from a server the namespace is not configured to use: they named
   * addresses only for the cgroup that asked (or, asker unknown, for nobody).
   */
  cgroupOnly: number;
}

/** One TCP answer being reassembled. */
interface Stream {
  /** The cache key prefix its names go under (namespace, or namespace and cgroup); "" for nobody. */
  scope: string;
  queryId: number;
  question: bigint;
  /** 2 + the message length, once known. */
  total: number;
  data: Uint8Array;
  /** Bytes from 0 that are present. */
  contiguous: number;
  /** Segments that arrived past `contiguous` (reordered), by offset. */
  pending: Map<number, Uint8Array>;
  cut: boolean;
  startedMs: number;
}

/** TCP answers reassembled at once at most, and reordered segments kept per answer. */
export const MAX_STREAMS = 256;
export const MAX_PENDING = 64;
const STREAM_IDLE_MS = 10_000;

const NO_NAMES: readonly string[] = Object.freeze([]);

export class DnsNames {
  readonly #cache: DnsCache;
  readonly #streams = new Map<string, Stream>();
  readonly #now: () => number;
  readonly #trust: ResolverTrust | undefined;
  /** Namespace inode -> the key of the namespace that has it now. */
  readonly #byInode = new Map<number, string>();
  #cgroupOnly = 0;
  #responses = 0;
  #malformed = 0;
  #cut = 0;
  #streamsDropped = 0;
  #namespaceGone = 0;

  /**
   * `trust`: which answers name addresses for their whole namespace (the
   * monitor passes src/dns/resolvers.ts's ProcResolvers); without it every
   * answer does (tests of the cache alone).
   */
  constructor(options: DnsNamesOptions = {}, trust?: ResolverTrust) {
    this.#cache = new DnsCache(options);
    this.#now = options.now ?? boottimeMs;
    this.#trust = trust;
  }

  get stats(): DnsNamesStats {
    const cache = this.#cache.stats;
    return {
      entries: cache.entries,
      bytes: cache.bytes,
      responses: this.#responses,
      malformed: this.#malformed,
      cut: this.#cut,
      evicted: cache.evicted,
      namespaceGone: this.#namespaceGone,
      streamsDropped: this.#streamsDropped,
      cgroupOnly: this.#cgroupOnly,
    };
  }

  /** The network namespaces with names now (a walk of the whole cache). */
  namespaces(): number {
    const seen = new Set<string>();
    for (const key of this.#cache.keys()) seen.add(namespaceOf(key));
    return seen.size;
  }

  /**
   * What the TCP reassembly holds now: streams, and bytes in their buffers and
   * reordered segments (a walk of the streams, for tests and debugging).
   */
  reassembly(): { streams: number; bytes: number } {
    let bytes = 0;
    for (const s of this.#streams.values()) {
      bytes += s.data.length;
      for (const p of s.pending.values()) bytes += p.length;
    }
    return { streams: this.#streams.size, bytes };
  }

  /** Addresses cached now (cheaper than stats). */
  get entries(): number {
    return this.#cache.stats.entries;
  }

  /**
   * The unexpired names resolved to `address` for a flow of `scope` (its
   * namespace's, then its cgroup's own; queried name first, then CNAMEs). A
   * bare number is a namespace inode without cookie: its namespace's names.
   */
  names(scope: NameScope | number, address: string): readonly string[] {
    // Nothing cached, nothing to find (and no namespace's names to drop): no keys made.
    if (this.#cache.size === 0) return NO_NAMES;
    if (typeof scope === "number") scope = { netns: scope, netnsCookie: 0, cgroupId: 0 };
    const ns = this.#namespace(scope.netns, scope.netnsCookie);
    const all = this.#cache.names(`${ns}|${address}`);
    if (scope.cgroupId === 0) return all;
    const own = this.#cache.names(`${ns}/${scope.cgroupId}|${address}`);
    if (own.length === 0) return all;
    if (all.length === 0) return own;
    return [...new Set([...all, ...own])].slice(0, MAX_NAMES);
  }

  /**
   * Drops the names of the namespaces whose inodes are in `gone` (they no
   * longer exist); returns how many addresses went.
   */
  forgetNamespaces(gone: ReadonlySet<number>): number {
    const keys = new Set<string>();
    for (const ino of gone) {
      keys.add(`i${ino}`);
      const key = this.#byInode.get(ino);
      if (key !== undefined) keys.add(key);
      this.#byInode.delete(ino);
    }
    return this.#dropNamespaces(keys);
  }

  #dropNamespaces(namespaces: ReadonlySet<string>): number {
    const n = this.#cache.dropWhere((key) => namespaces.has(namespaceOf(key)));
    this.#namespaceGone += n;
    return n;
  }

  /**
   * The key of the namespace with this inode and cookie. Inodes are unique
   * among live namespaces: another cookie with a known inode means the
   * namespace known by it is gone, and its names go.
   */
  #namespace(netns: number, netnsCookie: number): string {
    const key = namespaceKey(netns, netnsCookie);
    if (netns === 0) return key;
    const before = this.#byInode.get(netns);
    if (before === key) return key;
    // A record without a cookie (none read for it) cannot tell namespaces apart.
    if (netnsCookie === 0 && before !== undefined) return before;
    this.#byInode.set(netns, key);
    if (before !== undefined) this.#dropNamespaces(new Set([before]));
    return key;
  }

  /** The cache key prefix an answer's names go under, "" when they name for nobody. */
  #scope(m: DnsMessage): string {
    const ns = this.#namespace(m.netns, m.netnsCookie);
    if (this.#trust === undefined || this.#trust.trusted(m.netns, m.src, m.queryCgroup)) return ns;
    this.#cgroupOnly++;
    return m.queryCgroup === 0 ? "" : `${ns}/${m.queryCgroup}`;
  }

  /** Feeds one matched answer (UDP) or answer segment (TCP) from the kernel. Never throws. */
  onMessage(m: DnsMessage): void {
    if (m.transport === "udp") {
      this.#answer(this.#scope(m), m.payload, m.length, m.length > m.payload.length);
    } else {
      this.#segment(m);
    }
  }

  /** One whole (or cut) message; `expect` for TCP, whose id and question the kernel did not see. */
  #answer(
    scope: string,
    message: Uint8Array,
    wireLength: number,
    cut: boolean,
    expect?: { queryId: number; question: bigint },
  ): void {
    this.#responses++;
    if (cut) this.#cut++;
    let answer: Answer;
    try {
      answer = parseAnswer(message, wireLength);
    } catch {
      this.#malformed++;
      return;
    }
    if (expect && (answer.id !== expect.queryId || answer.question !== expect.question)) {
      this.#malformed++;
      return;
    }
    if (answer.resolutions.length === 0 || scope === "") return;
    const nowMs = this.#now();
    for (const r of answer.resolutions) {
      this.#cache.add(`${scope}|${r.address}`, r.names, r.ttl, nowMs);
    }
  }

  #segment(m: DnsMessage): void {
    const key = `${m.netns} ${m.netnsCookie} ${m.src} ${m.srcPort} ${m.dst} ${m.dstPort}`;
    const nowMs = this.#now();
    let stream = this.#streams.get(key);
    if (m.streamOffset === 0) {
      if (stream !== undefined) this.#drop(key); // a new answer on the same connection
      stream = {
        scope: this.#scope(m),
        queryId: m.queryId,
        question: m.question,
        total: 0,
        data: new Uint8Array(0),
        contiguous: 0,
        pending: new Map(),
        cut: false,
        startedMs: nowMs,
      };
      this.#expire(nowMs);
      this.#streams.set(key, stream);
    }
    if (stream === undefined) return; // its start was not seen: never read it
    const bytes = m.payload;
    if (m.length > bytes.length) stream.cut = true; // a hole after these bytes
    if (m.streamOffset > stream.contiguous) {
      if (stream.pending.size < MAX_PENDING) stream.pending.set(m.streamOffset, bytes);
      else stream.cut = true;
      return;
    }
    this.#append(stream, m.streamOffset, bytes);
    for (let next; (next = stream.pending.get(stream.contiguous)) !== undefined;) {
      stream.pending.delete(stream.contiguous);
      this.#append(stream, stream.contiguous, next);
    }
    this.#settle(key, stream);
  }

  #append(stream: Stream, offset: number, bytes: Uint8Array): void {
    const end = offset + bytes.length;
    if (end <= stream.contiguous) return; // a retransmission
    if (stream.total === 0) {
      // Until the 2-byte length is in, the bytes so far are all there is.
      const prefix = concat(stream.data, bytes, offset);
      if (prefix.length < 2) {
        stream.data = prefix;
        stream.contiguous = prefix.length;
        return;
      }
      stream.total = 2 + ((prefix[0]! << 8) | prefix[1]!);
      stream.data = new Uint8Array(stream.total);
      stream.contiguous = Math.min(prefix.length, stream.total);
      stream.data.set(prefix.subarray(0, stream.contiguous));
      return;
    }
    const from = stream.contiguous - offset;
    const room = stream.total - stream.contiguous;
    const take = bytes.subarray(from, from + room);
    stream.data.set(take, stream.contiguous);
    stream.contiguous += take.length;
  }

  /** A complete answer is read; a cut one is read up to its hole. */
  #settle(key: string, stream: Stream): void {
    const complete = stream.total > 0 && stream.contiguous >= stream.total;
    if (!complete && !stream.cut) return;
    this.#streams.delete(key);
    if (stream.total === 0) {
      this.#responses++;
      this.#cut++;
      this.#malformed++;
      return;
    }
    const message = stream.data.subarray(2, complete ? stream.total : stream.contiguous);
    this.#answer(stream.scope, message, stream.total - 2, !complete, stream);
  }

  #drop(key: string): void {
    this.#streams.delete(key);
    this.#streamsDropped++;
  }

  /** Streams idle too long go; so does the oldest when there are too many. */
  #expire(nowMs: number): void {
    for (const [key, s] of this.#streams) {
      if (nowMs - s.startedMs < STREAM_IDLE_MS && this.#streams.size < MAX_STREAMS) break;
      this.#drop(key);
    }
  }
}

/** `head` followed by `bytes` placed at `offset` (offset <= head.length). */
function concat(head: Uint8Array, bytes: Uint8Array, offset: number): Uint8Array {
  const out = new Uint8Array(offset + bytes.length);
  out.set(head.subarray(0, offset));
  out.set(bytes, offset);
  return out;
}
