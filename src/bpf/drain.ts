/**
 * The rings drained as one stream in the kernel's time order. DNS answers
 * (dns_events) and flow records (events) come through two rings; read one
 * after the other, an answer committed between the two reads would be applied
 * after the begin that needed it, and the flow would get no names. So the
 * flow ring is read first, then the DNS ring (which then holds every answer
 * committed before the flow record read), and the two are merged by their
 * kernel timestamps (`ts_ns`, CLOCK_MONOTONIC): each answer is handed over
 * before the first flow record the kernel wrote after it. Each flow record is
 * handed over as it is read, so a drain's records are not all alive at once. Flow records keep their ring order (a socket's records are in order
 * there); answers are sorted by time.
 *
 * One read of the DNS ring is not always all of it: a drain stops at its
 * bound (DRAIN_MAX records, a flood of answers) and at a record another CPU
 * has reserved and not yet committed, and the answers behind that point may
 * be older than flow records already read. So while the DNS ring has a
 * backlog ({@link Drainable.backlog}) and the answers read so far do not
 * reach past the next flow record's time, it is read again before that
 * record is handed over (a record still being written is waited for, at
 * most {@link BUSY_WAIT_MS}; then the flow goes on, counted). Answers are
 * handed over as they are read: memory stays one drain's worth.
 *
 * Handshake packets (fail events) and the packet view come through a third
 * ring (`packets`), so that a SYN flood never costs a begin or an end; it is
 * merged into the flow records by time the same way (a SYN before the begin
 * of the connection it opened).
 *
 * @module
 */
import type { RecordHandler } from "../ffi/ringbuf.ts";
import type { KernelRecord } from "./records.ts";

/** What a drain needs of a ring reader. */
export interface Drainable {
  drain(onRecord: RecordHandler): number;
  /**
   * Whether records are in the ring that no drain has handed over yet
   * (committed behind the last drain's bound, or still being written).
   * Readers that cannot tell leave it out (taken as none).
   */
  backlog?(): boolean;
}

/** Decodes one raw record (undefined: malformed). */
export type Decode = (view: DataView, offset: number, length: number) => KernelRecord | undefined;

/** How long a flow record waits for a DNS record another CPU is still writing. */
export const BUSY_WAIT_MS = 2;

/** What one drainInOrder call did beyond handing records over. */
export interface DrainOutcome {
  /** Records handed over (both rings). */
  records: number;
  /** Flow records handed over while an older DNS record was still being written (waited for in vain). */
  unordered: number;
}

/** A ring merged into the flow records by time, and where its records go. */
interface Merged {
  ring: Drainable;
  on: (r: KernelRecord | undefined) => void;
  /** Records read and not yet handed over, sorted by time from `next` on. */
  held: KernelRecord[];
  next: number;
}

/**
 * Drains `flows`, then `packets` (handshake packets, when given) and `dns`,
 * and hands every record over in the kernel's time order: `onFlow` for the
 * flow ring's and the packet ring's, `onDns` for the DNS ring's (malformed
 * ones as undefined, at once). Flow records keep their ring order; the other
 * rings' records are merged in by time, each read on while it has a backlog
 * and what was read of it ends before the next flow record. Returns how many
 * records there were, and how many flow records could not wait for an older
 * record still being written.
 */
export function drainInOrder(
  flows: Drainable,
  dns: Drainable,
  decode: Decode,
  onFlow: (r: KernelRecord | undefined) => void,
  onDns: (r: KernelRecord | undefined) => void,
  packets?: Drainable,
): DrainOutcome {
  let records = 0;
  const merged: Merged[] = [{ ring: dns, on: onDns, held: [], next: 0 }];
  if (packets !== undefined) merged.push({ ring: packets, on: onFlow, held: [], next: 0 });
  const read = (m: Merged): number => {
    const chunk: KernelRecord[] = [];
    const got = m.ring.drain((view, offset, length) => {
      const r = decode(view, offset, length);
      if (r === undefined) m.on(undefined);
      else chunk.push(r);
    });
    records += got;
    m.held = m.held.slice(m.next).concat(chunk);
    m.next = 0;
    if (m.held.length > 1) m.held.sort((a, b) => a.timeNs - b.timeNs);
    return got;
  };
  let unordered = 0;
  let deadline = 0;
  let waited = false; // in vain once: the rest of this drain does not wait again
  /** Reads `m` on until what it holds reaches past `timeNs`, or it has no backlog. */
  const catchUp = (m: Merged, timeNs: number): void => {
    while (
      !waited && (m.held.length === m.next || m.held[m.held.length - 1]!.timeNs <= timeNs) &&
      m.ring.backlog?.() === true
    ) {
      if (read(m) > 0) {
        deadline = 0;
        continue;
      }
      // Nothing readable: the next record is still being written by another CPU.
      const now = performance.now();
      if (deadline === 0) deadline = now + BUSY_WAIT_MS;
      else if (now >= deadline) waited = true;
    }
  };
  /** Hands over, in time order across the merged rings, what is not later than `timeNs`. */
  const handOver = (timeNs: number): void => {
    for (;;) {
      let first: Merged | undefined;
      // Indexed loops here and below: run per flow record, they make no iterator in any tier.
      for (let i = 0; i < merged.length; i++) {
        const m = merged[i]!, head = m.held[m.next];
        if (
          head !== undefined && head.timeNs <= timeNs &&
          (first === undefined || head.timeNs < first.held[first.next]!.timeNs)
        ) first = m;
      }
      if (first === undefined) return;
      first.on(first.held[first.next++]);
    }
  };
  // Each flow record handed over as it is read (decoded, then let go: a drain's records are
  // not all alive at once), after what the other rings hold from before it.
  let first = true;
  const flowRecords = flows.drain((view, offset, length) => {
    const r = decode(view, offset, length);
    if (first) {
      // The other rings, read after the first flow record was: every answer before it is there.
      first = false;
      for (const m of merged) read(m);
    }
    if (r === undefined) {
      onFlow(undefined);
      return;
    }
    for (let i = 0; i < merged.length; i++) catchUp(merged[i]!, r.timeNs);
    if (waited && merged.some((m) => m.ring.backlog?.() === true)) unordered++;
    handOver(r.timeNs);
    onFlow(r);
  });
  records += flowRecords; // after the call: the reads made in it counted theirs
  if (first) { for (const m of merged) read(m); }
  handOver(Infinity);
  return { records, unordered };
}
