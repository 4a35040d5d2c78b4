/**
 * Two readers of a BPF ring buffer behind one interface, so the benchmark can
 * compare them on the same workload:
 *
 * - {@link MmapRingReader} maps the ring's pages and walks records in
 *   TypeScript (the default: ~20 ns per record).
 * - {@link CallbackRingReader} uses libbpf's `ring_buffer__consume` with a
 *   synchronous FFI callback (~500 ns per record).
 *
 * Both bound one drain to the records present when it starts, and to at most
 * {@link DRAIN_MAX} of them (a backlog after a stall is read, and written, in
 * bounded batches; `behind` says one is left), and wait for more with poll(2)
 * on a worker thread, always with a finite timeout.
 *
 * @module
 */
import type { ReaderKind } from "../options.ts";
import { check, libbpf } from "./libbpf.ts";
import { pageSize } from "./syscalls.ts";

/**
 * The most records one drain hands over. A batch's records, events and text
 * all live until it is written, and a flow's begin or end allocates ~7-12 KB
 * on its way (record, event, enrichment, line): V8's 4 MiB young generation
 * is scavenged every few hundred records, and what a scavenge finds alive
 * twice is promoted to old space, where it stays until a full collection.
 * 2,048 -> 512 (2026-12-06): the held bench's peak after 100,000 flows closed
 * at once 286 -> 260 MB, its CPU 16.8 -> 11.7 µs per end; 512 -> 256
 * (2026-12-07, the monitor's path with 100,000 flows begun then ended, 4
 * alternating runs each): RSS growth with all open 66-72 -> 47-55 MB, peak
 * after the close 218-221 -> 188-196 MB. 16,384 (before 2,048) reached
 * 310-390 MB while a 6 s stall's backlog was read.
 */
export const DRAIN_MAX = 256;

/**
 * How far a data window reaches past its {@link WINDOW_BYTES}: a record that
 * starts inside the window reads on into it, so it must hold the largest
 * record with its header (nf_dns: 1,384 + 8 bytes) from the window's last page.
 */
export const WRAP_BYTES = 8192;

/**
 * How much of a ring's data area is mapped at a time. The kernel populates a
 * ring mapping in full at mmap, and each mapped page counts in RSS: the three
 * rings mapped whole were 21 MiB of a 84 MB netflow (2026-12-07). A window of
 * the data area is mapped instead and moved (mmap MAP_FIXED, the same
 * addresses) when a drain begins past it: at most 256 KiB plus
 * {@link WRAP_BYTES} a ring, a quarter of a small ring. The ring's pages are
 * the kernel's whether mapped or not (charged as BPF map memory).
 */
export const WINDOW_BYTES = 256 << 10;

/** The data window of a ring of `size` bytes: a quarter of it, at least a page, at most WINDOW_BYTES. */
export function windowBytes(size: number, page: number): number {
  return Math.max(page, Math.min(WINDOW_BYTES, size / 4));
}

/** Which 32-bit half of a native u64 holds its low bits (0 on little-endian machines). */
export const LOW_WORD = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1 ? 0 : 1;

/** Gets one record: `length` bytes at `offset` in `view`, valid only during the call. */
export type RecordHandler = (view: DataView, offset: number, length: number) => void;

export interface RingReader extends Disposable {
  /** Hands the records committed before the call to `onRecord`; returns how many. */
  drain(onRecord: RecordHandler): number;
  /**
   * Whether the ring holds records no drain has handed over (behind the last
   * drain's bound, or reserved and still being written). The callback reader
   * cannot tell (libbpf 1.1 does not give the positions): always false.
   */
  backlog(): boolean;
  /** The last drain stopped at DRAIN_MAX with records left: drain again without waiting. */
  readonly behind: boolean;
  /** Resolves when records are ready, or after `timeoutMs`. */
  wait(timeoutMs: number): Promise<void>;
  close(): void;
}

export function openRingReader(kind: ReaderKind, mapFd: number, size: number): RingReader {
  return kind === "mmap" ? new MmapRingReader(mapFd, size) : new CallbackRingReader(mapFd, size);
}

/** poll(2) for POLLIN on one fd; the pollfd stays alive while a call is in flight. */
class Readable {
  #pollfd = new Int32Array(2); // struct pollfd { int fd; short events; short revents; }
  #inFlight: Promise<number> | undefined;

  constructor(fd: number) {
    const POLLIN = 1;
    this.#pollfd[0] = fd;
    this.#pollfd[1] = POLLIN;
  }

