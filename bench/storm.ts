/**
 * Connection storm in the benchmark's namespace: wrk (Connection: close)
 * against a local HTTP server, both in the watched cgroup, at several
 * concurrency levels; netflow (one process for all levels) and tcplife (one
 * per level: its stdout is block-buffered) side by side. The namespace's own
 * TCP counters are the reference.
 *
 * @module
 */
import { bpfStats, CGROUP, endpoints, nsPerRun, ROOT, tcpCounters } from "./lib/env.ts";
import { CLK_TCK, cpuTicks, fmt, run, sleep, spawn, waitForLine } from "./lib/proc.ts";
import { Netflow, Tcplife } from "./lib/tools.ts";

const HTTP_PORT = 8080;
const SKB = ["netflow_ingress", "netflow_egress"];

export interface StormRow {
  connections: number;
  rate: number;
  reference: number;
  netflowBegin: number;
  netflowEnd: number;
  tcplife: number;
  nfCpuPer1k: number;
  tlCpuPer1k: number;
  bpfNsPerRun: number;
}

export interface StormResult {
  rows: StormRow[];
  totals: { reference: number; begin: number; end: number };
  summary: string;
}

export async function storm(levels: number[], seconds: number): Promise<StormResult> {
  const server = spawn(Deno.execPath(), [
    "run",
    "--allow-net",
    `${ROOT}bench/http_server.ts`,
    String(HTTP_PORT),
  ], { watched: true, stdout: "piped" });
  await waitForLine(server.stdout, /^listening/);
  const nf = await Netflow.start("storm", { cgroup: CGROUP });
  const rows: StormRow[] = [];
  let summary = "";
  try {
    let seenNf = { begin: 0, end: 0 };
    for (const c of levels) {
      const tl = await Tcplife.start(`tcplife-${c}`);
      const [snmp0, nf0, tl0, bpf0] = [
        await tcpCounters(),
        cpuTicks(nf.pid),
        cpuTicks(tl.pid),
        await bpfStats(nf.pid),
      ];
      const out = await run("wrk", [
        `-t${Math.min(2, c)}`,
        `-c${c}`,
        `-d${seconds}s`,
        "-H",
        "Connection: close",
        `http://127.0.0.1:${HTTP_PORT}/`,
      ], { watched: true });
      await sleep(1500); // the last closes reach both tools
      const [snmp1, nf1, tl1, bpf1] = [
        await tcpCounters(),
        cpuTicks(nf.pid),
        cpuTicks(tl.pid),
        await bpfStats(nf.pid),
      ];
      await tl.stop();
      const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
      const reference = endpoints(snmp0, snmp1);
      const nfNow = nf.count(HTTP_PORT);
      const row: StormRow = {
        connections: requests,
        rate: requests / seconds,
        reference,
        netflowBegin: nfNow.begin - seenNf.begin,
        netflowEnd: nfNow.end - seenNf.end,
        tcplife: tl.count(HTTP_PORT),
        nfCpuPer1k: (nf1 - nf0) / CLK_TCK / (reference / 1000),
        tlCpuPer1k: (tl1 - tl0) / CLK_TCK / (reference / 1000),
        bpfNsPerRun: nsPerRun(bpf0, bpf1, SKB).perRun,
      };
      rows.push(row);
      console.error(`storm c=${c}: ${JSON.stringify(row)}`);
      seenNf = nfNow;
    }
  } finally {
    summary = await nf.stop();
    server.kill("SIGTERM");
    await server.status;
  }
  // After netflow stopped, everything it saw is in its file: these are exact.
  const all = nf.count(HTTP_PORT);
  const totals = {
    reference: rows.reduce((a, r) => a + r.reference, 0),
    begin: all.begin,
    end: all.end,
  };
  return { rows, totals, summary };
}

export function renderStorm(s: StormResult): string[] {
  return [
    `## Connection storm (wrk, Connection: close, loopback in a network namespace)`,
    ``,
    `Each connection has two local endpoints (wrk and the server are both watched),`,
    `so a connection gives two flows. "kernel" is the namespace's own count of`,
    `established endpoints (ActiveOpens - AttemptFails + PassiveOpens).`,
    ``,
    `| wrk connections | conn/s | kernel endpoints | netflow begin | netflow end | tcplife | netflow CPU s/1k flows | tcplife CPU s/1k flows | ratio | BPF ns/run |`,
    `|---|---|---|---|---|---|---|---|---|---|`,
    ...s.rows.map((r) =>
      `| ${r.connections} | ${fmt(r.rate)} | ${r.reference} | ${r.netflowBegin} | ` +
      `${r.netflowEnd} | ${r.tcplife} | ${fmt(r.nfCpuPer1k, 3)} | ${fmt(r.tlCpuPer1k, 3)} | ` +
      `${fmt(r.nfCpuPer1k / r.tlCpuPer1k, 2)} | ${fmt(r.bpfNsPerRun)} |`
    ),
    `| all levels, counted after netflow stopped | | ${s.totals.reference} | ${s.totals.begin} | ${s.totals.end} | | | | | |`,
    ``,
  ];
}
