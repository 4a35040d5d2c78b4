/**
 * Both rings drained as one stream in the kernel's time order. DNS answers
 * (dns_events) and flow records (events) come through two rings; read one
 * after the other, an answer committed between the two reads would be applied
 * after the begin that needed it, and the flow would get no names. So the
 * flow ring is read first (its records kept), then the DNS ring (which now
 * holds every answer committed before those flow records were read), and the
 * two are merged by their kernel timestamps (`ts_ns`, CLOCK_MONOTONIC): each
 * answer is handed over before the first flow record the kernel wrote after
 * it. Flow records keep their ring order (a socket's records are in order
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

/**
 * Drains `flows` then `dns`, and hands every record over in the kernel's
 * time order: `onDns` for the DNS ring's, `onFlow` for the flow ring's
 * (malformed ones as undefined, at once). Returns how many records there
 * were, and how many flow records could not wait for an older answer.
 */
export function drainInOrder(
  flows: Drainable,
  dns: Drainable,
  decode: Decode,
  onFlow: (r: KernelRecord | undefined) => void,
  onDns: (r: KernelRecord | undefined) => void,
): DrainOutcome {
  const flowRecords: KernelRecord[] = [];
  const n = flows.drain((view, offset, length) => {
    const r = decode(view, offset, length);
    if (r === undefined) onFlow(undefined);
    else flowRecords.push(r);
  });
  let answers: KernelRecord[] = [];
  let next = 0;
  let m = 0;
  let unordered = 0;
  const read = (): number => {
    const chunk: KernelRecord[] = [];
    const got = dns.drain((view, offset, length) => {
      const r = decode(view, offset, length);
      if (r === undefined) onDns(undefined);
      else chunk.push(r);
    });
    m += got;
    answers = answers.slice(next).concat(chunk);
    next = 0;
    if (answers.length > 1) answers.sort((a, b) => a.timeNs - b.timeNs);
    return got;
  };
  read();
  let deadline = 0;
  let waited = false; // in vain once: the rest of this drain does not wait again
  for (const r of flowRecords) {
    // Read on while the ring holds more and what was read ends before this record.
    while (
      !waited && (answers.length === next || answers[answers.length - 1]!.timeNs <= r.timeNs) &&
      dns.backlog?.() === true
    ) {
      if (read() > 0) {
        deadline = 0;
        continue;
      }
      // Nothing readable: the next record is still being written by another CPU.
      const now = performance.now();
      if (deadline === 0) deadline = now + BUSY_WAIT_MS;
      else if (now >= deadline) waited = true;
    }
    if (waited && dns.backlog?.() === true) unordered++;
    while (next < answers.length && answers[next]!.timeNs <= r.timeNs) onDns(answers[next++]);
    onFlow(r);
  }
  while (next < answers.length) onDns(answers[next++]);
  return { records: n + m, unordered };
}
