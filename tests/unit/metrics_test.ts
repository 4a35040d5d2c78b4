import assert from "node:assert/strict";
import { UsageError } from "../../src/errors.ts";
import { EventCounts, listenAddress, registerNetflowMetrics } from "../../src/metrics/netflow.ts";
import { MetricsRegistry } from "../../src/metrics/prometheus.ts";
import { type MonitorStats, monitorStats } from "../../src/stats.ts";
import { summary } from "../../src/cli.ts";
import { FlowTable } from "../../src/flow/state.ts";
import { DnsNames } from "../../src/dns/names.ts";
import { OwnerResolver } from "../../src/enrich/owners.ts";
import type { HolderIndex } from "../../src/enrich/holders.ts";
import type { DnsMessage } from "../../src/bpf/records.ts";
import { atMs, dnsMessage, record } from "../helpers/records.ts";
import { promtoolCheck, sample } from "../helpers/promtool.ts";

Deno.test("--metrics listens on loopback unless a host is given", () => {
  assert.deepEqual(listenAddress("--metrics", "9100"), { hostname: "127.0.0.1", port: 9100 });
  assert.deepEqual(listenAddress("--metrics", ":9100"), { hostname: "127.0.0.1", port: 9100 });
  assert.deepEqual(listenAddress("--metrics", "0.0.0.0:9100"), { hostname: "0.0.0.0", port: 9100 });
  assert.deepEqual(listenAddress("--metrics", "[::1]:0"), { hostname: "::1", port: 0 });
  assert.deepEqual(listenAddress("--metrics", "localhost:80"), { hostname: "localhost", port: 80 });
});

Deno.test("--metrics refuses what is not HOST:PORT in one line", () => {
  for (const bad of ["", "x", "1.2.3.4", "host:", ":", "::1:80", "h:70000", "h:-1", "h p:1"]) {
    assert.throws(
      () => listenAddress("--metrics", bad),
      (e: unknown) =>
        e instanceof UsageError &&
        e.message === `--metrics takes HOST:PORT, :PORT or PORT, not ${JSON.stringify(bad)}`,
      bad,
    );
  }
});

const STATS: MonitorStats = {
  events: 0,
  lost: 3,
  malformed: 0,
  evicted: 2,
  openFlows: 7,
  untracked: 0,
  dnsResponses: 5,
  dnsMalformed: 1,
  dnsCut: 0,
  dnsEvicted: 0,
  dnsLost: 0,
  dnsUnmatched: 4,
  dnsRepeated: 6,
  kernelFiltered: 8,
  dnsQueriesEvicted: 0,
  halfOpenEvicted: 9,
  unknownEnds: 10,
  duplicates: 11,
  dnsStreamsDropped: 12,
  ownerTimeouts: 13,
  flowsRecovered: 14,
  flowsLost: 15,
  dnsUnordered: 16,
  dnsCgroupOnly: 17,
  packetsLost: 18,
  attemptsFiltered: 19,
  ownerRunsEveryProcess: 20,
  ownerRunsEverySocket: 21,
  ownerFilterRefused: 22,
  ownerLookCloses: 25,
};

