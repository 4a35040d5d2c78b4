/**
 * e2e (root): flow metrics scraped by a real Prometheus (Debian's, started
 * by the test on loopback, 1 s scrapes) while a workload with known bytes
 * runs in a child cgroup; PromQL results through Prometheus's HTTP API equal
 * the sums over the same run's JSON events, exactly.
 */
import assert from "node:assert/strict";
import type { FlowEndEvent, FlowEvent } from "../../src/events.ts";
import {
  e2eTest,
  LOCAL,
  sh,
  TestCgroup,
  TestNetns,
  withTimeout,
  WORKLOAD,
  workload,
} from "../helpers/e2e.ts";
import { atLeast, Netflow, onPort } from "../helpers/netflow.ts";
import { Prometheus, prometheusPath } from "../helpers/prometheus.ts";
import { promtoolCheck, promtoolPath } from "../helpers/promtool.ts";

const END = "net_flow_tcp_end", FAIL = "net_flow_tcp_fail";
const RULES = new URL("../../docs/prometheus/netflow.rules.yml", import.meta.url).pathname;

/** Sums of `value(e)` over events, grouped by `key(e)`. */
function sums<T>(
  events: T[],
  key: (e: T) => string,
  value: (e: T) => number,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of events) out[key(e)] = (out[key(e)] ?? 0) + value(e);
  return out;
}

function sorted(r: Record<string, number>): [string, number][] {
  return Object.entries(r).sort(([a], [b]) => a.localeCompare(b));
}

/** Polls `fn` every 250 ms until it is true, bounded by `ms`. */
async function until(fn: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  await withTimeout(
    (async () => {
      while (!(await fn())) await new Promise((r) => setTimeout(r, 250)); // poll, bounded
    })(),
    ms,
    what,
  );
}

