/**
 * The start snapshot handed on in bounded batches. The tcp iterator's output
 * (back-to-back nf_flow records, one buffer per network namespace, read
 * whole at start: src/bpf/loader.ts Probe.snapshot) is decoded a batch at a
 * time, so the records, events and lines of 100,000 preexisting flows never
 * all live at once: a batch's die young, as a ring drain's do. Each
 * namespace's buffer is let go once read.
 *
 * The listeners come first (a scan of the kind byte, decoding only them):
 * they say which preexisting flows are incoming, whichever batch they are in.
 *
 * @module
 */
import { KIND_BEGIN, KIND_LISTEN, LAYOUT } from "../bpf/layout.ts";
import type { FlowRecord, RecordDecoder } from "../bpf/records.ts";
import { DRAIN_MAX } from "../ffi/ringbuf.ts";
import { listening } from "./handshake.ts";

const SIZE = LAYOUT.nf_flow.size;
const KIND = LAYOUT.nf_header.fields.kind;
const NONE = new Uint8Array(0);
/** Preexisting flows handed on at a time: as many as one ring drain's records. */
export const SNAPSHOT_BATCH = DRAIN_MAX;

export class SnapshotFeed {
  readonly #decoder: RecordDecoder;
  readonly #parts: Uint8Array[];
  #part = 0;
  #at = 0;
  /** Whether a flow's local end is a listener's (it is incoming); from every namespace's listeners. */
  readonly listens: (r: FlowRecord) => boolean;

  /** `parts`: the iterator's output, one buffer per namespace (taken over: emptied as read). */
  constructor(parts: Uint8Array[], decoder: RecordDecoder) {
    this.#decoder = decoder;
    this.#parts = parts;
    const listeners: FlowRecord[] = [];
    for (const bytes of parts) {
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let at = 0; at + SIZE <= bytes.length; at += SIZE) {
        if (view.getUint8(at + KIND) !== KIND_LISTEN) continue;
        const r = decoder.flow(view, at);
        if (r !== undefined) listeners.push(r);
      }
    }
    this.listens = listening(listeners);
  }

  /** Every record has been handed on. */
  get done(): boolean {
    return this.#part >= this.#parts.length;
  }

  /** The next at most `max` begins, in the iterator's order (empty when done). */
  next(max: number): FlowRecord[] {
    const out: FlowRecord[] = [];
    while (out.length < max && this.#part < this.#parts.length) {
      const bytes = this.#parts[this.#part]!;
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (; out.length < max && this.#at + SIZE <= bytes.length; this.#at += SIZE) {
        if (view.getUint8(this.#at + KIND) !== KIND_BEGIN) continue;
        const r = this.#decoder.flow(view, this.#at);
        if (r !== undefined) out.push(r);
      }
      if (this.#at + SIZE > bytes.length) {
        this.#parts[this.#part++] = NONE; // read: let go, here and in the decoder
        this.#decoder.forget();
        this.#at = 0;
      }
    }
    return out;
  }
}