Deno.test("netflow's metrics are valid exposition text with HELP and TYPE, per promtool", async () => {
  const registry = new MetricsRegistry();
  const events = new EventCounts();
  events.add([{ event: "net_flow_tcp_begin" }, { event: "net_flow_tcp_begin" }]);
  events.add([{ event: "net_flow_tcp_end" }]);
  registerNetflowMetrics(registry, "0.1.0", events, () => STATS);
  const text = registry.render();
  assert.deepEqual(await promtoolCheck(text), { code: 0, output: "" });
  assert.equal(sample(text, 'netflow_events_total{event="net_flow_tcp_begin"}'), 2);
  assert.equal(sample(text, 'netflow_events_total{event="net_flow_tcp_end"}'), 1);
  assert.equal(sample(text, "netflow_records_lost_total"), 3);
  assert.equal(sample(text, "netflow_flows_open"), 7);
  assert.equal(sample(text, "netflow_flows_evicted_total"), 2);
  assert.equal(sample(text, "netflow_attempts_filtered_in_kernel_total"), 19);
  assert.equal(sample(text, "netflow_dns_responses_total"), 5);
  assert.equal(sample(text, "netflow_dns_answers_unmatched_total"), 4);
  assert.equal(sample(text, "netflow_dns_answers_repeated_total"), 6);
  assert.equal(sample(text, "netflow_flows_filtered_in_kernel_total"), 8);
  assert.equal(sample(text, 'netflow_build_info{version="0.1.0"}'), 1);
  assert.equal(sample(text, "netflow_half_open_evicted_total"), 9);
  assert.equal(sample(text, "netflow_flows_unknown_end_total"), 10);
  assert.equal(sample(text, "netflow_records_duplicate_total"), 11);
  assert.equal(sample(text, "netflow_dns_tcp_streams_dropped_total"), 12);
  assert.equal(sample(text, "netflow_owner_waits_timed_out_total"), 13);
  assert.equal(sample(text, 'netflow_owner_fallback_runs_total{to="every_process"}'), 20);
  assert.equal(sample(text, 'netflow_owner_fallback_runs_total{to="every_socket"}'), 21);
  assert.equal(sample(text, "netflow_owner_filter_refused_total"), 22);
  assert.equal(sample(text, "netflow_owner_look_closes_total"), 25);
  for (const line of text.split("\n").filter((l) => l !== "" && !l.startsWith("#"))) {
    const name = line.split(/[{ ]/)[0]!;
    assert.match(name, /^netflow_/);
    assert.ok(text.includes(`# HELP ${name} `), name);
    assert.ok(text.includes(`# TYPE ${name} `), name);
  }
  assert.equal(events.total, 3);
});

Deno.test("every metric netflow registers is in the README's metrics list", () => {
  const registry = new MetricsRegistry();
  registerNetflowMetrics(registry, "0.1.0", new EventCounts(), () => STATS);
  const readme = Deno.readTextFileSync(new URL("../../README.md", import.meta.url));
  const listed = new Set([...readme.matchAll(/^\| `(netflow_[a-z_]+)[{`]/gm)].map((m) => m[1]));
  const names = [...registry.render().matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
  assert.ok(names.includes("netflow_owner_fallback_runs_total"));
  for (const name of names) assert.ok(listed.has(name), `${name} not in the README's list`);
});

Deno.test("a registry takes extra metrics and escapes their labels and help", async () => {
  const registry = new MetricsRegistry();
  let reads = 0;
  registry.beforeCollect(() => reads++);
  registry.register({
    name: "netflow_export_dropped_total",
    help: "Records dropped\\by an exporter\nper collector",
    type: "counter",
    collect: () => [{ labels: { collector: 'udp://"a"\\b' }, value: 9 }],
  });
  assert.throws(() =>
    registry.register({
      name: "netflow_export_dropped_total",
      help: "",
      type: "counter",
      collect: () => 0,
    })
  );
  assert.throws(() =>
    registry.register({ name: "bad-name", help: "", type: "gauge", collect: () => 0 })
  );
  assert.throws(() =>
    registry.register({ name: "no_suffix", help: "", type: "counter", collect: () => 0 })
  );
  const text = registry.render();
  assert.equal(
    text,
    "# HELP netflow_export_dropped_total Records dropped\\\\by an exporter\\nper collector\n" +
      "# TYPE netflow_export_dropped_total counter\n" +
      'netflow_export_dropped_total{collector="udp://\\"a\\"\\\\b"} 9\n',
  );
  assert.equal(reads, 1);
  assert.deepEqual(await promtoolCheck(text), { code: 0, output: "" });
});

/** The pipeline's stages, each driven to one loss or guess (or none), counted as the monitor counts. */
function stages(cause: boolean): MonitorStats {
  const a = { addr: "10.0.0.1", port: 80 }, b = { addr: "10.0.0.2", port: 40000 };
  const flows = new FlowTable({ maxHalfOpen: 1 });
  const dns = new DnsNames({ now: () => 1000 });
  const nobody: HolderIndex = { refresh() {}, ofSocket: () => [], ofListener: () => [] };
  const owners = new OwnerResolver(nobody, { clock: () => 0 });
  const syn = (port: number) => ({
    kind: "syn" as const,
    timeUs: 0,
    timeNs: 0,
    cgroupId: 1,
    direction: "ingress" as const,
    family: 4 as const,
    src: b.addr,
    dst: a.addr,
    srcPort: port,
    dstPort: a.port,
    seq: 0,
    ack: 0,
    flags: 2,
    cookie: 0,
    sockState: 0,
    netns: 1,
    netnsCookie: 0,
    owner: null,
  });
  const segment = (streamOffset: number): DnsMessage =>
    dnsMessage(new Uint8Array([0]), { transport: "tcp", netns: 1, streamOffset });
  // Positive controls in both runs: a SYN, a flow that begins and ends, a TCP answer's start.
  flows.onHandshake(syn(1));
  const [begin, end] = [record("begin", a, b, { cookie: 5 }), record("end", a, b, { cookie: 5 })];
  flows.onRecord(begin);
  flows.onRecord(end);
  dns.onMessage(segment(0));
  // An incoming begin whose acceptor is found at once (a holder of its socket) waits for nobody.
  const held = record("begin", a, b, { cookie: 6, outgoing: true });
  owners.push(held, 0);
  if (cause) {
    flows.onHandshake(syn(2)); // the half-open table (1) is full: the first attempt goes
    flows.onRecord(begin); // a repeated begin
    const lost = record("begin", a, b, { cookie: 7 });
    flows.onRecord(lost);
    flows.onOpenList([], atMs(1), null);
    flows.onOpenList([], atMs(2), null); // its socket is gone, its end was lost: unknown end
    dns.onMessage(segment(0)); // a new answer on the same connection drops the unfinished one
    owners.push(record("begin", a, b, { cookie: 8 }), 0); // incoming: nobody accepts it
    owners.settle(1000);
  }
  return monitorStats({
    kernel: {
      lost: 0,
      dnsCut: 0,
      untracked: 0,
      dnsLost: 0,
      dnsUnmatched: 0,
      dnsQueries: 0,
      dnsAnswered: 0,
      dnsRepeated: 0,
      filtered: 0,
      scratchBusy: 0,
      noCallbacks: 0,
      kept: 0,
      flowsLost: 0,
      beginsDeferred: 0,
      callbacksRestored: 0,
      packetsLost: 0,
      attemptsFiltered: 0,
      lookCloses: 0,
      dnsPending: 0,
    },
    final: true,
    events: 0,
    malformed: 0,
    flows: flows.stats,
    dns: dns.stats,
    owners: owners.stats,
    recovered: 0,
  });
}

Deno.test("every loss and guess reaches the summary and /metrics: each moves with its cause, 0 without", async () => {
  const counts = {
    halfOpenEvicted: ["evicted half-open attempts", "netflow_half_open_evicted_total"],
    unknownEnds: ["unknown ends", "netflow_flows_unknown_end_total"],
    duplicates: ["duplicate records", "netflow_records_duplicate_total"],
    dnsStreamsDropped: ["dropped DNS TCP streams", "netflow_dns_tcp_streams_dropped_total"],
    ownerTimeouts: ["owner waits timed out", "netflow_owner_waits_timed_out_total"],
  } as const;
  for (const cause of [false, true]) {
    const stats = stages(cause);
    const line = summary(0, stats);
    const registry = new MetricsRegistry();
    registerNetflowMetrics(registry, "0.1.0", new EventCounts(), () => stats);
    const text = registry.render();
    assert.deepEqual(await promtoolCheck(text), { code: 0, output: "" });
    for (const [key, [words, metric]] of Object.entries(counts)) {
      const want = cause ? 1 : 0;
      assert.equal(stats[key as keyof typeof counts], want, `${key} (cause: ${cause})`);
      assert.match(line, new RegExp(`, ${want} ${words}, `), `${key} in ${line}`);
      assert.equal(sample(text, metric), want, metric);
    }
  }
});