e2eTest("Prometheus's PromQL sums of the flow metrics equal the run's JSON events", async () => {
  assert.ok(
    new Deno.Command("sh", { args: ["-c", `command -v ${prometheusPath()}`] }).outputSync().success,
    "prometheus is missing (scripts/setup.sh unpacks it into .tools/bin)",
  );
  await using cg = new TestCgroup();
  await using nf = await Netflow.start([
    "--format",
    "json",
    "--events",
    "begin,update,end,fail",
    "--update-interval",
    "0.3",
    "--cgroup",
    cg.dir,
    "--metrics",
    "0",
    "--metrics-labels",
    "comm,remote_port,remote_net",
  ]);
  const url = /(http:\S+)$/.exec(await nf.stderrLine(/^netflow: metrics at /))![1]!;
  await using prom = await Prometheus.start(new URL(url).host, RULES);
  await until(async () => (await prom.target()).health === "up", 30_000, "the first scrape");

  // Known work: refused connects, then FIN and RST ends of known sizes, then two
  // flows held open across updates. Loopback: each connection is two flows.
  const host = { where: LOCAL, host: "127.0.0.1" },
    client = { where: LOCAL, connectTo: "127.0.0.1" };
  const closed = (() => {
    using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    return String((l.addr as Deno.NetAddr).port); // free once closed: nobody listens there
  })();
  for (let i = 0; i < 2; i++) {
    await using refused = cg.spawn(
      "python3",
      WORKLOAD,
      "connect",
      "--host",
      "127.0.0.1",
      "--port",
      closed,
      "--scenario",
      "refused",
    );
    await refused.done();
  }
  await workload(cg, host, client, { scenario: "client-close", count: 3, bytes: 100_000 });
  await workload(cg, host, client, { scenario: "rst", count: 2, bytes: 5000 });
  await workload(cg, host, client, { scenario: "server-close", count: 2, bytes: 777 });
  const flag = await Deno.makeTempFile({ prefix: "netflow-metrics-wait-" });
  await Deno.remove(flag);
  {
    const args = ["--scenario", "client-close", "--count", "2", "--bytes", "300000"];
    await using srv = cg.spawn("python3", WORKLOAD, "serve", "--host", "127.0.0.1", ...args);
    const port = (await srv.line()).split(" ")[1]!;
    await using cli = cg.spawn(
      "python3",
      WORKLOAD,
      "connect",
      "--host",
      "127.0.0.1",
      "--port",
      port,
      "--wait",
      flag,
      ...args,
    );
    const held = (JSON.parse(await cli.line()) as { ports: number[] }).ports;
    // Open across several update sweeps (0.3 s): two updates with bytes on each of the
    // four flows (two endpoints each); and across two scrapes (1 s).
    await nf.untilFlows(
      (flows) =>
        held.every((p) =>
          ["outgoing", "incoming"].every((d) =>
            atLeast(
              2,
              (e) =>
                onPort(p)(e) && e.conn_direction === d && e.event === "net_flow_tcp_update" &&
                e.bytes_sent! > 0,
            )(flows)
          )
        ),
      "two updates of each held flow",
    );
    await prom.scrapes(2);
    await Deno.writeTextFile(flag, "");
    await cli.done();
    await srv.done();
    await Deno.remove(flag);
  }
  const connections = 3 + 2 + 2 + 2;
  await until(
    async () =>
      (await prom.query("sum(netflow_tcp_flows_ended_total)"))[0]?.value === 2 * connections,
    30_000,
    "Prometheus to scrape every end",
  );
  await prom.scrapes(2); // two more scrapes: nothing may change
  const q = (promql: string, by: string[]) => prom.byLabels(promql, by);
  const promql = {
    bytesSent: await q("sum by (comm) (netflow_tcp_bytes_sent_total)", ["comm"]),
    bytesReceived: await q("sum by (comm) (netflow_tcp_bytes_received_total)", ["comm"]),
    packetsSent: await q("sum by (direction) (netflow_tcp_packets_sent_total)", ["direction"]),
    packetsReceived: await q("sum by (comm) (netflow_tcp_packets_received_total)", ["comm"]),
    retransmits: await q("sum(netflow_tcp_retransmits_total)", []),
    begun: await q("sum by (direction, comm) (netflow_tcp_flows_begun_total)", [
      "direction",
      "comm",
    ]),
    ended: await q("sum by (reason, closed_by) (netflow_tcp_flows_ended_total)", [
      "reason",
      "closed_by",
    ]),
    failed: await q("sum by (reason, direction) (netflow_tcp_flows_failed_total)", [
      "reason",
      "direction",
    ]),
    durations: await q("sum(netflow_tcp_flow_duration_seconds_count)", []),
    rtts: await q("sum(netflow_tcp_rtt_seconds_count)", []),
    topTalkers: await q(
      "topk(3, sum by (comm, remote_port) (netflow_tcp_bytes_sent_total))",
      ["comm", "remote_port"],
    ),
  };
  // The README's queries and recording rules (docs/prometheus/netflow.rules.yml), on this run.
  const readme: Record<string, unknown> = {};
  for (
    const query of [
      "topk(5, sum by (comm) (netflow_tcp_bytes_sent_total + netflow_tcp_bytes_received_total))",
      'sum by (remote_port, closed_by) (netflow_tcp_flows_ended_total{reason="rst"})',
      "sum by (remote_name, remote_net, reason) (netflow_tcp_flows_failed_total)",
      'count by (__name__) ({__name__=~"netflow_tcp_.+"})',
      "comm:netflow_tcp_bytes:rate5m",
      "remote_port_closed_by:netflow_tcp_resets:rate5m",
      "remote:netflow_tcp_connects_failed:rate5m",
    ]
  ) {
    readme[query] = (await prom.query(query)).map((r) => ({ ...r.metric, value: r.value }));
  }
  // Recording rules run every second, on their own schedule: wait for one run on this data.
  let recorded: unknown;
  await until(
    async () => {
      recorded = await prom.query('comm:netflow_tcp_bytes:rate5m{comm="nf-client"}');
      const r = recorded as { value: number }[];
      return r.length === 1 && r[0]!.value > 0;
    },
    10_000,
    "a recording rule's series",
  ).catch((err) => {
    throw new Error(`${err.message}: ${JSON.stringify(recorded)}`);
  });
  assert.ok((await prom.query("remote_port_closed_by:netflow_tcp_resets:rate5m")).length >= 2);
  assert.ok((await prom.query("remote:netflow_tcp_connects_failed:rate5m")).length >= 1);
  const target = await prom.target();
  assert.deepEqual({ health: target.health, lastError: target.lastError }, {
    health: "up",
    lastError: "",
  });
  // What Prometheus asks for (OpenMetrics first) is what netflow answers with.
  const om = await fetch(url, {
    headers: {
      accept:
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    },
  });
  assert.match(om.headers.get("content-type")!, /^application\/openmetrics-text; version=1.0.0/);
  assert.ok((await om.text()).endsWith("\n# EOF\n"));
  const text = await (await fetch(url)).text();
  assert.deepEqual(await promtoolCheck(text), { code: 0, output: "" });
  const rules = await new Deno.Command(promtoolPath(), { args: ["check", "rules", RULES] })
    .output();
  assert.ok(rules.success, new TextDecoder().decode(rules.stderr));

  await nf.untilFlows(atLeast(2 * connections, (e) => e.event === END), "every end on stdout");
  const { events, code, stderr } = await nf.stop();
  assert.equal(code, 0, stderr);
  const flows = events as FlowEvent[];
  // A flow's labels are its first event's (the begin).
  const first = new Map<string, FlowEvent>();
  for (const e of flows) if (!first.has(e.flow_id)) first.set(e.flow_id, e);
  const comm = (e: FlowEvent) => first.get(e.flow_id)!.comm ?? "";
  const ends = flows.filter((e): e is FlowEndEvent => e.event === END);
  const updates = flows.filter((e) => e.event === "net_flow_tcp_update");
  assert.equal(ends.length, 2 * connections);
  // Positive controls: the held flows had updates with counters before their end.
  assert.ok(updates.filter((u) => "bytes_sent" in u && u.bytes_sent! > 0).length >= 4);
  const fromEvents = {
    bytesSent: sums(ends, comm, (e) => e.bytes_sent!),
    bytesReceived: sums(ends, comm, (e) => e.bytes_received!),
    packetsSent: sums(ends, (e) => e.conn_direction, (e) => e.packets_sent!),
    packetsReceived: sums(ends, comm, (e) => e.packets_received!),
    retransmits: sums(ends, () => "", (e) => e.retransmits!),
    begun: sums(
      flows.filter((e) => e.event === "net_flow_tcp_begin"),
      (e) => `${e.conn_direction}|${comm(e)}`,
      () => 1,
    ),
    ended: sums(ends, (e) => `${e.reason}|${e.closed_by}`, () => 1),
    failed: sums(
      flows.filter((e) => e.event === FAIL),
      (e) => `${"reason" in e ? e.reason : ""}|${e.conn_direction}`,
      () => 1,
    ),
    durations: { "": ends.filter((e) => e.duration_ms !== null).length },
    rtts: { "": ends.filter((e) => e.rtt_us !== null).length },
  };
  for (const [k, v] of Object.entries(fromEvents)) {
    assert.deepEqual(sorted(promql[k as keyof typeof promql]), sorted(v), k);
  }
  // The bytes are the workload's: 3 x 100,000 + 2 x 5,000 + 2 x 777 + 2 x 300,000 from nf-client.
  assert.equal(promql.bytesSent["nf-client"], 3 * 100_000 + 2 * 5000 + 2 * 777 + 2 * 300_000);
  assert.equal(promql.ended["rst|local"], 2);
  assert.ok((promql.failed["refused|outgoing"] ?? 0) >= 2);
  if (Deno.env.get("NETFLOW_SHOW_PROMQL") === "1") {
    console.log(JSON.stringify({ promql, fromEvents, readme }, null, 1));
  }
});

