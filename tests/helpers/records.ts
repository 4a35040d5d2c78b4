/**
 * Synthetic kernel flow records for unit tests of the flow state machine.
 *
 * @module
 */
import {
  type EndHow,
  type FlowRecord,
  type OpenList,
  type SocketCounters,
  socketKey,
} from "../../src/bpf/records.ts";

export interface Side {
  addr: string;
  port: number;
}

const EPOCH_US = 1_700_000_000_000_000;

/** A record of the socket at `local` talking to `remote`. */
export function record(
  kind: FlowRecord["kind"],
  local: Side,
  remote: Side,
  opts: {
    cookie?: number;
    netns?: number;
    ms?: number;
    outgoing?: boolean;
    preexisting?: boolean;
    end?: EndHow;
    counters?: Partial<SocketCounters>;
    owner?: FlowRecord["owner"];
  } = {},
): FlowRecord {
  const outgoing = opts.outgoing ?? false;
  return {
    kind,
    timeUs: Math.round((opts.ms ?? 0) * 1000) + EPOCH_US,
    beginUs: EPOCH_US,
    beginNs: 1,
    cgroupId: 42,
    netns: opts.netns ?? 4026531840,
    cookie: opts.cookie ?? 1,
    family: local.addr.includes(":") ? 6 : 4,
    localAddr: local.addr,
    localPort: local.port,
    remoteAddr: remote.addr,
    remotePort: remote.port,
    outgoing,
    preexisting: opts.preexisting ?? false,
    synAcked: outgoing,
    end: kind === "end" ? opts.end ?? "local-fin" : null,
    oldState: 1,
    newState: 1,
    skErr: 0,
    owner: opts.owner ?? null,
    counters: {
      bytesAcked: 0,
      bytesReceived: 0,
      sndUna: 0,
      writeSeq: 0,
      srttUs: 0,
      segsIn: 0,
      segsOut: 0,
      totalRetrans: 0,
      ...opts.counters,
    },
  };
}

/** One connection as the kernel reports it on `local`'s socket: a begin, then an end. */
export function connection(
  local: Side,
  remote: Side,
  opts: { cookie?: number; netns?: number; outgoing?: boolean; end?: EndHow; endMs?: number } = {},
): [FlowRecord, FlowRecord] {
  return [
    record("begin", local, remote, { ...opts, ms: 0 }),
    record("end", local, remote, { ...opts, ms: opts.endMs ?? 10 }),
  ];
}

/** An open-flow list (what the update iterator gives) of `records`. */
export function openList(records: readonly FlowRecord[]): OpenList[] {
  const keys = new Map(records.map((r, i) => [socketKey(r.netns, r.cookie, r.beginNs), i]));
  return [{ keys, record: (at) => records[at] }];
}

/** The time `ms` after the records' epoch, as onOpenList takes it. */
export function atMs(ms: number): number {
  return EPOCH_US + ms * 1000;
}
