/**
 * The owner of a flow is the process that holds its socket. The kernel
 * stamps what it can see in the holder's own context (bpf/netflow.bpf.c):
 * the creator (sock_create), the caller of connect(), and the process that
 * closes the socket (sock_release, shutdown's FIN). What it cannot see is who
 * accepted an incoming connection: the handshake completes before anyone
 * calls accept(), and the accepted socket inherits its listener's stamp (the
 * prefork master, the init process of socket activation).
 *
 * So records wait here, in order per socket, until their owner is known:
 *
 * - an incoming begin: until a task_file iterator run finds the process
 *   holding the accepted socket (matched by netns and cookie), or the socket
 *   is closed first (its end or release record names the closer);
 * - an end the kernel wrote outside the holder's context (the peer closed
 *   first: softirq): until the holder closes it (release record: its name at
 *   close) or an iterator run finds it still holding the socket;
 *
 * at most `waitMs` (200 ms) for an end, and `acceptWaitMs` (2 s) for an
 * incoming begin: a service that is still starting (socket activation, a
 * prefork master that forks its workers late) accepts later than an end
 * needs its name. A record behind one of its socket's that still waits (an
 * end behind its begin, when the peer closed before anyone accepted) has no
 * wait of its own: it cannot pass before it, and the run or the release
 * record that names the one names both. A run looks for every waiting
 * record at once, and only once a record has waited `firstLookMs` (accept
 * usually follows within that). Where the kernel can (Linux 6.1+) a run
 * walks only the processes that hold the listener each waiting flow arrived
 * on (the acceptor holds it: a prefork worker, a socket-activated service),
 * at most once per `lookMs` (5 ms); what such runs leave for `retryMs` more
 * (a worker forked since, a socket handed over) or cannot place (a listener
 * new since) is looked for by a run on every process, at most once per
 * `retryMs` (20 ms), whatever the number of waiting flows. Either kind runs
 * less often when costly (at most `maxShare` of a core: src/enrich/run_spacing.ts).
 * Outgoing begins and ends stamped at close pass straight through.
 *
 * A begin is never given a process that did not accept it: when its wait
 * runs out, or once `waitMs` has passed and no process holds its listener any
 * more (nobody can accept it), its owner is null and the timeout counted. Not
 * the listener's holder (the supervisor or init that only passed the
 * listener on) and not the kernel's stamp (the accepted socket inherits its
 * listener's: whoever made the listener). Only without the holders iterator
 * (a kernel before 5.11, which netflow names in one line at start) does a
 * begin keep the kernel's stamp. An end whose wait runs out takes its
 * begin's owner.
 *
 * The owner also carries its cgroup where the kernel said it (the holder's,
 * from the iterator; the closing process's, from a release record or an end
 * stamped at close): an accepted socket belongs to its listener's cgroup in
 * the kernel, so an incoming flow is given its acceptor's cgroup instead
 * (ARCHITECTURE: cgroup and container are the holder's).
 *
 * @module
 */
import type { FlowRecord, SocketOwner } from "../bpf/records.ts";
import type { HolderIndex } from "./holders.ts";
import { RunSpacing } from "./run_spacing.ts";
import type { OwnerResolverOptions, OwnerStats } from "./owner_types.ts";

export type { OwnerResolverOptions, OwnerStats } from "./owner_types.ts";

interface Held {
  record: FlowRecord;
  sinceMs: number;
  /** undefined while unsettled. */
  owner: SocketOwner | null | undefined;
  /** The processes that may hold its socket, as of listener index `pidsOf` (see #pidsOf). */
  pids?: readonly number[];
  pidsOf?: number;
}

const DEFAULTS = {
  waitMs: 200,
  acceptWaitMs: 2000,
  retryMs: 20,
  firstLookMs: 5,
  lookMs: 5,
  maxShare: 0.05,
};

