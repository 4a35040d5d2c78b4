/**
 * One drain of everything the kernel has for netflow, in order: the flow,
 * packet and DNS rings merged by time (src/bpf/drain.ts), then the records
 * the kernel kept aside while the flow ring was full. Bounded, so that a
 * backlog is written as it is read: `behind` says another drain should follow
 * at once.
 *
 * A kept end comes after its begin, and before its socket's release record:
 * the begin was in the ring before the end was kept (or is written with it),
 * and the kernel writes a release record only for a socket whose end it has
 * written. So the store is taken before the ring is read and handed over once
 * the ring has caught up, and a release record read from the ring first brings
 * its socket's kept end along (from the batch taken, else from the kernel's
 * map): the end then never waits for a name at close the kernel already gave.
 *
 * @module
 */
import { DRAIN_MAX } from "../ffi/ringbuf.ts";
import { type Decode, type Drainable, drainInOrder } from "./drain.ts";
import { LAYOUT, u64 } from "./layout.ts";
import type { KernelRecord } from "./records.ts";

/** Kept records read per drain (each costs three map calls; a batch stays small: DRAIN_MAX). */
export const KEPT_PER_DRAIN = DRAIN_MAX / 2;

/** What a drain reads: the rings and the kernel's store (a Probe). */
export interface KernelSources {
  readonly reader: Drainable & { readonly behind: boolean };
  readonly dnsReader: Drainable;
  readonly packetReader?: Drainable;
  takeKept(max: number): Uint8Array[];
  /** The record kept for one socket, taken out of the store (undefined: none). */
  takeKeptOf?(cookie: number): Uint8Array | undefined;
}

/** The socket cookie of a kept nf_flow record. */
function cookieOf(bytes: Uint8Array): number {
  return u64(new DataView(bytes.buffer, bytes.byteOffset), LAYOUT.nf_flow.fields.cookie);
}

export class KernelDrain {
  readonly #from: KernelSources;
  readonly #decode: Decode;
  readonly #onRecord: (record: KernelRecord | undefined) => void;
  readonly #onDns: (record: KernelRecord | undefined) => void;
  /** Records taken from the kernel's store, by socket cookie, handed over once the ring has caught up. */
  #kept = new Map<number, Uint8Array>();
  /** The last take was a full batch: the store may hold more. */
  #storeFull = false;
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
    if (this.#kept.size === 0) {
      const batch = this.#from.takeKept(KEPT_PER_DRAIN);
      for (const bytes of batch) this.#kept.set(cookieOf(bytes), bytes);
      this.#storeFull = batch.length === KEPT_PER_DRAIN;
    }
    let early = 0;
    // In the kernel's time order: an answer is in the cache before the flows after it.
    const { records: drained, unordered } = drainInOrder(
      this.#from.reader,
      this.#from.dnsReader,
      this.#decode,
      (r) => {
        if (r?.kind === "release") {
          // Its end, if the kernel kept it, comes first (after its begin: earlier in the ring).
          const bytes = this.#kept.get(r.cookie) ?? this.#from.takeKeptOf?.(r.cookie);
          if (bytes !== undefined) {
            this.#kept.delete(r.cookie);
            this.#handOver(bytes);
            early++;
          }
        }
        this.#onRecord(r);
      },
      this.#onDns,
      this.#from.packetReader,
    );
    this.unordered += unordered;
    // Bounded: the rest waits for the next drain, so a backlog is written as it is read.
    let kept = 0;
    if (!this.#from.reader.behind) {
      for (const bytes of this.#kept.values()) this.#handOver(bytes);
      kept = this.#kept.size;
      this.#kept.clear();
    }
    this.behind = this.#from.reader.behind || this.#kept.size > 0 || this.#storeFull;
    return drained + kept + early;
  }

  #handOver(bytes: Uint8Array): void {
    this.recovered++;
    this.#onRecord(this.#decode(new DataView(bytes.buffer), bytes.byteOffset, bytes.length));
  }
}
