/**
 * netflow on a host with many sockets (issue 24 goal 6): N loopback
 * connections held open (bench/hold.py; the client ends in the watched
 * cgroup, so N open flows; the servers in the benchmark's namespace), and
 * the same readings without them (the baseline), in one run:
 *
 * 1. the start snapshot: netflow started after the N connections exist; the
 *    time and CPU until every preexisting begin is written, then its idle CPU
 *    with N flows open (the default mode's sweeps);
 * 2. the update sweep: `--events update --update-interval 1`, CPU per second
 *    and per update over a quiet window, the updates counted in its output;
 * 3. the owner iterator (src/enrich/holders.ts over bpf/iter.bpf.h's
 *    task_file iterator, which walks every file of every process): one run's
 *    time and CPU in this process (a Probe on an empty cgroup of its own),
 *    and netflow's CPU and owner waits during a small paced storm of
 *    incoming connections, whose begins make it run.
 *
 * CPU from /proc (netflow: utime + stime; one iterator run: this process's
 * getrusage, the read that runs it and the decoding and indexing).
 *
 * @module
 */
import process from "node:process";
import { findCgroup2Mount } from "../src/bpf/cgroup.ts";
import { Probe } from "../src/bpf/loader.ts";
import { SocketHolders } from "../src/enrich/holders.ts";
import { bpfStats, CGROUP, ROOT } from "./lib/env.ts";
import { CLK_TCK, cpuTicks, fmt, median, sleep, spawn, waitForLine } from "./lib/proc.ts";
import { HOLD_PAIRS, HOLD_RATE, holdOpen } from "./lib/hold.ts";
import { HOLD_PORT, lastGrowth, type Start, startUp } from "./lib/start.ts";
import { Netflow } from "./lib/tools.ts";

const STORM_PORT = 18464;
/**
 * The paced storm that makes netflow's holders iterator run: each connection
 * held longer than an incoming begin waits for its acceptor (2 s), so only an
 * iterator run, not the close, can name the process that accepted it.
 */
const STORM = { rate: 200, holdMs: 2500, concurrency: 640 };

export interface SocketsOptions {
  /** Connections held open (open flows). */
  n: number;
  /** The quiet windows (idle and update sweep), seconds. */
  window: number;
  /** Iterator runs timed in this process. */
  runs: number;
  /** The paced storm's length, seconds. */
  stormSeconds: number;
}

interface Sweep {
  cpuPerS: number;
  updatesPerS: number;
  summary: string;
}
interface Iter {
  sockets: number;
  files: number;
  /** The iterator program's runs per iterator run (files + 1). */
  calls: number;
  ms: number;
  cpuMs: number;
  /** Of which in the kernel (the walk and the program). */
  sysMs: number;
}
interface Storm {
  connections: number;
  cpuS: number;
  timedOut: number;
  holdersNs: number;
  holdersCalls: number;
  /** Files walked per iterator run, just after the storm (the host's other sockets come and go). */
  filesAfter: number;
  summary: string;
}
export interface SocketsSide {
  held: number;
  start: Start;
  sweep: Sweep;
  iter: Iter;
  storm: Storm;
}
export interface SocketsResult {
  n: number;
  window: number;
  stormSeconds: number;
  buildS: number;
  quiet: SocketsSide;
  busy: SocketsSide;
  summaries: string[];
}

const cpuS = (pid: number) => cpuTicks(pid) / CLK_TCK;

