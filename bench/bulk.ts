/**
 * Bulk transfer and the kernel cost per packet: iperf3 over loopback in the
 * benchmark's namespace, rounds without netflow and with it interleaved. The
 * throughput transfers run with bpf_stats released and nothing but netflow
 * attached. Then, with netflow still running, a shorter transfer and a
 * connection storm (bench/lib/storm.py) are costed: kernel.bpf_stats_enabled
 * gives the run time of netflow's cgroup_skb pair and sock_ops program;
 * beside netflow in the same cgroup, bench/fixtures/skb_probe.bpf.c gives the
 * floor of that measurement (a return-1 pair) and the packets by class
 * (bench/lib/probe.ts).
 *
 * - Every netflow runs twice a round: with the default events, and with
 *   net_flow_tcp_fail too (then a SYN or RST reaching a listener, or the
 *   kernel's RST+ACK to one, takes the full way in the kernel).
 * - ns per data packet: netflow's cgroup_skb ns per run during iperf3 (its
 *   packets are data segments but for a handful of control packets, counted),
 *   and the same less the floor pair's ("own").
 * - ns per control packet: the storm's run time less the floor's, less its
 *   other packets at iperf3's own figure, over its control packets (SYN, FIN,
 *   RST: half its packets), plus the storm's floor.
 * - Per run without bpf_stats' timing: BPF_PROG_TEST_RUN of netflow's pair and
 *   the floor pair on test packets (bench/lib/testrun.ts), bpf_stats released.
 * - `--before DIR`: another checkout's netflow (its src/cli.ts) in every
 *   round as well, the order of the variants alternating between rounds.
 *
 * @module
 */
import { bpfStats, CGROUP, NS, nsPerRun, ROOT, withBpfStatsOff } from "./lib/env.ts";
import { type Classes, FLOOR, Probe, probeDelta } from "./lib/probe.ts";
import { fmt, median, run, sh, sleep, spawn, waitForLine } from "./lib/proc.ts";
import { type PacketClass, PACKETS, progIds, testRun } from "./lib/testrun.ts";
import { Netflow } from "./lib/tools.ts";

const IPERF_PORT = 5201;
const STORM_PORT = 18405;
const SKB = ["netflow_ingress", "netflow_egress"];
const SOCKOPS = ["netflow_sockops"];
const FAIL_EVENTS = "net_flow_tcp_begin,net_flow_tcp_end,net_flow_tcp_fail";
const TEST_RUNS = 200_000;
/** The transfer whose packets are costed (the throughput one is another, without the probe). */
const COST_SECONDS = 3;
const TEST_ALTERNATIONS = 5;
/** The test runs: netflow's program and the floor's, each on each test packet. */
const TESTED = [["netflow_ingress", "floor_ingress"], ["netflow_egress", "floor_egress"]] as const;

/** Run time and runs of some programs over a phase. */
interface Cost {
  ns: number;
  runs: number;
}

/** One netflow (this tree's, or `--before`'s) over every round. */
export interface VariantResult {
  name: string;
  gbps: number[];
  /** netflow's cgroup_skb pair, the floor pair and the classes during iperf3. */
  bulk: { skb: Cost; sockops: Cost; floorNs: number; classes: Classes };
  storm: { skb: Cost; sockops: Cost; floorNs: number; classes: Classes; connections: number };
  /** ns per run under BPF_PROG_TEST_RUN by "program packet", one a round. */
  testRuns: Map<string, number[]>;
  /** Rounds whose test runs had bpf_stats on all the same (another process held them). */
  statsOnInTestRuns: number;
  summaries: string[];
}

export interface BulkResult {
  without: number[];
  variants: VariantResult[];
}

/**
 * What a variant's figures come to. `*Ns`: bpf_stats ns per run; `*Own`: the
 * same less the floor pair's in the same phase (netflow's own work).
 */
