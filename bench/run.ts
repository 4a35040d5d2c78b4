/**
 * netflow against libbpf-tools tcplife, on the same workloads, in one run:
 *
 *   sudo deno task bench [--quick] [--only storm|bulk|held|hoststorm|rates|latency|sockets] [--lock-held]
 *                        [--cgroup-mode] [--mode default|end] [--before DIR]
 *
 * One file per benchmark (bench/storm.ts, bulk.ts, held.ts, hoststorm.ts, latency.ts, sockets.ts),
 * sharing bench/lib/ (processes, the namespace and cgroup, the two tools).
 * The namespaced ones run in a network namespace and child cgroup of their
 * own, so the namespace's /proc/net/snmp counts exactly their connections;
 * the whole-host one holds the shared lock (/tmp/netflow-ok.lock) while it
 * runs (`--lock-held` when the caller holds it already; `--cgroup-mode`: on
 * the benchmark's cgroup instead, no lock; `--before DIR`: bulk also runs
 * another checkout's netflow, interleaved). Writes the tables
 * to bench/RESULTS.md (not with --quick or --only), then bench/NOTES.md.
 *
 * @module
 */
import { bulk, figures, renderBulk } from "./bulk.ts";
import { held, renderHeld } from "./held.ts";
import { hostStorm, type HostStormResult, renderHostStorm } from "./hoststorm.ts";
import { latency, renderLatency } from "./latency.ts";
import { machine, ROOT, setUp } from "./lib/env.ts";
import { withHostLock } from "./lib/lock.ts";
import { fmt } from "./lib/proc.ts";
import { rates, renderRates } from "./rates.ts";
import { renderSockets, sockets, sweepRow } from "./sockets.ts";
import { renderStorm, storm } from "./storm.ts";

const QUICK = Deno.args.includes("--quick");
const ONLY = Deno.args.includes("--only") ? Deno.args[Deno.args.indexOf("--only") + 1] : undefined;
const LOCK_HELD = Deno.args.includes("--lock-held");
/** The host storm on the benchmark's cgroup (netflow --cgroup), without the whole-host lock. */
const CGROUP_MODE = Deno.args.includes("--cgroup-mode");
/** `--mode default|end`: the host storm in one mode only. */
const MODE = Deno.args.includes("--mode") ? Deno.args[Deno.args.indexOf("--mode") + 1] : undefined;
/** `--before DIR`: another checkout, a second netflow in bulk's rounds. */
const BEFORE = Deno.args.includes("--before")
  ? Deno.args[Deno.args.indexOf("--before") + 1]
  : undefined;
const NAMES = ["storm", "bulk", "held", "hoststorm", "rates", "latency", "sockets"];
const want = (name: string) => ONLY === undefined || ONLY === name;

const STORM = QUICK ? { levels: [4, 64], seconds: 4 } : { levels: [1, 4, 16, 64], seconds: 10 };
const IPERF = QUICK
  ? { rounds: 2, seconds: 2, connections: 1_000 }
  : { rounds: 5, seconds: 5, connections: 5_000 };
const HELD_FLOWS = QUICK ? 10_000 : 100_000;
const SOCKETS = QUICK
  ? { n: 5_000, window: 2, runs: 3, stormSeconds: 3 }
  : { n: 100_000, window: 10, runs: 9, stormSeconds: 8 };
const HOST = QUICK ? { connections: 4_000, pairs: 1 } : { connections: 60_000, pairs: 5 };
const RATES = QUICK
  ? { levels: [2_000], seconds: 3 }
  : { levels: [1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 8_000, 10_000], seconds: 8 };
const LATENCY = QUICK
  ? { rates: [200], seconds: 5 }
  : { rates: [200, 1000, 2000, 4000], seconds: 10 };

