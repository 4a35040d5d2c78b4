import assert from "node:assert/strict";
import type { FlowEndEvent, FlowEvent } from "../../src/flow/events.ts";
import { FlowTable } from "../../src/flow/state.ts";
import { ACK, FIN, packet, RST, type Side, SYN } from "../helpers/packets.ts";

const client: Side = { addr: "10.0.0.1", port: 40000 };
const server: Side = { addr: "10.0.0.2", port: 80 };

function run(table: FlowTable, packets: Parameters<FlowTable["onPacket"]>[0][]): FlowEvent[] {
  return packets.map((p) => table.onPacket(p)).filter((e) => e !== undefined);
}

/** The handshake and the client's FIN, seen from `local`'s hooks. */
function connection(local: Side, opts: { closer?: Side; reason?: number } = {}) {
  const closer = opts.closer ?? client;
  const other = closer === client ? server : client;
  return [
    packet(client, server, SYN, { local, ms: 0, seq: 1000 }),
    packet(server, client, SYN | ACK, { local, ms: 1, seq: 5000, ack: 1001 }),
    packet(closer, other, opts.reason ?? FIN | ACK, { local, ms: 10 }),
  ];
}

Deno.test("FlowTable reports an outgoing flow with the client as src at begin and end", () => {
  const events = run(new FlowTable({ idPrefix: "t" }), connection(client));
  assert.equal(events.length, 2);
  const [begin, end] = events as [FlowEvent, FlowEndEvent];
  assert.equal(begin.event, "net_flow_tcp_begin");
  assert.equal(begin.conn_direction, "outgoing");
  assert.deepEqual([begin.src, begin.src_port, begin.dst, begin.dst_port], [
    "10.0.0.1",
    40000,
    "10.0.0.2",
    80,
  ]);
  assert.equal(end.event, "net_flow_tcp_end");
  assert.equal(end.flow_id, begin.flow_id);
  assert.deepEqual([end.src, end.dst, end.closed_by, end.reason], [
    "10.0.0.1",
    "10.0.0.2",
    "local",
    "fin",
  ]);
  assert.equal(end.duration_ms, 9);
});

Deno.test("FlowTable reports an incoming flow on the server's hooks", () => {
  const [begin, end] = run(new FlowTable(), connection(server)) as [FlowEvent, FlowEndEvent];
  assert.equal(begin.conn_direction, "incoming");
  assert.deepEqual([begin.src, begin.dst], ["10.0.0.1", "10.0.0.2"]);
  assert.deepEqual([end.src, end.dst, end.closed_by], ["10.0.0.1", "10.0.0.2", "remote"]);
});

Deno.test("FlowTable closes a flow on RST from the remote side", () => {
  const [, end] = run(new FlowTable(), connection(client, { closer: server, reason: RST })) as [
    FlowEvent,
    FlowEndEvent,
  ];
  assert.deepEqual([end.src, end.dst, end.closed_by, end.reason], [
    "10.0.0.2",
    "10.0.0.1",
    "remote",
    "rst",
  ]);
});

Deno.test("FlowTable gives a loopback connection an outgoing and an incoming pair", () => {
  const table = new FlowTable();
  // Every packet passes the sender's egress and the receiver's ingress.
  const both = (from: Side, to: Side, flags: number, ms: number) => [
    packet(from, to, flags, { local: from, ms }),
    packet(from, to, flags, { local: to, ms }),
  ];
  const events = run(table, [
    ...both(client, server, SYN, 0),
    ...both(server, client, SYN | ACK, 1),
    ...both(client, server, FIN | ACK, 5),
    ...both(server, client, FIN | ACK, 6),
  ]);
  assert.deepEqual(
    events.map((e) => `${e.event} ${e.conn_direction} ${e.src_port}>${e.dst_port}`),
    [
      "net_flow_tcp_begin incoming 40000>80",
      "net_flow_tcp_begin outgoing 40000>80",
      "net_flow_tcp_end outgoing 40000>80",
      "net_flow_tcp_end incoming 40000>80",
    ],
  );
});

Deno.test("FlowTable ignores retransmitted SYNs and SYN+ACKs", () => {
  const events = run(new FlowTable(), [
    packet(client, server, SYN, { local: client, ms: 0 }),
    packet(client, server, SYN, { local: client, ms: 1000 }),
    packet(server, client, SYN | ACK, { local: client, ms: 1001 }),
    packet(server, client, SYN | ACK, { local: client, ms: 1002 }),
    packet(client, server, FIN | ACK, { local: client, ms: 2000 }),
  ]);
  assert.deepEqual(events.map((e) => e.event), ["net_flow_tcp_begin", "net_flow_tcp_end"]);
  assert.equal((events[1] as FlowEndEvent).duration_ms, 999);
});

