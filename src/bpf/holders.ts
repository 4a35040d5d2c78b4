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

/** Decodes the task_file iterator's output (back-to-back nf_holder records). */
export function decodeHolders(bytes: Uint8Array): SocketHolder[] {
  const F = LAYOUT.nf_holder.fields, size = LAYOUT.nf_holder.size;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: SocketHolder[] = [];
  for (let at = 0; at + size <= bytes.length; at += size) {
    const family = view.getUint8(at + F.family) === 6 ? 6 : 4;
    out.push({
      cookie: u64(view, at + F.cookie),
      netns: view.getUint32(at + F.netns, true),
      family,
      localAddr: (family === 6 ? formatIPv6 : formatIPv4)(bytes, at + F.saddr),
      localPort: view.getUint16(at + F.sport, true),
      listening: view.getUint8(at + F.state) === TCP_LISTEN,
      owner: {
        pid: view.getUint32(at + F.pid, true),
        uid: view.getUint32(at + F.uid, true),
        comm: cString(bytes, at + F.comm, COMM_LEN),
        cgroupId: u64(view, at + F.cgroup_id),
      },
    });
  }
  return out;
}

const TCP_LISTEN = 10;
