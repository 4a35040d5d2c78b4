import assert from "node:assert/strict";
import fc from "npm:fast-check@3.23.2";
import type { EndHow, FlowRecord } from "../../src/bpf/records.ts";
import type { FlowCounters, FlowEndEvent, FlowEvent } from "../../src/events.ts";
import { ENDED_KEEP_NS, FlowTable } from "../../src/flow/state.ts";
import { setEndCounters } from "../../src/flow/counters.ts";
import { formatJson } from "../../src/output/json.ts";
import { DnsEnricher } from "../../src/enrich/dns.ts";
import { EnrichedTable } from "../helpers/enriched.ts";
import { atMs, connection, openList, record, type Side } from "../helpers/records.ts";

const client: Side = { addr: "10.0.0.1", port: 40000 };
const server: Side = { addr: "10.0.0.2", port: 80 };

function run(table: FlowTable, records: FlowRecord[]): FlowEvent[] {
  return records.map((r) => table.onRecord(r)).filter((e) => e !== undefined);
}

function describe(e: FlowEvent): string {
  const base = `${
    e.event.slice(9)
  } ${e.conn_direction} ${e.src}:${e.src_port}>${e.dst}:${e.dst_port}`;
  return e.event === "net_flow_tcp_end" ? `${base} ${e.closed_by} ${e.reason}` : base;
}

Deno.test("FlowTable reports an outgoing flow with the client as src at begin and end", () => {
  const events = run(
    new FlowTable({ idPrefix: "t" }),
    connection(client, server, { outgoing: true }),
  );
  assert.deepEqual(events.map(describe), [
    "tcp_begin outgoing 10.0.0.1:40000>10.0.0.2:80",
    "tcp_end outgoing 10.0.0.1:40000>10.0.0.2:80 local fin",
  ]);
  const [begin, end] = events as [FlowEvent, FlowEndEvent];
  assert.equal(end.flow_id, begin.flow_id);
  assert.equal(begin.flow_id, "t-1");
  assert.equal(end.duration_ms, 10);
  assert.deepEqual([begin.netns, begin.preexisting], [4026531840, false]);
});

Deno.test("an end is the same whether its begin is reported or not (--events end): the begin is still enriched", () => {
  // The names the cache holds change after the begin: the end keeps the begin's.
  let names = ["at-begin.test"];
  const dns = { names: () => names, forgetNamespaces: () => 0 };
  const table = (untimedBegins = false) =>
    new EnrichedTable({ idPrefix: "t", untimedBegins }, [new DnsEnricher(dns, {})]);
  const [begin, end] = connection(client, server, { outgoing: true });
  const quiet = table(true);
  // Made and enriched, then left out by --events (the monitor's filter): no time made for it.
  assert.equal(quiet.onRecord(begin!)?.time, "");
  assert.equal(quiet.stats.open, 1, "tracked all the same");
  names = ["later.test"];
  const withoutBegins = quiet.onRecord(end!);
  names = ["at-begin.test"];
  const full = table();
  assert.equal(full.onRecord(begin!)?.event, "net_flow_tcp_begin");
  names = ["later.test"];
  assert.deepEqual(withoutBegins, full.onRecord(end!));
  assert.deepEqual((withoutBegins as FlowEndEvent).dst_dns, ["at-begin.test"]);
  assert.equal((withoutBegins as FlowEndEvent).duration_ms, 10);
});

Deno.test("FlowTable orients ends by who terminated: remote FIN, RSTs both ways, timeout", () => {
  const cases: [EndHow, string][] = [
    ["remote-fin", "10.0.0.2:80>10.0.0.1:40000 remote fin"],
    ["local-rst", "10.0.0.1:40000>10.0.0.2:80 local rst"],
    ["remote-rst", "10.0.0.2:80>10.0.0.1:40000 remote rst"],
    ["timeout", "10.0.0.1:40000>10.0.0.2:80 local timeout"],
  ];
  for (const [end, want] of cases) {
    const [, e] = run(new FlowTable(), connection(client, server, { outgoing: true, end }));
    assert.equal(describe(e!), `tcp_end outgoing ${want}`, end);
  }
});