  async wait(timeoutMs: number): Promise<void> {
    // A poll cannot be cancelled; a caller that gave up on one waits on it again.
    this.#inFlight ??= libbpf().poll(this.#pollfd, 1n, Math.max(0, Math.trunc(timeoutMs)));
    try {
      await this.#inFlight;
    } finally {
      this.#inFlight = undefined;
    }
  }
}

const BUSY_BIT = 1 << 31;
const DISCARD_BIT = 1 << 30;
const HEADER = 8; // struct bpf_ringbuf_hdr { u32 len; u32 pg_off; }

/**
 * Reads the ring through its mmap'd consumer and producer pages and a window
 * of its data area ({@link windowBytes}, and {@link WRAP_BYTES} past it for
 * a record that starts in the window's last page; the kernel maps the data
 * area twice in a row, so the window runs on over the ring's end).
 */
export class MmapRingReader implements RingReader {
  #consumer: Deno.PointerObject | null;
  #producer: Deno.PointerObject | null;
  #data: Deno.PointerObject | null;
  readonly #fd: number;
  readonly #page: number;
  readonly #size: number;
  /** The data window: how much of it is read from (`#window`), and mapped (`#dataLen`). */
  readonly #window: number;
  readonly #dataLen: number;
  /** Where in the data area the window starts (a page boundary, below #size). */
  #windowAt = 0;
  readonly #consumerPos: BigUint64Array;
  readonly #producerPos: BigUint64Array;
  /** The positions' low 32 bits (no BigInt made per look: backlog() is asked per flow record). */
  readonly #consumerLow: Uint32Array;
  readonly #producerLow: Uint32Array;
  readonly #headers: Int32Array;
  readonly #view: DataView;
  readonly #readable: Readable;
  behind = false;

