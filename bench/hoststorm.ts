/**
 * The whole host (netflow with no --cgroup): a storm of short loopback
 * connections (bench/lib/storm.py: asyncio clients, unthrottled, so at the
 * highest rate this machine sustains with both monitors running) in the
 * host's namespace, netflow and tcplife side by side on the same traffic,
 * CPU of each from /proc. Pairs are interleaved: each pair is one storm
 * without any monitor (the baseline) and one with both; the ratio is taken
 * per pair, and the median reported (tcplife's own CPU varies by tens of
 * percent from run to run here).
 *
 * @module
 */
import { CGROUP } from "./lib/env.ts";
import { CLK_TCK, cpuTicks, fmt, median, settled, sleep } from "./lib/proc.ts";
import { runStorm } from "./lib/storm_run.ts";
import { Netflow, Tcplife } from "./lib/tools.ts";

/** The storm's server port (its lines are found by it in both tools' output). */
const PORT = 18404;
const CLIENTS = 2;
const CONCURRENCY = 32;
/** Connections of the warm-up storm each pair's monitors see before the measured one (at most half of it). */
const WARM = 10_000;
/** Its port: the measured storm's lines are counted by PORT. */
const WARM_PORT = PORT + 1;

export interface HostStormPair {
  /** Endpoints the storm made (two per connection). */
  endpoints: number;
  baselineRate: number;
  rate: number;
  /** The workload's own CPU s per 1,000 endpoints, without and with the monitors. */
  workloadCpuBase: number;
  workloadCpu: number;
  nfCpuPer1k: number;
  tlCpuPer1k: number;
  /** The same of the warm-up storm just before (both monitors freshly started: V8 compiles netflow's hot code then). */
  nfColdPer1k: number;
  tlColdPer1k: number;
  nfBegin: number;
  nfEnd: number;
  tlLines: number;
}

export interface HostStormResult {
  mode: string;
  pairs: HostStormPair[];
  ratio: number;
  nfCpuPer1k: number;
  tlCpuPer1k: number;
  summaries: string[];
}

/** One unpaced storm of `n` connections. */
function stormOnce(n: number, inCgroup: boolean, port = PORT) {
  return runStorm({
    port,
    connections: n,
    clients: CLIENTS,
    concurrency: CONCURRENCY,
    inCgroup,
  });
}

/**
 * `pairs` interleaved pairs of storms of `n` connections in one mode. With
 * `cgroupMode` the storm runs in the benchmark's cgroup and netflow watches
 * only it (no lock needed: for when the whole-host lock is taken for long);
 * tcplife is host-wide either way.
 */
export async function hostStorm(
  n: number,
  pairs: number,
  mode: "default" | "end",
  cgroupMode = false,
): Promise<HostStormResult> {
  const out: HostStormPair[] = [];
  const summaries: string[] = [];
  for (let i = 0; i < pairs; i++) {
    const base = await stormOnce(n, cgroupMode);
    const nf = await Netflow.start(`host-${mode}-${i}`, {
      cgroup: cgroupMode ? CGROUP : null,
      extra: mode === "end" ? ["--events", "net_flow_tcp_end"] : [],
    });
    const tl = await Tcplife.start(`host-tcplife-${mode}-${i}`);
    await sleep(500);
    // A warm-up storm first, measured on its own: a monitor runs for days, and its first
    // seconds (V8 compiling netflow's hot paths) are not what a flow costs it then.
    const [c0, d0] = [cpuTicks(nf.pid), cpuTicks(tl.pid)];
    const warm = await stormOnce(Math.min(WARM, Math.ceil(n / 2)), cgroupMode, WARM_PORT);
    await settled(nf.file);
    const [c1, d1] = [cpuTicks(nf.pid), cpuTicks(tl.pid)];
    const warmK = 2 * warm.done / 1000;
    const [nf0, tl0] = [cpuTicks(nf.pid), cpuTicks(tl.pid)];
    const storm = await stormOnce(n, cgroupMode);
    await settled(nf.file);
    await sleep(500);
    const [nf1, tl1] = [cpuTicks(nf.pid), cpuTicks(tl.pid)];
    await tl.stop();
    summaries.push(await nf.stop());
    const counts = nf.count(PORT);
    const endpoints = 2 * storm.done;
    const pair: HostStormPair = {
      endpoints,
      baselineRate: base.done / base.seconds,
      rate: storm.done / storm.seconds,
      workloadCpuBase: base.ticks / CLK_TCK / (2 * base.done / 1000),
      workloadCpu: storm.ticks / CLK_TCK / (endpoints / 1000),
      nfCpuPer1k: (nf1 - nf0) / CLK_TCK / (endpoints / 1000),
      tlCpuPer1k: (tl1 - tl0) / CLK_TCK / (endpoints / 1000),
      nfColdPer1k: (c1 - c0) / CLK_TCK / warmK,
      tlColdPer1k: (d1 - d0) / CLK_TCK / warmK,
      nfBegin: counts.begin,
      nfEnd: counts.end,
      tlLines: tl.count(PORT),
    };
    console.error(`host storm ${mode} ${i}: ${JSON.stringify(pair)}`);
    out.push(pair);
  }
  return {
    mode: cgroupMode ? `${mode}, cgroup mode` : mode,
    pairs: out,
    ratio: median(out.map((p) => p.nfCpuPer1k / p.tlCpuPer1k)),
    nfCpuPer1k: median(out.map((p) => p.nfCpuPer1k)),
    tlCpuPer1k: median(out.map((p) => p.tlCpuPer1k)),
    summaries,
  };
}

