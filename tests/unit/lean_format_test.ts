// The lean output path (issue 24) against a plain model of it, over generated records: the events
// of the flow table and the enrichers, written by the stdout sink (JSON lines written as bytes into
// one reused buffer by src/output/json_bytes.ts, formatTime from its digit table), must be byte
// for byte what JSON.stringify writes of each event with its Community ID, the time being what
// Date's ISO text gives; the events themselves are what the library yields.
import assert from "node:assert/strict";
import fc from "npm:fast-check@3.23.2";
import { HolderRows } from "../../src/bpf/holders.ts";
import type { EndHow, FlowRecord, SocketOwner } from "../../src/bpf/records.ts";
import { DnsEnricher } from "../../src/enrich/dns.ts";
import { Enrichers, type Enriching, type Filling } from "../../src/enrich/enricher.ts";
import { SocketHolders } from "../../src/enrich/holders.ts";
import { OwnerEnricher } from "../../src/enrich/owner.ts";
import { OwnerResolver } from "../../src/enrich/owners.ts";
import { type FlowEvent, IPPROTO_TCP } from "../../src/events.ts";
import { FlowTable } from "../../src/flow/state.ts";
import { communityIdV1 } from "../../src/output/community_id.ts";
import { lineFormat, StdoutSink } from "../../src/output/stdout.ts";
import { record } from "../helpers/records.ts";

/** RFC 3339 with microseconds, from Date's own text (the model of formatTime). */
function modelTime(us: number): string {
  const ms = Math.floor(us / 1000);
  return `${new Date(ms).toISOString().slice(0, 23)}${String(us - ms * 1000).padStart(3, "0")}Z`;
}

/** The cgroup path a test gives each cgroup id (the cgroup enricher reads a real tree). */
class Paths implements Filling {
  readonly byId: Map<number, string>;
  constructor(byId: Map<number, string>) {
    this.byId = byId;
  }
  fill(item: Enriching): void {
    item.event.cgroup = this.byId.get(item.event.cgroup_id) ?? "";
  }
}

const text = fc.oneof(
  fc.constantFrom("curl", "nginx", "wrk", 'we"ird\\', "ü".repeat(15), "名前", "\u{1F600}"),
  fc.string({ maxLength: 15 }),
);
const owner = fc.option(
  fc.record({ pid: fc.nat(4_194_304), uid: fc.nat(65_535), comm: text, cgroupId: fc.constant(0) }),
);
const port = fc.integer({ min: 1, max: 65_535 });
const v6 = fc.constantFrom("2001:db8::1", "::1", "fe80::2", "2001:db8:0:1::ab");
/** Both sides of one family. */
const sides = fc.oneof(
  fc.tuple(fc.ipV4(), fc.ipV4()),
  fc.tuple(v6, v6),
).chain(([a, b]) =>
  fc.record({
    local: fc.record({ addr: fc.constant(a), port }),
    remote: fc.record({ addr: fc.constant(b), port }),
  })
);
const connection = fc.record({
  sides,
  outgoing: fc.boolean(),
  end: fc.constantFrom<EndHow>("local-fin", "remote-fin", "local-rst", "remote-rst", "timeout"),
  /** µs since the records' epoch: begins and ends cross second boundaries. */
  beginUs: fc.integer({ min: 0, max: 5_000_000 }),
  lengthUs: fc.integer({ min: 0, max: 3_000_000 }),
  owner,
  cgroupId: fc.constantFrom(1, 2, 3),
  counters: fc.record({
    bytesAcked: fc.maxSafeNat(),
    bytesReceived: fc.maxSafeNat(),
    segsIn: fc.nat(),
    segsOut: fc.nat(),
    srttUs: fc.nat(),
    totalRetrans: fc.nat(),
  }),
  names: fc.array(fc.oneof(fc.domain(), text), { maxLength: 3 }),
});

Deno.test("lines written by the lean path are JSON.stringify's of each event with its ID, byte for byte", () => {
  fc.assert(
    fc.property(
      fc.array(connection, { minLength: 1, maxLength: 40 }),
      fc.array(text, { minLength: 3, maxLength: 3 }),
      fc.boolean(),
      (connections, cgroupPaths, untimedBegins) => {
        const table = new FlowTable({ idPrefix: "p", untimedBegins });
        const names = new Map<string, string[]>();
        const dns = {
          names: (_: unknown, a: string) => names.get(a) ?? [],
          forgetNamespaces: () => 0,
        };
        const noHolders = new SocketHolders(() => new HolderRows(new Uint8Array(0)));
        const paths = new Map(cgroupPaths.map((p, i) => [i + 1, `/${p}`]));
        const enrichers = new Enrichers([
          new OwnerEnricher(new OwnerResolver(noHolders, { waitMs: 0 })),
          new Paths(paths),
          new DnsEnricher(dns, {}),
        ]);
        // Records in time order: each connection's begin and end (its own cookie).
        const records: FlowRecord[] = [];
        connections.forEach((c, i) => {
          const { local, remote } = c.sides;
          names.set(remote.addr, c.names);
          const base = {
            cookie: i + 1,
            outgoing: c.outgoing,
            owner: c.owner as SocketOwner | null,
          };
          const begin = record("begin", local, remote, { ...base, ms: c.beginUs / 1000 });
          const end = record("end", local, remote, {
            ...base,
            ms: (c.beginUs + c.lengthUs) / 1000,
            end: c.end,
            counters: { ...c.counters, sndUna: 0, writeSeq: 0 },
          });
          records.push({ ...begin, cgroupId: c.cgroupId }, { ...end, cgroupId: c.cgroupId });
        });
        records.sort((a, b) => a.timeNs - b.timeNs);
        const events: FlowEvent[] = [];
        const timeOf = new Map<FlowEvent, number>();
        for (const r of records) {
          const e = table.onRecord(r);
          if (e === undefined) continue;
          timeOf.set(e, r.timeUs);
          for (const i of enrichers.push({ event: e, facts: table.factsOf(e) }, 0)) {
            events.push(i.event);
          }
        }
        assert.equal(events.length, 2 * connections.length);
        for (const e of events) {
          // Begins not asked for carry no time; every other event its record's.
          const untimed = untimedBegins && e.event === "net_flow_tcp_begin";
          assert.equal(e.time, untimed ? "" : modelTime(timeOf.get(e)!));
        }
        const shown = untimedBegins
          ? events.filter((e) => e.event !== "net_flow_tcp_begin")
          : events;
        let written = new Uint8Array(0);
        const sink = new StdoutSink(lineFormat("json"), (bytes) => {
          written = bytes.slice();
          return true;
        });
        assert.equal(sink.write(shown), true);
        const model = shown.map((e) => {
          const id = communityIdV1(IPPROTO_TCP, e.src, e.src_port, e.dst, e.dst_port);
          return `${JSON.stringify({ ...e, community_id: id })}\n`;
        });
        assert.deepEqual(written, new TextEncoder().encode(model.join("")));
      },
    ),
    { numRuns: 300 },
  );
});