  constructor(mapFd: number, size: number) {
    const lib = libbpf();
    const PROT_READ = 1, PROT_WRITE = 2, MAP_SHARED = 1;
    this.#fd = mapFd;
    this.#page = pageSize();
    this.#size = size;
    this.#window = windowBytes(size, this.#page);
    this.#dataLen = this.#window + Math.min(size, WRAP_BYTES);
    const page = BigInt(this.#page);
    this.#consumer = this.#producer = this.#data = null;
    try {
      this.#consumer = mapped(
        "Map ring consumer page",
        lib.mmap(null, page, PROT_READ | PROT_WRITE, MAP_SHARED, mapFd, 0n),
      );
      this.#producer = mapped(
        "Map ring producer page",
        lib.mmap(null, page, PROT_READ, MAP_SHARED, mapFd, page),
      );
      this.#data = mapped(
        "Map ring data pages",
        lib.mmap(null, BigInt(this.#dataLen), PROT_READ, MAP_SHARED, mapFd, 2n * page),
      );
    } catch (err) {
      this.close();
      throw err;
    }
    const consumer = Deno.UnsafePointerView.getArrayBuffer(this.#consumer, this.#page);
    const producer = Deno.UnsafePointerView.getArrayBuffer(this.#producer, this.#page);
    const data = Deno.UnsafePointerView.getArrayBuffer(this.#data, this.#dataLen);
    this.#consumerPos = new BigUint64Array(consumer, 0, 1);
    this.#producerPos = new BigUint64Array(producer, 0, 1);
    this.#consumerLow = new Uint32Array(consumer, LOW_WORD * 4, 1);
    this.#producerLow = new Uint32Array(producer, LOW_WORD * 4, 1);
    this.#headers = new Int32Array(data);
    this.#view = new DataView(data);
    this.#readable = new Readable(mapFd);
  }

  drain(onRecord: RecordHandler): number {
    if (this.#data === null) return 0;
    let consumed = Number(Atomics.load(this.#consumerPos, 0));
    // One read of the producer position bounds the work of this drain.
    const produced = Number(Atomics.load(this.#producerPos, 0));
    let count = 0;
    let cut = false;
    try {
      while (consumed < produced && count < DRAIN_MAX) {
        // Where the record is in the window (which may run on over the ring's end).
        let at = consumed % this.#size - this.#windowAt;
        if (at < 0) at += this.#size;
        let header = 0;
        if (at < this.#window) header = Atomics.load(this.#headers, at >> 2);
        if (header & BUSY_BIT) break; // reserved, not yet submitted
        const length = header & ~(BUSY_BIT | DISCARD_BIT);
        if (at >= this.#window || at + HEADER + length > this.#dataLen) {
          // Past the window. Records handed over in this drain stay valid until it returns:
          // the window moves only before the first (the rest at the next drain, at once).
          if (count > 0) {
            cut = true;
            break;
          }
          this.#move(consumed % this.#size);
          continue;
        }
        if (!(header & DISCARD_BIT)) {
          count++;
          onRecord(this.#view, at + HEADER, length);
        }
        consumed += (length + HEADER + 7) & ~7;
      }
    } finally {
      Atomics.store(this.#consumerPos, 0, BigInt(consumed));
    }
    this.behind = (cut || count === DRAIN_MAX) && consumed < produced;
    return count;
  }

  /** Maps the window anew at the page of `offset` in the data area, at the same addresses. */
  #move(offset: number): void {
    const PROT_READ = 1, MAP_SHARED = 1, MAP_FIXED = 0x10;
    const at = offset - offset % this.#page;
    const p = libbpf().mmap(
      this.#data,
      BigInt(this.#dataLen),
      PROT_READ,
      MAP_SHARED | MAP_FIXED,
      this.#fd,
      BigInt(2 * this.#page + at),
    );
    if (p === null || Deno.UnsafePointer.value(p) !== Deno.UnsafePointer.value(this.#data)) {
      // A failed MAP_FIXED may have unmapped the old window: nothing more is read from it (the
      // consumer page stays: the drain stores its position on the way out).
      this.#data = null;
      check("Move ring data window", -1);
    }
    this.#windowAt = at;
  }

  backlog(): boolean {
    if (this.#data === null) return false;
    // The producer is never behind the consumer, nor ahead by 2^32 (the ring is smaller): the
    // positions are equal exactly when their low 32 bits are.
    return Atomics.load(this.#producerLow, 0) !== Atomics.load(this.#consumerLow, 0);
  }

  wait(timeoutMs: number): Promise<void> {
    return this.#readable.wait(timeoutMs);
  }

  close(): void {
    const lib = libbpf();
    if (this.#data !== null) lib.munmap(this.#data, BigInt(this.#dataLen));
    if (this.#producer !== null) lib.munmap(this.#producer, BigInt(this.#page));
    if (this.#consumer !== null) lib.munmap(this.#consumer, BigInt(this.#page));
    this.#data = this.#producer = this.#consumer = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function mapped(op: string, p: Deno.PointerValue): Deno.PointerObject {
  const MAP_FAILED = 0xffff_ffff_ffff_ffffn;
  if (p === null || Deno.UnsafePointer.value(p) === MAP_FAILED) check(op, -1);
  return p as Deno.PointerObject;
}

/** Reads the ring with libbpf's ring_buffer__consume and a synchronous callback. */
export class CallbackRingReader implements RingReader {
  #handle: Deno.PointerObject | null;
  readonly #callback: Deno.UnsafeCallback<{
    readonly parameters: readonly ["pointer", "pointer", "usize"];
    readonly result: "i32";
  }>;
  readonly #limit: number;
  readonly #readable: Readable;
  #onRecord: RecordHandler | undefined;
  behind = false;
  #count = 0;
  #failure: unknown;

  constructor(mapFd: number, size: number) {
    // libbpf 1.1 keeps consuming while records arrive: stop after one ring's worth.
    this.#limit = Math.max(1, Math.min(DRAIN_MAX, Math.floor(size / 16)));
    this.#callback = new Deno.UnsafeCallback(
      { parameters: ["pointer", "pointer", "usize"], result: "i32" } as const,
      (_ctx, data, size) => {
        // Exceptions thrown here would be swallowed: keep them for drain().
        try {
          const length = Number(size);
          if (data !== null) {
            const view = new DataView(Deno.UnsafePointerView.getArrayBuffer(data, length));
            this.#onRecord?.(view, 0, length);
          }
          return ++this.#count >= this.#limit ? -1 : 0;
        } catch (err) {
          this.#failure = err;
          return -1;
        }
      },
    );
    this.#handle = null;
    const rb = libbpf().ring_buffer__new(mapFd, this.#callback.pointer, null, null);
    if (rb === null) {
      this.#callback.close();
      check("Open ring buffer", -1);
    }
    this.#handle = rb;
    this.#readable = new Readable(mapFd);
  }

  drain(onRecord: RecordHandler): number {
    if (this.#handle === null) return 0;
    this.#onRecord = onRecord;
    this.#count = 0;
    this.#failure = undefined;
    const rc = libbpf().ring_buffer__consume(this.#handle);
    this.#onRecord = undefined;
    if (this.#failure !== undefined) throw this.#failure;
    if (rc < 0 && this.#count < this.#limit) check("Consume ring buffer", rc);
    this.behind = this.#count >= this.#limit;
    return this.#count;
  }

  backlog(): boolean {
    return false;
  }

  wait(timeoutMs: number): Promise<void> {
    return this.#readable.wait(timeoutMs);
  }

  close(): void {
    if (this.#handle === null) return;
    libbpf().ring_buffer__free(this.#handle);
    this.#handle = null;
    this.#callback.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
