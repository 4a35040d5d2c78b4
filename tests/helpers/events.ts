/**
 * The one event factory of the unit tests: whole events of each kind with
 * plain values (an outgoing IPv4 flow of curl to port 443, closed by its
 * client), each test overriding only the fields it is about. When the event
 * types change, this file changes, not every test.
 *
 * @module
 */
import type {
  FlowBeginEvent,
  FlowCounters,
  FlowEndEvent,
  FlowEvent,
  FlowEventBase,
  FlowFailEvent,
  FlowUpdateEvent,
  PacketEvent,
} from "../../src/events.ts";

/** The fields every flow event has, with plain values. */
export const FLOW: Omit<FlowEventBase, "event"> = {
  time: "2026-12-01T10:00:00.000000Z",
  flow_id: "f-1",
  conn_direction: "outgoing",
  src: "10.0.0.1",
  dst: "10.0.0.2",
  src_port: 40000,
  dst_port: 443,
  src_dns: [],
  dst_dns: [],
  pid: 10,
  comm: "curl",
  uid: 0,
  cgroup_id: 1,
  cgroup: "/",
  container_id: null,
  netns: 4026531840,
  preexisting: false,
};

/** Counters of a flow that sent and received nothing. */
export const COUNTERS: FlowCounters = {
  bytes_sent: 0,
  bytes_received: 0,
  packets_sent: 0,
  packets_received: 0,
  rtt_us: 0,
  retransmits: 0,
};

// Fields in the contract's order (as netflow's JSON writes them): an override
// keeps its field where it is.
const { time: _time, ...REST } = FLOW;

export function beginEvent(over: Partial<FlowBeginEvent> = {}): FlowBeginEvent {
  return { time: FLOW.time, event: "net_flow_tcp_begin", ...REST, ...over };
}

/** An end (closed by the local side with a FIN unless told). */
export function endEvent(over: Partial<FlowEndEvent> = {}): FlowEndEvent {
  return {
    time: FLOW.time,
    event: "net_flow_tcp_end",
    ...REST,
    closed_by: "local",
    reason: "fin",
    duration_ms: 1,
    ...COUNTERS,
    ...over,
  };
}

export function updateEvent(over: Partial<FlowUpdateEvent> = {}): FlowUpdateEvent {
  return {
    time: FLOW.time,
    event: "net_flow_tcp_update",
    ...REST,
    duration_ms: 1,
    ...COUNTERS,
    ...over,
  };
}

/** A failed attempt (refused unless told). */
export function failEvent(over: Partial<FlowFailEvent> = {}): FlowFailEvent {
  return {
    time: FLOW.time,
    event: "net_flow_tcp_fail",
    ...REST,
    reason: "refused",
    duration_ms: 0,
    ...over,
  };
}

/** A flow event of the kind its `event` names (a begin unless told), for tables of cases. */
export function flowEvent(over: Record<string, unknown> = {}): FlowEvent {
  switch (over.event ?? "net_flow_tcp_begin") {
    case "net_flow_tcp_begin":
      return beginEvent(over as Partial<FlowBeginEvent>);
    case "net_flow_tcp_end":
      return endEvent(over as Partial<FlowEndEvent>);
    case "net_flow_tcp_update":
      return updateEvent(over as Partial<FlowUpdateEvent>);
    case "net_flow_tcp_fail":
      return failEvent(over as Partial<FlowFailEvent>);
    default:
      throw new Error(`not a flow event: ${String(over.event)}`);
  }
}

/** A control packet (an outgoing SYN unless told). */
export function packetEvent(over: Partial<PacketEvent> = {}): PacketEvent {
  return {
    time: FLOW.time,
    event: "net_packet_tcp",
    direction: "egress",
    src: FLOW.src,
    dst: FLOW.dst,
    src_port: FLOW.src_port,
    dst_port: FLOW.dst_port,
    flags: "SYN",
    cgroup_id: FLOW.cgroup_id,
    pid: null,
    comm: null,
    ...over,
  };
}