/** Lines in a growing file, counted from where the last call stopped. */
class LineCounter {
  #offset = 0;
  lines = 0;
  readonly #buf = new Uint8Array(1 << 20);
  constructor(readonly file: string) {}
  count(): number {
    using f = Deno.openSync(this.file);
    f.seekSync(this.#offset, Deno.SeekMode.Start);
    for (let n; (n = f.readSync(this.#buf)) !== null;) {
      this.#offset += n;
      for (let i = 0; i < n; i++) if (this.#buf[i] === 10) this.lines++;
    }
    return this.lines;
  }
}

/** 2: `--events update --update-interval 1`: CPU and updates over a window after the first round. */
async function sweep(name: string, held: number, window: number): Promise<Sweep> {
  const nf = await Netflow.start(name, {
    cgroup: CGROUP,
    extra: ["--events", "update", "--update-interval", "1"],
  });
  const lines = new LineCounter(nf.file);
  const first = performance.now() + 60_000;
  while (held > 0 && lines.count() < held && performance.now() < first) await sleep(100);
  const [c0, n0, t0] = [cpuS(nf.pid), lines.count(), performance.now()];
  await sleep(window * 1000);
  const [c1, n1, t1] = [cpuS(nf.pid), lines.count(), performance.now()];
  const summary = await nf.stop();
  const s = (t1 - t0) / 1000;
  return { cpuPerS: (c1 - c0) / s, updatesPerS: (n1 - n0) / s, summary };
}

/** This process's CPU time (getrusage: finer than /proc's clock ticks): all, and in the kernel; ms. */
function processCpuMs(): [number, number] {
  const { user, system } = process.cpuUsage();
  return [(user + system) / 1000, system / 1000];
}

/** 3a: one holders-iterator run as netflow makes it (read, decode, index), `runs` times; medians. */
async function iterator(runs: number): Promise<Iter> {
  const dir = `${findCgroup2Mount()}/netflow-bench-iter-${Deno.pid}`;
  Deno.mkdirSync(dir);
  try {
    using probe = Probe.open({ cgroupDir: dir });
    const holders = new SocketHolders(() => probe.holders());
    const before = (await bpfStats(Deno.pid)).get("netflow_holders");
    const ms: number[] = [], cpu: number[] = [], sys: number[] = [];
    let sockets = 0;
    for (let i = 0; i < runs; i++) {
      const [t0, [c0, s0]] = [performance.now(), processCpuMs()];
      holders.refresh();
      const [c1, s1] = processCpuMs();
      [ms[i], cpu[i], sys[i]] = [performance.now() - t0, c1 - c0, s1 - s0];
      if (i === 0) sockets = probe.holders()?.count ?? 0;
    }
    const after = (await bpfStats(Deno.pid)).get("netflow_holders");
    // The program runs once per file of every process, and once more at the end of a run.
    const calls = ((after?.runs ?? 0) - (before?.runs ?? 0)) / (runs + 1);
    const files = Math.round(calls - 1);
    return { sockets, files, ms: median(ms), cpuMs: median(cpu), sysMs: median(sys), calls };
  } finally {
    for (let i = 0; i < 50; i++) {
      try {
        Deno.removeSync(dir);
        break;
      } catch {
        await sleep(100);
      }
    }
  }
}

/** 3b: netflow (default events) during a paced storm of incoming connections in its cgroup. */
async function storm(name: string, seconds: number): Promise<Omit<Storm, "filesAfter">> {
  const server = spawn("python3", [`${ROOT}bench/lib/storm.py`, "serve", String(STORM_PORT)], {
    inCgroup: true,
    stdout: "piped",
  });
  await waitForLine(server.stdout, /^listening/);
  const nf = await Netflow.start(name, { cgroup: CGROUP, extra: ["--port", String(STORM_PORT)] });
  await lastGrowth(nf.file, 1000, 300_000); // nothing of the start left
  const [c0, s0] = [cpuS(nf.pid), (await bpfStats(nf.pid)).get("netflow_holders")];
  const n = STORM.rate * seconds;
  const client = spawn("python3", [
    `${ROOT}bench/lib/storm.py`,
    "connect",
    String(STORM_PORT),
    String(n),
    String(STORM.concurrency),
    String(STORM.rate),
    String(STORM.holdMs),
  ], { inCgroup: true, stdout: "piped" });
  const done = JSON.parse(await waitForLine(client.stdout, /^\{/, 120_000)) as {
    connections: number;
  };
  await client.status;
  await lastGrowth(nf.file, 1000, 60_000); // the last waits ran out
  const [c1, s1] = [cpuS(nf.pid), (await bpfStats(nf.pid)).get("netflow_holders")];
  const summary = await nf.stop();
  server.kill("SIGTERM");
  await server.status;
  return {
    connections: done.connections,
    cpuS: c1 - c0,
    timedOut: Number(/(\d+) owner waits timed out/.exec(summary)?.[1] ?? NaN),
    holdersNs: (s1?.ns ?? 0) - (s0?.ns ?? 0),
    holdersCalls: (s1?.runs ?? 0) - (s0?.runs ?? 0),
    summary,
  };
}

async function side(held: number, o: SocketsOptions, summaries: string[]): Promise<SocketsSide> {
  const tag = held === 0 ? "quiet" : "held";
  const start = await startUp(`sockets-start-${tag}`, held, o.window);
  summaries.push(`sockets start, ${held} held: ${start.summary}`);
  const sw = await sweep(`sockets-sweep-${tag}`, held, o.window);
  summaries.push(`sockets update sweep, ${held} held: ${sw.summary}`);
  const iter = await iterator(o.runs);
  const st = {
    ...await storm(`sockets-storm-${tag}`, o.stormSeconds),
    filesAfter: (await iterator(1)).files,
  };
  summaries.push(`sockets storm, ${held} held: ${st.summary}`);
  const r = { held, start, sweep: sw, iter, storm: st };
  console.error(`sockets ${tag}: ${JSON.stringify(r, (k, v) => k === "summary" ? undefined : v)}`);
  return r;
}

export async function sockets(o: SocketsOptions): Promise<SocketsResult> {
  const summaries: string[] = [];
  const quiet = await side(0, o, summaries);
  const t0 = performance.now();
  const close = await holdOpen(o.n, HOLD_PORT);
  const buildS = (performance.now() - t0) / 1000;
  try {
    const busy = await side(o.n, o, summaries);
    return {
      n: o.n,
      window: o.window,
      stormSeconds: o.stormSeconds,
      buildS,
      quiet,
      busy,
      summaries,
    };
  } finally {
    await close();
  }
}

/** netflow's iterator runs in the storm: program calls over the calls of a run before and after. */
function runsOf(s: SocketsSide): number {
  return s.storm.holdersCalls / Math.max(1, (s.iter.files + s.storm.filesAfter) / 2 + 1);
}

export function renderSockets(r: SocketsResult): string[] {
  const { quiet: q, busy: b, n } = r;
  const us = (s: number) => fmt(s * 1e6 / n, 1);
  const perUpdate = (b.sweep.cpuPerS - q.sweep.cpuPerS) / Math.max(1, b.sweep.updatesPerS);
  // Per file walked, each run on its own: other sessions' sockets come and go on a shared host.
  const perFile = (it: Iter) => fmt(it.cpuMs * 1000 / Math.max(1, it.files), 2);
  const row = (what: string, quiet: string, held: string, extra: string) =>
    `| ${what} | ${quiet} | ${held} | ${extra} |`;
  return [
    `## ${n} open flows and ${n} held connections on the host (bench/sockets.ts, cgroup mode)`,
    ``,
    `${n} loopback connections held open by bench/hold.py (${HOLD_PAIRS} pairs, opened at ${HOLD_RATE}/s in ` +
    `${
      fmt(r.buildS)
    } s), their client ends in the watched cgroup (${n} open flows), the servers in ` +
    `the benchmark's namespace: ${b.iter.sockets} TCP sockets held on the host. netflow --cgroup on that ` +
    `cgroup, JSON to a file; "none held" is the same run before the connections were opened. CPU from ` +
    `/proc; quiet windows of ${r.window} s. Idle: the share of the window in which another ` +
    `sock_ops program ran for the cgroup (another monitor on the root: netflow then reads its ` +
    `list of open flows every 3 s, src/bpf/peers.ts), none held ${fmt(q.start.shared * 100)}%, ` +
    `${n} held ${fmt(b.start.shared * 100)}%.`,
    ``,
    `| figure | none held | ${n} held | per flow / socket |`,
    `|---|---|---|---|`,
    row(
      "start: spawn to the last preexisting begin written",
      `${fmt(q.start.ms / 1000, 1)} s (to the ready line)`,
      `${fmt(b.start.ms / 1000, 1)} s, ${b.start.begins} begins`,
      `${us((b.start.ms - q.start.ms) / 1000)} µs of wall time per flow`,
    ),
    row(
      "start: netflow CPU until then",
      `${fmt(q.start.cpuS, 2)} s`,
      `${fmt(b.start.cpuS, 2)} s`,
      `${us(b.start.cpuS - q.start.cpuS)} µs per flow (${fmt(b.start.cpuS / q.start.cpuS, 1)}x)`,
    ),
    row(
      "default events: idle CPU per second, RSS",
      `${fmt(q.start.idleCpuPerS, 3)} s, ${fmt(q.start.rssMiB)} MiB`,
      `${fmt(b.start.idleCpuPerS, 3)} s, ${fmt(b.start.rssMiB)} MiB`,
      `${fmt((b.start.rssMiB - q.start.rssMiB) * 1048576 / n)} bytes of RSS per flow`,
    ),
    row(
      "`--events update --update-interval 1`: CPU per second",
      `${fmt(q.sweep.cpuPerS, 3)} s`,
      `${fmt(b.sweep.cpuPerS, 3)} s (${fmt(b.sweep.updatesPerS)} updates a second)`,
      `${fmt(perUpdate * 1e6, 2)} µs per update`,
    ),
    row(
      "one owner-iterator run (read, decode, index): time / CPU (of which in the kernel)",
      `${fmt(q.iter.ms, 2)} / ${fmt(q.iter.cpuMs, 2)} (${fmt(q.iter.sysMs, 2)}) ms, ` +
        `${q.iter.sockets} sockets, ${q.iter.files} files`,
      `${fmt(b.iter.ms, 1)} / ${fmt(b.iter.cpuMs, 1)} (${fmt(b.iter.sysMs, 1)}) ms, ` +
        `${b.iter.sockets} sockets, ${b.iter.files} files`,
      `${perFile(q.iter)} / ${perFile(b.iter)} µs of CPU per file walked`,
    ),
    row(
      `paced storm, ${STORM.rate}/s for ${r.stormSeconds} s, each open ${
        STORM.holdMs / 1000
      } s: netflow CPU per connection`,
      `${fmt(q.storm.cpuS * 1e3 / q.storm.connections, 2)} ms`,
      `${fmt(b.storm.cpuS * 1e3 / b.storm.connections, 2)} ms`,
      `${fmt(b.storm.cpuS / Math.max(0.01, q.storm.cpuS), 1)}x`,
    ),
    row(
      "paced storm: owner waits timed out (records), iterator runs",
      `${q.storm.timedOut}, ≈${fmt(runsOf(q))}`,
      `${b.storm.timedOut}, ≈${fmt(runsOf(b))}`,
      `iterator program ${fmt(b.storm.holdersNs / Math.max(1, b.storm.holdersCalls))} ns per file`,
    ),
    ``,
  ];
}

/** The targets table's row (goal 6 prices these; it sets no limit). */
export function sweepRow(r: SocketsResult): string {
  const { quiet: q, busy: b, n } = r;
  const perUpdate = (b.sweep.cpuPerS - q.sweep.cpuPerS) / Math.max(1, b.sweep.updatesPerS);
  return `| update sweep, start snapshot, owner iterator at ${n} open flows | ` +
    `${fmt(perUpdate * 1e6, 2)} µs per update; snapshot ${
      fmt((b.start.cpuS - q.start.cpuS) * 1e6 / n, 1)
    } µs per flow; iterator run ${fmt(b.iter.cpuMs, 1)} ms (${fmt(q.iter.cpuMs, 2)} ms quiet) | ` +
    `measured |`;
}
