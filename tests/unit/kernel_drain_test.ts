/**
 * The kernel drain over a simulated kernel: a ring of a few records read a few
 * at a time (a backlog read in bounded drains), the `kept` store that takes an
 * end or fail when the ring is full, begins deferred to their end (BEGIN_LOST)
 * and release records lost when the ring is full, as bpf/flow.bpf.h and
 * bpf/owners.bpf.h write them. Whatever the interleaving of the kernel's
 * writes and netflow's drains, a socket's records come out as the kernel wrote
 * them: its begin before its end (a kept end never overtakes its begin still
 * in the ring), its end before its release record (a release read first
 * brings its kept end along), each once; and the store is emptied.
 */
import assert from "node:assert/strict";
import fc from "npm:fast-check@3.23.2";
import { KernelDrain } from "../../src/bpf/kernel_drain.ts";
import { NF_FLOW } from "../../src/bpf/abi.ts";
import { KIND_END, LAYOUT } from "../../src/bpf/layout.ts";
import { NF_KIND } from "../../src/bpf/abi.ts";
import { RecordDecoder } from "../../src/bpf/records.ts";
import type { KernelRecord } from "../../src/bpf/records.ts";
import type { RecordHandler } from "../../src/ffi/ringbuf.ts";
import { rawFlow } from "../helpers/records.ts";

/** What the kernel does next: a socket begins, ends (the peer closed), or its holder closes it. */
type KernelOp =
  | { op: "begin" }
  | { op: "end"; which: number }
  | { op: "release"; which: number };
/** ... or netflow drains, while the kernel writes `racing` during the ring's read. */
type Op = KernelOp | { op: "drain"; racing: KernelOp[] };

/** The kernel side: the ring (`capacity` records, read `bound` a drain) and the store. */
class Kernel {
  readonly ring: DataView[] = [];
  readonly store = new Map<number, DataView>();
  #ts = 0n;
  #next = 1;
  readonly #open: number[] = [];
  readonly #ended: number[] = [];
  readonly #beginLost = new Set<number>();
  /** Records the kernel wrote somewhere (ring or store), by cookie: what must come out. */
  readonly written = new Map<number, string[]>();
  /** Kernel writes to make while the next ring drain runs (a write racing the read). */
  racing: KernelOp[] = [];

  constructor(readonly capacity: number, readonly bound: number) {}

  /** The reader: at most `bound` records a drain; `behind` when it stopped with records left. */
  readonly reader = {
    behind: false,
    drain: (onRecord: RecordHandler): number => {
      for (const op of this.racing.splice(0)) this.apply(op);
      const taken = this.ring.splice(0, this.bound);
      this.reader.behind = this.ring.length > 0;
      for (const view of taken) onRecord(view, 0, view.byteLength);
      return taken.length;
    },
  };
  readonly dnsReader = { drain: () => 0 };
  takeKept = (max: number): Uint8Array[] => {
    const out: Uint8Array[] = [];
    for (const [cookie, view] of this.store) {
      if (out.length === max) break;
      out.push(new Uint8Array(view.buffer));
      this.store.delete(cookie);
    }
    return out;
  };
  takeKeptOf = (cookie: number): Uint8Array | undefined => {
    const view = this.store.get(cookie);
    this.store.delete(cookie);
    return view && new Uint8Array(view.buffer);
  };

