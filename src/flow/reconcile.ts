/**
 * When the kernel's list of open flows is read (a sweep): every update
 * interval when updates are asked for; without them, only once an end may
 * have been lost (records lost, or sockets the kernel could not follow), for
 * long enough that two sweeps in a row can miss a socket (the table then ends
 * its flow as unknown), for good while the kernel may not follow a socket or
 * another sock_ops program shares the cgroup, and every 5 minutes anyway for
 * the 32-bit counters.
 *
 * @module
 */

/** How often the list is read while reconciling, ms. */
export const RECONCILE_MS = 3000;
/**
 * Without updates, open flows are still listed this often, so that their
 * 32-bit kernel counters (segs_in, segs_out, total_retrans) are seen before
 * they can wrap twice (src/flow/counters.ts): at 100 Gbit/s segs_out wraps
 * in about 8 minutes.
 */
const COUNTERS_MS = 300_000;

/** The kernel's counts the policy follows. */
export interface LossCounts {
  /** Records lost to a full ring. */
  lost: number;
  /** Sockets the kernel could not follow (no socket storage). */
  untracked: number;
  /** Sockets older than netflow whose state callbacks could not be turned on (before 6.12). */
  noCallbacks: number;
  /** Sockets whose state callbacks another sock_ops program turned off (netflow turned them on again). */
  callbacksRestored: number;
  /** Another sock_ops program runs on the watched cgroup (it may turn the callbacks off). */
  sharesSockOps: () => boolean;
}

export class SweepPolicy {
  readonly #updateMs: number | null;
  #nextMs: number;
  /** Records lost and sockets untracked as of the last look, and until when to reconcile. */
  #lossSeen = 0;
  #reconcileUntilMs = 0;
  #nextCountersMs: number;

  /** `updateMs`: updates every this many ms, or null without updates. */
  constructor(updateMs: number | null, nowMs: number) {
    this.#updateMs = updateMs;
    this.#nextMs = nowMs + this.#everyMs();
    this.#nextCountersMs = nowMs + COUNTERS_MS;
  }

  /** Whether to read the list now; `counts` is read only when it is time to look. */
  due(nowMs: number, counts: () => LossCounts): boolean {
    if (nowMs < this.#nextMs) return false;
    this.#nextMs = nowMs + this.#everyMs();
    const { lost, untracked, noCallbacks, callbacksRestored, sharesSockOps } = counts();
    if (lost + untracked !== this.#lossSeen) {
      this.#lossSeen = lost + untracked;
      this.#reconcileUntilMs = nowMs + 4 * RECONCILE_MS;
    }
    // A socket the kernel could not follow (no storage; or, before 6.12, no
    // state callbacks for a socket older than netflow; or another sock_ops
    // program that turns them off) ends only through the list: while there
    // may be one, reconcile for good. Every COUNTERS_MS the list is read
    // anyway, for the 32-bit counters.
    const counters = nowMs >= this.#nextCountersMs;
    if (
      this.#updateMs === null && nowMs > this.#reconcileUntilMs &&
      untracked + noCallbacks + callbacksRestored === 0 && !counters && !sharesSockOps()
    ) return false;
    if (counters) this.#nextCountersMs = nowMs + COUNTERS_MS;
    return true;
  }

  #everyMs(): number {
    return Math.min(RECONCILE_MS, this.#updateMs ?? RECONCILE_MS);
  }
}
