/**
 * Decodes the task_file iterator's output: which process holds which TCP
 * socket (src/enrich/holders.ts indexes it).
 *
 * @module
 */
import { formatIPv4, formatIPv6 } from "./addr.ts";
import { COMM_LEN, cString, LAYOUT, u64 } from "./layout.ts";
import type { SocketOwner } from "./records.ts";

/** A process holding a TCP socket, from the task_file iterator. */
export interface SocketHolder {
  /** The socket's cookie (an MPTCP socket's: its first subflow's). */
  readonly cookie: number;
  readonly netns: number;
  readonly family: 4 | 6;
  readonly localAddr: string;
  readonly localPort: number;
  readonly listening: boolean;
  readonly owner: SocketOwner;
}

/**
 * The task_file iterator's output (back-to-back nf_holder records), read in
 * place: a run on a busy host lists every socket of every process (200,000
 * rows with 100,000 connections held), and the owner resolver looks at a
 * few of them, so a row is decoded only when asked for.
 */
export class HolderRows {
  readonly bytes: Uint8Array;
  readonly #view: DataView;
  /** How many rows. */
  readonly count: number;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.count = Math.floor(bytes.length / SIZE);
  }

  cookie(i: number): number {
    return u64(this.#view, i * SIZE + F.cookie);
  }

  netns(i: number): number {
    return this.#view.getUint32(i * SIZE + F.netns, true);
  }

  pid(i: number): number {
    return this.#view.getUint32(i * SIZE + F.pid, true);
  }

  listening(i: number): boolean {
    return this.#view.getUint8(i * SIZE + F.state) === TCP_LISTEN;
  }

  /** The process holding row i's socket. */
  owner(i: number): SocketOwner {
    const at = i * SIZE;
    return {
      pid: this.#view.getUint32(at + F.pid, true),
      uid: this.#view.getUint32(at + F.uid, true),
      comm: cString(this.bytes, at + F.comm, COMM_LEN),
      cgroupId: u64(this.#view, at + F.cgroup_id),
    };
  }

  /** Row i whole. */
  holder(i: number): SocketHolder {
    const at = i * SIZE;
    const family = this.#view.getUint8(at + F.family) === 6 ? 6 : 4;
    return {
      cookie: this.cookie(i),
      netns: this.netns(i),
      family,
      localAddr: (family === 6 ? formatIPv6 : formatIPv4)(this.bytes, at + F.saddr),
      localPort: this.#view.getUint16(at + F.sport, true),
      listening: this.listening(i),
      owner: this.owner(i),
    };
  }
}

/** Decodes every row of the task_file iterator's output. */
export function decodeHolders(bytes: Uint8Array): SocketHolder[] {
  const rows = new HolderRows(bytes);
  return Array.from({ length: rows.count }, (_, i) => rows.holder(i));
}

const F = LAYOUT.nf_holder.fields, SIZE = LAYOUT.nf_holder.size;
const TCP_LISTEN = 10;