Deno.test("FlowTable gives an incoming flow the remote initiator as src of the begin", () => {
  const [begin, end] = run(new FlowTable(), connection(server, client, { end: "remote-fin" }));
  assert.equal(describe(begin!), "tcp_begin incoming 10.0.0.1:40000>10.0.0.2:80");
  assert.equal(describe(end!), "tcp_end incoming 10.0.0.1:40000>10.0.0.2:80 remote fin");
});

Deno.test("FlowTable keeps two sockets apart: same 4-tuple in two namespaces, and a reused one", () => {
  const table = new FlowTable();
  const events = run(table, [
    ...connection(client, server, { outgoing: true, cookie: 7, netns: 1 }),
    ...connection(client, server, { outgoing: true, cookie: 7, netns: 2 }),
    // The same 4-tuple again after close: a new socket, a new flow.
    ...connection(client, server, { outgoing: true, cookie: 8, netns: 1 }),
  ]);
  assert.equal(events.length, 6);
  assert.equal(new Set(events.map((e) => e.flow_id)).size, 3);
});

Deno.test("FlowTable ignores a repeated begin or end of the same socket", () => {
  const [begin, end] = connection(client, server, { outgoing: true });
  const events = run(new FlowTable(), [begin, begin, end, end, begin]);
  assert.deepEqual(events.map((e) => e.event), ["net_flow_tcp_begin", "net_flow_tcp_end"]);
});

Deno.test("FlowTable forgets an ended flow's key after ENDED_KEEP_NS, not only past maxFlows", () => {
  const table = new FlowTable();
  const end = (cookie: number, ms: number) =>
    table.onRecord(record("end", client, server, { cookie, outgoing: true, ms }));
  const keepMs = ENDED_KEEP_NS / 1e6;
  assert.ok(end(1, 0) !== undefined);
  assert.ok(end(2, keepMs / 2) !== undefined);
  // Within the keep time both repeats are recognised (the positive control).
  assert.equal(end(1, keepMs - 1), undefined);
  assert.equal(end(2, keepMs - 1), undefined);
  assert.equal(table.stats.duplicates, 2);
  // A later end pushes the first key out (too old to repeat), the second stays.
  assert.ok(end(3, keepMs + 1) !== undefined);
  assert.ok(end(1, keepMs + 2) !== undefined, "cookie 1's key was kept past ENDED_KEEP_NS");
  assert.equal(end(2, keepMs + 3), undefined);
});

Deno.test("FlowTable still ends a flow whose begin record was lost, with a null duration", () => {
  const [, end] = connection(client, server, { outgoing: true });
  const [e] = run(new FlowTable(), [end]) as [FlowEndEvent];
  assert.equal(describe(e), "tcp_end outgoing 10.0.0.1:40000>10.0.0.2:80 local fin");
  assert.equal(e.duration_ms, null);
});

Deno.test("FlowTable evicts the oldest open flow when full, and counts it", () => {
  const table = new FlowTable({ maxFlows: 2 });
  for (const cookie of [1, 2, 3]) {
    table.onRecord(record("begin", client, server, { cookie, outgoing: true }));
  }
  assert.deepEqual([table.stats.open, table.stats.evicted], [2, 1]);
  // The evicted flow's end is still reported, without a duration.
  const end = table.onRecord(record("end", client, server, { cookie: 1, outgoing: true }));
  assert.equal((end as FlowEndEvent).duration_ms, null);
});

Deno.test("FlowTable orients the start snapshot by the listeners of the same namespace", () => {
  const table = new FlowTable();
  const events = table.onSnapshot([
    record("begin", server, client, { cookie: 1, preexisting: true }),
    record("listen", { addr: "0.0.0.0", port: 80 }, { addr: "0.0.0.0", port: 0 }, { cookie: 2 }),
    record("begin", client, server, { cookie: 3, preexisting: true }),
    // Port 80 in another namespace has no listener: outgoing.
    record("begin", server, client, { cookie: 4, preexisting: true, netns: 9 }),
  ]);
  assert.deepEqual(events.map((e) => `${describe(e)} ${e.preexisting}`), [
    "tcp_begin incoming 10.0.0.1:40000>10.0.0.2:80 true",
    "tcp_begin outgoing 10.0.0.1:40000>10.0.0.2:80 true",
    "tcp_begin outgoing 10.0.0.2:80>10.0.0.1:40000 true",
  ]);
});

