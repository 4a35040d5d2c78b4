import assert from "node:assert/strict";
import type { FlowEndEvent } from "../../src/events.ts";
import { beginEvent, endEvent, packetEvent } from "../helpers/events.ts";
import { CommunityIds } from "../../src/output/community_id.ts";
import { ecsDocument, ecsFormatter } from "../../src/output/ecs.ts";
import { traceeEvent, traceeFormatter } from "../../src/output/tracee.ts";
import { initiatorIsSrc, localIsSrc, sideCounters, timeUs } from "../../src/events.ts";

const ID = "1:LQU9qZlK+B5F3KDmev6m5PMibrg=";

const begin = beginEvent({
  time: "2026-11-23T12:34:56.123456Z",
  flow_id: "a-1",
  src: "128.232.110.120",
  dst: "66.35.250.204",
  src_port: 34855,
  dst_port: 80,
  dst_dns: ["www.example.test", "example.test"],
  pid: 4242,
  uid: 1000,
  cgroup_id: 77,
  cgroup: "/user.slice",
});

// The server closed it: the end's src is the remote side.
const end = endEvent({
  ...begin,
  time: "2026-11-23T12:34:58.623456Z",
  event: "net_flow_tcp_end",
  src: begin.dst,
  dst: begin.src,
  src_port: 80,
  dst_port: 34855,
  src_dns: begin.dst_dns,
  dst_dns: [],
  closed_by: "remote",
  duration_ms: 2500.25,
  bytes_sent: 120,
  bytes_received: 90000,
  packets_sent: 20,
  packets_received: 70,
  rtt_us: 900,
  retransmits: 1,
});

const packet = packetEvent({
  time: "2026-11-23T12:34:56.123000Z",
  direction: "ingress",
  src: "66.35.250.204",
  dst: "128.232.110.120",
  src_port: 80,
  dst_port: 34855,
  flags: "SYN|ACK",
  cgroup_id: 77,
});

Deno.test("timeUs reads back what formatTime wrote", () => {
  assert.equal(timeUs("2023-11-14T22:13:20.123456Z"), 1_700_000_000_123_456);
  assert.equal(timeUs("2023-11-14T22:13:21.000009Z"), 1_700_000_001_000_009);
  assert.equal(timeUs("2023-11-14T22:13:21Z"), 1_700_000_001_000_000);
});

Deno.test("view: which side is local and which initiated, for every event kind", () => {
  assert.deepEqual([localIsSrc(begin), initiatorIsSrc(begin)], [true, true]);
  assert.deepEqual([localIsSrc(end), initiatorIsSrc(end)], [false, false]);
  const incomingEnd = { ...end, conn_direction: "incoming" as const };
  assert.deepEqual([localIsSrc(incomingEnd), initiatorIsSrc(incomingEnd)], [false, true]);
  assert.deepEqual([localIsSrc(packet), initiatorIsSrc(packet)], [false, undefined]);
  assert.deepEqual(sideCounters(end), {
    srcBytes: 90000,
    srcPackets: 70,
    dstBytes: 120,
    dstPackets: 20,
  });
  assert.equal(sideCounters(begin), undefined);
});

Deno.test("ECS: a begin, field by field", () => {
  assert.deepEqual(ecsDocument(begin, ID, "host1"), {
    "@timestamp": "2026-11-23T12:34:56.123456Z",
    ecs: { version: "8.11.0" },
    event: {
      kind: "event",
      category: ["network"],
      type: ["connection", "start"],
      action: "net_flow_tcp_begin",
      dataset: "netflow.flow",
      start: "2026-11-23T12:34:56.123456Z",
    },
    source: { ip: "128.232.110.120", port: 34855 },
    destination: { ip: "66.35.250.204", port: 80, domain: "www.example.test" },
    network: {
      transport: "tcp",
      type: "ipv4",
      iana_number: "6",
      direction: "egress",
      community_id: ID,
    },
    process: { pid: 4242, name: "curl" },
    user: { id: "1000" },
    host: { hostname: "host1", name: "host1" },
    related: {
      ip: ["128.232.110.120", "66.35.250.204"],
      hosts: ["www.example.test", "example.test"],
      user: ["1000"],
    },
    netflow: {
      flow_id: "a-1",
      conn_direction: "outgoing",
      cgroup: "/user.slice",
      cgroup_id: 77,
      src_dns: [],
      dst_dns: ["www.example.test", "example.test"],
      netns: 4026531840,
      preexisting: false,
      local: "source",
    },
  });
});

