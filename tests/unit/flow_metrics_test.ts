import assert from "node:assert/strict";
import fc from "npm:fast-check@3.23.2";
import { parseCli } from "../../src/args.ts";
import { UsageError } from "../../src/errors.ts";
import type { FlowEvent } from "../../src/events.ts";
import { FoldingFamily, type FoldOptions } from "../../src/metrics/fold.ts";
import {
  FLOW_METRIC_EVENTS,
  FlowMetrics,
  type FlowMetricsOptions,
  metricLabels,
  netPrefixes,
  remoteNet,
} from "../../src/metrics/flows.ts";
import { MetricsRegistry, negotiate } from "../../src/metrics/prometheus.ts";
import { flowEvent as anyFlowEvent } from "../helpers/events.ts";
import { promtoolCheck } from "../helpers/promtool.ts";

/** Each series of the exposition text (name{labels}) and its value. */
function series(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

function sumOf(text: string, name: string): number {
  let n = 0;
  for (const [k, v] of series(text)) if (k === name || k.startsWith(`${name}{`)) n += v;
  return n;
}

function countOf(text: string, prefix: string): number {
  return [...series(text).keys()].filter((k) => k.startsWith(prefix)).length;
}

const FOLD: FoldOptions = { budget: 10, foldIdleMs: 60_000, expiryMs: 600_000 };

/** A scrape after a scrape: series new since the last one show 0 at their first. */
function scraped(f: FoldingFamily) {
  f.samples();
  return f.samples();
}

Deno.test("FoldingFamily shows a new series at 0 once, then its count", () => {
  const f = new FoldingFamily("x_total", ["direction"], 1, [], undefined, FOLD, () => 0);
  f.add(["outgoing"], [], 5);
  assert.deepEqual(f.samples().map((x) => x.value), [0]);
  f.add(["outgoing"], [], 1);
  assert.deepEqual(f.samples().map((x) => x.value), [6]);
});

Deno.test("FoldingFamily folds the idlest label set into other, moving its count", () => {
  let now = 0;
  const f = new FoldingFamily("x_total", ["direction", "comm"], 1, [], undefined, FOLD, () => now);
  for (let i = 0; i < 10; i++) f.add(["outgoing", `c${i}`], [], i + 1);
  assert.equal(f.series, 10);
  now = 61_000;
  f.add(["outgoing", "c1"], [], 1); // c1 busy again; c0 idlest
  f.add(["outgoing", "new"], [], 100); // needs room: c0 folds into other (takes a series)
  const s = new Map(scraped(f).map((x) => [`${x.labels.comm}`, x.value]));
  assert.equal(f.series, 10);
  assert.equal(f.folded, 2); // c0 for new, then c2 for other's own series
  assert.equal(s.get("c0"), undefined);
  assert.equal(s.get("other"), 1 + 3);
  assert.equal(s.get("new"), 100);
  assert.equal([...s.values()].reduce((a, b) => a + b), 55 + 1 + 100);
});

Deno.test("FoldingFamily puts a newcomer into other when every label set is busy", () => {
  let now = 0;
  const f = new FoldingFamily("x_total", ["direction", "port"], 1, [], undefined, FOLD, () => now);
  for (let i = 0; i < 9; i++) f.add(["incoming", `${i}`], [], 1);
  now = 1000; // all busy (idle < 60 s)
  for (let p = 100; p < 5000; p++) f.add(["incoming", `${p}`], [], 1); // a scan
  // 100 still fitted; 101 did not and folded, and other's first series took
  // the room of the idlest, 0 (by force: other is never folded).
  const s = scraped(f);
  assert.ok(f.series <= 10);
  assert.deepEqual(s.map((x) => x.labels.port), [
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "100",
    "other",
  ]);
  assert.equal(s.at(-1)!.value, 4900);
  assert.equal(f.folded, 4900);
  // A folded label set that stays busy stays folded (no restart from 0).
  now = 2000;
  f.add(["incoming", "101"], [], 5);
  assert.equal(scraped(f).at(-1)!.value, 4905);
});

Deno.test("FoldingFamily keeps a folded label set in other while it is busy (no restart from 0)", () => {
  let now = 0;
  const opts = { ...FOLD, budget: 4 };
  const f = new FoldingFamily("x_total", ["direction", "comm"], 1, [], undefined, opts, () => now);
  f.add(["outgoing", "a"], [], 10);
  f.add(["outgoing", "b"], [], 20);
  f.add(["outgoing", "c"], [], 30);
  now = 70_000;
  f.add(["outgoing", "d"], [], 1);
  f.add(["outgoing", "e"], [], 1); // a folds (other takes a series), then b
  const before = scraped(f).map((x) => [x.labels.comm, x.value]);
  assert.deepEqual(before, [["c", 30], ["d", 1], ["e", 1], ["other", 30]]);
  now = 71_000;
  f.add(["outgoing", "a"], [], 1); // c is idle and could make room: a still goes to other
  assert.deepEqual(scraped(f).map((x) => [x.labels.comm, x.value]), [
    ["c", 30],
    ["d", 1],
    ["e", 1],
    ["other", 31],
  ]);
  // Quiet for the expiry time: its tombstone is forgotten, and it may come back.
  now = 71_000 + 600_000;
  f.expire();
  f.add(["outgoing", "a"], [], 1);
  assert.deepEqual(scraped(f).map((x) => [x.labels.comm, x.value]), [["a", 1], ["other", 63]]);
});

Deno.test("FoldingFamily expires an idle label set into other and lets it come back", () => {
  let now = 0;
  const f = new FoldingFamily("x_total", ["direction", "comm"], 1, [], undefined, FOLD, () => now);
  f.add(["outgoing", "a"], [], 7);
  f.add(["outgoing", "b"], [], 3);
  now = 300_000;
  f.add(["outgoing", "b"], [], 1);
  now = 600_000;
  f.expire();
  assert.deepEqual(scraped(f).map((x) => [x.labels.comm, x.value]), [["b", 4], ["other", 7]]);
  assert.equal(f.expired, 1);
  f.add(["outgoing", "a"], [], 2); // not a tombstone: a new series
  assert.deepEqual(scraped(f).map((x) => [x.labels.comm, x.value]), [
    ["b", 4],
    ["a", 2],
    ["other", 7],
  ]);
});

Deno.test("FoldingFamily histograms count buckets against the budget and fold them whole", () => {
  let now = 0;
  const opts = { ...FOLD, budget: 12 };
  const f = new FoldingFamily("d_seconds", ["direction"], 0, [], [1, 10], opts, () => now);
  f.observe(["a"], [], 0.5);
  f.observe(["b"], [], 5);
  f.observe(["b"], [], 50);
  assert.equal(f.series, 10); // 2 label sets x (2 buckets + +Inf + sum + count)
  now = 70_000;
  f.observe(["c"], [], 2); // a folds into other, which then needs its own 5: b folds too
  const got = scraped(f).map((x) =>
    `${x.labels.direction}${x.suffix}${x.labels.le ?? ""}=${x.value}`
  );
  assert.deepEqual(got, [
    "c_bucket1=0",
    "c_bucket10=1",
    "c_bucket+Inf=1",
    "c_sum=2",
    "c_count=1",
    "other_bucket1=1",
    "other_bucket10=2",
    "other_bucket+Inf=3",
    "other_sum=55.5",
    "other_count=3",
  ]);
});

Deno.test("FoldingFamily: within budget, exact sums, and no exported series ever decreases", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          label: fc.integer({ min: 0, max: 15 }),
          reason: fc.constantFrom("fin", "rst"),
          n: fc.integer({ min: 1, max: 1000 }),
          dt: fc.constantFrom(0, 10, 30_000, 70_000, 700_000),
          scrape: fc.boolean(),
        }),
        { maxLength: 300 },
      ),
      (ops) => {
        let now = 0, total = 0;
        const opts = { budget: 12, foldIdleMs: 60_000, expiryMs: 600_000 };
        const f = new FoldingFamily("x_total", ["d", "l"], 1, ["r"], undefined, opts, () => now);
        let seen = new Map<string, number>();
        for (const op of ops) {
          now += op.dt;
          f.add([op.label % 2 ? "in" : "out", `${op.label}`], [op.reason], op.n);
          total += op.n;
          if (!op.scrape) continue;
          f.expire();
          // Two scrapes in a row: a new series shows 0, then its count; the
          // second scrape's sum is the total.
          for (const pass of [1, 2]) {
            const samples = f.samples();
            assert.ok(f.series <= 12 && samples.length === f.series);
            if (pass === 2) assert.equal(samples.reduce((a, s) => a + s.value, 0), total);
            const next = new Map(samples.map((s) => [JSON.stringify(s.labels), s.value]));
            for (const [k, v] of next) assert.ok(v >= (seen.get(k) ?? 0), `${k} went back`);
            seen = next;
          }
        }
      },
    ),
    { numRuns: 500 },
  );
});

