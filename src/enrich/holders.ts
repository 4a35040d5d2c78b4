/**
 * Which process holds which TCP socket now, from one run of the kernel's
 * task_file iterator (every file of every process, sockets kept): the
 * accepted socket of an incoming flow is held only by the process that
 * accepted it, and a socket older than netflow has no socket storage.
 *
 * Sockets are found by cookie and namespace; listeners by network
 * namespace, local address and port, so a listener on port P in one
 * namespace never names the process behind another namespace's port P.
 *
 * @module
 */
import type { SocketOwner } from "../bpf/records.ts";
import { HolderRows } from "../bpf/holders.ts";

/** What the owner resolver needs of the holders (a fake in unit tests). */
export interface HolderIndex {
  /**
   * Runs the iterator once and indexes what it found: every listener, and
   * the sockets of `cookies` (every socket when not given: the start snapshot).
   */
  refresh(cookies?: ReadonlySet<number>): void;
  /**
   * false: this kernel has no holders iterator (before 5.11), so nothing is
   * ever found; undefined or true: it has one.
   */
  readonly available?: boolean;
  /** The processes holding a socket, as of the last refresh. */
  ofSocket(netns: number, cookie: number): readonly SocketOwner[];
  /**
   * The processes holding the listener that serves a local address and port
   * of a namespace: bound to that address, else to the wildcard of its
   * family, else (IPv4) a dual-stack `::` listener.
   */
  ofListener(netns: number, family: 4 | 6, addr: string, port: number): readonly SocketOwner[];
  /**
   * Runs the iterator on the processes of `pids` only, for the sockets of
   * `cookies`, and indexes what it found (the listeners stay the last full
   * run's); false when it cannot (a kernel before 6.1): run `refresh`.
   */
  refreshIn?(pids: ReadonlySet<number>, cookies: ReadonlySet<number>): boolean;
}

/** Runs on a few processes (src/bpf/holders_run.ts), where the kernel has them. */
export interface ProcessRuns {
  /** The rows of a run on the processes of `pids`; null: this kernel cannot. */
  runIn(pids: Iterable<number>, cookies: ReadonlySet<number>): HolderRows | null;
  /** Lets go of what is kept for processes not in `pids` (they hold no listener now). */
  keep(pids: ReadonlySet<number>): void;
}

const NONE: readonly SocketOwner[] = Object.freeze([]);
const NO_ROWS = new HolderRows(new Uint8Array(0));

export class SocketHolders implements HolderIndex {
  readonly #read: (cookies: ReadonlySet<number> | null) => HolderRows | null;
  readonly #processes: ProcessRuns | undefined;
  #rows = NO_ROWS;
  /** A socket's first row, by cookie (cookies are unique on the host; the namespace is checked). */
  #sockets = new Map<number, number>();
  /** A socket's further rows: held by more than one process, or by more than one fd. */
  #more = new Map<number, number[]>();
  #listeners = new Map<string, SocketOwner[]>();
  /** Iterator runs so far. */
  runs = 0;
  /** Whether the last run could read anything (null from `read`: no iterator). */
  available = true;

  /**
   * `read` runs the iterator, writing rows for listeners and the sockets of
   * `cookies` (null: every socket); null when this kernel has none.
   */
  constructor(
    read: (cookies: ReadonlySet<number> | null) => HolderRows | null,
    processes?: ProcessRuns,
  ) {
    this.#read = read;
    this.#processes = processes;
  }

  /**
   * Indexes a run by row number: only the few listeners and the sockets
   * asked for later are decoded (a run on a busy host has 200,000 rows).
   */
  refresh(cookies?: ReadonlySet<number>): void {
    this.runs++;
    const rows = this.#read(cookies ?? null);
    this.available = rows !== null;
    const listeners = new Map<string, SocketOwner[]>();
    this.#index(rows ?? NO_ROWS, listeners);
    this.#listeners = listeners;
    const pids = new Set<number>();
    for (const list of listeners.values()) for (const o of list) pids.add(o.pid);
    this.#processes?.keep(pids);
  }

  refreshIn(pids: ReadonlySet<number>, cookies: ReadonlySet<number>): boolean {
    const rows = this.#processes?.runIn(pids, cookies) ?? null;
    if (rows === null) return false;
    this.runs++;
    this.#index(rows);
    return true;
  }

  /** A run's sockets by row; its listeners into `listeners` when given (a run on every process). */
  #index(rows: HolderRows, listeners?: Map<string, SocketOwner[]>): void {
    this.#rows = rows;
    const sockets = new Map<number, number>(), more = new Map<number, number[]>();
    for (let i = 0; i < this.#rows.count; i++) {
      if (this.#rows.listening(i)) {
        if (listeners === undefined) continue;
        const h = this.#rows.holder(i);
        const key = `${h.netns}|${h.localAddr}|${h.localPort}`;
        const list = listeners.get(key);
        if (list === undefined) listeners.set(key, [h.owner]);
        else if (!list.some((o) => o.pid === h.owner.pid)) list.push(h.owner);
        continue;
      }
      const cookie = this.#rows.cookie(i);
      if (!sockets.has(cookie)) sockets.set(cookie, i);
      else {
        const list = more.get(cookie);
        if (list === undefined) more.set(cookie, [i]);
        else list.push(i);
      }
    }
    this.#sockets = sockets;
    this.#more = more;
  }

  ofSocket(netns: number, cookie: number): readonly SocketOwner[] {
    const first = this.#sockets.get(cookie);
    if (first === undefined) return NONE;
    const out: SocketOwner[] = [];
    for (const i of [first, ...(this.#more.get(cookie) ?? [])]) {
      if (this.#rows.netns(i) !== netns) continue;
      const pid = this.#rows.pid(i);
      if (!out.some((o) => o.pid === pid)) out.push(this.#rows.owner(i));
    }
    return out;
  }

  ofListener(netns: number, family: 4 | 6, addr: string, port: number): readonly SocketOwner[] {
    const at = (a: string) => this.#listeners.get(`${netns}|${a}|${port}`);
    return at(addr) ?? at(family === 4 ? "0.0.0.0" : "::") ??
      (family === 4 ? at("::") : undefined) ??
      NONE;
  }
}