  apply(o: KernelOp): void {
    if (o.op === "begin") {
      const cookie = this.#next++;
      this.#open.push(cookie);
      if (!this.#write(cookie, NF_KIND.BEGIN)) this.#beginLost.add(cookie); // with its end
    } else if (o.op === "end" && this.#open.length > 0) {
      const [cookie] = this.#open.splice(o.which % this.#open.length, 1);
      this.#ended.push(cookie!);
      if (!this.#write(cookie!, NF_KIND.END)) {
        this.store.set(cookie!, this.#raw(cookie!, NF_KIND.END)); // kept
        this.#wrote(cookie!, "end");
      }
    } else if (o.op === "release" && this.#ended.length > 0) {
      const [cookie] = this.#ended.splice(o.which % this.#ended.length, 1);
      this.#write(cookie!, NF_KIND.RELEASE); // lost when the ring is full
    }
  }

  #raw(cookie: number, kind: number): DataView {
    const view = rawFlow({ kind, tsNs: ++this.#ts, beginNs: 1n, cookie: BigInt(cookie), end: 2 });
    const flags = view.getUint8(LAYOUT.nf_flow.fields.flags);
    const lost = kind === KIND_END && this.#beginLost.has(cookie) ? NF_FLOW.BEGIN_LOST : 0;
    view.setUint8(LAYOUT.nf_flow.fields.flags, flags | lost);
    return view;
  }

  #write(cookie: number, kind: number): boolean {
    if (this.ring.length >= this.capacity) return false;
    this.ring.push(this.#raw(cookie, kind));
    this.#wrote(cookie, kind === NF_KIND.BEGIN ? "begin" : kind === KIND_END ? "end" : "release");
    return true;
  }

  #wrote(cookie: number, what: string): void {
    this.written.set(cookie, [...this.written.get(cookie) ?? [], what]);
  }
}

/** Runs the ops, then drains until caught up; returns each socket's records as handed over. */
function run(kernel: Kernel, ops: readonly Op[]): Map<number, string[]> {
  const decoder = new RecordDecoder(1_700_000_000_000_000);
  const seen = new Map<number, string[]>();
  const drain = new KernelDrain(
    kernel,
    (v, o, l) => decoder.decode(v, o, l),
    (r: KernelRecord | undefined) => {
      assert.ok(r !== undefined && "cookie" in r);
      const what = r.kind === "end" && r.beginLost ? "end (with its begin)" : r.kind;
      seen.set(r.cookie, [...seen.get(r.cookie) ?? [], what]);
    },
    () => {},
  );
  for (const o of ops) {
    if (o.op !== "drain") kernel.apply(o);
    else {
      kernel.racing = [...o.racing];
      drain.drain();
    }
  }
  for (let i = 0; i < 10_000 && (i === 0 || drain.behind || kernel.store.size > 0); i++) {
    drain.drain();
  }
  return seen;
}

/** Each socket's records in the kernel's order, a kept end's deferred begin written with it. */
function expected(kernel: Kernel): Map<number, string[]> {
  const want = new Map<number, string[]>();
  for (const [cookie, records] of kernel.written) {
    const ended = records.includes("end") && !records.includes("begin");
    want.set(cookie, records.map((r) => r === "end" && ended ? "end (with its begin)" : r));
  }
  return want;
}

/** Each socket's begin before its end, its end before its release record; then all as written. */
function assertInOrder(seen: Map<number, string[]>, kernel: Kernel): void {
  for (const [cookie, records] of seen) {
    const at = (what: string) => records.indexOf(what);
    if (at("end") >= 0 && at("begin") >= 0) {
      assert.ok(at("begin") < at("end"), `socket ${cookie}: its end before its begin: ${records}`);
    }
    if (at("release") >= 0) {
      const end = Math.max(at("end"), at("end (with its begin)"));
      assert.ok(end >= 0 && end < at("release"), `socket ${cookie}: release first: ${records}`);
    }
  }
  assert.deepEqual(seen, expected(kernel));
}

const kernelOp: fc.Arbitrary<KernelOp> = fc.oneof(
  { arbitrary: fc.constant({ op: "begin" } as const), weight: 2 },
  { arbitrary: fc.nat(50).map((which) => ({ op: "end", which }) as const), weight: 2 },
  { arbitrary: fc.nat(50).map((which) => ({ op: "release", which }) as const), weight: 1 },
);
const ops: fc.Arbitrary<Op[]> = fc.array(
  fc.oneof(
    { arbitrary: kernelOp, weight: 4 },
    {
      arbitrary: fc.array(kernelOp, { maxLength: 3 }).map((racing) =>
        ({ op: "drain", racing }) as const
      ),
      weight: 1,
    },
  ),
  { maxLength: 80 },
);

Deno.test("kernel drain: a kept end comes after its begin still in the ring, and before its release", () => {
  // Ring of 6, read 2 a drain. A's begin is fifth in the ring; the ring fills,
  // so A's end is kept; a drain reads two records, leaving A's begin behind.
  const kernel = new Kernel(6, 2);
  const script: Op[] = [
    ...Array.from({ length: 6 }, () => ({ op: "begin" }) as const), // cookies 1-6
    { op: "end", which: 4 }, // cookie 5: kept (the ring is full)
    { op: "drain", racing: [] }, // reads 1 and 2; 5's begin still in the ring
    { op: "release", which: 0 }, // 5's holder closes it: its release in the ring
  ];
  const seen = run(kernel, script);
  assert.deepEqual(seen.get(5), ["begin", "end", "release"]);
  assertInOrder(seen, kernel);
});

Deno.test("kernel drain: whatever the interleaving, each socket's records come out in the kernel's order, once", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 8 }),
      fc.integer({ min: 1, max: 4 }),
      ops,
      (cap, bound, o) => {
        const kernel = new Kernel(cap, bound);
        const seen = run(kernel, o);
        assert.deepEqual(seen, expected(kernel));
        assert.equal(kernel.store.size, 0);
      },
    ),
    { numRuns: 3000 },
  );
});
