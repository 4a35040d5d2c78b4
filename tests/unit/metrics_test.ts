import assert from "node:assert/strict";
import { UsageError } from "../../src/errors.ts";
import { EventCounts, listenAddress, registerNetflowMetrics } from "../../src/metrics/netflow.ts";
import { MetricsRegistry } from "../../src/metrics/prometheus.ts";
import type { MonitorStats } from "../../src/monitor.ts";
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
  assert.equal(sample(text, "netflow_dns_responses_total"), 5);
  assert.equal(sample(text, "netflow_dns_answers_unmatched_total"), 4);
  assert.equal(sample(text, "netflow_dns_answers_repeated_total"), 6);
  assert.equal(sample(text, "netflow_flows_filtered_in_kernel_total"), 8);
  assert.equal(sample(text, 'netflow_build_info{version="0.1.0"}'), 1);
  for (const line of text.split("\n").filter((l) => l !== "" && !l.startsWith("#"))) {
    const name = line.split(/[{ ]/)[0]!;
    assert.match(name, /^netflow_/);
    assert.ok(text.includes(`# HELP ${name} `), name);
    assert.ok(text.includes(`# TYPE ${name} `), name);
  }
  assert.equal(events.total, 3);
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
