/**
 * One drain of everything the kernel has for netflow, in order: the flow,
 * packet and DNS rings merged by time (src/bpf/drain.ts), then the records
 * the kernel kept aside while the flow ring was full. Bounded, so that a
 * backlog is written as it is read: `behind` says another drain should follow
 * at once.
 *
 * @module
 */
import { type Decode, type Drainable, drainInOrder } from "./drain.ts";
import type { KernelRecord } from "./records.ts";

/** Kept records read per drain (each costs three map calls; a batch stays small: DRAIN_MAX). */
export const KEPT_PER_DRAIN = 1024;

/** What a drain reads: the rings and the kernel's store (a Probe). */
export interface KernelSources {
  readonly reader: Drainable & { readonly behind: boolean };
  readonly dnsReader: Drainable;
  readonly packetReader?: Drainable;
  takeKept(max: number): Uint8Array[];
}

export class KernelDrain {
  readonly #from: KernelSources;
  readonly #decode: Decode;
  readonly #onRecord: (record: KernelRecord | undefined) => void;
  readonly #onDns: (record: KernelRecord | undefined) => void;
  /** Records taken from the kernel's store, handed over once the ring has caught up. */
  #kept: Uint8Array[] = [];
  /** Records read from the kernel's `kept` map. */
  recovered = 0;
  /** Flow records handed over ahead of an older DNS record still being written. */
  unordered = 0;
  /** The last drain left records in the ring or the kernel's store. */
  behind = false;

  constructor(
    from: KernelSources,
    decode: Decode,
    onRecord: (record: KernelRecord | undefined) => void,
    onDns: (record: KernelRecord | undefined) => void,
  ) {
    this.#from = from;
    this.#decode = decode;
    this.#onRecord = onRecord;
    this.#onDns = onDns;
  }

  /** Hands over what the kernel has now (bounded); returns how many records. */
  drain(): number {
    // What the kernel kept while the ring was full is taken BEFORE the ring is read, and
    // handed over only once a ring drain that began after the take has caught up: a kept
    // end's begin, when the ring had room for it, was committed before the end was kept,
    // so it comes first. (Taken after a drain that stopped at DRAIN_MAX, an end came
    // before its begin: an end without a begin, then the begin dropped as a repeat.)
    if (this.#kept.length === 0) this.#kept = this.#from.takeKept(KEPT_PER_DRAIN);
    // In the kernel's time order: an answer is in the cache before the flows after it.
    const { records: drained, unordered } = drainInOrder(
      this.#from.reader,
      this.#from.dnsReader,
      this.#decode,
      this.#onRecord,
      this.#onDns,
      this.#from.packetReader,
    );
    this.unordered += unordered;
    // Bounded: the rest waits for the next drain, so a backlog is written as it is read.
    let kept = 0;
    if (!this.#from.reader.behind) {
      for (const bytes of this.#kept) {
        this.#onRecord(this.#decode(new DataView(bytes.buffer), bytes.byteOffset, bytes.length));
      }
      kept = this.#kept.length;
      this.recovered += kept;
      this.#kept = [];
    }
    this.behind = this.#from.reader.behind || this.#kept.length > 0 || kept === KEPT_PER_DRAIN;
    return drained + kept;
  }
}
