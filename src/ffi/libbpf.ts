/**
 * The only `Deno.dlopen` in netflow: the system libbpf (libbpf.so.1, or the
 * path in NETFLOW_LIBBPF), plus the few libc functions netflow needs, which
 * dlsym finds through libbpf's own dependency on libc.
 *
 * Every native return code goes through {@link check} or {@link checkPointer},
 * which throw a {@link LibbpfError}. The handles are in src/ffi/objects.ts,
 * the plain calls (maps, clocks, helper probes) in src/ffi/syscalls.ts.
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
  // int bpf_map_update_batch(int fd, const void *keys, const void *values, __u32 *count,
  //                          const struct bpf_map_batch_opts *opts);
  bpf_map_update_batch: {
    parameters: ["i32", "buffer", "buffer", "buffer", "pointer"],
    result: "i32",
  },
  // int bpf_map_delete_batch(int fd, const void *keys, __u32 *count,
  //                          const struct bpf_map_batch_opts *opts);
  bpf_map_delete_batch: { parameters: ["i32", "buffer", "buffer", "pointer"], result: "i32" },
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

/** The text of a NUL-terminated C string in `buf` (all of it when it has no NUL). */
export function fromCString(buf: Uint8Array): string {
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
