/**
 * libbpf's handles, each a class with a private handle, an idempotent
 * `close()` and `[Symbol.dispose]()`: a cgroup directory, a link, an object
 * and its maps.
 *
 * @module
 */
import { Errno } from "../errors.ts";
import { check, checkPointer, cString, errno, libbpf, LibbpfError, takeLog } from "./libbpf.ts";

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
    // One read buffer; each read's bytes copied out at their size (a read returns at most the
    // kernel's 32 KiB seq buffer: a 64 KiB buffer kept per read held twice the output).
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(64 * 1024);
    let total = 0;
    for (;;) {
      const n = Number(lib.read(fd, buf, BigInt(buf.length)));
      if (n === 0) break;
      if (n < 0) {
        const err = errno();
        if (err === Errno.EAGAIN || err === Errno.EINTR) continue;
        check("Read iterator", -err);
      }
      chunks.push(buf.slice(0, n));
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

  /**
   * Attaches a task iterator program (iter/task_file) to one process: a run
   * walks only that process's files (Linux 6.1+: bpf_iter_link_info.task;
   * older kernels refuse the argument with E2BIG, newer with ESRCH when no
   * such process exists). `pid` as this process's pid namespace sees it.
   */
  attachIteratorToProcess(program: string, pid: number): BpfLink {
    // union bpf_iter_link_info: task { __u32 tid; __u32 pid; __u32 pid_fd; }, 16 bytes (6.1+)
    const info = new Uint32Array([0, pid, 0, 0]);
    // struct bpf_iter_attach_opts { size_t sz; union bpf_iter_link_info *link_info;
    //                               __u32 link_info_len; }
    const opts = new BigUint64Array([
      24n,
      BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(info))),
      BigInt(info.byteLength),
    ]);
    const link = libbpf().bpf_program__attach_iter(
      this.#program(program),
      Deno.UnsafePointer.of(opts),
    );
    return new BpfLink(checkPointer(`Attach ${program} to process ${pid}`, link, takeLog));
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