Deno.test("FlowTable gives the facts of its last call's events, and no older ones", () => {
  const table = new FlowTable();
  // A list: every event of the call has its facts.
  const [a, b] = table.onSnapshot([
    record("begin", client, server, { cookie: 7, outgoing: true, preexisting: true }),
    record("begin", server, client, { cookie: 8, outgoing: true, preexisting: true }),
  ]) as [FlowEvent, FlowEvent];
  assert.deepEqual([table.factsOf(a).cookie, table.factsOf(b).cookie], [7, 8]);
  assert.equal(table.factsOf(b).record?.cookie, 8);
  // The next call lets them go: asking for them then is a mistake, said at once.
  const c = table.onRecord(record("begin", client, server, { cookie: 9, outgoing: true }))!;
  assert.equal(table.factsOf(c).cookie, 9);
  assert.throws(() => table.factsOf(a), /not an event of this table's last call/);
  assert.throws(() => table.factsOf(b), /not an event of this table's last call/);
});

/** The counters an end event of `r` carries. */
function endCounters(r: FlowRecord): FlowCounters {
  const c: Partial<FlowCounters> = {};
  setEndCounters(c, r);
  return c as FlowCounters;
}

Deno.test("endCounters: at a FIN queued bytes count, the SYN and the peer's FIN do not", () => {
  const at = (end: EndHow, outgoing: boolean) =>
    endCounters(
      record("end", client, server, {
        end,
        outgoing,
        counters: {
          bytesAcked: 1001,
          bytesReceived: 51,
          sndUna: 0xfffffff0,
          writeSeq: 0x10,
          segsIn: 3,
          segsOut: 4,
        },
      }),
    );
  // 1001 acknowledged (with the SYN) and 0x20 still queued across the 2^32 wrap.
  assert.deepEqual(
    [at("local-fin", true).bytes_sent, at("local-fin", true).bytes_received],
    [1032, 51],
  );
  assert.deepEqual([at("remote-fin", false).bytes_sent, at("remote-fin", false).bytes_received], [
    1033,
    50,
  ]);
  // After a reset only what the peer acknowledged was sent.
  assert.equal(at("remote-rst", true).bytes_sent, 1000);
  assert.deepEqual([at("timeout", true).packets_sent, at("timeout", true).packets_received], [
    4,
    3,
  ]);
});

Deno.test("endCounters never gives a number JSON cannot carry exactly", () => {
  const c = endCounters(
    record("end", client, server, { counters: { bytesAcked: 2 ** 64, bytesReceived: -1 } }),
  );
  assert.deepEqual([c.bytes_sent, c.bytes_received], [null, null]);
});

// Properties over generated record streams: what the kernel writes per socket
// (a begin, then an end), duplicated, reordered across sockets, and lost. Each
// socket has its own cookie (the kernel's are unique) and local port 20000+i,
// so an event leads back to its socket; addresses and remote ports collide.
const LOCAL_BASE = 20000;
const socket = fc.record({
  netns: fc.constantFrom(1, 2),
  addr: fc.constantFrom("10.0.0.1", "fd00::1", "::ffff:10.0.0.3"),
  remote: fc.record({
    addr: fc.constantFrom("10.0.0.2", "fd00::2"),
    port: fc.integer({ min: 1, max: 10000 }),
  }),
  outgoing: fc.boolean(),
  end: fc.constantFrom<EndHow>("local-fin", "remote-fin", "local-rst", "remote-rst", "timeout"),
  counters: fc.record({
    bytesAcked: fc.oneof(fc.nat(), fc.constant(2 ** 60), fc.constant(2 ** 64)),
    bytesReceived: fc.nat(),
    sndUna: fc.nat({ max: 0xffffffff }),
    writeSeq: fc.nat({ max: 0xffffffff }),
  }),
  lose: fc.boolean(),
  dup: fc.boolean(),
  loseEnd: fc.boolean(),
});
type Generated = {
  sockets: { outgoing: boolean; end: EndHow; lose: boolean; dup: boolean; loseEnd: boolean }[];
  records: FlowRecord[];
};
const stream: fc.Arbitrary<Generated> = fc.array(socket, { maxLength: 60 }).chain((socks) => {
  const records: FlowRecord[] = [];
  socks.forEach((s, i) => {
    const local = { addr: s.addr, port: LOCAL_BASE + i };
    const [begin, end] = connection(local, s.remote, { ...s, cookie: i + 1, endMs: 10 + i });
    const counted = { ...end, counters: { ...end.counters, ...s.counters } };
    if (!s.lose) records.push(begin);
    if (s.dup) records.push(begin);
    if (!s.loseEnd) records.push(counted);
    if (s.dup && !s.loseEnd) records.push(counted);
  });
  // Records of different sockets interleave in any order; a socket's own stay in order.
  return fc.shuffledSubarray(records, { minLength: records.length, maxLength: records.length })
    .map((shuffled) => {
      const order = new Map<FlowRecord, number>(records.map((r, i) => [r, i]));
      const bySocket = new Map<number, FlowRecord[]>();
      for (const r of [...records].sort((a, b) => order.get(a)! - order.get(b)!)) {
        bySocket.set(r.cookie, [...(bySocket.get(r.cookie) ?? []), r]);
      }
      const next = new Map<number, number>();
      const out = shuffled.map((r) => {
        const k = next.get(r.cookie) ?? 0;
        next.set(r.cookie, k + 1);
        return bySocket.get(r.cookie)![k]!;
      });
      return { sockets: socks, records: out };
    });
});

/** What a table made of `records`: the real one, or a deliberately broken one below. */
type Tabulate = (records: FlowRecord[]) => FlowEvent[];
const real: Tabulate = (records) => run(new FlowTable(), records);

/** The events of socket `i` (local port 20000+i), in the order they came. */
function ofSocket(events: FlowEvent[], i: number): FlowEvent[] {
  return events.filter((e) => Math.max(e.src_port, e.dst_port) === LOCAL_BASE + i);
}

type Socket = Generated["sockets"][number];
/** Whether the kernel's begin (or its copy) and end records of a socket reached the table. */
const beginArrived = (s: Socket) => !s.lose || s.dup;
const endArrived = (s: Socket) => !s.loseEnd;

/**
 * "What counts as a flow" (ARCHITECTURE.md): exactly one begin for every socket
 * whose begin record arrived, exactly one end for every socket whose end record
 * arrived (a begin is never left without its end), the end after the begin and
 * with its flow_id, and one flow_id per socket.
 */
function exactlyOneEachPerSocket({ sockets, records }: Generated, tabulate: Tabulate): void {
  const events = tabulate(records);
  const ids = new Set<string>();
  sockets.forEach((s, i) => {
    const mine = ofSocket(events, i);
    const begins = mine.filter((e) => e.event === "net_flow_tcp_begin");
    const ends = mine.filter((e) => e.event === "net_flow_tcp_end");
    assert.equal(begins.length, beginArrived(s) ? 1 : 0, `begins of socket ${i}`);
    assert.equal(ends.length, endArrived(s) ? 1 : 0, `ends of socket ${i}`);
    assert.deepEqual(mine.map((e) => e.event), [...begins, ...ends].map((e) => e.event), `${i}`);
    assert.equal(new Set(mine.map((e) => e.flow_id)).size, Math.min(mine.length, 1), `${i}`);
    for (const e of mine.slice(0, 1)) {
      assert.ok(!ids.has(e.flow_id), `flow_id ${e.flow_id} of two sockets`);
      ids.add(e.flow_id);
    }
  });
}

/** An end's counters are the kernel's at its end (exact, or null), its duration the socket's life. */
function endIsTheSockets({ sockets, records }: Generated, tabulate: Tabulate): void {
  const events = tabulate(records);
  sockets.forEach((s, i) => {
    const end = records.find((r) => r.kind === "end" && r.cookie === i + 1);
    for (const e of ofSocket(events, i)) {
      if (e.event !== "net_flow_tcp_end") continue;
      const c = endCounters(end!);
      assert.deepEqual(
        [e.bytes_sent, e.bytes_received, e.packets_sent, e.packets_received],
        [c.bytes_sent, c.bytes_received, c.packets_sent, c.packets_received],
        `counters of socket ${i}`,
      );
      assert.equal(e.duration_ms, beginArrived(s) ? 10 + i : null, `duration of socket ${i}`);
    }
  });
}

/** Once every record is in, a flow is open exactly when its begin came and its end did not. */
function openUntilEnded({ sockets, records }: Generated): void {
  const table = new FlowTable();
  run(table, records);
  assert.equal(table.stats.open, sockets.filter((s) => beginArrived(s) && !endArrived(s)).length);
}

Deno.test("property: exactly one begin and one end per socket whose records arrived", () => {
  fc.assert(fc.property(stream, (g) => exactlyOneEachPerSocket(g, real)));
});

Deno.test("property: an end carries its socket's final counters and lifetime", () => {
  fc.assert(fc.property(stream, (g) => endIsTheSockets(g, real)));
});

Deno.test("property: a flow stays open exactly until its end arrives", () => {
  fc.assert(fc.property(stream, openUntilEnded));
});

// Tables that are wrong on purpose: the properties above must reject each.
const broken: [string, Tabulate, ((g: Generated, t: Tabulate) => void)[]][] = [
  ["emits nothing", () => [], [exactlyOneEachPerSocket]],
  [
    "drops ends",
    (records) => real(records).filter((e) => e.event !== "net_flow_tcp_end"),
    [exactlyOneEachPerSocket],
  ],
  [
    "duplicates an end",
    (records) =>
      real(records).flatMap((e): FlowEvent[] => e.event === "net_flow_tcp_end" ? [e, e] : [e]),
    [exactlyOneEachPerSocket],
  ],
  [
    "writes an end before its begin",
    (records) => {
      const events = real(records);
      return [...events.filter((e) => e.event === "net_flow_tcp_end"), ...events];
    },
    [exactlyOneEachPerSocket],
  ],
  [
    "gives an end a flow_id of its own",
    (records) =>
      real(records).map((e) => e.event === "net_flow_tcp_end" ? { ...e, flow_id: "x" } : e),
    [exactlyOneEachPerSocket],
  ],
  [
    "counts one byte too many",
    (records) =>
      real(records).map((e) =>
        e.event === "net_flow_tcp_end" && e.bytes_sent !== null
          ? { ...e, bytes_sent: e.bytes_sent + 1 }
          : e
      ),
    [endIsTheSockets],
  ],
  [
    "times an end from its end record alone",
    (records) =>
      real(records).map((e) => e.event === "net_flow_tcp_end" ? { ...e, duration_ms: 0 } : e),
    [endIsTheSockets],
  ],
];

Deno.test("the properties reject deliberately broken tables", () => {
  for (const [what, table, properties] of broken) {
    for (const property of properties) {
      assert.throws(
        () => fc.assert(fc.property(stream, (g) => property(g, table))),
        `${property.name} accepts a table that ${what}`,
      );
    }
  }
});

Deno.test("property: at most one begin and one end per socket, whatever the records do", () => {
  fc.assert(fc.property(stream, ({ records }) => {
    const events = run(new FlowTable({ maxFlows: 16 }), records);
    const seen = new Map<string, string[]>();
    for (const e of events) seen.set(e.flow_id, [...(seen.get(e.flow_id) ?? []), e.event]);
    const perSocket = new Map<number, number>();
    for (const e of events) {
      const port = Math.max(e.src_port, e.dst_port);
      perSocket.set(port, (perSocket.get(port) ?? 0) + (e.event === "net_flow_tcp_end" ? 1 : 0));
    }
    for (const n of perSocket.values()) assert.ok(n <= 1);
    for (const list of seen.values()) {
      assert.ok(list.length <= 2);
      if (list.length === 2) assert.deepEqual(list, ["net_flow_tcp_begin", "net_flow_tcp_end"]);
    }
  }));
});

Deno.test("property: an end has a duration only when its begin was reported", () => {
  fc.assert(fc.property(stream, ({ records }) => {
    const events = run(new FlowTable(), records);
    const begun = new Set(
      events.filter((e) => e.event === "net_flow_tcp_begin").map((e) => e.flow_id),
    );
    for (const e of events) {
      if (e.event !== "net_flow_tcp_end") continue;
      assert.equal(e.duration_ms !== null, begun.has(e.flow_id));
      if (e.duration_ms !== null) assert.ok(e.duration_ms >= 0);
    }
  }));
});

Deno.test("property: every number in every event is exact in JSON, counters never negative", () => {
  fc.assert(fc.property(stream, ({ records }) => {
    for (const e of run(new FlowTable(), records)) {
      for (const [k, v] of Object.entries(e)) {
        if (typeof v !== "number") continue;
        if (k !== "duration_ms") assert.ok(Number.isSafeInteger(v), `${k}=${v}`);
        assert.ok(v >= 0, `${k}=${v}`);
      }
    }
  }));
});

Deno.test("property: src is the initiator in a begin and the terminator in an end", () => {
  fc.assert(fc.property(stream, ({ sockets, records }) => {
    for (const e of run(new FlowTable(), records)) {
      const localPort = Math.max(e.src_port, e.dst_port);
      const s = sockets[localPort - LOCAL_BASE]!;
      const localIsSrc = e.src_port === localPort;
      assert.equal(e.conn_direction, s.outgoing ? "outgoing" : "incoming");
      if (e.event === "net_flow_tcp_begin") assert.equal(localIsSrc, s.outgoing);
      else assert.equal(localIsSrc, !s.end.startsWith("remote"));
    }
  }));
});

Deno.test("FlowTable reports updates for flows open long enough, oriented like the begin", () => {
  const table = new FlowTable();
  const [begin] = connection(server, client);
  table.onRecord(begin);
  const list = (ms: number, bytesReceived: number) =>
    openList([
      record("update", server, client, { ms, counters: { bytesReceived, bytesAcked: 7 } }),
    ]);
  assert.deepEqual(table.onOpenList(list(500, 10), atMs(500), 1_000_000), []);
  const [u] = table.onOpenList(list(1500, 20), atMs(1500), 1_000_000);
  assert.ok(u?.event === "net_flow_tcp_update");
  assert.equal(describe(u), "tcp_update incoming 10.0.0.1:40000>10.0.0.2:80");
  assert.deepEqual([u.duration_ms, u.bytes_received, u.bytes_sent], [1500, 20, 7]);
  // Its fields in the contract's order (what the JSON line writes, field by field).
  assert.equal(formatJson(u), JSON.stringify(u));
  // Without an interval the list only reconciles.
  assert.deepEqual(table.onOpenList(list(2500, 30), atMs(2500), null), []);
});

Deno.test("FlowTable ends a flow as unknown once its socket is missing from two lists", () => {
  const table = new FlowTable();
  const [begin, end] = connection(client, server, { outgoing: true });
  table.onRecord(begin);
  assert.deepEqual(table.onOpenList([], atMs(5), null), []);
  const [e] = table.onOpenList([], atMs(8), null) as [FlowEndEvent];
  assert.deepEqual([e.reason, e.closed_by, e.bytes_sent], ["unknown", "local", null]);
  assert.equal(formatJson(e), JSON.stringify(e)); // its fields in the contract's order
  assert.equal(table.stats.unknownEnds, 1);
  // The real end arriving late changes nothing.
  assert.equal(table.onRecord(end), undefined);
  // A flow listed again in between is not ended.
  const [b2] = connection(client, server, { outgoing: true, cookie: 2 });
  table.onRecord(b2);
  const listed = openList([record("update", client, server, { cookie: 2 })]);
  table.onOpenList([], atMs(0), null);
  assert.deepEqual(table.onOpenList(listed, atMs(0), null), []);
  assert.deepEqual(table.onOpenList([], atMs(0), null), []);
});

Deno.test("FlowTable reports failed connects: refused and timed out, from the first SYN", () => {
  const table = new FlowTable();
  const fail = (end: "refused" | "timeout") => {
    const r = { ...record("fail", client, server, { outgoing: true, ms: 2000 }), end };
    return table.onRecord({ ...r, cookie: end === "refused" ? 1 : 2 });
  };
  const refused = fail("refused"), timeout = fail("timeout");
  assert.ok(refused?.event === "net_flow_tcp_fail" && timeout?.event === "net_flow_tcp_fail");
  assert.equal(describe(refused), "tcp_fail outgoing 10.0.0.1:40000>10.0.0.2:80");
  assert.deepEqual([refused.reason, refused.duration_ms, timeout.reason], [
    "refused",
    2000,
    "timeout",
  ]);
});

Deno.test("FlowTable tells a SYN scan (reset in the handshake) and a closed port (refused)", () => {
  const table = new EnrichedTable({ maxHalfOpen: 2 });
  const pkt = (kind: "syn" | "hs-rst" | "refused", from: Side, to: Side, ms: number) => ({
    kind,
    timeUs: 1_700_000_000_000_000 + ms * 1000,
    timeNs: 1_000_000_000_000 + ms * 1e6,
    cgroupId: 1,
    direction: kind === "refused" ? "egress" as const : "ingress" as const,
    family: 4 as const,
    src: from.addr,
    dst: to.addr,
    srcPort: from.port,
    dstPort: to.port,
    seq: 0,
    ack: 0,
    flags: 0,
    cookie: 0,
    sockState: 10,
    netns: 1,
    netnsCookie: 0,
    owner: { pid: 9, uid: 0, comm: "server" },
  });
  assert.equal(table.onHandshake(pkt("syn", client, server, 0)), undefined);
  const reset = table.onHandshake(pkt("hs-rst", client, server, 3));
  assert.ok(reset !== undefined);
  assert.deepEqual(
    [describe(reset), reset.reason, reset.duration_ms, reset.pid],
    ["tcp_fail incoming 10.0.0.1:40000>10.0.0.2:80", "reset", 3, 9],
  );
  // A RST with no SYN before it is nobody's attempt.
  assert.equal(table.onHandshake(pkt("hs-rst", client, server, 4)), undefined);
  // This host's RST for a closed port leaves from the local side.
  const refused = table.onHandshake(pkt("refused", server, client, 5))!;
  assert.deepEqual(
    [describe(refused), refused.reason, refused.pid],
    ["tcp_fail incoming 10.0.0.1:40000>10.0.0.2:80", "refused", null],
  );
  // A flood of SYNs stays within the half-open bound, evictions counted.
  for (let port = 1; port <= 5; port++) {
    table.onHandshake(pkt("syn", { addr: "10.9.9.9", port }, server, 6));
  }
  assert.deepEqual([table.stats.halfOpen, table.stats.halfOpenEvicted], [2, 3]);
  // An attempt that establishes is no longer half-open.
  table.onRecord(record("begin", server, { addr: "10.9.9.9", port: 5 }, { netns: 1 }));
  assert.equal(table.stats.halfOpen, 1);
});

Deno.test("property: counters never decrease from update to update to the end", () => {
  fc.assert(fc.property(
    fc.array(fc.record({ acked: fc.nat(1e6), received: fc.nat(1e6) }), { minLength: 1 }),
    fc.nat(1e5),
    fc.constantFrom<EndHow>("local-fin", "remote-fin", "local-rst", "remote-rst", "timeout"),
    (steps, queued, end) => {
      const table = new FlowTable();
      table.onRecord(record("begin", client, server, { outgoing: true }));
      // The socket's own counters only grow.
      let acked = 1, received = 0;
      const seen: [number, number][] = [];
      steps.forEach((s, i) => {
        acked += s.acked;
        received += s.received;
        const u = table.onOpenList(
          openList([record("update", client, server, {
            outgoing: true,
            ms: 2000 + i,
            counters: { bytesAcked: acked, bytesReceived: received },
          })]),
          atMs(2000 + i),
          1000,
        )[0];
        if (u?.event === "net_flow_tcp_update") seen.push([u.bytes_sent!, u.bytes_received!]);
      });
      const last = table.onRecord(record("end", client, server, {
        outgoing: true,
        end,
        ms: 9999,
        counters: {
          bytesAcked: acked,
          bytesReceived: received + (end === "remote-fin" ? 1 : 0),
          sndUna: 100,
          writeSeq: 100 + queued,
        },
      })) as FlowEndEvent;
      seen.push([last.bytes_sent!, last.bytes_received!]);
      for (let i = 1; i < seen.length; i++) {
        assert.ok(seen[i]![0] >= seen[i - 1]![0] && seen[i]![1] >= seen[i - 1]![1]);
      }
    },
  ));
});