Deno.test("ECS: an end carries duration in ns, start, end and what each side sent", () => {
  const doc = ecsDocument({ ...end, container_id: "c".repeat(64) }, ID, "host1");
  assert.deepEqual(doc.event, {
    kind: "event",
    category: ["network"],
    type: ["connection", "end"],
    action: "net_flow_tcp_end",
    dataset: "netflow.flow",
    duration: 2_500_250_000,
    start: "2026-11-23T12:34:56.123206Z",
    end: "2026-11-23T12:34:58.623456Z",
    reason: "fin",
  });
  // The event's src is the server (it closed), but ECS's source is the initiator: the client.
  assert.deepEqual(doc.source, {
    ip: "128.232.110.120",
    port: 34855,
    bytes: 120,
    packets: 20,
  });
  assert.deepEqual(doc.destination, {
    ip: "66.35.250.204",
    port: 80,
    domain: "www.example.test",
    bytes: 90000,
    packets: 70,
  });
  assert.deepEqual(doc.network, {
    transport: "tcp",
    type: "ipv4",
    iana_number: "6",
    direction: "egress",
    community_id: ID,
    bytes: 90120,
    packets: 90,
  });
  assert.deepEqual(doc.container, { id: "c".repeat(64) });
  const extra = doc.netflow as Record<string, unknown>;
  assert.deepEqual(
    [extra.closed_by, extra.rtt_us, extra.retransmits, extra.local],
    ["remote", 900, 1, "source"],
  );
});

Deno.test("ECS: source is the initiator and destination the responder on every document, whoever closed", () => {
  const client = { ip: "128.232.110.120", port: 34855 };
  const server = { ip: "66.35.250.204", port: 80 };
  for (const direction of ["outgoing", "incoming"] as const) {
    // The local side: the client when outgoing, the server when incoming.
    const [local, remote] = direction === "outgoing" ? [client, server] : [server, client];
    const b = {
      ...begin,
      conn_direction: direction,
      src: client.ip,
      src_port: client.port,
      dst: server.ip,
      dst_port: server.port,
    };
    for (const closedBy of ["local", "remote"] as const) {
      const [closer, other] = closedBy === "local" ? [local, remote] : [remote, local];
      const e: FlowEndEvent = {
        ...end,
        conn_direction: direction,
        closed_by: closedBy,
        src: closer.ip,
        src_port: closer.port,
        dst: other.ip,
        dst_port: other.port,
        bytes_sent: 7,
        bytes_received: 9,
      };
      for (const doc of [ecsDocument(b, ID, "h"), ecsDocument(e, ID, "h")]) {
        const what = `${direction}, closed by ${closedBy}, ${
          (doc.event as Record<string, unknown>).action
        }`;
        const s = doc.source as Record<string, unknown>, d = doc.destination as typeof s;
        assert.deepEqual([s.ip, s.port, d.ip, d.port], [
          client.ip,
          client.port,
          server.ip,
          server.port,
        ], what);
        assert.equal(
          (doc.network as Record<string, unknown>).direction,
          direction === "outgoing" ? "egress" : "ingress",
          what,
        );
        const n = doc.netflow as Record<string, unknown>;
        assert.equal(n.local, direction === "outgoing" ? "source" : "destination", what);
        assert.deepEqual((doc.related as Record<string, unknown>).ip, [client.ip, server.ip], what);
      }
      const doc = ecsDocument(e, ID, "h");
      // The local side sent 7 bytes and received 9, whichever side it is.
      const [localDoc, remoteDoc] = direction === "outgoing"
        ? [doc.source, doc.destination]
        : [doc.destination, doc.source];
      assert.equal((localDoc as Record<string, unknown>).bytes, 7);
      assert.equal((remoteDoc as Record<string, unknown>).bytes, 9);
      assert.equal((doc.netflow as Record<string, unknown>).closed_by, closedBy);
    }
  }
});