const OPTIONS: FlowMetricsOptions = {
  labels: ["comm", "remote_name", "remote_port", "remote_net"],
  budget: 2000,
  expiryMs: 600_000,
  prefix4: 24,
  prefix6: 64,
  maxFlows: 1000,
};

function flowEvent(over: Record<string, unknown>): FlowEvent {
  return anyFlowEvent({
    time: "2026-12-06T10:00:00.000000Z",
    dst: "198.18.7.9",
    dst_dns: ["api.example.com", "edge.example.net"],
    netns: 1,
    ...over,
  });
}

const COUNTERS = {
  bytes_sent: 0,
  bytes_received: 0,
  packets_sent: 0,
  packets_received: 0,
  rtt_us: 30,
  retransmits: 0,
};

Deno.test("Flow metrics: update deltas add up to the end, and an end unseen counts once", async () => {
  const registry = new MetricsRegistry();
  const m = new FlowMetrics(registry, OPTIONS);
  m.write([flowEvent({})]);
  const update = (b: number | null) =>
    flowEvent({ ...COUNTERS, event: "net_flow_tcp_update", duration_ms: 1, bytes_sent: b });
  m.write([update(100), update(null), update(250)]);
  let text = (registry.render(), registry.render());
  assert.equal(sumOf(text, "netflow_tcp_bytes_sent_total"), 250);
  // The end: src is the side that closed (remote here), so the remote is src.
  const end = flowEvent({
    ...COUNTERS,
    event: "net_flow_tcp_end",
    src: "198.18.7.9",
    dst: "10.0.0.1",
    src_port: 443,
    dst_port: 40000,
    src_dns: ["api.example.com"],
    dst_dns: [],
    closed_by: "remote",
    reason: "fin",
    duration_ms: 2500,
    bytes_sent: 400,
    bytes_received: 9000,
    retransmits: 2,
  });
  m.write([end]);
  // Another flow whose begin and updates were not seen: its end counts once.
  m.write([{ ...end, flow_id: "f-2", bytes_sent: 50 } as FlowEvent]);
  assert.equal(m.openFlows, 0);
  text = (registry.render(), registry.render());
  assert.equal(sumOf(text, "netflow_tcp_bytes_sent_total"), 450);
  assert.equal(sumOf(text, "netflow_tcp_bytes_received_total"), 18000);
  assert.equal(sumOf(text, "netflow_tcp_retransmits_total"), 4);
  const labels =
    'direction="outgoing",comm="curl",remote_name="api.example.com",remote_port="443",remote_net="198.18.7.0/24"';
  const s = series(text);
  assert.equal(s.get(`netflow_tcp_bytes_sent_total{${labels}}`), 450);
  assert.equal(s.get(`netflow_tcp_flows_begun_total{${labels}}`), 1);
  assert.equal(
    s.get(`netflow_tcp_flows_ended_total{${labels},reason="fin",closed_by="remote"}`),
    2,
  );
  assert.equal(s.get(`netflow_tcp_flow_duration_seconds_bucket{${labels},le="10"}`), 2);
  assert.equal(s.get(`netflow_tcp_flow_duration_seconds_bucket{${labels},le="1"}`), 0);
  assert.equal(s.get(`netflow_tcp_rtt_seconds_bucket{${labels},le="0.0001"}`), 2);
  assert.deepEqual(await promtoolCheck(text), { code: 0, output: "" });
});

