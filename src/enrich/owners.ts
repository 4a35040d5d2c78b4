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
import { DEFAULTS, noStats } from "./owner_types.ts";
import type { OwnerResolverOptions, OwnerStats, Settled } from "./owner_types.ts";
import { OwnerCgroups } from "./owner_cgroups.ts";
import { append, Held, NONE, pick } from "./owner_held.ts";

export type { OwnerResolverOptions, OwnerStats, Settled } from "./owner_types.ts";

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
  /** Records held, per socket (by cookie: unique host-wide): the first, the rest from its `next`. */
  readonly #held = new Map<number, Held>();
  /** A closer's owner with the cgroup its record names, made once per pair. */
  readonly #cgroups = new OwnerCgroups();
  #unsettled = 0;
  readonly #stats: OwnerStats = noStats();

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

  /** Records held now. */
  get waiting(): number {
    let n = 0;
    for (const head of this.#held.values()) {
      for (let h: Held | undefined = head; h !== undefined; h = h.next) n++;
    }
    return n;
  }

  /**
   * The start snapshot's records: their owner is whoever holds the socket
   * now (sockets older than netflow have no stamp), else the stamp.
   * `refresh` first: the holders must be as recent as the snapshot.
   */
  snapshot(records: readonly FlowRecord[]): Settled[] {
    return records.map((r) => {
      const holder = this.ownerNow(r);
      if (holder === null) return r;
      const h = new Held(r, 0, undefined);
      this.#take(h, holder);
      return h;
    });
  }

  /**
   * A start snapshot's begin: who holds its socket now (sockets older than
   * netflow have no stamp); null: nobody the last run saw (keep the stamp).
   */
  ownerNow(r: FlowRecord): SocketOwner | null {
    return r.kind === "begin" ? pick(this.#holders.ofSocket(r.netns, r.cookie), r.owner) : null;
  }

  /** One record from the ring; returns the records whose owner is settled, in order. */
  push(r: FlowRecord, nowMs: number): readonly Settled[] {
    const out: Settled[] = [];
    this.pushInto(r, nowMs, out);
    return out.length === 0 ? NONE : out;
  }

  /** {@link push}, the settled records added to `out` (no array of its own). */
  pushInto(r: FlowRecord, nowMs: number, out: Settled[]): void {
    if (this.#waitMs <= 0) { // the kernel's stamps only
      if (r.kind !== "release") out.push(r);
      return;
    }
    // By cookie alone (unique host-wide): a release record names no namespace when the socket
    // had no owner entry at its begin (accepted on a listener older than netflow).
    const key = r.cookie;
    const head = this.#held.get(key);
    // Written at the socket's close: by its closer (its owner), or by nobody known (null: it was
    // closed while a holders look held it, bpf/owners.bpf.h): no run can find it any more.
    const closed = r.kind === "release" || (r.kind === "end" && r.ownerAtClose === true);
    if (r.kind === "release" && head === undefined) return;
    if (closed) {
      if (head === undefined) {
        out.push(r);
        return;
      }
      // Whoever was still unknown before it too.
      if (r.owner === null) this.#settleAll(head, null, "byLook");
      else this.#settleAll(head, this.#cgroups.closer(r), "byCloser");
      if (r.kind === "end") append(head, new Held(r, nowMs, r.owner));
      this.#flush(head, out);
      return;
    }
    const waits = r.kind === "end" || (r.kind === "begin" && !r.outgoing && !r.preexisting);
    if (!waits) {
      if (head === undefined) out.push(r);
      else {
        append(head, new Held(r, nowMs, r.owner));
        this.#flush(head, out);
      }
      return;
    }
    this.#stats.held++;
    this.#unsettled++;
    const held = new Held(r, nowMs, undefined);
    if (head === undefined) this.#held.set(key, held);
    else append(head, held);
  }

  /**
   * Settles what can be settled now: one iterator run when a record has
   * waited `firstLookMs` and the last run is old enough (on the listeners'
   * holders every `lookMs`, on every process every `retryMs`: see
   * #wantsAll); the wait's end for records older than `waitMs`. `final`:
   * everything, now (netflow stops).
   */
  settle(nowMs: number, final = false): readonly Settled[] {
    const out: Settled[] = [];
    this.settleInto(nowMs, final, out);
    return out.length === 0 ? NONE : out;
  }

  /** {@link settle}, the settled records added to `out`. */
  settleInto(nowMs: number, final: boolean, out: Settled[]): void {
    if (this.#unsettled === 0) return;
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
      for (const head of this.#held.values()) {
        for (let h: Held | undefined = head; h !== undefined; h = h.next) {
          if (h.to === undefined) { for (const pid of this.#pidsOf(h)) pids.add(pid); }
        }
      }
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
      for (const head of this.#held.values()) {
        for (let h: Held | undefined = head; h !== undefined; h = h.next) {
          if (h.to !== undefined) continue;
          const holder = pick(
            this.#holders.ofSocket(h.record.netns, h.record.cookie),
            h.record.owner,
          );
          if (holder !== null) this.#settle(h, holder, "byHolder");
        }
      }
    }
    for (const head of this.#held.values()) {
      for (let h: Held | undefined = head; h !== undefined; h = h.next) {
        if (h.to !== undefined) continue;
        if (final || this.#runOut(h, nowMs)) {
          this.#settle(h, this.#fallback(h.record), "byTimeout");
        }
        // What follows waits behind it: it cannot pass before it, and settles with it (an
        // end behind its waiting begin: the run or release that names one names both).
        if (h.to === undefined) break;
      }
      this.#flush(head, out);
    }
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
    for (const head of this.#held.values()) {
      for (let h: Held | undefined = head; h !== undefined; h = h.next) {
        if (h.to === undefined && this.#pidsOf(h).length === 0) return true;
      }
    }
    return false;
  }

  /**
   * The processes that may hold a waiting record's socket: those holding the
   * listener it arrived on (an incoming flow), and the one the kernel stamped
   * (its creator, or who connected), as of the last run on every process.
   */
  #pidsOf(h: Held): readonly number[] {
    if (h.pidsOf === this.#allRuns) return h.pids;
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

  /** The sockets with a record waiting for its owner: the only rows a run must write. */
  #unsettledCookies(): Set<number> {
    const cookies = new Set<number>();
    for (const head of this.#held.values()) {
      for (let h: Held | undefined = head; h !== undefined; h = h.next) {
        if (h.to === undefined) cookies.add(h.record.cookie);
      }
    }
    return cookies;
  }

  #oldestSinceMs(): number {
    let oldest = Infinity;
    for (const head of this.#held.values()) {
      for (let h: Held | undefined = head; h !== undefined; h = h.next) {
        if (h.to === undefined && h.sinceMs < oldest) oldest = h.sinceMs;
      }
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
    for (const head of this.#held.values()) {
      let h: Held | undefined = head;
      while (h !== undefined && h.to !== undefined) h = h.next;
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

  #settle(
    h: Held,
    owner: SocketOwner | null,
    how: "byHolder" | "byCloser" | "byTimeout" | "byLook",
  ): void {
    this.#take(h, owner);
    this.#unsettled--;
    this.#stats[how]++;
  }

  /**
   * A held record's owner; an incoming begin also takes the owner's cgroup
   * (the acceptor's) when the kernel said it: the accepted socket itself is in
   * its listener's cgroup.
   */
  #take(h: Held, owner: SocketOwner | null): void {
    h.to = owner;
    const r = h.record;
    if (r.kind === "begin" && !r.outgoing && owner?.cgroupId) h.cgroupId = owner.cgroupId;
  }

  #settleAll(head: Held, owner: SocketOwner | null, how: "byCloser" | "byLook"): void {
    for (let h: Held | undefined = head; h !== undefined; h = h.next) {
      if (h.to === undefined) this.#settle(h, owner, how);
    }
  }

  /** The settled records at the head of a socket's list into `out`; the rest stay. */
  #flush(head: Held, out: Settled[]): void {
    let h: Held | undefined = head;
    for (; h !== undefined && h.to !== undefined; h = h.next) out.push(h);
    if (h === head) return;
    if (h === undefined) this.#held.delete(head.record.cookie);
    else this.#held.set(head.record.cookie, h);
  }
}
