/**
 * What the decoder shares across records instead of making anew for each: one
 * string per IPv4 address, and one owner object per process (its pid, uid and
 * raw comm bytes), so a record of a known process makes no string.
 *
 * @module
 */
import { formatIPv4, formatIPv6 } from "./addr.ts";
import { COMM_LEN, cString } from "./layout.ts";

/** A process, as socket storage or the task_file iterator name it. */
export interface SocketOwner {
  readonly pid: number;
  readonly uid: number;
  readonly comm: string;
  /**
   * Its cgroup v2 id, where the kernel said it (the holders iterator; the
   * process closing a socket): an incoming flow's cgroup is its acceptor's.
   */
  readonly cgroupId?: number;
}

export class Interned {
  /**
   * One owner object per process, shared by its records (and the flows that
   * keep them), with the raw comm bytes it was made from.
   */
  readonly #owners = new Map<number, { owner: SocketOwner; comm: Uint8Array }>();
  /** One string per IPv4 address (u32 key). */
  readonly #ipv4 = new Map<number, string>();

  /** The address at `at` in `bytes` as text. */
  addr(bytes: Uint8Array, family: 4 | 6, at: number): string {
    if (family === 6) return formatIPv6(bytes, at);
    const key = ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) |
      bytes[at + 3]!) >>> 0;
    let text = this.#ipv4.get(key);
    if (text === undefined) {
      if (this.#ipv4.size >= 65536) this.#ipv4.clear();
      text = formatIPv4(bytes, at);
      this.#ipv4.set(key, text);
    }
    return text;
  }

  /** The owner with this pid and uid, and the comm whose raw bytes are at `commAt` in `bytes`. */
  owner(pid: number, uid: number, bytes: Uint8Array, commAt: number): SocketOwner {
    const known = this.#owners.get(pid);
    if (known !== undefined && known.owner.uid === uid && sameBytes(known.comm, bytes, commAt)) {
      return known.owner;
    }
    const comm = cString(bytes, commAt, COMM_LEN);
    if (this.#owners.size >= 4096) this.#owners.clear();
    const owner = Object.freeze({ pid, uid, comm });
    this.#owners.set(pid, { owner, comm: bytes.slice(commAt, commAt + COMM_LEN) });
    return owner;
  }
}

/** Whether `bytes` at `at` starts with all of `known`. */
function sameBytes(known: Uint8Array, bytes: Uint8Array, at: number): boolean {
  for (let i = 0; i < known.length; i++) if (known[i] !== bytes[at + i]) return false;
  return true;
}