Deno.test("Flow metrics: remote_port is the service's port, remote side per event orientation", () => {
  const m = new FlowMetrics(new MetricsRegistry(), OPTIONS);
  // Incoming begin: src is the remote client, dst:dst_port the local service.
  const inBegin = flowEvent({
    conn_direction: "incoming",
    src: "2001:db8:1:2:3::9",
    dst: "10.0.0.1",
    src_port: 51000,
    dst_port: 8080,
    src_dns: ["client.example"],
    dst_dns: [],
  });
  assert.deepEqual(m.labelsOf(inBegin), [
    "incoming",
    "curl",
    "client.example",
    "8080",
    "2001:db8:1:2::/64",
  ]);
  // Incoming end closed locally: src is the local side.
  const inEnd = flowEvent({
    ...COUNTERS,
    event: "net_flow_tcp_end",
    conn_direction: "incoming",
    src: "10.0.0.1",
    dst: "198.18.3.4",
    src_port: 8080,
    dst_port: 51000,
    closed_by: "local",
    reason: "rst",
    duration_ms: 1,
    dst_dns: [],
  });
  assert.deepEqual(m.labelsOf(inEnd), ["incoming", "curl", "", "8080", "198.18.3.0/24"]);
});

Deno.test("Flow metrics under a scan stay within the budget; sums stay exact", () => {
  const registry = new MetricsRegistry();
  const m = new FlowMetrics(registry, { ...OPTIONS, budget: 100 });
  for (let port = 1; port <= 5000; port++) {
    m.write([
      flowEvent({
        event: "net_flow_tcp_fail",
        reason: "refused",
        conn_direction: "incoming",
        dst_port: port,
        duration_ms: 0,
        flow_id: `s-${port}`,
      }),
    ]);
  }
  const text = (registry.render(), registry.render());
  assert.ok(countOf(text, "netflow_tcp_flows_failed_total{") <= 100);
  assert.equal(sumOf(text, "netflow_tcp_flows_failed_total"), 5000);
  assert.ok(
    sumOf(text, 'netflow_metrics_series_folded_total{metric="netflow_tcp_flows_failed_total"}') >=
      4900,
  );
});

