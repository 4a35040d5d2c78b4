/**
 * `--format tracee`: each event as the object Tracee's `--output json` prints
 * (the trace.Event of aquasecurity/tracee, types/trace/trace.go), so a
 * pipeline built on Tracee's net_flow_tcp_begin / net_flow_tcp_end takes
 * netflow's unchanged. The args Tracee defines come first, with its names and
 * types (pkg/events/core.go); netflow's own fields follow as extra args.
 *
 * netflow knows the process that holds a socket, not a thread: `threadId` and
 * `hostThreadId` are the pid (the main thread), and what Tracee reads from
 * the task (namespaces, parent, start time, entity ids) is 0.
 *
 * @module
 */
import { hostname } from "node:os";
import { CommunityIds } from "./community_id.ts";
import { type NetflowEvent, timeUs } from "../events.ts";

/** Tracee's event ids (pkg/events/core.go: NetPacketIPv4 = 2000, ...). */
const TRACEE_EVENT_IDS: Record<string, string> = {
  net_packet_tcp: "2002",
  net_flow_tcp_begin: "2013",
  net_flow_tcp_end: "2014",
};

interface Arg {
  name: string;
  type: string;
  value: unknown;
}

const str = (name: string, value: string | null): Arg => ({ name, type: "const char*", value });
const u16 = (name: string, value: number): Arg => ({ name, type: "u16", value });
const u32 = (name: string, value: number | null): Arg => ({ name, type: "u32", value });
const u64 = (name: string, value: number | null): Arg => ({ name, type: "u64", value });
const names = (name: string, value: readonly string[]): Arg => ({
  name,
  type: "const char **",
  value,
});

/** The endpoints, as every event has them. */
const endpoints = (e: NetflowEvent): Arg[] => [
  str("src", e.src),
  str("dst", e.dst),
  u16("src_port", e.src_port),
  u16("dst_port", e.dst_port),
];

/** The event's args: Tracee's own first, in its order, then netflow's. */
export function traceeArgs(e: NetflowEvent, communityId: string): Arg[] {
  if (e.event === "net_packet_tcp") {
    const flags = [str("direction", e.direction), str("flags", e.flags)];
    return [...endpoints(e), ...flags, str("community_id", communityId)];
  }
  const args = [
    str("conn_direction", e.conn_direction),
    ...endpoints(e),
    names("src_dns", e.src_dns),
    names("dst_dns", e.dst_dns),
    str("flow_id", e.flow_id),
    str("community_id", communityId),
    str("cgroup", e.cgroup),
  ];
  if ("netns" in e) args.push(u32("netns", e.netns));
  if ("preexisting" in e) args.push({ name: "preexisting", type: "bool", value: e.preexisting });
  if ("closed_by" in e) args.push(str("closed_by", e.closed_by));
  if ("reason" in e) args.push(str("reason", e.reason));
  if ("duration_ms" in e) args.push({ name: "duration_ms", type: "double", value: e.duration_ms });
  if ("bytes_sent" in e) {
    args.push(
      u64("bytes_sent", e.bytes_sent),
      u64("bytes_received", e.bytes_received),
      u64("packets_sent", e.packets_sent),
      u64("packets_received", e.packets_received),
      u64("rtt_us", e.rtt_us),
      u32("retransmits", e.retransmits),
    );
  }
  return args;
}

/** The Tracee event object, minus `timestamp` (nanoseconds do not fit a JS number). */
export function traceeEvent(e: NetflowEvent, communityId: string, host = hostname()) {
  const pid = e.pid ?? 0;
  const containerId = "container_id" in e ? e.container_id ?? "" : "";
  const args = traceeArgs(e, communityId);
  return {
    threadStartTime: 0,
    processorId: 0,
    processId: pid,
    cgroupId: e.cgroup_id,
    threadId: pid,
    parentProcessId: 0,
    hostProcessId: pid,
    hostThreadId: pid,
    hostParentProcessId: 0,
    userId: "uid" in e ? e.uid ?? 0 : 0,
    mountNamespace: 0,
    pidNamespace: 0,
    processName: e.comm ?? "",
    executable: { path: "" },
    hostName: host,
    containerId,
    container: containerId === "" ? {} : { id: containerId },
    kubernetes: {},
    eventId: TRACEE_EVENT_IDS[e.event] ?? "0",
    eventName: e.event,
    argsNum: args.length,
    returnValue: 0,
    syscall: "",
    stackAddresses: [],
    contextFlags: { containerStarted: false, isCompat: false },
    threadEntityId: 0,
    processEntityId: 0,
    parentEntityId: 0,
    args,
  };
}

/** Tracee JSON Lines; `timestamp` (ns) is written as digits, exact. */
export function traceeFormatter(ids = new CommunityIds(), host = hostname()) {
  return (e: NetflowEvent): string => {
    const rest = JSON.stringify(traceeEvent(e, ids.of(e), host));
    return `{"timestamp":${timeUs(e.time)}000,${rest.slice(1)}`;
  };
}
