/**
 * `--format ecs`: each event as an Elastic Common Schema document, one JSON
 * object per line (https://www.elastic.co/guide/en/ecs/current/). The host's
 * point of view: `network.direction` is `egress` for a connection this host
 * opened, `ingress` for one it accepted; `source` is always the initiator
 * (the side that sent the SYN) and `destination` the responder, on ends too
 * (ECS has no notion of who closed: that stays in `netflow.closed_by`, and
 * `netflow.local` says which side is this host's), and their
 * `bytes`/`packets` are what each of them sent. Fields with no value are left out, as ECS
 * expects; what ECS has no field for goes under `netflow.*`.
 *
 * @module
 */
import { hostname } from "node:os";
import { CommunityIds } from "./community_id.ts";
import {
  formatTime,
  initiatorIsSrc,
  ipFamily,
  localIsSrc,
  type NetflowEvent,
  sideCounters,
  timeUs,
} from "../events.ts";

export const ECS_VERSION = "8.11.0";

type Doc = Record<string, unknown>;

/** ECS `event.type` per event name; a kind not listed is a plain `info`. */
const EVENT_TYPES: Record<string, string[]> = {
  net_flow_tcp_begin: ["connection", "start"],
  net_flow_tcp_update: ["connection", "info"],
  net_flow_tcp_end: ["connection", "end"],
  net_flow_tcp_fail: ["connection", "denied"],
  net_packet_tcp: ["connection", "info"],
};

/** Drops undefined and null members, and objects left empty. */
function compact(doc: Doc): Doc {
  const out: Doc = {};
  for (const [key, value] of Object.entries(doc)) {
    if (value === undefined || value === null) continue;
    if (typeof value === "object" && !Array.isArray(value)) {
      const inner = compact(value as Doc);
      if (Object.keys(inner).length > 0) out[key] = inner;
    } else {
      out[key] = value;
    }
  }
  return out;
}

function endpoint(ip: string, port: number, names: readonly string[] | undefined) {
  return { ip, port, domain: names?.[0] };
}

/** The ECS document of one event. */
export function ecsDocument(e: NetflowEvent, communityId: string, host = hostname()): Doc {
  // source is the initiator on every flow document (an end is oriented by who closed it).
  const forward = initiatorIsSrc(e) ?? true;
  const srcNames = "src_dns" in e ? e.src_dns : undefined;
  const dstNames = "src_dns" in e ? e.dst_dns : undefined;
  const source: Doc = forward
    ? endpoint(e.src, e.src_port, srcNames)
    : endpoint(e.dst, e.dst_port, dstNames);
  const destination: Doc = forward
    ? endpoint(e.dst, e.dst_port, dstNames)
    : endpoint(e.src, e.src_port, srcNames);
  const network: Doc = {
    transport: "tcp",
    type: ipFamily(e),
    iana_number: "6",
    direction: e.event === "net_packet_tcp"
      ? e.direction
      : e.conn_direction === "outgoing"
      ? "egress"
      : "ingress",
    community_id: communityId,
  };
  const counters = sideCounters(e);
  if (counters) {
    const [srcSide, dstSide] = forward ? [source, destination] : [destination, source];
    Object.assign(srcSide, { bytes: counters.srcBytes, packets: counters.srcPackets });
    Object.assign(dstSide, { bytes: counters.dstBytes, packets: counters.dstPackets });
    if (counters.srcBytes !== null && counters.dstBytes !== null) {
      network.bytes = counters.srcBytes + counters.dstBytes;
    }
    if (counters.srcPackets !== null && counters.dstPackets !== null) {
      network.packets = counters.srcPackets + counters.dstPackets;
    }
  }
  const event: Doc = {
    kind: "event",
    category: ["network"],
    type: EVENT_TYPES[e.event] ?? ["info"],
    action: e.event,
    dataset: "netflow.flow",
  };
  const extra: Doc = {};
  if (e.event === "net_packet_tcp") {
    extra.tcp_flags = e.flags;
  } else {
    extra.flow_id = e.flow_id;
    extra.conn_direction = e.conn_direction;
    extra.cgroup = e.cgroup;
    extra.cgroup_id = e.cgroup_id;
    extra.src_dns = e.src_dns;
    extra.dst_dns = e.dst_dns;
    if ("netns" in e) extra.netns = e.netns;
    if ("preexisting" in e) extra.preexisting = e.preexisting;
  }
  if ("duration_ms" in e && e.duration_ms !== null) {
    const endUs = timeUs(e.time);
    event.duration = Math.round(e.duration_ms * 1e6);
    event.start = formatTime(endUs - Math.round(e.duration_ms * 1000));
    event.end = e.time;
  } else if (e.event === "net_flow_tcp_begin") {
    event.start = e.time;
  }
  if ("reason" in e) event.reason = e.reason;
  if ("closed_by" in e) extra.closed_by = e.closed_by;
  if ("rtt_us" in e) extra.rtt_us = e.rtt_us;
  if ("retransmits" in e) extra.retransmits = e.retransmits;
  const names = forward
    ? [...(srcNames ?? []), ...(dstNames ?? [])]
    : [...(dstNames ?? []), ...(srcNames ?? [])];
  const ips = forward ? [e.src, e.dst] : [e.dst, e.src];
  const containerId = "container_id" in e ? e.container_id : null;
  return compact({
    "@timestamp": e.time,
    ecs: { version: ECS_VERSION },
    event,
    source,
    destination,
    network,
    process: { pid: e.pid ?? undefined, name: e.comm ?? undefined },
    user: "uid" in e && e.uid !== null ? { id: String(e.uid) } : undefined,
    container: containerId === null ? undefined : { id: containerId },
    host: { hostname: host, name: host },
    related: {
      ip: e.src === e.dst ? [e.src] : ips,
      hosts: names.length > 0 ? [...new Set(names)] : undefined,
      user: "uid" in e && e.uid !== null ? [String(e.uid)] : undefined,
    },
    netflow: { ...extra, local: localIsSrc(e) === forward ? "source" : "destination" },
  });
}

/** ECS JSON Lines with each flow's Community ID, computed once per flow. */
export function ecsFormatter(ids = new CommunityIds(), host = hostname()) {
  return (e: NetflowEvent): string => JSON.stringify(ecsDocument(e, ids.of(e), host));
}