Deno.test("FlowTable ends a flow once: duplicate FINs, FINs both ways and RST after FIN", () => {
  const events = run(new FlowTable(), [
    ...connection(client),
    packet(client, server, FIN | ACK, { local: client, ms: 11 }),
    packet(server, client, FIN | ACK, { local: client, ms: 12 }),
    packet(server, client, RST, { local: client, ms: 13 }),
    packet(client, server, RST, { local: client, ms: 14 }),
  ]);
  assert.deepEqual(events.map((e) => e.event), ["net_flow_tcp_begin", "net_flow_tcp_end"]);
});

Deno.test("FlowTable reports nothing for a refused connection or an unanswered SYN", () => {
  const table = new FlowTable({ pendingTtlMs: 1000 });
  const silent: Side = { addr: "10.0.0.3", port: 81 };
  const events = run(table, [
    packet(client, server, SYN, { local: client, ms: 0 }),
    packet(server, client, RST | ACK, { local: client, ms: 1, sockState: 2 }),
    packet(client, silent, SYN, { local: client, ms: 2 }),
    packet(client, silent, SYN, { local: client, ms: 500 }),
    // Much later, an unrelated packet sweeps the abandoned handshake.
    packet({ addr: "10.0.0.9", port: 1 }, { addr: "10.0.0.8", port: 2 }, FIN, {
      local: client,
      ms: 5000,
      sockState: 10,
    }),
  ]);
  assert.deepEqual(events, []);
  assert.equal(table.stats.abandoned, 1);
  assert.equal(table.stats.open, 0);
});

Deno.test("FlowTable ignores a RST for an unknown socket that never got established", () => {
  const events = run(new FlowTable(), [
    packet(server, client, RST | ACK, { local: client, sockState: 2 }),
  ]);
  assert.deepEqual(events, []);
});

Deno.test("FlowTable reports an end whose begin it did not see, inferring the direction", () => {
  const table = new FlowTable();
  const [outgoing] = run(table, [packet(client, server, FIN | ACK, { local: client, ms: 5 })]);
  assert.equal(outgoing?.event, "net_flow_tcp_end");
  assert.equal(outgoing?.conn_direction, "outgoing");
  assert.equal((outgoing as FlowEndEvent).duration_ms, null);
  const [incoming] = run(table, [
    packet(client, server, FIN | ACK, { local: server, ms: 6, localPortListens: true }),
  ]);
  assert.equal(incoming?.conn_direction, "incoming");
  assert.deepEqual([incoming?.src, incoming?.dst, (incoming as FlowEndEvent).closed_by], [
    "10.0.0.1",
    "10.0.0.2",
    "remote",
  ]);
});

Deno.test("FlowTable handles a half close: the first FIN ends the flow", () => {
  const events = run(new FlowTable(), [
    packet(client, server, SYN, { local: server }),
    packet(server, client, SYN | ACK, { local: server, ms: 1 }),
    packet(client, server, FIN | ACK, { local: server, ms: 2 }), // client shuts down writing
    packet(server, client, FIN | ACK, { local: server, ms: 30 }), // server replies, then closes
  ]);
  assert.deepEqual(events.map((e) => e.event), ["net_flow_tcp_begin", "net_flow_tcp_end"]);
  assert.equal((events[1] as FlowEndEvent).closed_by, "remote");
});

Deno.test("FlowTable starts a new flow when an endpoint is reused after an end", () => {
  const table = new FlowTable();
  const first = run(table, connection(client));
  const second = run(table, connection(client));
  assert.equal(first.length, 2);
  assert.equal(second.length, 2);
  assert.notEqual(first[0]!.flow_id, second[0]!.flow_id);
});

Deno.test("FlowTable handles IPv6 endpoints", () => {
  const c6: Side = { addr: "2001:db8::1", port: 40000 };
  const s6: Side = { addr: "2001:db8::2", port: 443 };
  const events = run(new FlowTable(), [
    packet(c6, s6, SYN, { local: c6 }),
    packet(s6, c6, SYN | ACK, { local: c6, ms: 1 }),
    packet(s6, c6, FIN | ACK, { local: c6, ms: 2 }),
  ]);
  assert.deepEqual(events.map((e) => [e.src, e.dst]), [["2001:db8::1", "2001:db8::2"], [
    "2001:db8::2",
    "2001:db8::1",
  ]]);
});

