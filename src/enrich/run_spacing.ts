/**
 * When the next holders iterator run may start (src/enrich/owners.ts): at
 * least `minMs` after the last, and spaced so that runs take at most
 * `maxShare` of a core (a run that took 2 ms waits 40 ms at 5%), counted
 * from the cheaper of the last two runs, so that one run descheduled or
 * stopped (SIGSTOP) does not space the next by minutes; never more than
 * `maxMs` apart.
 *
 * @module
 */
export class RunSpacing {
  readonly #minMs: number;
  readonly #maxShare: number;
  readonly #maxMs: number;
  readonly #clock: () => number;
  #lastMs = -Infinity;
  #lastCostMs = Infinity;
  #intervalMs: number;

  constructor(minMs: number, maxShare: number, maxMs: number, clock: () => number) {
    this.#minMs = minMs;
    this.#maxShare = maxShare;
    this.#maxMs = maxMs;
    this.#clock = clock;
    this.#intervalMs = minMs;
  }

  /** The earliest the next run may start, ms. */
  get nextMs(): number {
    return this.#lastMs + this.#intervalMs;
  }

  /** Runs `run` now (`nowMs`), timed by the clock; returns what it returns. */
  run<T>(nowMs: number, run: () => T): T {
    this.#lastMs = nowMs;
    const t0 = this.#clock();
    const out = run();
    const cost = this.#clock() - t0;
    const spaced = Math.min(cost, this.#lastCostMs) / this.#maxShare;
    this.#lastCostMs = cost;
    this.#intervalMs = Math.min(this.#maxMs, Math.max(this.#minMs, spaced));
    return out;
  }
}
