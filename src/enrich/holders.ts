/**
 * Which process holds which TCP socket now, from one run of the kernel's
 * task_file iterator (every file of every process, sockets kept): the
 * accepted socket of an incoming flow is held only by the process that
 * accepted it, and a socket older than netflow has no socket storage.
 *
 * Sockets are keyed by network namespace and cookie; listeners by network
 * namespace, local address and port, so a listener on port P in one
 * namespace never names the process behind another namespace's port P.
 *
 * @module
 */
import type { SocketOwner } from "../bpf/records.ts";
import type { SocketHolder } from "../bpf/holders.ts";

/** What the owner resolver needs of the holders (a fake in unit tests). */
export interface HolderIndex {
  /** Runs the iterator once and indexes what it found. */
  refresh(): void;
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
}

const NONE: readonly SocketOwner[] = Object.freeze([]);

export class SocketHolders implements HolderIndex {
  readonly #read: () => SocketHolder[] | null;
  #sockets = new Map<string, SocketOwner[]>();
  #listeners = new Map<string, SocketOwner[]>();
  /** Iterator runs so far. */
  runs = 0;
  /** Whether the last run could read anything (null from `read`: no iterator). */
  available = true;

  /** `read` runs the iterator; null when this kernel has none. */
  constructor(read: () => SocketHolder[] | null) {
    this.#read = read;
  }

  refresh(): void {
    this.runs++;
    const sockets = new Map<string, SocketOwner[]>();
    const listeners = new Map<string, SocketOwner[]>();
    const add = (map: Map<string, SocketOwner[]>, key: string, owner: SocketOwner) => {
      const list = map.get(key);
      if (list === undefined) map.set(key, [owner]);
      else if (!list.some((o) => o.pid === owner.pid)) list.push(owner);
    };
    const rows = this.#read();
    this.available = rows !== null;
    for (const h of rows ?? []) {
      if (h.listening) add(listeners, `${h.netns}|${h.localAddr}|${h.localPort}`, h.owner);
      else add(sockets, `${h.netns}|${h.cookie}`, h.owner);
    }
    this.#sockets = sockets;
    this.#listeners = listeners;
  }

  ofSocket(netns: number, cookie: number): readonly SocketOwner[] {
    return this.#sockets.get(`${netns}|${cookie}`) ?? NONE;
  }

  ofListener(netns: number, family: 4 | 6, addr: string, port: number): readonly SocketOwner[] {
    const at = (a: string) => this.#listeners.get(`${netns}|${a}|${port}`);
    return at(addr) ?? at(family === 4 ? "0.0.0.0" : "::") ??
      (family === 4 ? at("::") : undefined) ??
      NONE;
  }
}
