/**
 * Plain calls through libbpf and libc: whether the kernel offers a helper,
 * map entries read, written and counted, and the clocks.
 *
 * @module
 */
import { check, cString, libbpf } from "./libbpf.ts";

const decoder = new TextDecoder();

const SYS_BPF = 321n; // x86-64
const BPF_PROG_LOAD = 5n;

/**
 * Whether the kernel lets programs of `progType` (attached as `attachType`)
 * call helper `helperId`: loads `call helper; r0 = 1; exit` and reads the
 * verifier's answer. A refusal that names the helper ("unknown func",
 * "invalid func", "cannot use helper") is a no; any other outcome (loaded, or
 * refused for the arguments this tiny program does not set up) is a yes.
 * libbpf's own probe misses "cannot use helper" (the wording of newer
 * kernels) and answers yes, so netflow asks itself.
 */
export function probeHelper(
  progType: number,
  attachType: number,
  helperId: number,
): boolean | null {
  liftMemlockLimit();
  const insns = new Uint8Array(24);
  const iv = new DataView(insns.buffer);
  insns[0] = 0x85; // call
  iv.setInt32(4, helperId, true);
  insns[8] = 0xb7; // r0 = 1 (alu64 mov k)
  iv.setInt32(12, 1, true);
  insns[16] = 0x95; // exit
  const license = cString("GPL");
  const log = new Uint8Array(16384);
  const attr = new Uint8Array(72); // union bpf_attr, BPF_PROG_LOAD's fields up to expected_attach_type
  const av = new DataView(attr.buffer);
  const addr = (b: Uint8Array<ArrayBuffer>) =>
    BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b)));
  av.setUint32(0, progType, true);
  av.setUint32(4, 3, true); // insn_cnt
  av.setBigUint64(8, addr(insns), true);
  av.setBigUint64(16, addr(license), true);
  av.setUint32(24, 1, true); // log_level
  av.setUint32(28, log.length, true);
  av.setBigUint64(32, addr(log), true);
  av.setUint32(68, attachType, true);
  const fd = Number(libbpf().syscall(SYS_BPF, BPF_PROG_LOAD, attr, BigInt(attr.length)));
  if (fd >= 0) {
    libbpf().close(fd);
    return true;
  }
  const text = decoder.decode(log.subarray(0, Math.max(0, log.indexOf(0))));
  // No verifier log: refused before verification (a limit, a privilege), so
  // the kernel said nothing about the helper.
  if (text.trim() === "") return null;
  return !/unknown func|invalid func|cannot use helper/.test(text);
}

let memlockLifted = false;

/**
 * Before 5.11 BPF memory counts against RLIMIT_MEMLOCK, per user: another
 * netflow's ring can use it all, and a probe then fails with EPERM. libbpf
 * lifts the limit when it loads; probes run before that, so lift it first.
 */
function liftMemlockLimit(): void {
  if (memlockLifted) return;
  memlockLifted = true;
  const RLIMIT_MEMLOCK = 8;
  const infinity = new Uint8Array(16).fill(0xff); // { RLIM_INFINITY, RLIM_INFINITY }
  libbpf().setrlimit(RLIMIT_MEMLOCK, infinity);
}

/**
 * Takes up to `max` entries out of a hash map (u64 keys): each value is
 * read, then deleted. An entry added meanwhile is left for the next call.
 */
export function takeMapValues(mapFd: number, valueSize: number, max: number): Uint8Array[] {
  const lib = libbpf();
  // The keys first: deleting while walking would send the walk back to the start.
  const keys: Uint8Array<ArrayBuffer>[] = [];
  let key: Uint8Array<ArrayBuffer> | null = null; // NULL asks for the first key
  for (let next = new Uint8Array(8); keys.length < max; next = new Uint8Array(8)) {
    if (lib.bpf_map_get_next_key(mapFd, key, next) !== 0) break;
    keys.push(next);
    key = next;
  }
  const out: Uint8Array[] = [];
  for (const k of keys) {
    const value = new Uint8Array(valueSize);
    if (lib.bpf_map_lookup_elem(mapFd, k, value) !== 0) continue;
    lib.bpf_map_delete_elem(mapFd, k);
    out.push(value);
  }
  return out;
}

/** One hash map entry taken out (read, then deleted); undefined when the map has no such key. */
export function takeMapValue(
  mapFd: number,
  key: Uint8Array<ArrayBuffer>,
  valueSize: number,
): Uint8Array | undefined {
  const lib = libbpf();
  const value = new Uint8Array(valueSize);
  if (lib.bpf_map_lookup_elem(mapFd, key, value) !== 0) return undefined;
  lib.bpf_map_delete_elem(mapFd, key);
  return value;
}

/** Reads every CPU's u64 slot of a per-CPU array entry and sums them. */
export function sumPerCpu(mapFd: number, index: number): bigint {
  const cpus = check("Count CPUs", libbpf().libbpf_num_possible_cpus());
  const key = new Uint32Array([index]);
  const values = new BigUint64Array(cpus);
  check("Read counter", libbpf().bpf_map_lookup_elem(mapFd, key, values));
  return values.reduce((a, b) => a + b, 0n);
}

/** Writes one map entry (key and value laid out as the map declares them). */
export function updateMap(
  mapFd: number,
  key: Uint8Array<ArrayBuffer>,
  value: Uint8Array<ArrayBuffer>,
): void {
  check("Update map", libbpf().bpf_map_update_elem(mapFd, key, value, 0n));
}

/** How many keys a hash map holds now: a walk with bpf_map_get_next_key (ENOENT ends it). */
export function countMapKeys(mapFd: number, keySize: number, limit = 1 << 20): number {
  const lib = libbpf();
  let key: Uint8Array<ArrayBuffer> | null = null;
  let next = new Uint8Array(keySize);
  let n = 0;
  // A NULL key asks for the first one.
  while (n < limit && lib.bpf_map_get_next_key(mapFd, key, next) === 0) {
    n++;
    [key, next] = [next, key ?? new Uint8Array(keySize)];
  }
  return n;
}

/** CLOCK_BOOTTIME in ms: monotonic, and it counts suspend (DNS TTLs expire while asleep). */
export function boottimeMs(): number {
  const CLOCK_BOOTTIME = 7;
  const ts = new BigInt64Array(2);
  check("clock_gettime", libbpf().clock_gettime(CLOCK_BOOTTIME, ts));
  return Number(ts[0]!) * 1000 + Number(ts[1]!) / 1e6;
}

/** CLOCK_MONOTONIC (what bpf_ktime_get_ns reads) and CLOCK_REALTIME, in ns. */
export function clocks(): { monotonicNs: bigint; realtimeNs: bigint } {
  const CLOCK_REALTIME = 0, CLOCK_MONOTONIC = 1;
  const ts = new BigInt64Array(2);
  const read = (clock: number) => {
    check("clock_gettime", libbpf().clock_gettime(clock, ts));
    return ts[0]! * 1_000_000_000n + ts[1]!;
  };
  const before = read(CLOCK_MONOTONIC);
  const realtimeNs = read(CLOCK_REALTIME);
  const after = read(CLOCK_MONOTONIC);
  return { monotonicNs: (before + after) / 2n, realtimeNs };
}

export function pageSize(): number {
  const _SC_PAGESIZE = 30;
  return Number(libbpf().sysconf(_SC_PAGESIZE));
}
