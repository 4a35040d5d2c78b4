/**
 * Connection attempts that made no socket (fail events): a SYN reaching a
 * listener starts a half-open attempt, which its begin ends (it established)
 * or a RST reaching the listener resets; this host's RST for a closed port
 * refuses one at once. The table of half-open attempts is bounded (the
 * oldest goes first, counted) and forgets an attempt after two minutes.
 * And who sent the SYN of a socket older than netflow: its listener says.
 *
 * @module
 */
import type { FlowRecord, TcpPacket } from "../bpf/records.ts";

/** A half-open attempt is forgotten after this long (the kernel's SYN-ACK retries end sooner). */
const HALF_OPEN_TTL_NS = 120e9;

export interface Endpoint {
  readonly addr: string;
  readonly port: number;
}

/** An attempt that failed: its sides, and since when (its first SYN's monotonic ns). */
export interface FailedAttempt {
  readonly local: Endpoint;
  readonly remote: Endpoint;
  readonly sinceNs: number;
}

/** A connection attempt's identity before it has a socket. */
export function tupleKey(
  netns: number,
  t: { localAddr: string; localPort: number; remoteAddr: string; remotePort: number },
): string {
  return `${netns}|${t.localAddr}|${t.localPort}|${t.remoteAddr}|${t.remotePort}`;
}

export class HalfOpen {
  /** SYNs that reached a listener: key -> when (monotonic ns), until it establishes or fails. */
  readonly #since = new Map<string, number>();
  readonly #max: number;
  /** Attempts dropped because the table was full. */
  evicted = 0;

  constructor(max: number) {
    this.#max = max;
  }

  /** Attempts tracked now. */
  get size(): number {
    return this.#since.size;
  }

  /** The attempt of this 4-tuple established (an incoming begin): it is not half-open any more. */
  established(key: string): void {
    this.#since.delete(key);
  }

  /** A handshake packet; returns the attempt it fails, if it fails one. */
  onPacket(p: TcpPacket): FailedAttempt | undefined {
    this.#expire(p.timeNs);
    // Ingress packets come from the remote side; the refusal leaves from the local one.
    const refused = p.kind === "refused";
    const remote = refused ? { addr: p.dst, port: p.dstPort } : { addr: p.src, port: p.srcPort };
    const local = refused ? { addr: p.src, port: p.srcPort } : { addr: p.dst, port: p.dstPort };
    const key = tupleKey(p.netns, {
      localAddr: local.addr,
      localPort: local.port,
      remoteAddr: remote.addr,
      remotePort: remote.port,
    });
    if (p.kind === "syn") {
      if (this.#since.has(key)) return undefined; // a retransmitted SYN
      if (this.#since.size >= this.#max) {
        this.#since.delete(this.#since.keys().next().value!);
        this.evicted++;
      }
      this.#since.set(key, p.timeNs);
      return undefined;
    }
    let sinceNs = p.timeNs;
    if (p.kind === "hs-rst") {
      const syn = this.#since.get(key);
      if (syn === undefined) return undefined; // no attempt of ours: a stray RST
      this.#since.delete(key);
      sinceNs = syn;
    }
    return { local, remote, sinceNs };
  }

  #expire(nowNs: number): void {
    for (const [key, since] of this.#since) {
      if (nowNs - since < HALF_OPEN_TTL_NS) break;
      this.#since.delete(key);
    }
  }
}

/**
 * Whether a listener of the start snapshot (its `listen` records) serves a
 * socket's local address and port in its namespace: then the socket was
 * accepted (incoming); who sent the SYN is not recorded for sockets older
 * than netflow.
 */
export function listening(records: readonly FlowRecord[]): (r: FlowRecord) => boolean {
  const listeners = new Set<string>();
  for (const r of records) {
    if (r.kind === "listen") listeners.add(`${r.netns}|${r.localAddr}|${r.localPort}`);
  }
  const wildcard = (r: FlowRecord) => (r.family === 4 ? "0.0.0.0" : "::");
  return (r) =>
    listeners.has(`${r.netns}|${r.localAddr}|${r.localPort}`) ||
    listeners.has(`${r.netns}|${wildcard(r)}|${r.localPort}`) ||
    // A dual-stack listener on [::] also accepts IPv4.
    listeners.has(`${r.netns}|::|${r.localPort}`);
}
