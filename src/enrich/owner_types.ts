/**
 * The owner resolver's options and counts (src/enrich/owners.ts).
 *
 * @module
 */

export interface OwnerResolverOptions {
  /** Longest an end waits for its owner, ms (default 200); 0: none waits (the stamps only). */
  waitMs?: number;
  /**
   * Longest an incoming begin waits for the process that accepts it, ms
   * (default 2000, and never less than `waitMs`).
   */
  acceptWaitMs?: number;
  /** Least time between two iterator runs on every process, ms (default 20). */
  retryMs?: number;
  /** How long a record waits before the first iterator run looks for it, ms (default 5). */
  firstLookMs?: number;
  /**
   * Least time between two runs on the listeners' holders only (Linux 6.1+:
   * the processes holding the listener each waiting flow arrived on), ms
   * (default 5). Such runs look first; a run on every process follows for
   * what they leave after `retryMs` more.
   */
  lookMs?: number;
  /**
   * Most of one core the iterator may take (default 0.05): after a run that
   * took T ms the next waits at least T / maxShare ms (a host with many
   * sockets gets fewer looks, never a busy core).
   */
  maxShare?: number;
  /** The clock that times iterator runs, ms (injectable for tests). */
  clock?: () => number;
}

/** How the owners of the records that passed were settled. */
export interface OwnerStats {
  /** Records that waited for their owner. */
  held: number;
  /** Settled by an iterator run (the process holding the socket). */
  byHolder: number;
  /** Settled by the process that closed the socket (end or release record). */
  byCloser: number;
  /** Settled when the wait ran out (see the module doc). */
  byTimeout: number;
  /** Iterator runs made for waiting records. */
  iteratorRuns: number;
  /**
   * Of those, runs on every process made only because this kernel cannot run
   * the iterator on one process (before Linux 6.1): there the first looks too
   * walk every open file on the host.
   */
  everyProcessRuns: number;
}
