/**
 * The only `Deno.dlopen` in netflow: the system libbpf (libbpf.so.1, or the
 * path in NETFLOW_LIBBPF), plus the few libc functions netflow needs, which
 * dlsym finds through libbpf's own dependency on libc.
 *
 * Every native handle is a class with a private handle, an idempotent
 * `close()` and `[Symbol.dispose]()`. Every native return code goes through
 * {@link check} or {@link checkPointer}, which throw a {@link LibbpfError}.
 *
 * @module
 */
import { Errno, NetflowError, PRIVILEGE_HINT } from "../errors.ts";

const SYMBOLS = {
  // struct bpf_object *bpf_object__open_mem(const void *obj_buf, size_t obj_buf_sz,
  //                                         const struct bpf_object_open_opts *opts);
  bpf_object__open_mem: { parameters: ["buffer", "usize", "pointer"], result: "pointer" },
  // int bpf_object__load(struct bpf_object *obj);
  bpf_object__load: { parameters: ["pointer"], result: "i32" },
  // void bpf_object__close(struct bpf_object *obj);
  bpf_object__close: { parameters: ["pointer"], result: "void" },
  // struct bpf_program *bpf_object__find_program_by_name(const struct bpf_object *obj,
  //                                                      const char *name);
  bpf_object__find_program_by_name: { parameters: ["pointer", "buffer"], result: "pointer" },
  // struct bpf_map *bpf_object__find_map_by_name(const struct bpf_object *obj, const char *name);
  bpf_object__find_map_by_name: { parameters: ["pointer", "buffer"], result: "pointer" },
  // int bpf_map__fd(const struct bpf_map *map);
  bpf_map__fd: { parameters: ["pointer"], result: "i32" },
  // __u32 bpf_map__max_entries(const struct bpf_map *map);
  bpf_map__max_entries: { parameters: ["pointer"], result: "u32" },
  // int bpf_map__set_max_entries(struct bpf_map *map, __u32 max_entries);
  bpf_map__set_max_entries: { parameters: ["pointer", "u32"], result: "i32" },
  // int bpf_map__set_initial_value(struct bpf_map *map, const void *data, size_t size);
  bpf_map__set_initial_value: { parameters: ["pointer", "buffer", "usize"], result: "i32" },
  // struct bpf_link *bpf_program__attach_cgroup(const struct bpf_program *prog, int cgroup_fd);
  bpf_program__attach_cgroup: { parameters: ["pointer", "i32"], result: "pointer" },
  // struct bpf_link *bpf_program__attach_iter(const struct bpf_program *prog,
  //                                           const struct bpf_iter_attach_opts *opts);
  bpf_program__attach_iter: { parameters: ["pointer", "pointer"], result: "pointer" },
  // int bpf_link__fd(const struct bpf_link *link);
  bpf_link__fd: { parameters: ["pointer"], result: "i32" },
  // int bpf_prog_query(int target_fd, enum bpf_attach_type type, __u32 query_flags,
  //                    __u32 *attach_flags, __u32 *prog_ids, __u32 *prog_cnt);
  bpf_prog_query: {
    parameters: ["i32", "u32", "u32", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  // int bpf_iter_create(int link_fd);
  bpf_iter_create: { parameters: ["i32"], result: "i32" },
  // int setns(int fd, int nstype); (libc) moves the calling thread into a namespace
  setns: { parameters: ["i32", "i32"], result: "i32" },
  // int bpf_link__destroy(struct bpf_link *link);
  bpf_link__destroy: { parameters: ["pointer"], result: "i32" },
  // int bpf_map_lookup_elem(int fd, const void *key, void *value);
  bpf_map_lookup_elem: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // int bpf_map_update_elem(int fd, const void *key, const void *value, __u64 flags);
  bpf_map_update_elem: { parameters: ["i32", "buffer", "buffer", "u64"], result: "i32" },
  // int bpf_map_delete_elem(int fd, const void *key);
  bpf_map_delete_elem: { parameters: ["i32", "buffer"], result: "i32" },
  // int bpf_map_get_next_key(int fd, const void *key, void *next_key);
  bpf_map_get_next_key: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  // int bpf_program__set_autoload(struct bpf_program *prog, bool autoload);
  bpf_program__set_autoload: { parameters: ["pointer", "bool"], result: "i32" },
  // int setrlimit(int resource, const struct rlimit *rlim); (libc)
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  // long syscall(long number, ...); (libc) for bpf(BPF_PROG_LOAD, attr, size): helper probes
  syscall: { parameters: ["i64", "i64", "buffer", "u64"], result: "i64" },
  // int libbpf_num_possible_cpus(void);
  libbpf_num_possible_cpus: { parameters: [], result: "i32" },
  // int libbpf_strerror(int err, char *buf, size_t size);
  libbpf_strerror: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  // libbpf_print_fn_t libbpf_set_print(libbpf_print_fn_t fn);
  libbpf_set_print: { parameters: ["function"], result: "pointer" },
  // struct ring_buffer *ring_buffer__new(int map_fd, ring_buffer_sample_fn sample_cb, void *ctx,
  //                                      const struct ring_buffer_opts *opts);
  ring_buffer__new: { parameters: ["i32", "function", "pointer", "pointer"], result: "pointer" },
  // int ring_buffer__consume(struct ring_buffer *rb);
  ring_buffer__consume: { parameters: ["pointer"], result: "i32" },
  // void ring_buffer__free(struct ring_buffer *rb);
  ring_buffer__free: { parameters: ["pointer"], result: "void" },

  // libc, found through libbpf's dependency on it.
  // int *__errno_location(void);
  __errno_location: { parameters: [], result: "pointer" },
  // int open(const char *pathname, int flags);
  open: { parameters: ["buffer", "i32"], result: "i32" },
  // ssize_t read(int fd, void *buf, size_t count);
  read: { parameters: ["i32", "buffer", "usize"], result: "i64" },
  // int close(int fd);
  close: { parameters: ["i32"], result: "i32" },
  // void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  // int munmap(void *addr, size_t length);
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  // int poll(struct pollfd *fds, nfds_t nfds, int timeout); on a worker thread: it blocks.
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  // long sysconf(int name);
  sysconf: { parameters: ["i32"], result: "i64" },
  // int clock_gettime(clockid_t clockid, struct timespec *tp);
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  // int vsnprintf(char *str, size_t size, const char *format, va_list ap);
  vsnprintf: { parameters: ["buffer", "usize", "pointer", "pointer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

export type Libbpf = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** The library path: NETFLOW_LIBBPF overrides the system's libbpf.so.1. */
export function libbpfPath(): string {
  return Deno.env.get("NETFLOW_LIBBPF") || "libbpf.so.1";
}

let library: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;

/** Opens libbpf on first use, so importing netflow never needs it. */
export function libbpf(): Libbpf {
  if (library) return library.symbols;
  const path = libbpfPath();
  try {
    library = Deno.dlopen(path, SYMBOLS);
  } catch (err) {
    const fix = Deno.env.get("NETFLOW_LIBBPF")
      ? "NETFLOW_LIBBPF names it: point it at a libbpf.so.1, or unset it for the system's"
      : "install libbpf 1.x (Debian: apt-get install libbpf1), or set NETFLOW_LIBBPF=/path/to/libbpf.so.1";
    throw new NetflowError(`Cannot load libbpf "${path}": ${dlopenReason(err, path)} (${fix})`, {
      cause: err,
    });
  }
  installLogger(library.symbols);
  return library.symbols;
}

/**
 * dlopen's own reason, without Deno's repeated "Could not open library: "
 * prefixes and the path (which the message already names).
 */
export function dlopenReason(err: unknown, path: string): string {
  const text = (err instanceof Error ? err.message : String(err)).split("\n")[0] ?? "";
  return text.replace(/^(?:Could not open library: )+/, "").replace(`${path}: `, "");
}

/** A failed libbpf or libc call: the operation, errno and libbpf's text for it. */
export class LibbpfError extends NetflowError {
  readonly op: string;
  readonly errno: number;

  constructor(op: string, errno: number, detail?: string) {
    const denied = errno === Errno.EPERM || errno === Errno.EACCES;
    super(
      `${op} failed: ${strerror(errno)} (errno ${errno})${denied ? ` (${PRIVILEGE_HINT})` : ""}`,
      detail === undefined ? undefined : { detail },
    );
    this.name = "LibbpfError";
    this.op = op;
    this.errno = errno;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A NUL-terminated copy of `s`, for `const char *` parameters. */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(encoder.encode(s).length + 1);
  encoder.encodeInto(s, bytes);
  return bytes;
}

function fromCString(buf: Uint8Array): string {
  const end = buf.indexOf(0);
  return decoder.decode(end < 0 ? buf : buf.subarray(0, end));
}

export function strerror(errno: number): string {
  const buf = new Uint8Array(128);
  libbpf().libbpf_strerror(errno, buf, BigInt(buf.length));
  return fromCString(buf);
}

/** errno of the calling thread, right after a failed call. */
export function errno(): number {
  const p = libbpf().__errno_location();
  return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
}

/** Throws for a negative return code (libbpf: -errno; libc: -1 and errno). */
export function check(op: string, rc: number, detail?: () => string): number {
  if (rc >= 0) return rc;
  const err = rc === -1 ? errno() || 1 : -rc;
  throw new LibbpfError(op, err, detail?.());
}

/** Throws for a NULL return (libbpf 1.x sets errno). */
export function checkPointer(
  op: string,
  ptr: Deno.PointerValue,
  detail?: () => string,
): Deno.PointerObject {
  if (ptr !== null) return ptr;
  throw new LibbpfError(op, errno() || Errno.EINVAL, detail?.());
}

// --- libbpf's log -------------------------------------------------------------

/** libbpf's log lines of the current operation (the verifier log on a refused load). */
const logLines: string[] = [];
let verboseLog = false;
const PRINT_FN = { parameters: ["i32", "pointer", "pointer"], result: "i32" } as const;
// Callbacks whose pointers native code holds: kept for the life of the process.
const liveCallbacks: Deno.UnsafeCallback<typeof PRINT_FN>[] = [];

/** With `on`, libbpf's warnings go to stderr as they come (--verbose). */
export function setVerboseLog(on: boolean): void {
  verboseLog = on;
}

/** Takes the log lines collected since the last call. */
export function takeLog(): string {
  return logLines.splice(0).join("");
}

function installLogger(lib: Libbpf): void {
  let buf = new Uint8Array(4096);
  // x86-64's va_list is one 24-byte struct; vsnprintf consumes it, so a
  // message longer than the buffer (the verifier log is one "%s") is
  // formatted again from a copy taken first (what va_copy does).
  const VA_LIST_BYTES = 24;
  const apCopy = new Uint8Array(VA_LIST_BYTES);
  const apCopyPtr = Deno.UnsafePointer.of(apCopy);
  const LIBBPF_DEBUG = 2;
  const callback = new Deno.UnsafeCallback(
    PRINT_FN,
    (level, fmt, ap) => {
      // An exception here would be swallowed by the FFI layer: never throw.
      try {
        if (level >= LIBBPF_DEBUG && !verboseLog) return 0;
        if (ap === null) return 0;
        new Deno.UnsafePointerView(ap).copyInto(apCopy);
        let n = lib.vsnprintf(buf, BigInt(buf.length), fmt, ap);
        if (n >= buf.length) {
          buf = new Uint8Array(n + 1);
          n = lib.vsnprintf(buf, BigInt(buf.length), fmt, apCopyPtr);
        }
        const line = decoder.decode(buf.subarray(0, Math.max(0, Math.min(n, buf.length - 1))));
        if (logLines.length < 20_000) logLines.push(line);
        // libbpf's own lines carry "libbpf: " already; the verifier's are inside one of them.
        if (verboseLog) Deno.stderr.writeSync(encoder.encode(line));
        return n;
      } catch {
        return -1;
      }
    },
  );
  liveCallbacks.push(callback);
  lib.libbpf_set_print(callback.pointer);
}

/** Whether libbpf's log goes to stderr as it comes (--verbose). */
export function verboseLogOn(): boolean {
  return verboseLog;
}

// --- handles --------------------------------------------------------------------

/** A cgroup directory opened for attaching (an O_RDONLY directory fd). */
export class CgroupFd implements Disposable {
  #fd: number;

  constructor(path: string) {
    const O_RDONLY = 0, O_DIRECTORY = 0o200000, O_CLOEXEC = 0o2000000;
    this.#fd = check(
      `Open cgroup "${path}"`,
      libbpf().open(cString(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC),
    );
  }

  get fd(): number {
    if (this.#fd < 0) throw new Error("cgroup fd is closed");
    return this.#fd;
  }

  close(): void {
    if (this.#fd < 0) return;
    libbpf().close(this.#fd);
    this.#fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** A BPF link: the attachment stays until close() or until the process dies. */
export class BpfLink implements Disposable {
  #handle: Deno.PointerObject | null;

  constructor(handle: Deno.PointerObject) {
    this.#handle = handle;
  }

  /** Runs an iterator link once and returns everything it wrote. */
  readIterator(): Uint8Array {
    return readAll(this.#iteratorFd());
  }

  /**
   * Runs a network-namespaced iterator (iter/tcp) in the namespace of
   * `nsPath` (e.g. /proc/PID/ns/net): the iterator takes the namespace of
   * the thread that creates it, so this thread enters it for that moment.
   * Returns null when the namespace cannot be entered (gone, or no privilege).
   */
  readIteratorIn(nsPath: string): Uint8Array | null {
    const lib = libbpf();
    const CLONE_NEWNET = 0x40000000, O_RDONLY = 0;
    const own = lib.open(cString("/proc/thread-self/ns/net"), O_RDONLY);
    if (own < 0) return null;
    const target = lib.open(cString(nsPath), O_RDONLY);
    if (target < 0) {
      lib.close(own);
      return null;
    }
    let fd: number | LibbpfError = -1;
    let home = true;
    try {
      if (lib.setns(target, CLONE_NEWNET) !== 0) return null;
      try {
        fd = this.#iteratorFd();
      } catch (err) {
        if (!(err instanceof LibbpfError)) throw err;
        fd = err;
      }
      // Back home before anything else runs on this thread.
      home = lib.setns(own, CLONE_NEWNET) === 0;
    } finally {
      lib.close(target);
      lib.close(own);
    }
    if (!home) throw new Error("Cannot return to netflow's own network namespace");
    if (fd instanceof LibbpfError) throw fd;
    return readAll(fd);
  }

  #iteratorFd(): number {
    if (this.#handle === null) throw new Error("BPF link is closed");
    const lib = libbpf();
    return check(
      "Create iterator",
      lib.bpf_iter_create(check("Link fd", lib.bpf_link__fd(this.#handle))),
    );
  }

  close(): void {
    if (this.#handle === null) return;
    libbpf().bpf_link__destroy(this.#handle);
    this.#handle = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Reads an iterator fd to its end, then closes it. */
function readAll(fd: number): Uint8Array {
  const lib = libbpf();
  try {
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const buf = new Uint8Array(64 * 1024);
      const n = Number(lib.read(fd, buf, BigInt(buf.length)));
      if (n === 0) break;
      if (n < 0) {
        const err = errno();
        if (err === Errno.EAGAIN || err === Errno.EINTR) continue;
        check("Read iterator", -err);
      }
      chunks.push(buf.subarray(0, n));
      total += n;
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  } finally {
    lib.close(fd);
  }
}

/** A map of a loaded object: its fd and size (valid while the object is open). */
export interface BpfMap {
  readonly name: string;
  readonly fd: number;
  readonly maxEntries: number;
}

/** A BPF object opened from ELF bytes; load() hands its programs to the kernel. */
export class BpfObject implements Disposable {
  #handle: Deno.PointerObject | null;
  // libbpf reads the ELF bytes until the object is loaded: keep them alive.
  #elf: Uint8Array<ArrayBuffer> | null;

  constructor(elf: Uint8Array<ArrayBuffer>) {
    this.#elf = elf;
    takeLog();
    this.#handle = checkPointer(
      "Open BPF object",
      libbpf().bpf_object__open_mem(elf, BigInt(elf.byteLength), null),
      takeLog,
    );
  }

  get #live(): Deno.PointerObject {
    if (this.#handle === null) throw new Error("BPF object is closed");
    return this.#handle;
  }

  /** Sets a map's max_entries; only before load(). */
  resizeMap(name: string, maxEntries: number): void {
    check(`Resize map "${name}"`, libbpf().bpf_map__set_max_entries(this.#map(name), maxEntries));
  }

  /** Sets a global data section's initial value (e.g. ".rodata"); only before load(). */
  setInitialValue(section: string, data: Uint8Array<ArrayBuffer>): void {
    check(
      `Set ${section}`,
      libbpf().bpf_map__set_initial_value(this.#map(section), data, BigInt(data.byteLength)),
    );
  }

  load(): void {
    takeLog();
    check("Load BPF programs", libbpf().bpf_object__load(this.#live), takeLog);
    this.#elf = null;
  }

  map(name: string): BpfMap {
    const map = this.#map(name);
    const fd = check(`Map "${name}"`, libbpf().bpf_map__fd(map));
    return { name, fd, maxEntries: libbpf().bpf_map__max_entries(map) };
  }

  /** Leaves a program out of load() (a feature this kernel refuses); only before load(). */
  skip(program: string): void {
    check(
      `Leave out ${program}`,
      libbpf().bpf_program__set_autoload(this.#program(program), false),
    );
  }

  /** Attaches an iterator program (run it with BpfLink.readIterator). */
  attachIterator(program: string): BpfLink {
    const link = libbpf().bpf_program__attach_iter(this.#program(program), null);
    return new BpfLink(checkPointer(`Attach ${program}`, link, takeLog));
  }

  attachCgroup(program: string, cgroup: CgroupFd): BpfLink {
    const link = libbpf().bpf_program__attach_cgroup(this.#program(program), cgroup.fd);
    return new BpfLink(checkPointer(`Attach ${program}`, link, takeLog));
  }

  #program(name: string): Deno.PointerObject {
    return checkPointer(
      `Find program "${name}"`,
      libbpf().bpf_object__find_program_by_name(this.#live, cString(name)),
    );
  }

  #map(name: string): Deno.PointerObject {
    return checkPointer(
      `Find map "${name}"`,
      libbpf().bpf_object__find_map_by_name(this.#live, cString(name)),
    );
  }

  close(): void {
    if (this.#handle === null) return;
    libbpf().bpf_object__close(this.#handle);
    this.#handle = null;
    this.#elf = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

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
