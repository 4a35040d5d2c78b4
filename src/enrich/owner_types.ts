/**
 * The owner resolver's options and counts (src/enrich/owners.ts).
 *
 * @module
 */
import type { FlowRecord, SocketOwner } from "../bpf/records.ts";

/**
 * A record the resolver passes on, with its settled owner: the record itself
 * when it keeps the kernel's stamp, else the resolver's note of it.
 */
export interface Settled {
  readonly kind: FlowRecord["kind"];
  readonly cookie: number;
  readonly owner: SocketOwner | null;
  /** An incoming begin's is its acceptor's where the kernel said it (its listener's otherwise). */
  readonly cgroupId: number;
}

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
  /**
   * Settled at once, with nobody, because their socket was closed while a
   * holders run looked at it (the closer is not known; an end keeps its begin's owner).
   */
  byLook: number;
  /** Iterator runs made for waiting records. */
  iteratorRuns: number;
  /**
   * Of those, runs on every process made only because this kernel cannot run
   * the iterator on one process (before Linux 6.1): there the first looks too
   * walk every open file on the host.
   */
  everyProcessRuns: number;
}

/** The resolver's defaults (each option's doc above). */
export const DEFAULTS = {
  waitMs: 200,
  acceptWaitMs: 2000,
  retryMs: 20,
  firstLookMs: 5,
  lookMs: 5,
  maxShare: 0.05,
};

/** Counts before any record. */
export function noStats(): OwnerStats {
  return {
    held: 0,
    byHolder: 0,
    byCloser: 0,
    byTimeout: 0,
    byLook: 0,
    iteratorRuns: 0,
    everyProcessRuns: 0,
  };
}
