/**
 * One flow as the table keeps it while it is open, and the bare event made
 * from it (src/flow/state.ts fills in the rest of each kind's fields).
 *
 * @module
 */
import type { SocketOwner } from "../bpf/records.ts";
import type { FlowEvent, FlowEventBase } from "../events.ts";
import type { Widened } from "./counters.ts";
import type { Endpoint } from "./handshake.ts";

/**
 * A flow, with its 32-bit counters widened (src/flow/counters.ts). Flat (no
 * object per endpoint or counter): an open flow's entry is what the table
 * holds for as long as the flow lasts.
 */
export interface Flow extends Widened {
  /** Its events' flow_id, made once (the enrichers' per-flow maps share it as their key). */
  readonly flowId: string;
  readonly direction: "outgoing" | "incoming";
  readonly localAddr: string;
  readonly localPort: number;
  readonly remoteAddr: string;
  readonly remotePort: number;
  readonly cgroupId: number;
  readonly netns: number;
  readonly cookie: number;
  readonly preexisting: boolean;
  /** When netflow reported the begin, as the kernel's monotonic ns; null when it did not. */
  readonly beginNs: number | null;
  /** Reconcile sweeps in a row that did not find its socket open. */
  missed: number;
  /** The records' begin time (ns), part of its socket's identity (with netns and cookie). */
  readonly keyNs: number;
  /** The next open flow with the same cookie (src/flow/open_flows.ts). */
  sameCookie: Flow | undefined;
  /**
   * The DNS names its first event took (src/enrich/dns.ts), for the rest of
   * its events; undefined until then. The flow carries them: no map of its own.
   */
  names: FlowNames | undefined;
  /**
   * The owner its begin took (src/enrich/owner.ts: null, nobody known), for
   * the rest of its events; undefined until then. On the flow: no map of its own.
   */
  owner: SocketOwner | null | undefined;
}

/** A flow's DNS names, for its local and its remote address. */
export interface FlowNames {
  readonly local: readonly string[];
  readonly remote: readonly string[];
}

const NO_NAMES: readonly string[] = Object.freeze([]);

/** A new flow, its counters not yet seen. */
export function makeFlow(
  flowId: string,
  direction: Flow["direction"],
  local: Endpoint,
  remote: Endpoint,
  r: {
    readonly cgroupId: number;
    readonly netns: number;
    readonly cookie: number;
    readonly preexisting: boolean;
    readonly beginNs: number | null;
    readonly keyNs: number;
  },
): Flow {
  return {
    flowId,
    direction,
    localAddr: local.addr,
    localPort: local.port,
    remoteAddr: remote.addr,
    remotePort: remote.port,
    cgroupId: r.cgroupId,
    netns: r.netns,
    cookie: r.cookie,
    preexisting: r.preexisting,
    beginNs: r.beginNs,
    missed: 0,
    keyNs: r.keyNs,
    sameCookie: undefined,
    names: undefined,
    owner: undefined,
    // Written out, not spread from a constant: a literal's own fields stay in the object (a
    // spread adds them one by one into a separate, larger property store).
    segsInLast: 0,
    segsOutLast: 0,
    retransLast: 0,
    wideS: 0,
    wraps: undefined,
  };
}

/**
 * The fields every flow event has, at `time` (RFC 3339); `localIsSrc` orients
 * it. The enrichers' fields are left empty here: theirs to fill.
 */
export function bareEvent<E extends FlowEvent["event"]>(
  flow: Flow,
  time: string,
  event: E,
  localIsSrc: boolean,
): FlowEventBase & { event: E } {
  return {
    time,
    event,
    flow_id: flow.flowId,
    conn_direction: flow.direction,
    src: localIsSrc ? flow.localAddr : flow.remoteAddr,
    dst: localIsSrc ? flow.remoteAddr : flow.localAddr,
    src_port: localIsSrc ? flow.localPort : flow.remotePort,
    dst_port: localIsSrc ? flow.remotePort : flow.localPort,
    src_dns: NO_NAMES,
    dst_dns: NO_NAMES,
    pid: null,
    comm: null,
    uid: null,
    cgroup_id: flow.cgroupId,
    cgroup: "",
    container_id: null,
    netns: flow.netns,
    preexisting: flow.preexisting,
  };
}
