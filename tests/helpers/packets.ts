/**
 * Synthetic TCP control packets for unit tests of the flow state machine.
 *
 * @module
 */
import { type TcpCounters, TcpFlags, type TcpPacket } from "../../src/bpf/records.ts";

export const { FIN, SYN, RST, ACK } = TcpFlags;

export interface Side {
  addr: string;
  port: number;
}

/** A packet from `from` to `to`, seen on the `local` side's hook. */
export function packet(
  from: Side,
  to: Side,
  flags: number,
  opts: {
    local: Side;
    ms?: number;
    seq?: number;
    ack?: number;
    payload?: number;
    counters?: Partial<TcpCounters>;
    sockState?: number;
    localPortListens?: boolean;
    owner?: TcpPacket["owner"];
  },
): TcpPacket {
  const egress = from.addr === opts.local.addr && from.port === opts.local.port;
  return {
    kind: "tcp",
    timeUs: Math.round((opts.ms ?? 0) * 1000) + 1_700_000_000_000_000,
    cgroupId: 42,
    direction: egress ? "egress" : "ingress",
    family: from.addr.includes(":") ? 6 : 4,
    src: from.addr,
    dst: to.addr,
    srcPort: from.port,
    dstPort: to.port,
    seq: opts.seq ?? 0,
    ack: opts.ack ?? 0,
    flags,
    payloadLength: opts.payload ?? 0,
    cookie: 1,
    listener: false,
    localPortListens: opts.localPortListens ?? false,
    sockState: opts.sockState ?? 1,
    owner: opts.owner ?? null,
    counters: opts.counters
      ? {
        bytesAcked: 0,
        bytesReceived: 0,
        sndUna: 0,
        sndNxt: 0,
        srttUs: 0,
        segsIn: 0,
        segsOut: 0,
        totalRetrans: 0,
        ...opts.counters,
      }
      : null,
  };
}