Deno.test("ECS: unknown values are left out, IPv6 is ipv6, packets map too", () => {
  const v6 = { ...begin, src: "::1", dst: "::1", pid: null, comm: null, uid: null };
  const doc = ecsDocument(v6, ID, "h");
  assert.equal((doc.network as Record<string, unknown>).type, "ipv6");
  assert.equal(doc.process, undefined);
  assert.equal(doc.user, undefined);
  assert.deepEqual(doc.related, { ip: ["::1"], hosts: ["www.example.test", "example.test"] });
  const p = ecsDocument(packet, ID, "h");
  assert.deepEqual(p.event, {
    kind: "event",
    category: ["network"],
    type: ["connection", "info"],
    action: "net_packet_tcp",
    dataset: "netflow.flow",
  });
  assert.equal((p.network as Record<string, unknown>).direction, "ingress");
  assert.deepEqual(p.netflow, { tcp_flags: "SYN|ACK", local: "destination" });
  const line = ecsFormatter(new CommunityIds(), "h")(end);
  assert.equal(JSON.parse(line).network.community_id, ID);
});

Deno.test("Tracee: a begin is Tracee's net_flow_tcp_begin, field by field", () => {
  const line = traceeFormatter(new CommunityIds(), "host1")(begin);
  assert.ok(line.startsWith('{"timestamp":1795437296123456000,"threadStartTime":0,'));
  const parsed = JSON.parse(line);
  assert.deepEqual(Object.keys(parsed), [
    "timestamp",
    ...Object.keys(traceeEvent(begin, ID, "host1")),
  ]);
  assert.deepEqual(parsed, {
    timestamp: 1795437296123456000,
    threadStartTime: 0,
    processorId: 0,
    processId: 4242,
    cgroupId: 77,
    threadId: 4242,
    parentProcessId: 0,
    hostProcessId: 4242,
    hostThreadId: 4242,
    hostParentProcessId: 0,
    userId: 1000,
    mountNamespace: 0,
    pidNamespace: 0,
    processName: "curl",
    executable: { path: "" },
    hostName: "host1",
    containerId: "",
    container: {},
    kubernetes: {},
    eventId: "2013",
    eventName: "net_flow_tcp_begin",
    argsNum: 12,
    returnValue: 0,
    syscall: "",
    stackAddresses: [],
    contextFlags: { containerStarted: false, isCompat: false },
    threadEntityId: 0,
    processEntityId: 0,
    parentEntityId: 0,
    args: [
      { name: "conn_direction", type: "const char*", value: "outgoing" },
      { name: "src", type: "const char*", value: "128.232.110.120" },
      { name: "dst", type: "const char*", value: "66.35.250.204" },
      { name: "src_port", type: "u16", value: 34855 },
      { name: "dst_port", type: "u16", value: 80 },
      { name: "src_dns", type: "const char **", value: [] },
      { name: "dst_dns", type: "const char **", value: ["www.example.test", "example.test"] },
      { name: "flow_id", type: "const char*", value: "a-1" },
      { name: "community_id", type: "const char*", value: ID },
      { name: "cgroup", type: "const char*", value: "/user.slice" },
      { name: "netns", type: "u32", value: 4026531840 },
      { name: "preexisting", type: "bool", value: false },
    ],
  });
});

Deno.test("Tracee: an end has Tracee's seven args first, then netflow's", () => {
  const e = traceeEvent({ ...end, container_id: "d".repeat(64), pid: null }, ID, "h");
  assert.deepEqual(
    [e.eventId, e.processId, e.threadId, e.containerId, e.container, e.argsNum],
    ["2014", 0, 0, "d".repeat(64), { id: "d".repeat(64) }, 21],
  );
  assert.deepEqual(e.args.map((a) => a.name), [
    "conn_direction",
    "src",
    "dst",
    "src_port",
    "dst_port",
    "src_dns",
    "dst_dns",
    "flow_id",
    "community_id",
    "cgroup",
    "netns",
    "preexisting",
    "closed_by",
    "reason",
    "duration_ms",
    "bytes_sent",
    "bytes_received",
    "packets_sent",
    "packets_received",
    "rtt_us",
    "retransmits",
  ]);
  assert.deepEqual(e.args.slice(12), [
    { name: "closed_by", type: "const char*", value: "remote" },
    { name: "reason", type: "const char*", value: "fin" },
    { name: "duration_ms", type: "double", value: 2500.25 },
    { name: "bytes_sent", type: "u64", value: 120 },
    { name: "bytes_received", type: "u64", value: 90000 },
    { name: "packets_sent", type: "u64", value: 20 },
    { name: "packets_received", type: "u64", value: 70 },
    { name: "rtt_us", type: "u64", value: 900 },
    { name: "retransmits", type: "u32", value: 1 },
  ]);
  const p = traceeEvent(packet, ID, "h");
  assert.deepEqual([p.eventId, p.eventName, p.argsNum], ["2002", "net_packet_tcp", 7]);
});
