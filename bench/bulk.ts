/**
 * Bulk transfer: iperf3 over loopback in the benchmark's namespace, rounds
 * without and with netflow interleaved; throughput medians and the kernel
 * cost per packet of netflow's cgroup_skb programs (kernel.bpf_stats_enabled).
 *
 * @module
 */
import { bpfStats, CGROUP, NS, nsPerRun } from "./lib/env.ts";
import { fmt, median, run, sh, sleep, spawn } from "./lib/proc.ts";
import { Netflow } from "./lib/tools.ts";

const IPERF_PORT = 5201;
const SKB = ["netflow_ingress", "netflow_egress"];

export interface BulkResult {
  without: number;
  withNf: number;
  all: { without: number[]; withNf: number[] };
  bpfNsPerPacket: number;
  packets: number;
  /** sock_ops callbacks during the transfers and their cost. */
  sockopsNs: number;
  sockopsRuns: number;
  summaries: string[];
}

/** Waits until something in the namespace listens on `port` (tools buffer their "ready" lines). */
async function listening(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const out = await sh("ip", "netns", "exec", NS, "ss", "-Hltn", `sport = :${port}`);
    if (out.trim() !== "") return;
    await sleep(50);
  }
  throw new Error(`nothing listens on port ${port}`);
}

async function iperfOnce(seconds: number): Promise<number> {
  const server = spawn("iperf3", ["-s", "-1", "-p", String(IPERF_PORT)], { watched: true });
  await listening(IPERF_PORT);
  const out = await run("iperf3", [
    "-c",
    "127.0.0.1",
    "-p",
    String(IPERF_PORT),
    "-t",
    String(seconds),
    "-J",
  ], { watched: true });
  await server.status;
  return JSON.parse(out).end.sum_received.bits_per_second / 1e9;
}

export async function bulk(rounds: number, seconds: number): Promise<BulkResult> {
  const without: number[] = [], withNf: number[] = [];
  let bpfNs = 0, bpfRuns = 0, sockopsNs = 0, sockopsRuns = 0;
  const summaries: string[] = [];
  for (let r = 0; r < rounds; r++) {
    without.push(await iperfOnce(seconds));
    const nf = await Netflow.start(`iperf-${r}`, { cgroup: CGROUP });
    const b0 = await bpfStats(nf.pid);
    withNf.push(await iperfOnce(seconds));
    const b1 = await bpfStats(nf.pid);
    const skb = nsPerRun(b0, b1, SKB), ops = nsPerRun(b0, b1, ["netflow_sockops"]);
    bpfNs += skb.ns;
    bpfRuns += skb.runs;
    sockopsNs += ops.ns;
    sockopsRuns += ops.runs;
    summaries.push(await nf.stop());
  }
  return {
    without: median(without),
    withNf: median(withNf),
    all: { without, withNf },
    bpfNsPerPacket: bpfNs / Math.max(1, bpfRuns),
    packets: bpfRuns,
    sockopsNs,
    sockopsRuns,
    summaries,
  };
}

export function renderBulk(b: BulkResult, rounds: number): string[] {
  return [
    `## Bulk transfer (iperf3 over loopback, ${rounds} rounds, medians)`,
    ``,
    `| without netflow | with netflow | ratio | BPF ns per packet (cgroup_skb) | packets seen | sock_ops ns per callback |`,
    `|---|---|---|---|---|---|`,
    `| ${fmt(b.without, 2)} Gbit/s | ${fmt(b.withNf, 2)} Gbit/s | ${
      fmt(b.withNf / b.without, 3)
    } | ` +
    `${fmt(b.bpfNsPerPacket, 1)} | ${b.packets} | ${
      fmt(b.sockopsNs / Math.max(1, b.sockopsRuns), 0)
    } (${b.sockopsRuns} callbacks) |`,
    ``,
    `All rounds (Gbit/s), interleaved: without ${
      b.all.without.map((x) => fmt(x, 2)).join(", ")
    }; ` +
    `with ${b.all.withNf.map((x) => fmt(x, 2)).join(", ")}.`,
    ``,
  ];
}