Deno.test("FlowTable evicts the oldest open flow when full, and counts it", () => {
  const table = new FlowTable({ maxFlows: 2 });
  for (let i = 0; i < 3; i++) {
    const c = { addr: "10.0.0.1", port: 50000 + i };
    run(table, [
      packet(c, server, SYN, { local: c, ms: i }),
      packet(server, c, SYN | ACK, { local: c, ms: i }),
    ]);
  }
  assert.deepEqual(table.stats, { open: 2, evicted: 1, abandoned: 0 });
  // The evicted flow's end is still reported, without a duration.
  const c0 = { addr: "10.0.0.1", port: 50000 };
  const [end] = run(table, [packet(c0, server, FIN | ACK, { local: c0, ms: 9 })]);
  assert.equal((end as FlowEndEvent).duration_ms, null);
});

Deno.test("FlowTable takes counters from the socket, with bytes in flight and the SYN removed", () => {
  const table = new FlowTable();
  run(table, connection(client).slice(0, 2));
  // Outgoing, local FIN: 1001 acked (1000 + the SYN), 200 more sent with the FIN.
  const [end] = run(table, [
    packet(client, server, FIN | ACK | 0x08, {
      local: client,
      seq: 3001,
      payload: 200,
      counters: {
        bytesAcked: 1001,
        bytesReceived: 77,
        sndUna: 2001,
        segsIn: 4,
        segsOut: 6,
        srttUs: 120,
        totalRetrans: 1,
      },
    }),
  ]) as [FlowEndEvent];
  assert.deepEqual(
    [
      end.bytes_sent,
      end.bytes_received,
      end.packets_sent,
      end.packets_received,
      end.rtt_us,
      end.retransmits,
    ],
    [1000 + 1000 + 200, 77, 6, 4, 120, 1],
  );
});

Deno.test("FlowTable counts the payload of a remote FIN that the socket has not yet counted", () => {
  const table = new FlowTable();
  run(table, connection(server).slice(0, 2));
  const [end] = run(table, [
    packet(client, server, FIN | ACK, {
      local: server,
      payload: 10,
      counters: { bytesAcked: 50, bytesReceived: 100, sndUna: 7000, sndNxt: 7020, segsIn: 3 },
    }),
  ]) as [FlowEndEvent];
  assert.deepEqual([end.bytes_sent, end.bytes_received, end.packets_received], [70, 110, 4]);
});

Deno.test("FlowTable falls back to sequence numbers when the socket gave no counters", () => {
  const table = new FlowTable();
  run(table, connection(client).slice(0, 2)); // client ISN 1000, server ISN 5000
  const [end] = run(table, [
    packet(client, server, FIN | ACK, { local: client, seq: 1001 + 300, ack: 5001 + 40 }),
  ]) as [
    FlowEndEvent,
  ];
  assert.deepEqual([end.bytes_sent, end.bytes_received, end.packets_sent], [300, 40, null]);
});

Deno.test("FlowTable keeps the names a flow had at begin for its end", () => {
  const names = new Map([["10.0.0.2", ["www.example.test"]]]);
  const table = new FlowTable({ context: { names: (a) => names.get(a) ?? [] } });
  const [begin] = run(table, connection(client).slice(0, 2));
  names.clear(); // the DNS answer expired while the flow was open
  const [end] = run(table, [packet(server, client, FIN | ACK, { local: client, ms: 99 })]);
  assert.deepEqual([begin?.src_dns, begin?.dst_dns], [[], ["www.example.test"]]);
  // The server closed: it is src now, and keeps its names.
  assert.deepEqual([end?.src_dns, end?.dst_dns], [["www.example.test"], []]);
});

Deno.test("FlowTable carries the owner and cgroup from the context", () => {
  const owner = { pid: 7, uid: 1000, comm: "curl" };
  const table = new FlowTable({
    context: {
      cgroup: () => ({
        path: "/a/docker-" + "f".repeat(64) + ".scope",
        containerId: "f".repeat(64),
      }),
    },
  });
  const events = run(table, [
    packet(client, server, SYN, { local: client, owner }),
    packet(server, client, SYN | ACK, { local: client, ms: 1 }),
    packet(client, server, FIN | ACK, { local: client, ms: 2 }),
  ]);
  for (const e of events) {
    assert.deepEqual([e.pid, e.uid, e.comm, e.cgroup_id, e.container_id], [
      7,
      1000,
      "curl",
      42,
      "f".repeat(64),
    ]);
  }
});