export function renderHostStorm(results: HostStormResult[]): string[] {
  const lines = [
    `## Whole host: loopback storm, netflow and tcplife side by side`,
    ``,
    `netflow with no --cgroup (the root cgroup, every feature on: owners, DNS, kernel filters;`,
    `rows marked "cgroup mode": netflow --cgroup on the storm's own cgroup, run without the lock),`,
    `JSON Lines to a file; tcplife (libbpf-tools) to a file. Each pair: one storm without any`,
    `monitor (baseline), then both monitors started, a warm-up storm of ${WARM} connections (its`,
    `CPU in the "warm-up" columns: a fresh netflow's V8 compiles its hot paths then), and the`,
    `measured storm; ${CLIENTS} asyncio client processes of ${CONCURRENCY} connections at a time,`,
    `unthrottled. CPU from /proc/PID/stat. Ratio per pair, then the median.`,
    `No filter on either tool: both see (and pay for) the rest of this shared host's traffic too;`,
    `their lines are counted by the storm's port ${PORT}.`,
    ``,
    `| mode | pair | endpoints | conn/s without / with monitors | workload CPU s/1k without / with | netflow begin / end | tcplife lines | netflow CPU s/1k | tcplife CPU s/1k | ratio | warm-up: netflow / tcplife CPU s/1k, ratio |`,
    `|---|---|---|---|---|---|---|---|---|---|---|`,
  ];
  for (const r of results) {
    r.pairs.forEach((p, i) =>
      lines.push(
        `| ${r.mode} | ${i + 1} | ${p.endpoints} | ${fmt(p.baselineRate)} / ${fmt(p.rate)} | ` +
          `${fmt(p.workloadCpuBase, 3)} / ${fmt(p.workloadCpu, 3)} | ${p.nfBegin} / ${p.nfEnd} | ` +
          `${p.tlLines} | ${fmt(p.nfCpuPer1k, 4)} | ${fmt(p.tlCpuPer1k, 4)} | ` +
          `${fmt(p.nfCpuPer1k / p.tlCpuPer1k, 2)} | ${fmt(p.nfColdPer1k, 4)} / ${
            fmt(p.tlColdPer1k, 4)
          }, ${fmt(p.nfColdPer1k / p.tlColdPer1k, 2)} |`,
      )
    );
    lines.push(
      `| **${r.mode}: median** | | | | | | | ${fmt(r.nfCpuPer1k, 4)} | ${
        fmt(r.tlCpuPer1k, 4)
      } | **${fmt(r.ratio, 2)}** | ${
        fmt(median(r.pairs.map((p) => p.nfColdPer1k / p.tlColdPer1k)), 2)
      } |`,
    );
  }
  lines.push(``);
  return lines;
}
