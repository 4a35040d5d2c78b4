/**
 * e2e (root): `--metrics` scraped during a run, judged by promtool, with
 * counters that match the exit summary.
 */
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { e2eTest, LOCAL, TestCgroup, withTimeout, workload } from "../helpers/e2e.ts";
import { Netflow, runNetflow } from "../helpers/netflow.ts";
import { promtoolCheck, promtoolPath, sample } from "../helpers/promtool.ts";

async function scrape(url: string): Promise<string> {
  const response = await fetch(url);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  return await response.text();
}

const BEGIN = 'netflow_events_total{event="net_flow_tcp_begin"}';
const END = 'netflow_events_total{event="net_flow_tcp_end"}';

e2eTest("/metrics during a run passes promtool and matches the exit summary", async () => {
  assert.ok(
    new Deno.Command("sh", { args: ["-c", `command -v ${promtoolPath()}`] }).outputSync().success,
    "promtool is missing (scripts/setup.sh unpacks it into .tools/bin)",
  );
  await using cg = new TestCgroup();
  // A collector for --ipfix: the exporter's counters are in /metrics too.
  const collector = createSocket("udp4");
  await new Promise<void>((r) => collector.bind(0, "127.0.0.1", r));
  const ipfix = `udp://127.0.0.1:${collector.address().port}`;
  using _collector = { [Symbol.dispose]: () => collector.close() };
  await using nf = await Netflow.start([
    "--format",
    "json",
    "--cgroup",
    cg.dir,
    "--metrics",
    "0",
    "--ipfix",
    ipfix,
  ]);
  const [, url] = /^netflow: metrics at (http:\/\/127\.0\.0\.1:\d+\/metrics)$/.exec(
    await nf.stderrLine(/^netflow: metrics at /),
  )!;
  assert.ok(url, "the metrics line names a loopback URL");
  const before = await scrape(url);
  assert.deepEqual(await promtoolCheck(before), { code: 0, output: "" });
  assert.equal(sample(before, BEGIN), 0);
  assert.equal(sample(before, "netflow_flows_open"), 0);
  // --version and the build_info metric name the same version.
  const version = /^netflow (\S+)\n$/.exec((await runNetflow(["--version"])).stdout)?.[1];
  assert.equal(sample(before, `netflow_build_info{version="${version}"}`), 1);

  // Three loopback connections: each gives an outgoing and an incoming begin and end.
  await workload(
    cg,
    { where: LOCAL, host: "127.0.0.1" },
    { where: LOCAL, connectTo: "127.0.0.1" },
    {
      count: 3,
    },
  );
  let during = before;
  await withTimeout(
    (async () => {
      while (sample(during, END) !== 6) {
        await new Promise((r) => setTimeout(r, 50)); // poll the condition, bounded by the timeout
        during = await scrape(url);
      }
    })(),
    30_000,
    "six end events in /metrics",
  );
  assert.deepEqual(await promtoolCheck(during), { code: 0, output: "" });
  assert.equal(sample(during, BEGIN), 6);
  assert.equal(sample(during, "netflow_flows_open"), 0);
  const notFound = await fetch(url.replace("/metrics", "/"));
  assert.equal(notFound.status, 404);
  await notFound.body?.cancel();

  await nf.until((events) => events.length >= 12, "the 12 events on stdout");
  const { events, stderr, code } = await nf.stop();
  assert.equal(code, 0, stderr);
  assert.equal(events.length, 12);
  const [, n, lost, evicted, malformed, dns] =
    /^netflow: (\d+) events, (\d+) lost records, (\d+) evicted flows, (\d+) malformed records, (\d+) DNS responses/m
      .exec(stderr)!.map(Number);
  assert.equal(n, sample(during, BEGIN)! + sample(during, END)!);
  assert.equal(lost, sample(during, "netflow_records_lost_total"));
  assert.equal(evicted, sample(during, "netflow_flows_evicted_total"));
  assert.equal(malformed, sample(during, "netflow_records_malformed_total"));
  assert.equal(dns, sample(during, "netflow_dns_responses_total"));
  const sent = sample(during, `netflow_ipfix_records_sent_total{collector="${ipfix}"}`);
  assert.equal(sent, 6); // one biflow record per ended local endpoint
  assert.equal(sample(during, `netflow_ipfix_records_dropped_total{collector="${ipfix}"}`), 0);
  assert.equal(sample(during, `netflow_ipfix_queued_records{collector="${ipfix}"}`), 0);
  assert.match(stderr, new RegExp(`${ipfix}: ${sent} IPFIX records sent, 0 dropped`));
  // Stopped: the port is closed.
  await assert.rejects(fetch(url));
});

e2eTest("--metrics on a port in use is one clear line and exit 1", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  const { code, stdout, stderr } = await runNetflow(["--metrics", `127.0.0.1:${port}`]);
  assert.equal(stdout, "");
  assert.equal(
    stderr,
    `netflow: Cannot serve metrics on "127.0.0.1:${port}": Address already in use\n`,
  );
  assert.equal(code, 1);
});