async function main() {
  if (Deno.uid() !== 0) throw new Error("the benchmark needs root");
  if (ONLY !== undefined && !NAMES.includes(ONLY)) {
    throw new Error(`--only takes one of ${NAMES.join(", ")}, not "${ONLY}"`);
  }
  const cleanup = await setUp();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      console.error(`bench: ${signal}, cleaning up`);
      cleanup().finally(() => Deno.exit(130));
    });
  }
  const sections: string[] = [];
  const summaries: string[] = [];
  const t0 = performance.now();
  const targets: string[] = [];
  try {
    if (want("hoststorm")) {
      // One lock hold per mode: each stays within a few minutes.
      const results: HostStormResult[] = [];
      for (const mode of (["default", "end"] as const).filter((m) => !MODE || m === MODE)) {
        const run = () => hostStorm(HOST.connections, HOST.pairs, mode, CGROUP_MODE);
        results.push(CGROUP_MODE ? await run() : await withHostLock(LOCK_HELD, run));
      }
      sections.push(...renderHostStorm(results));
      summaries.push(...results.flatMap((r) => r.summaries.map((s) => `host ${r.mode}: ${s}`)));
      const def = results.find((r) => r.mode.startsWith("default"));
      const end = results.find((r) => r.mode.startsWith("end"));
      if (def) targets.push(row("CPU per 1,000 flows, begin+end JSON, at most 1.0x", def.ratio, 1));
      if (end) {
        targets.push(row("CPU per 1,000 flows, --events end only, at most 0.6x", end.ratio, 0.6));
      }
    }
    if (want("rates")) {
      const r = await withHostLock(LOCK_HELD, () => rates(RATES.levels, RATES.seconds));
      sections.push(...renderRates(r, RATES.seconds));
      summaries.push(...r.rows.map((x) => `rates ${x.asked}/s: ${x.summary}`));
      targets.push(
        `| highest loss-free rate, netflow against tcplife (reported) | ${fmt(r.nfMax)}/s against ${
          fmt(r.tlMax)
        }/s | ${r.nfMax >= r.tlMax ? "yes" : "no"} |`,
      );
    }
    if (want("storm")) {
      const s = await storm(STORM.levels, STORM.seconds);
      sections.push(...renderStorm(s));
      summaries.push(`storm: ${s.summary}`);
    }
    if (want("bulk")) {
      const b = await bulk(IPERF.rounds, IPERF.seconds, IPERF.connections, BEFORE);
      sections.push(...renderBulk(b, IPERF.rounds, IPERF.seconds));
      for (const v of b.variants) summaries.push(...v.summaries.map((s) => `${v.name}: ${s}`));
      const f = figures(b, b.variants[0]!);
      targets.push(
        `| kernel ns per data packet (cgroup_skb, iperf3) at most 50 | ${fmt(f.dataNs, 1)} (floor ${
          fmt(f.floorNs, 1)
        }) | ${f.dataNs <= 50 ? "yes" : "no"} |`,
        `| kernel ns per TCP control packet, per sock_ops callback (reported) | ${
          fmt(f.controlNs, 0)
        }, ${fmt(f.sockopsNs, 0)} | - |`,
        `| iperf3 throughput within 2% of no monitor | ${fmt(f.ratio, 3)}x | ${
          f.ratio >= 0.98 ? "yes" : "no"
        } |`,
      );
    }
    if (want("latency")) {
      const rows = await latency(LATENCY.rates, LATENCY.seconds);
      sections.push(...renderLatency(rows, LATENCY.seconds));
      summaries.push(...rows.map((r) => `latency ${r.rate}/s: ${r.summary}`));
      const at200 = rows.find((r) => r.rate === 200);
      const top = rows.filter((r) => r.lossFree).at(-1);
      if (at200) {
        targets.push(
          `| latency p99 under 15 ms at 200/s | p50 ${fmt(at200.p50Ms, 1)} ms, p99 ${
            fmt(at200.p99Ms, 1)
          } ms | ${at200.p99Ms < 15 ? "yes" : "no"} |`,
        );
      }
      targets.push(
        `| latency p99 under 15 ms at the highest loss-free rate | ${
          top
            ? `${fmt(top.achieved)}/s: p50 ${fmt(top.p50Ms, 1)} ms, p99 ${fmt(top.p99Ms, 1)} ms`
            : "none"
        } | ${top && top.p99Ms < 15 ? "yes" : "no"} |`,
      );
    }
    if (want("held")) {
      const h = await held(HELD_FLOWS);
      sections.push(...renderHeld(h));
      summaries.push(`held: ${h.summary}`);
      const mb = (mib: number) => mib * 1.048576;
      targets.push(
        `| peak RSS under 150 MB with ${h.flows} open flows | ${fmt(mb(h.rssOpen))} MB | ${
          mb(h.rssOpen) < 150 ? "yes" : "no"
        } |`,
        `| peak RSS under 200 MB when they all close | ${fmt(mb(h.rssPeak))} MB | ${
          mb(h.rssPeak) < 200 ? "yes" : "no"
        } |`,
      );
    }
    if (want("sockets")) {
      const s = await sockets(SOCKETS);
      sections.push(...renderSockets(s));
      summaries.push(...s.summaries);
      targets.push(sweepRow(s));
    }
  } finally {
    await cleanup();
  }
  const seconds = (performance.now() - t0) / 1000;
  const report = [
    `# netflow benchmark results`,
    ``,
    `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC, ${await machine()}; ` +
    `${QUICK ? "quick" : "full"} run${ONLY ? ` of ${ONLY}` : ""}, ${fmt(seconds)} s.`,
    ``,
    ...sections,
    `## Targets (issue 24)`,
    ``,
    `| target | measured | met |`,
    `|---|---|---|`,
    ...targets,
    ``,
    `netflow's own summaries:`,
    ``,
    ...summaries.map((s) => `- ${s.replace(/^netflow: /, "")}`),
    ``,
    Deno.readTextFileSync(`${ROOT}bench/NOTES.md`),
  ].join("\n");
  console.log(report);
  if (!QUICK && ONLY === undefined) Deno.writeTextFileSync(`${ROOT}bench/RESULTS.md`, report);
  else console.error("(--quick or --only: bench/RESULTS.md left as it was)");
}

function row(target: string, ratio: number, goal: number): string {
  return `| ${target} | ${fmt(ratio, 2)}x | ${ratio <= goal ? "yes" : "no"} |`;
}

if (import.meta.main) {
  try {
    await main();
  } catch (err) {
    console.error(`bench: ${err instanceof Error ? err.message : err}`);
    Deno.exit(1);
  }
}
