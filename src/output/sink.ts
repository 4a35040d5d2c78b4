/**
 * Where events go. The CLI builds a list of sinks (the stdout format, and
 * any IPFIX exporters) and hands every batch the monitor yields to each in
 * turn; a new output is a new Sink, and the state machine never knows.
 *
 * @module
 */
import type { NetflowEvent } from "../flow/events.ts";

export interface Sink {
  /**
   * Takes one batch. Never waits on the network (a slow or absent collector
   * costs records, counted, never the caller's time). Returns false when
   * this sink can take no more (stdout's reader has gone): the caller stops.
   */
  write(batch: readonly NetflowEvent[]): boolean;
  /** Flushes what it still holds (waiting a bounded time at most) and lets go of its resources. */
  close(): Promise<void>;
  /** Its counts for the exit summary, or undefined when it has none. */
  summary(): string | undefined;
}

/** Hands a batch to every sink; false when one of them can take no more. */
export function writeAll(sinks: readonly Sink[], batch: readonly NetflowEvent[]): boolean {
  let ok = true;
  for (const sink of sinks) ok = sink.write(batch) && ok;
  return ok;
}