export class OwnerResolver {
  readonly #holders: HolderIndex;
  readonly #waitMs: number;
  readonly #acceptWaitMs: number;
  readonly #retryMs: number;
  readonly #firstLookMs: number;
  /** Runs on every process, and runs on the listeners' holders only. */
  readonly #all: RunSpacing;
  readonly #few: RunSpacing;
  /** Whether runs on a few processes are possible (until the kernel says no). */
  #fewRuns: boolean;
  /** Runs on every process so far: a listener index's generation. */
  #allRuns = 0;
  /** Records waiting, per socket (by cookie: unique host-wide), in arrival order. */
  readonly #held = new Map<number, Held[]>();
  #unsettled = 0;
  readonly #stats: OwnerStats = {
    held: 0,
    byHolder: 0,
    byCloser: 0,
    byTimeout: 0,
    iteratorRuns: 0,
    everyProcessRuns: 0,
  };

  constructor(holders: HolderIndex, options: OwnerResolverOptions = {}) {
    this.#holders = holders;
    this.#waitMs = options.waitMs ?? DEFAULTS.waitMs;
    this.#acceptWaitMs = Math.max(this.#waitMs, options.acceptWaitMs ?? DEFAULTS.acceptWaitMs);
    this.#retryMs = options.retryMs ?? DEFAULTS.retryMs;
    this.#firstLookMs = options.firstLookMs ?? DEFAULTS.firstLookMs;
    const share = options.maxShare ?? DEFAULTS.maxShare;
    const clock = options.clock ?? (() => performance.now());
    this.#all = new RunSpacing(this.#retryMs, share, this.#acceptWaitMs, clock);
    this.#few = new RunSpacing(options.lookMs ?? DEFAULTS.lookMs, share, this.#acceptWaitMs, clock);
    this.#fewRuns = holders.refreshIn !== undefined;
  }

  get stats(): OwnerStats {
    return { ...this.#stats };
  }

  /** Records waiting now. */
  get waiting(): number {
    let n = 0;
    for (const list of this.#held.values()) n += list.length;
    return n;
  }

  /**
   * The start snapshot's records: their owner is whoever holds the socket
   * now (sockets older than netflow have no stamp), else the stamp.
   * `refresh` first: the holders must be as recent as the snapshot.
   */
  snapshot(records: readonly FlowRecord[]): FlowRecord[] {
    return records.map((r) => {
      if (r.kind !== "begin") return r;
      const holder = pick(this.#holders.ofSocket(r.netns, r.cookie), r.owner);
      return holder === null ? r : withOwner(r, holder);
    });
  }

  /** One record from the ring; returns the records whose owner is settled, in order. */
  push(r: FlowRecord, nowMs: number): FlowRecord[] {
    if (this.#waitMs <= 0) return r.kind === "release" ? [] : [r]; // the kernel's stamps only
    // By cookie alone (unique host-wide): a release record names no namespace when the socket
    // had no owner entry at its begin (accepted on a listener older than netflow).
    const key = r.cookie;
    const list = this.#held.get(key);
    if (r.kind === "release") {
      if (list === undefined || r.owner === null) return [];
      this.#settleAll(list, closer(r), "byCloser");
      return this.#flush(key, list);
    }
    if (r.kind === "end" && r.ownerAtClose && r.owner !== null) {
      if (list === undefined) return [r];
      // Closed in its holder's context: whoever was still unknown before it too.
      this.#settleAll(list, closer(r), "byCloser");
      list.push({ record: r, sinceMs: nowMs, owner: r.owner });
      return this.#flush(key, list);
    }
    const waits = r.kind === "end" || (r.kind === "begin" && !r.outgoing && !r.preexisting);
    if (!waits) {
      if (list === undefined) return [r];
      list.push({ record: r, sinceMs: nowMs, owner: r.owner });
      return this.#flush(key, list);
    }
    this.#stats.held++;
    this.#unsettled++;
    const held: Held = { record: r, sinceMs: nowMs, owner: undefined };
    if (list === undefined) this.#held.set(key, [held]);
    else list.push(held);
    return [];
  }

  /**
   * Settles what can be settled now: one iterator run when a record has
   * waited `firstLookMs` and the last run is old enough (on the listeners'
   * holders every `lookMs`, on every process every `retryMs`: see
   * #wantsAll); the wait's end for records older than `waitMs`. `final`:
   * everything, now (netflow stops).
   */
  settle(nowMs: number, final = false): FlowRecord[] {
    if (this.#unsettled === 0) return [];
    const out: FlowRecord[] = [];
    const oldest = this.#oldestSinceMs();
    const due = oldest + this.#firstLookMs <= nowMs;
    let ran = false;
    const all = final || (due && this.#wantsAll(oldest, nowMs));
    // On the listeners' holders, also while a run on every process waits for its spacing
    // (one that ran long spaces the next by 20 times its cost): what they can find, they find.
    if (
      due && this.#fewRuns && nowMs >= this.#few.nextMs && !(all && nowMs >= this.#all.nextMs)
    ) {
      const pids = new Set<number>();
      for (const h of this.#unsettledHeld()) for (const pid of this.#pidsOf(h)) pids.add(pid);
      if (pids.size > 0) {
        ran = this.#few.run(nowMs, () => this.#holders.refreshIn!(pids, this.#unsettledCookies()));
        this.#fewRuns = ran; // false: this kernel cannot (before 6.1), a run on every process now
      }
    }
    if (
      !ran && (final || (due && !this.#fewRuns && nowMs >= this.#all.nextMs) ||
        (all && nowMs >= this.#all.nextMs))
    ) {
      this.#all.run(nowMs, () => this.#holders.refresh(this.#unsettledCookies()));
      this.#allRuns++;
      // Where the iterator exists but cannot run on a few processes (not netflow's last run).
      if (!final && !this.#fewRuns && this.#holders.available !== false) {
        this.#stats.everyProcessRuns++;
      }
      ran = true;
    }
    if (ran) {
      this.#stats.iteratorRuns++;
      for (const list of this.#held.values()) {
        for (const h of list) {
          if (h.owner !== undefined) continue;
          const holder = pick(
            this.#holders.ofSocket(h.record.netns, h.record.cookie),
            h.record.owner,
          );
          if (holder !== null) this.#settle(h, holder, "byHolder");
        }
      }
    }
    for (const [key, list] of this.#held) {
      for (const h of list) {
        if (h.owner !== undefined) continue;
        if (final || this.#runOut(h, nowMs)) {
          this.#settle(h, this.#fallback(h.record), "byTimeout");
        }
        // What follows waits behind it: it cannot pass before it, and settles with it (an
        // end behind its waiting begin: the run or release that names one names both).
        if (h.owner === undefined) break;
      }
      out.push(...this.#flush(key, list));
    }
    return out;
  }

  /** When settle() has work to do, in ms from `nowMs` (at least 1); null when nothing waits. */
  wakeInMs(nowMs: number): number | null {
    if (this.#unsettled === 0) return null;
    const oldest = this.#oldestSinceMs();
    // The next run on a few processes, else the one on every process (once the oldest has
    // waited retryMs past its first look, or now).
    const all = Math.max(
      this.#all.nextMs,
      this.#wantsAll(oldest, nowMs) ? 0 : oldest + this.#firstLookMs + this.#retryMs,
    );
    const next = this.#fewRuns ? Math.min(this.#few.nextMs, all) : all;
    const look = Math.max(oldest + this.#firstLookMs, next);
    return Math.max(1, Math.min(look, this.#oldestDueMs()) - nowMs);
  }

  /**
   * Whether the next run must walk every process: this kernel cannot run on
   * a few (before 6.1); a record waited `retryMs` past its first look (the
   * runs on its listener's holders did not find it: a worker forked since,
   * a socket handed to another process); a waiting record whose processes
   * are not known (a listener made since the last run on every process).
   */
  #wantsAll(oldest: number, nowMs: number): boolean {
    if (!this.#fewRuns || oldest + this.#firstLookMs + this.#retryMs <= nowMs) return true;
    for (const h of this.#unsettledHeld()) if (this.#pidsOf(h).length === 0) return true;
    return false;
  }

  /**
   * The processes that may hold a waiting record's socket: those holding the
   * listener it arrived on (an incoming flow), and the one the kernel stamped
   * (its creator, or who connected), as of the last run on every process.
   */
  #pidsOf(h: Held): readonly number[] {
    if (h.pidsOf === this.#allRuns) return h.pids!;
    const r = h.record,
      pids = r.outgoing ? [] : this.#holders
        .ofListener(r.netns, r.family, r.localAddr, r.localPort).map((o) => o.pid);
    if (r.owner !== null && !pids.includes(r.owner.pid) && (r.outgoing || r.kind === "end")) {
      pids.push(r.owner.pid);
    }
    h.pids = pids;
    h.pidsOf = this.#allRuns;
    return pids;
  }

  *#unsettledHeld(): Generator<Held> {
    for (const list of this.#held.values()) {
      for (const h of list) if (h.owner === undefined) yield h;
    }
  }

  /** The sockets with a record waiting for its owner: the only rows a run must write. */
  #unsettledCookies(): Set<number> {
    const cookies = new Set<number>();
    for (const list of this.#held.values()) {
      for (const h of list) if (h.owner === undefined) cookies.add(h.record.cookie);
    }
    return cookies;
  }

  #oldestSinceMs(): number {
    let oldest = Infinity;
    for (const list of this.#held.values()) {
      for (const h of list) if (h.owner === undefined && h.sinceMs < oldest) oldest = h.sinceMs;
    }
    return oldest;
  }

  /** How long a record may wait: a begin for its accept, an end for its name at close. */
  #limitMs(r: FlowRecord): number {
    return r.kind === "begin" ? this.#acceptWaitMs : this.#waitMs;
  }

  /** When the earliest wait runs out: of each socket's first unsettled record (the rest wait behind it). */
  #oldestDueMs(): number {
    let due = Infinity;
    for (const list of this.#held.values()) {
      const h = list.find((h) => h.owner === undefined);
      if (h !== undefined) due = Math.min(due, h.sinceMs + this.#limitMs(h.record));
    }
    return due;
  }

  /**
   * A record's wait has run out: its limit passed, or (a begin) `waitMs`
   * passed and no process holds its listener any more, so nobody can accept it.
   */
  #runOut(h: Held, nowMs: number): boolean {
    const age = nowMs - h.sinceMs, r = h.record;
    if (age >= this.#limitMs(r)) return true;
    return r.kind === "begin" && age >= this.#waitMs &&
      this.#holders.ofListener(r.netns, r.family, r.localAddr, r.localPort).length === 0;
  }

  #fallback(r: FlowRecord): SocketOwner | null {
    // An end: its begin's owner (the flow table keeps it), or the connect stamp.
    if (r.kind !== "begin") return r.outgoing ? r.owner : null;
    // Never a process that did not accept; the stamp only where nothing better can be known.
    return this.#holders.available === false ? r.owner : null;
  }

  #settle(h: Held, owner: SocketOwner | null, how: keyof OwnerStats): void {
    h.owner = owner;
    this.#unsettled--;
    this.#stats[how]++;
  }

  #settleAll(list: Held[], owner: SocketOwner, how: keyof OwnerStats): void {
    for (const h of list) if (h.owner === undefined) this.#settle(h, owner, how);
  }

  /** The settled records at the head of a socket's list, with their owner. */
  #flush(key: number, list: Held[]): FlowRecord[] {
    const out: FlowRecord[] = [];
    while (list.length > 0 && list[0]!.owner !== undefined) {
      const h = list.shift()!;
      out.push(h.owner === h.record.owner ? h.record : withOwner(h.record, h.owner ?? null));
    }
    if (list.length === 0) this.#held.delete(key);
    return out;
  }
}

/**
 * The closing process named by a release record or an end stamped at close,
 * with its cgroup (the kernel writes the closer's in such records).
 */
function closer(r: FlowRecord): SocketOwner {
  const owner = r.owner!;
  return r.cgroupId === 0 || owner.cgroupId === r.cgroupId
    ? owner
    : { ...owner, cgroupId: r.cgroupId };
}

/**
 * A record with its settled owner; an incoming begin also takes the owner's
 * cgroup (the acceptor's) when the kernel said it: the accepted socket itself
 * is in its listener's cgroup.
 */
function withOwner(r: FlowRecord, owner: SocketOwner | null): FlowRecord {
  const cgroupId = r.kind === "begin" && !r.outgoing && owner?.cgroupId
    ? owner.cgroupId
    : r.cgroupId;
  return { ...r, owner, cgroupId };
}

/** One of the processes holding a socket: the stamped one if it is among them, else the first. */
function pick(holders: readonly SocketOwner[], stamp: SocketOwner | null): SocketOwner | null {
  if (holders.length === 0) return null;
  return holders.find((h) => h.pid === stamp?.pid) ?? holders[0]!;
}
