/**
 * What the owner resolver holds (src/enrich/owners.ts): one {@link Held} per
 * record, a socket's in a list, which is also what passes on once settled.
 *
 * @module
 */
import type { FlowRecord, SocketOwner } from "../bpf/records.ts";
import type { Settled } from "./owner_types.ts";

/**
 * A record the resolver holds (waiting, or behind one of its socket's that
 * waits), one per record: it is also what passes on once settled (no copy of
 * the record). A socket's records are a list, in order, from `next`.
 */
export class Held implements Settled {
  readonly record: FlowRecord;
  readonly sinceMs: number;
  /** The owner it takes; undefined while unsettled. */
  to: SocketOwner | null | undefined;
  cgroupId: number;
  next: Held | undefined = undefined;
  /** The processes that may hold its socket, as of listener index `pidsOf` (see #pidsOf). */
  pids: readonly number[] = NO_PIDS;
  pidsOf = -1;

  constructor(record: FlowRecord, sinceMs: number, to: SocketOwner | null | undefined) {
    this.record = record;
    this.sinceMs = sinceMs;
    this.to = to;
    this.cgroupId = record.cgroupId;
  }

  get kind(): FlowRecord["kind"] {
    return this.record.kind;
  }

  get cookie(): number {
    return this.record.cookie;
  }

  get owner(): SocketOwner | null {
    return this.to ?? null;
  }
}

const NO_PIDS: readonly number[] = Object.freeze([]);
export const NONE: readonly Settled[] = Object.freeze([]);

/** Adds `h` at the end of the list from `head`. */
export function append(head: Held, h: Held): void {
  let last = head;
  while (last.next !== undefined) last = last.next;
  last.next = h;
}

/** One of the processes holding a socket: the stamped one if it is among them, else the first. */
export function pick(
  holders: readonly SocketOwner[],
  stamp: SocketOwner | null,
): SocketOwner | null {
  if (holders.length === 0) return null;
  for (let i = 0; i < holders.length; i++) if (holders[i]!.pid === stamp?.pid) return holders[i]!;
  return holders[0]!;
}