const FLOOD = new URL("../workloads/flood.py", import.meta.url).pathname;
const FLOW_METRICS = [
  "netflow_tcp_flows_begun_total",
  "netflow_tcp_flows_ended_total",
  "netflow_tcp_flows_failed_total",
  "netflow_tcp_bytes_sent_total",
  "netflow_tcp_bytes_received_total",
  "netflow_tcp_packets_sent_total",
  "netflow_tcp_packets_received_total",
  "netflow_tcp_retransmits_total",
  "netflow_tcp_flow_duration_seconds",
  "netflow_tcp_rtt_seconds",
];

/** Series per flow metric in exposition text (a histogram's buckets, sum and count included). */
function seriesCounts(text: string): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(FLOW_METRICS.map((m) => [m, 0]));
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || line === "") continue;
    const name = line.split(/[{ ]/)[0]!.replace(/_(bucket|sum|count)$/, "");
    if (name in out) out[name]!++;
  }
  return out;
}

/** The sum of a metric's samples in exposition text. */
function total(text: string, name: string): number {
  let n = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name}{`)) n += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return n;
}

e2eTest(
  "A port scan and a random-name DNS flood keep every flow metric within its budget",
  async () => {
    await using cg = new TestCgroup();
    await using ns = await TestNetns.create();
    // Every name answers with its own address in a /64 routed to the namespace,
    // which takes any address of it as its own.
    const net = ns.nsAddr6.replace(/::2$/, ":8000::");
    await sh("ip", "-6", "route", "add", `${net}/64`, "via", ns.nsAddr6);
    await sh("ip", "-n", ns.name, "-6", "route", "add", "local", `${net}/64`, "dev", "lo");
    const dns = ns.spawn("python3", FLOOD, "dns", "--host", ns.nsAddr4, "--net", `${net}/64`);
    assert.equal(await dns.line(), "listening 53");
    const srv = ns.spawn("python3", FLOOD, "serve", "--port", "8080");
    assert.equal(await srv.line(), "listening 8080");
    const BUDGET = 100;
    await using nf = await Netflow.start([
      "--format",
      "json",
      "--events",
      "begin,end,fail",
      "--cgroup",
      cg.dir,
      "--metrics",
      "0",
      "--metrics-labels",
      "comm,remote_name,remote_port",
      "--metrics-budget",
      String(BUDGET),
    ]);
    const url = /(http:\S+)$/.exec(await nf.stderrLine(/^netflow: metrics at /))![1]!;
    const scrape = async () => await (await fetch(url)).text();
    const run = async (...args: string[]) => {
      await using p = cg.spawn("python3", FLOOD, ...args);
      const out = JSON.parse(await p.line(120_000));
      await p.done(120_000);
      return out;
    };

    // Positive control: a few names give a few series each, named.
    // (50 ms between an answer and its connect: a begin read within a drain of its
    // answer may miss the name; the flood does not wait and misses a few percent.)
    await run("names", "--dns", ns.nsAddr4, "--port", "8080", "--count", "20", "--pause", "50");
    let text = "";
    await until(
      async () => {
        text = await scrape();
        return total(text, "netflow_tcp_flows_ended_total") === 20;
      },
      30_000,
      "the 20 flows' ends",
    );
    const named = new Set(
      [...text.matchAll(
        /^netflow_tcp_flows_begun_total\{[^}]*remote_name="([0-9a-f]{16}\.flood\.test)"/gm,
      )]
        .map((m) => m[1]),
    );
    // Each flow the DNS cache named has its own series before the budget is reached.
    assert.equal(named.size, 20);

    // The attacks: 1,500 random names connected to, and a scan of 2,000 closed ports.
    await run("names", "--dns", ns.nsAddr4, "--port", "8080", "--count", "1500");
    await run("scan", "--host", ns.nsAddr4, "--first", "10000", "--last", "11999");
    await until(
      async () => {
        text = await scrape();
        return total(text, "netflow_tcp_flows_ended_total") === 1520 &&
          total(text, "netflow_tcp_flows_failed_total") >= 2000;
      },
      60_000,
      "every flow and failure in /metrics",
    );
    const counts = seriesCounts(text);
    assert.deepEqual(await promtoolCheck(text), { code: 0, output: "" });
    const { events, code, stderr } = await nf.stop();
    assert.equal(code, 0, stderr);
    const flows = events as FlowEvent[];
    const fails = flows.filter((e) => e.event === FAIL);
    const begins = flows.filter((e) => e.event === "net_flow_tcp_begin");
    // The events had the cardinality: over a thousand names (each flow the DNS
    // cache named; the first ones named as many series), 2,000 ports.
    const names = new Set(begins.map((e) => e.dst_dns[0]).filter((n) => n !== undefined));
    console.log(
      `${names.size} names in ${begins.length} begins; ${stderr.trim().split("\n").at(-1)}`,
    );
    // The positive control's series are the names the first 20 flows had.
    const first20 = begins.slice(0, 20).map((e) => e.dst_dns[0]).filter((n) => n !== undefined);
    assert.deepEqual([...named].sort(), first20.sort());
    assert.ok(names.size >= 10 * BUDGET, `${names.size} names`);
    for (const n of named) assert.ok(names.has(n!));
    assert.equal(new Set(fails.map((e) => e.dst_port)).size, 2000);
    // The metrics did not: every metric within its budget, sums still exact.
    for (const [metric, n] of Object.entries(counts)) {
      assert.ok(n <= BUDGET, `${metric}: ${n} series`);
      assert.ok(n > 0, `${metric} has series`);
    }
    assert.equal(total(text, "netflow_tcp_flows_begun_total"), begins.length);
    assert.equal(total(text, "netflow_tcp_flows_failed_total"), fails.length);
    const ends = flows.filter((e): e is FlowEndEvent => e.event === END);
    assert.equal(
      total(text, "netflow_tcp_bytes_sent_total"),
      ends.reduce((a, e) => a + e.bytes_sent!, 0),
    );
    assert.ok(total(text, "netflow_metrics_series_folded_total") > 0);
    console.log(`series per metric (budget ${BUDGET}): ${JSON.stringify(counts)}`);
    console.log(
      `folded: ${
        [...text.matchAll(/^netflow_metrics_series_folded_total\{metric="(\w+)"\} (\d+)/gm)]
          .map((m) => `${m[1]}=${m[2]}`).join(" ")
      }`,
    );
  },
);
