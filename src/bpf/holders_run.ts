/**
 * Runs of the holders iterator (netflow_holders, iter/task_file): on every
 * process, or on a few only. Each run writes rows for listeners and for the
 * sockets asked for (src/bpf/wanted.ts sets the kernel's filter first). A run
 * on a few processes uses one iterator link per process (Linux 6.1+ takes a
 * pid in bpf_iter_link_info.task), so it walks the files of the processes
 * that hold the listener a waiting flow arrived on, not every file of every
 * process (200,000 on a host with 100,000 connections held). Those links are
 * kept while their process may be asked for again ({@link HoldersIterator.keep}).
 *
 * Each run says which thread reads it (holders_reader, set by the program) so
 * that a socket whose last reference the read let go is told apart from
 * netflow closing its own (bpf/owners.bpf.h); cleared after each read.
 *
 * @module
 */
import type { BpfLink, BpfObject } from "../ffi/objects.ts";
import { libbpf, LibbpfError } from "../ffi/libbpf.ts";
import { HolderRows } from "./holders.ts";
import type { WantedSockets, WantedStats } from "./wanted.ts";

const E2BIG = 7, EINVAL = 22;
const ZERO_KEY = new Uint32Array([0]), NO_READER = new BigUint64Array([0n]);

export class HoldersIterator implements Disposable {
  readonly #obj: BpfObject;
  readonly #program: string;
  readonly #all: BpfLink;
  readonly #wanted: WantedSockets;
  /** Per-process links by pid; null once this kernel refused one (before 6.1). */
  #links: Map<number, BpfLink> | null = new Map();
  readonly #readerFd: number;

  /** `all`: the program's link on every process; `wanted`: its filter. */
  constructor(obj: BpfObject, program: string, all: BpfLink, wanted: WantedSockets) {
    this.#obj = obj;
    this.#program = program;
    this.#all = all;
    this.#wanted = wanted;
    this.#readerFd = obj.map("holders_reader").fd;
  }

  /** What the kernel's filter could not do (src/bpf/wanted.ts). */
  get filterStats(): WantedStats {
    return this.#wanted.stats;
  }

  /** A run on every process: rows for listeners and the sockets of `cookies` (null: all). */
  run(cookies: ReadonlySet<number> | null): HolderRows {
    this.#wanted.set(cookies);
    return new HolderRows(this.#read1(this.#all));
  }

  /** One link's run; then no read is going on (its releases have run as the read returned). */
  #read1(link: BpfLink): Uint8Array {
    try {
      return link.readIterator();
    } finally {
      libbpf().bpf_map_update_elem(this.#readerFd, ZERO_KEY, NO_READER, 0n);
    }
  }

  /**
   * A run on the processes of `pids` only, for the sockets of `cookies`; null
   * when this kernel cannot run the iterator on one process. A process that
   * is gone is skipped.
   */
  runIn(pids: Iterable<number>, cookies: ReadonlySet<number>): HolderRows | null {
    if (this.#links === null) return null;
    this.#wanted.set(cookies);
    const parts = this.#read(pids);
    if (parts === null) return null;
    const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.length;
    }
    return new HolderRows(bytes);
  }

  #read(pids: Iterable<number>): Uint8Array[] | null {
    if (this.#links === null) return null;
    const out: Uint8Array[] = [];
    for (const pid of pids) {
      if (!(pid > 0)) continue; // 0 would ask the kernel for every process
      let link = this.#links.get(pid);
      if (link === undefined) {
        try {
          link = this.#obj.attachIteratorToProcess(this.#program, pid);
        } catch (err) {
          if (!(err instanceof LibbpfError)) throw err;
          // The argument refused (a kernel before 6.1): never again.
          if (err.errno === E2BIG || err.errno === EINVAL) {
            this.close();
            this.#links = null;
            return null;
          }
          continue; // ESRCH: no such process any more
        }
        this.#links.set(pid, link);
      }
      out.push(this.#read1(link));
    }
    return out;
  }

  /** Lets go of the per-process links of processes not in `pids`. */
  keep(pids: ReadonlySet<number>): void {
    if (this.#links === null) return;
    for (const [pid, link] of this.#links) {
      if (pids.has(pid)) continue;
      link.close();
      this.#links.delete(pid);
    }
  }

  /** The per-process links; the link on every process is the loader's. */
  close(): void {
    this.keep(new Set());
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