export interface BulkFigures {
  gbps: number;
  ratio: number;
  dataNs: number;
  dataOwn: number;
  floorNs: number;
  controlNs: number;
  controlOwn: number;
  floorStormNs: number;
  sockopsNs: number;
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

async function stormOnce(connections: number): Promise<number> {
  const out = await run("python3", [
    `${ROOT}bench/lib/storm.py`,
    "connect",
    String(STORM_PORT),
    String(connections),
    "8",
  ], { watched: true });
  return (JSON.parse(out.trim().split("\n").at(-1)!) as { connections: number }).connections;
}

/** Readings of netflow's programs and the probe's, for deltas around a phase. */
async function reading(pid: number, probe: Probe) {
  return { nf: await bpfStats(pid), probe: await probe.read() };
}

function delta(a: Awaited<ReturnType<typeof reading>>, b: Awaited<ReturnType<typeof reading>>) {
  const skb = nsPerRun(a.nf, b.nf, SKB), ops = nsPerRun(a.nf, b.nf, SOCKOPS);
  const p = probeDelta(a.probe, b.probe);
  return {
    skb: { ns: skb.ns, runs: skb.runs },
    sockops: { ns: ops.ns, runs: ops.runs },
    floor: p.floor,
    classes: p.classes,
  };
}

const add = (a: Cost, b: Cost): Cost => ({ ns: a.ns + b.ns, runs: a.runs + b.runs });
const addClasses = (a: Classes, b: Classes): Classes => ({
  control: a.control + b.control,
  data: a.data + b.data,
  other: a.other + b.other,
});

function emptyVariant(name: string): VariantResult {
  const zero = { ns: 0, runs: 0 }, none = { control: 0, data: 0, other: 0 };
  return {
    name,
    gbps: [],
    bulk: { skb: zero, sockops: zero, floorNs: 0, classes: none },
    storm: { skb: zero, sockops: zero, floorNs: 0, classes: none, connections: 0 },
    testRuns: new Map(),
    statsOnInTestRuns: 0,
    summaries: [],
  };
}

/** Every test packet through netflow's pair and the floor pair (bench/lib/testrun.ts). */
async function testRuns(v: VariantResult, pid: number): Promise<void> {
  const ids = new Map([...await progIds(pid), ...await progIds(Deno.pid)]);
  const id = (prog: string) => {
    const found = ids.get(prog);
    if (found === undefined) throw new Error(`no program ${prog} to test`);
    return found;
  };
  // netflow's program and the floor's alternate, so drift touches both alike.
  // bpf_stats were on after all (another process held them) if the floor's run count moved.
  const before = await bpfStats(Deno.pid);
  const runs = await withBpfStatsOff(() =>
    Array.from({ length: TEST_ALTERNATIONS }).flatMap(() =>
      TESTED.flat().flatMap((prog) =>
        Object.entries(PACKETS).map(([what, packet]) =>
          [`${prog} ${what}`, testRun(id(prog), packet, TEST_RUNS)] as const
        )
      )
    )
  );
  if (nsPerRun(before, await bpfStats(Deno.pid), FLOOR).runs > 0) v.statsOnInTestRuns++;
  for (const [key, ns] of runs) v.testRuns.set(key, [...v.testRuns.get(key) ?? [], ns]);
}

/**
 * iperf3 for throughput: bpf_stats released and the probe detached, so the
 * measurement costs nothing (with bpf_stats on, each program's run pays two
 * clock reads: 60-90 ns here).
 */
async function throughput(seconds: number): Promise<number> {
  return await withBpfStatsOff(() => iperfOnce(seconds));
}

/**
 * One round of one variant: netflow started; iperf3 for throughput; iperf3
 * again and the storm with bpf_stats on and the probe attached, for costs;
 * the test runs; netflow stopped.
 */
async function withNetflow(
  v: VariantResult,
  how: { cli?: string; extra: string[] },
  r: number,
  seconds: number,
  connections: number,
  probe: Probe,
): Promise<void> {
  const nf = await Netflow.start(`iperf-${v.name.replace(/\W+/g, "_")}-${r}`, {
    cgroup: CGROUP,
    extra: how.extra,
    ...(how.cli === undefined ? {} : { cli: how.cli }),
  });
  v.gbps.push(await throughput(seconds));
  probe.link();
  const r0 = await reading(nf.pid, probe);
  await iperfOnce(COST_SECONDS);
  const r1 = await reading(nf.pid, probe);
  const done = await stormOnce(connections);
  const r2 = await reading(nf.pid, probe);
  probe.unlink();
  await testRuns(v, nf.pid);
  const b = delta(r0, r1), s = delta(r1, r2);
  // Floors are weighted by runs: summed as ns, divided at the end.
  v.bulk = {
    skb: add(v.bulk.skb, b.skb),
    sockops: add(v.bulk.sockops, b.sockops),
    floorNs: v.bulk.floorNs + b.floor * sum(b.classes),
    classes: addClasses(v.bulk.classes, b.classes),
  };
  v.storm = {
    skb: add(v.storm.skb, s.skb),
    sockops: add(v.storm.sockops, s.sockops),
    floorNs: v.storm.floorNs + s.floor * sum(s.classes),
    classes: addClasses(v.storm.classes, s.classes),
    connections: v.storm.connections + done,
  };
  v.summaries.push(await nf.stop());
}

const sum = (c: Classes) => c.control + c.data + c.other;

/**
 * `rounds` rounds of: iperf3 without netflow, then each variant in turn (the
 * order alternating between rounds) with its transfer and its storm.
 */
export async function bulk(
  rounds: number,
  seconds: number,
  connections: number,
  before?: string,
): Promise<BulkResult> {
  const without: number[] = [];
  const checkouts: { name: string; cli?: string }[] = [{ name: "this tree" }];
  if (before !== undefined) {
    checkouts.push({ name: "before", cli: `${before.replace(/\/$/, "")}/src/cli.ts` });
  }
  // Each checkout with the default events, and with failed attempts too
  // (their SYNs and RSTs take the full way in the kernel).
  const hows = checkouts.flatMap((c) => [
    { ...c, extra: [] as string[] },
    { ...c, name: `${c.name}, ${FAIL_EVENTS}`, extra: ["--events", FAIL_EVENTS] },
  ]);
  const variants = hows.map((h) => emptyVariant(h.name));
  const server = spawn("python3", [`${ROOT}bench/lib/storm.py`, "serve", String(STORM_PORT)], {
    watched: true,
    stdout: "piped",
  });
  await waitForLine(server.stdout, /^listening/);
  await using probe = await Probe.load();
  try {
    for (let r = 0; r < rounds; r++) {
      without.push(await throughput(seconds));
      const order = variants.map((_, i) => i);
      if (r % 2 === 1) order.reverse();
      for (const i of order) {
        await withNetflow(variants[i]!, hows[i]!, r, seconds, connections, probe);
      }
    }
  } finally {
    server.kill("SIGTERM");
    await server.status;
  }
  return { without, variants };
}

export function figures(b: BulkResult, v: VariantResult): BulkFigures {
  const dataNs = v.bulk.skb.ns / Math.max(1, v.bulk.skb.runs);
  const floorNs = v.bulk.floorNs / Math.max(1, sum(v.bulk.classes));
  const floorStormNs = v.storm.floorNs / Math.max(1, sum(v.storm.classes));
  const dataOwn = dataNs - floorNs;
  // The storm's own work, less its data segments' at the iperf3 rate, over its control packets.
  const c = v.storm.classes;
  const stormOwn = v.storm.skb.ns - floorStormNs * v.storm.skb.runs;
  const controlOwn = (stormOwn - dataOwn * (c.data + c.other)) / Math.max(1, c.control);
  const ops = add(v.bulk.sockops, v.storm.sockops);
  return {
    gbps: median(v.gbps),
    ratio: median(v.gbps) / median(b.without),
    dataNs,
    dataOwn,
    floorNs,
    controlNs: floorStormNs + controlOwn,
    controlOwn,
    floorStormNs,
    sockopsNs: ops.ns / Math.max(1, ops.runs),
  };
}

export function renderBulk(b: BulkResult, rounds: number, seconds: number): string[] {
  const rows = b.variants.map((v) => {
    const f = figures(b, v);
    const bc = v.bulk.classes, sc = v.storm.classes;
    const ops = add(v.bulk.sockops, v.storm.sockops);
    return `| ${v.name} | ${fmt(f.gbps, 2)} Gbit/s | ${fmt(f.ratio, 3)} | ${fmt(f.dataNs, 1)} | ${
      fmt(f.floorNs, 1)
    } | **${fmt(f.dataOwn, 1)}** | ${fmt(f.controlNs, 1)} | ${fmt(f.floorStormNs, 1)} | **${
      fmt(f.controlOwn, 1)
    }** | ${v.bulk.skb.runs} (${bc.control} control) | ${sc.control} of ${sum(sc)} | ${
      fmt(f.sockopsNs, 0)
    } (${ops.runs}) |`;
  });
  const classes = Object.keys(PACKETS) as PacketClass[];
  const tested = b.variants.flatMap((v) =>
    TESTED.map(([nf, floor]) =>
      `| ${v.name} | ${nf} | ${
        classes.map((c) => {
          const m = (p: string) => median(v.testRuns.get(`${p} ${c}`) ?? []);
          return `**${fmt(m(nf) - m(floor), 1)}** (${fmt(m(nf), 1)} / ${fmt(m(floor), 1)})`;
        }).join(" | ")
      } |`
    )
  );
  return [
    `## Bulk transfer and kernel cost per packet (iperf3 over loopback, ${rounds} interleaved rounds of ${seconds} s, medians)`,
    ``,
    `iperf3 without netflow: median ${fmt(median(b.without), 2)} Gbit/s; throughput with ` +
    `bpf_stats off and no probe. ns (from a ${COST_SECONDS} s transfer and the storm after it): ` +
    `kernel.bpf_stats_enabled run time per run of netflow's cgroup_skb pair, bpf_stats' own ` +
    `timing included; "floor": the same of a return-1 cgroup_skb pair beside netflow in the ` +
    `same cgroup and phase; "own": the difference. Data packets from iperf3; control packets ` +
    `(SYN, FIN, RST) from the storm, less its other packets at iperf3's own figure.`,
    ``,
    `| netflow | with netflow | ratio to without | data ns | floor | data own | control ns | floor | control own | iperf3 runs | storm control runs | sock_ops ns per callback (callbacks) |`,
    `|---|---|---|---|---|---|---|---|---|---|---|---|`,
    ...rows,
    ``,
    `All rounds (Gbit/s), interleaved: without ${b.without.map((x) => fmt(x, 2)).join(", ")}; ` +
    b.variants.map((v) => `${v.name} ${v.gbps.map((x) => fmt(x, 2)).join(", ")}`).join("; ") +
    `. Storm: ${b.variants[0]!.storm.connections} connections per variant in all.`,
    ``,
    `Per run without bpf_stats: BPF_PROG_TEST_RUN, ${TEST_RUNS} runs on one packet (so in ` +
    `cache), ${TEST_ALTERNATIONS} times each program in turn in every round, ` +
    `ns, median of the rounds: netflow's less the floor's (netflow's / the floor's); ` +
    `data: ACK+PSH with 100 bytes, fin: FIN+ACK, syn: SYN ` +
    `(no listener in a test run, so no record). bpf_stats off during these runs` +
    (b.variants.some((v) => v.statsOnInTestRuns > 0)
      ? ` except in ${
        b.variants.map((v) => v.statsOnInTestRuns).reduce((a, c) => a + c, 0)
      } variant-rounds (another process held them on: those include its timing).`
      : ` in every round.`),
    ``,
    `| netflow | program | ${classes.join(" | ")} |`,
    `|---|---|${classes.map(() => "---").join("|")}|`,
    ...tested,
    ``,
  ];
}
