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
 * @module
 */
import type { RecordHandler } from "../ffi/ringbuf.ts";
import type { KernelRecord } from "./records.ts";

/** What a drain needs of a ring reader. */
export interface Drainable {
  drain(onRecord: RecordHandler): number;
}

/** Decodes one raw record (undefined: malformed). */
export type Decode = (view: DataView, offset: number, length: number) => KernelRecord | undefined;

/**
 * Drains `flows` then `dns`, and hands every record over in the kernel's
 * time order: `onDns` for the DNS ring's, `onFlow` for the flow ring's
 * (malformed ones as undefined, at once). Returns how many records there were.
 */
export function drainInOrder(
  flows: Drainable,
  dns: Drainable,
  decode: Decode,
  onFlow: (r: KernelRecord | undefined) => void,
  onDns: (r: KernelRecord | undefined) => void,
): number {
  const flowRecords: KernelRecord[] = [];
  const n = flows.drain((view, offset, length) => {
    const r = decode(view, offset, length);
    if (r === undefined) onFlow(undefined);
    else flowRecords.push(r);
  });
  const answers: KernelRecord[] = [];
  const m = dns.drain((view, offset, length) => {
    const r = decode(view, offset, length);
    if (r === undefined) onDns(undefined);
    else answers.push(r);
  });
  if (answers.length > 1) answers.sort((a, b) => a.timeNs - b.timeNs);
  let next = 0;
  for (const r of flowRecords) {
    while (next < answers.length && answers[next]!.timeNs <= r.timeNs) onDns(answers[next++]);
    onFlow(r);
  }
  while (next < answers.length) onDns(answers[next++]);
  return n + m;
}