Deno.test("OpenMetrics: counter families without _total, # EOF, quotes escaped in HELP", () => {
  const registry = new MetricsRegistry();
  registry.register({ name: "a_total", help: 'say "x"', type: "counter", collect: () => 1 });
  registry.register({ name: "g", help: "g", type: "gauge", collect: () => 2 });
  assert.equal(
    registry.render("openmetrics"),
    '# HELP a say \\"x\\"\n# TYPE a counter\na_total 1\n# HELP g g\n# TYPE g gauge\ng 2\n# EOF\n',
  );
  assert.equal(
    (registry.render(), registry.render()),
    '# HELP a_total say "x"\n# TYPE a_total counter\na_total 1\n# HELP g g\n# TYPE g gauge\ng 2\n',
  );
  const prometheus =
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
  assert.equal(negotiate(prometheus), "openmetrics");
  assert.equal(negotiate("text/plain"), "text");
  assert.equal(negotiate(null), "text");
});

Deno.test("--metrics-labels, --metrics-net-prefix and remote_net refuse or bucket as documented", () => {
  assert.deepEqual(metricLabels("--metrics-labels", "comm,uid,comm"), ["comm", "uid"]);
  assert.deepEqual(metricLabels("--metrics-labels", "none"), []);
  assert.throws(() => metricLabels("--metrics-labels", "comm,pod"), UsageError);
  assert.deepEqual(netPrefixes("--metrics-net-prefix", "16"), { prefix4: 16, prefix6: 64 });
  assert.deepEqual(netPrefixes("--metrics-net-prefix", "20,48"), { prefix4: 20, prefix6: 48 });
  assert.throws(() => netPrefixes("--metrics-net-prefix", "33"), UsageError);
  assert.equal(remoteNet("198.18.7.200", 20, 64), "198.18.0.0/20");
  assert.equal(remoteNet("fd00:6e67:5::2", 24, 48), "fd00:6e67:5::/48");
  assert.equal(remoteNet("10.1.2.3", 32, 64), "10.1.2.3/32");
});

Deno.test("--metrics asks the monitor for begin, update, end and fail, and writes only --events", () => {
  const o = parseCli(["--metrics", "0", "--events", "end"]);
  assert.deepEqual(o.events, ["net_flow_tcp_end"]);
  assert.deepEqual(new Set(o.monitor.events), new Set(FLOW_METRIC_EVENTS));
  assert.deepEqual(o.flowMetrics?.labels, ["comm", "container", "remote_name", "remote_port"]);
  assert.equal(o.flowMetrics?.budget, 2000);
  const plain = parseCli([]);
  assert.equal(plain.flowMetrics, undefined);
  assert.deepEqual(plain.monitor.events, ["net_flow_tcp_begin", "net_flow_tcp_end"]);
  assert.throws(
    () => parseCli(["--metrics-budget", "500"]),
    (e: unknown) => e instanceof UsageError && e.message === "--metrics-budget needs --metrics",
  );
  assert.throws(
    () => parseCli(["--metrics", "0", "--metrics-budget", "99"]),
    (e: unknown) =>
      e instanceof UsageError &&
      e.message === '--metrics-budget takes a whole number of at least 100, not "99"',
  );
});
