/**
 * Which process holds a socket, from the kernel's task_file iterator: for
 * sockets created before netflow started (no socket storage), and for servers
 * whose workers accept on a listener their parent created and then closed.
 *
 * A snapshot of every TCP socket held by a process, refreshed on demand: for
 * a listening port it does not know (once, then at most once a second for
 * that port), and when over a second old (at most every 100 ms).
 *
 * @module
 */
import type { SocketHolder, SocketOwner } from "../bpf/records.ts";
import type { OwnerQuery } from "../flow/state.ts";

const MAX_AGE_MS = 1000;
const MIN_INTERVAL_MS = 100;

export class SocketHolders {
  readonly #read: () => SocketHolder[];
  readonly #now: () => number;
  #byCookie = new Map<number, SocketOwner>();
  #listeners = new Map<number, SocketOwner[]>();
  #takenMs = -Infinity;
  /** Ports looked up without a listener in the snapshot: when a refresh was made for them. */
  readonly #triedPorts = new Map<number, number>();

  /** `read` runs the iterator; `now` is a clock in ms (injectable for tests). */
  constructor(read: () => SocketHolder[], now: () => number = () => performance.now()) {
    this.#read = read;
    this.#now = now;
  }

  /** Takes a fresh snapshot now. */
  refresh(): void {
    this.#takenMs = this.#now();
    const byCookie = new Map<number, SocketOwner>();
    const listeners = new Map<number, SocketOwner[]>();
    for (const h of this.#read()) {
      if (!byCookie.has(h.cookie)) byCookie.set(h.cookie, h.owner);
      if (h.listening) {
        const list = listeners.get(h.localPort) ?? [];
        if (!list.some((o) => o.pid === h.owner.pid)) list.push(h.owner);
        listeners.set(h.localPort, list);
      }
    }
    this.#byCookie = byCookie;
    this.#listeners = listeners;
  }

  /**
   * The owner of a flow: for an incoming flow, a process that holds the
   * listener when its creator no longer does (a forked worker); otherwise the
   * creator; failing that, whoever holds the socket itself.
   */
  owner(q: OwnerQuery): SocketOwner | null {
    if (q.direction === "incoming") {
      let holders = this.#listeners.get(q.localPort);
      if (holders === undefined) {
        const now = this.#now();
        if (now - (this.#triedPorts.get(q.localPort) ?? -Infinity) >= MAX_AGE_MS) {
          if (this.#triedPorts.size > 10_000) this.#triedPorts.clear();
          this.#triedPorts.set(q.localPort, now);
          this.refresh();
        }
      } else if (this.#age() > MAX_AGE_MS) {
        this.#refreshLimited();
      }
      holders = this.#listeners.get(q.localPort);
      if (holders?.length && !holders.some((h) => h.pid === q.creator?.pid)) return holders[0]!;
    }
    if (q.creator !== null) return q.creator;
    if (!this.#byCookie.has(q.cookie)) this.#refreshLimited();
    return this.#byCookie.get(q.cookie) ?? null;
  }

  #age(): number {
    return this.#now() - this.#takenMs;
  }

  #refreshLimited(): void {
    if (this.#age() >= MIN_INTERVAL_MS) this.refresh();
  }
}
