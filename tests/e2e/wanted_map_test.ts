/**
 * e2e (root): src/bpf/wanted.ts against real kernel maps made here (no
 * program loaded). When the kernel takes the waiting sockets' cookies, runs
 * are filtered; when it refuses the batch whole (here: a map type without
 * batch updates, as EPERM or ENOMEM would before the kernel's per-key loop,
 * which leaves the count as it was given), or the set is larger than the map,
 * every run writes every socket's row, so no owner wait goes unserved.
 */
import assert from "node:assert/strict";
import { libbpf } from "../../src/ffi/libbpf.ts";
import { WantedSockets } from "../../src/bpf/wanted.ts";
import { e2eTest } from "../helpers/e2e.ts";

const SYS_BPF = 321n; // x86-64
const BPF_MAP_CREATE = 0n;
const HASH = 1, ARRAY = 2, RINGBUF = 27;
const libc = Deno.dlopen("libc.so.6", {
  dup: { parameters: ["i32"], result: "i32" },
  dup2: { parameters: ["i32", "i32"], result: "i32" },
});

/** A map made with bpf(BPF_MAP_CREATE): its fd. */
function createMap(type: number, key: number, value: number, entries: number): number {
  const attr = new Uint32Array(18); // map_type, key_size, value_size, max_entries, map_flags, ...
  attr.set([type, key, value, entries]);
  const fd = Number(libbpf().syscall(SYS_BPF, BPF_MAP_CREATE, new Uint8Array(attr.buffer), 72n));
  if (fd < 0) throw new Error(`cannot create a map of type ${type}`);
  return fd;
}

/** holders_every's entry 0 as the kernel holds it. */
function everyInKernel(fd: number): number {
  const value = new Uint32Array(1);
  const rc = libbpf().bpf_map_lookup_elem(fd, new Uint32Array([0]), value);
  assert.equal(rc, 0);
  return value[0]!;
}

function withMaps(
  wantedType: number,
  max: number,
  fn: (w: WantedSockets, everyFd: number, wantedFd: number) => void,
): void {
  const wanted = wantedType === RINGBUF
    ? createMap(RINGBUF, 0, 0, 4096)
    : createMap(wantedType, 8, 1, max);
  const every = createMap(ARRAY, 4, 4, 1);
  try {
    fn(new WantedSockets(wanted, every, max), every, wanted);
  } finally {
    libbpf().close(wanted);
    libbpf().close(every);
  }
}

e2eTest(
  "the waiting sockets' cookies go into the kernel's filter map; a refused batch or too many: every row",
  () => {
    // Positive control: a hash map takes them, runs stay filtered.
    withMaps(HASH, 16, (w, every, wanted) => {
      w.set(new Set([11, 12, 13]));
      assert.equal(w.every, false);
      assert.equal(w.size, 3);
      assert.equal(everyInKernel(every), 0);
      const one = new Uint8Array(1);
      assert.equal(libbpf().bpf_map_lookup_elem(wanted, new BigUint64Array([12n]), one), 0);
      // The next set replaces the last: 11 and 13 deleted, 14 added.
      w.set(new Set([12, 14]));
      assert.equal(w.size, 2);
      assert.notEqual(libbpf().bpf_map_lookup_elem(wanted, new BigUint64Array([11n]), one), 0);
      // More than the map takes: every row.
      w.set(new Set(Array.from({ length: 17 }, (_, i) => 100 + i)));
      assert.equal(w.every, true);
      assert.equal(everyInKernel(every), 1);
      assert.deepEqual(w.stats, { unfiltered: 1, refused: 0 });
    });
    // A batch the kernel refuses whole: nothing was added, so every row (not a filter that
    // believes it holds three cookies and writes none of their rows).
    withMaps(RINGBUF, 16, (w, every) => {
      w.set(new Set([21, 22, 23]));
      assert.equal(w.size, 0);
      assert.equal(w.every, true);
      assert.equal(everyInKernel(every), 1);
      assert.deepEqual(w.stats, { unfiltered: 1, refused: 3 });
    });
    return Promise.resolve();
  },
);

e2eTest(
  "a cookie whose delete the kernel refuses stays in the filter's mirror, counted, and is deleted at the next run",
  () => {
    withMaps(HASH, 16, (w, _every, wanted) => {
      const one = new Uint8Array(1);
      const inKernel = (c: bigint) =>
        libbpf().bpf_map_lookup_elem(wanted, new BigUint64Array([c]), one) === 0;
      w.set(new Set([11, 12, 13]));
      // Positive control: a delete the kernel does, gone from both.
      w.set(new Set([11, 12]));
      assert.equal(inKernel(13n), false);
      assert.equal(w.size, 2);
      // The map's fd made to name a ring buffer for a while: every delete (and add) refused.
      const hash = libc.symbols.dup(wanted);
      const ring = createMap(RINGBUF, 0, 0, 4096);
      try {
        assert.equal(libc.symbols.dup2(ring, wanted), wanted);
        w.set(new Set([12]));
        assert.equal(w.size, 2); // 11 refused: still in the map, so still in the mirror
        assert.deepEqual(w.stats, { unfiltered: 0, refused: 1 });
        w.set(new Set([12])); // refused again: one socket refused, counted once
        assert.deepEqual(w.stats, { unfiltered: 0, refused: 1 });
        assert.equal(libc.symbols.dup2(hash, wanted), wanted);
      } finally {
        libbpf().close(ring);
        libbpf().close(hash);
      }
      assert.equal(inKernel(11n), true);
      w.set(new Set([12])); // the next run deletes it
      assert.equal(inKernel(11n), false);
      assert.equal(inKernel(12n), true);
      assert.equal(w.size, 1);
      assert.equal(w.every, false);
    });
    return Promise.resolve();
  },
);
