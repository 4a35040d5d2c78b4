/**
 * netflow against libbpf-tools tcplife, on the same workloads, in one run:
 *
 *   sudo deno task bench [--quick]
 *
 * Everything runs in a network namespace and a child cgroup of its own, so the
 * namespace's /proc/net/snmp counts exactly the benchmark's connections: the
 * reference that netflow's and tcplife's counts are held against. Writes the
 * table to bench/RESULTS.md with the date and the machine.
 *
 * Workloads: a connection storm (wrk, Connection: close, against a local HTTP
 * server) at several concurrency levels; a bulk transfer (iperf3 over
 * loopback) with and without netflow; 100,000 connections held open (netflow's
 * peak RSS).
 *
 * @module
 */
import { RUNTIME_V8_FLAGS } from "../build.ts";
import { findCgroup2Mount } from "../src/bpf/cgroup.ts";

const QUICK = Deno.args.includes("--quick");
/** `--only storm|bulk|held`: one workload, for work on one target (nothing is written). */
const ONLY = Deno.args[Deno.args.indexOf("--only") + 1];
const want = (name: string) => !Deno.args.includes("--only") || ONLY === name;
const ROOT = new URL("../", import.meta.url).pathname;
const HTTP_PORT = 8080;
const IPERF_PORT = 5201;
/** Pairs of processes holding the open connections (each below a 20,000-fd limit). */
const HOLD_PAIRS = 8;
/** Connections opened per second while building up the held flows. */
const HOLD_RATE = 5000;
const STORM = QUICK ? { levels: [4, 64], seconds: 4 } : { levels: [1, 4, 16, 64], seconds: 10 };
const IPERF = QUICK ? { rounds: 2, seconds: 3 } : { rounds: 5, seconds: 5 };
const HELD_FLOWS = 100_000;
const CLK_TCK = 100;

const decoder = new TextDecoder();
const NS = `nf-bench-${Deno.pid}`;
const CGROUP = `${findCgroup2Mount()}/netflow-bench-${Deno.pid}`;
const OUT_DIR = Deno.makeTempDirSync({ prefix: "netflow-bench-" });

async function sh(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${decoder.decode(out.stderr).trim()}`);
  }
  return decoder.decode(out.stdout);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every process the benchmark started, ended by pid at the end whatever happens. */
const started: Deno.ChildProcess[] = [];

interface SpawnOptions {
  /** Run in the benchmark's cgroup and network namespace (the watched workload). */
  watched?: boolean;
  /** Run in the namespace only (not watched). */
  inNs?: boolean;
  stdout?: "piped" | "null";
  stdin?: "piped" | "null";
}

function spawn(cmd: string, args: string[], o: SpawnOptions = {}): Deno.ChildProcess {
  let argv = [cmd, ...args];
  if (o.watched || o.inNs) argv = ["ip", "netns", "exec", NS, ...argv];
  if (o.watched) {
    // Move into the cgroup, then exec: every descendant stays there.
    argv = [
      "sh",
      "-c",
      'cg=$1; shift; echo $$ > "$cg/cgroup.procs" && exec "$@"',
      "sh",
      CGROUP,
      ...argv,
    ];
  }
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    stdout: o.stdout ?? "null",
    stderr: "piped",
    stdin: o.stdin ?? "null",
  }).spawn();
  started.push(child);
  return child;
}

async function run(cmd: string, args: string[], o: SpawnOptions = {}): Promise<string> {
  const child = spawn(cmd, args, { ...o, stdout: "piped" });
  const [status, out, err] = await Promise.all([
    child.status,
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  if (!status.success) throw new Error(`${cmd} failed: ${err.trim()}`);
  return out;
}

/** Reads lines from a stream until one matches; the rest keeps flowing to `sink`. */
async function waitForLine(
  stream: ReadableStream<Uint8Array>,
  match: RegExp,
  timeoutMs = 60_000,
): Promise<string> {
  const reader = stream.getReader();
  let text = "";
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const line = text.split("\n").find((l) => match.test(l));
      if (line !== undefined) return line;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${match}`);
      const { value, done } = await reader.read();
      if (done) throw new Error(`stream ended before ${match}: ${text}`);
      text += decoder.decode(value);
    }
  } finally {
    reader.releaseLock();
  }
}

function cpuTicks(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]!.split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

function perfEventFds(pid: number): number {
  let n = 0;
  try {
    for (const fd of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        if (Deno.readLinkSync(`/proc/${pid}/fd/${fd.name}`) === "anon_inode:[perf_event]") n++;
      } catch { /* closed meanwhile */ }
    }
  } catch { /* not started yet */ }
  return n;
}

function peakRssMiB(pid: number): number {
  const kb = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))?.[1];
  return Number(kb) / 1024;
}

/** The namespace's TCP counters (exactly the benchmark's connections). */
async function tcpCounters(): Promise<Record<string, number>> {
  const snmp = await sh("ip", "netns", "exec", NS, "cat", "/proc/net/snmp");
  const [names, values] = snmp.split("\n").filter((l) => l.startsWith("Tcp:"));
  const keys = names!.trim().split(/\s+/).slice(1);
  const vals = values!.trim().split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(keys.map((k, i) => [k, vals[i]!]));
}

/** Summed run time and count of netflow's cgroup_skb programs (kernel.bpf_stats_enabled). */
async function bpfStats(): Promise<{ ns: number; runs: number }> {
  const progs = JSON.parse(await sh("bpftool", "prog", "show", "-j")) as {
    name?: string;
    run_time_ns?: number;
    run_cnt?: number;
  }[];
  let ns = 0, runs = 0;
  for (const p of progs) {
    if (p.name === "netflow_ingress" || p.name === "netflow_egress") {
      ns += p.run_time_ns ?? 0;
      runs += p.run_cnt ?? 0;
    }
  }
  return { ns, runs };
}

/** netflow, writing JSON Lines straight to a file (so counts never wait on a pipe). */
class Netflow {
  readonly child: Deno.ChildProcess;
  readonly file: string;
  readonly #stderr: ReadableStream<Uint8Array>;

  private constructor(child: Deno.ChildProcess, file: string) {
    this.child = child;
    this.file = file;
    this.#stderr = child.stderr;
  }

  static async start(name: string, extra: string[] = []): Promise<Netflow> {
    const file = `${OUT_DIR}/${name}.jsonl`;
    const child = spawn("sh", [
      "-c",
      'out=$1; shift; exec "$@" > "$out"',
      "sh",
      file,
      Deno.execPath(),
      "run",
      "--allow-all",
      RUNTIME_V8_FLAGS,
      `${ROOT}src/cli.ts`,
      "--format",
      "json",
      "--cgroup",
      CGROUP,
      ...extra,
    ]);
    const nf = new Netflow(child, file);
    await waitForLine(nf.#stderr, /^netflow: watching cgroup /);
    return nf;
  }

  get pid(): number {
    return this.child.pid;
  }

  /** Stops it; returns its summary line. */
  async stop(): Promise<string> {
    this.child.kill("SIGTERM");
    const summary = await waitForLine(this.#stderr, /^netflow: \d+ events/).catch((e) => String(e));
    await this.child.status;
    return summary;
  }

  /** Counts of events to or from `port` in its output so far (read in chunks: it gets large). */
  count(port: number): { begin: number; end: number } {
    let begin = 0, end = 0, rest = "";
    const needle = [`"src_port":${port},`, `"dst_port":${port},`];
    const tally = (line: string) => {
      if (!needle.some((n) => line.includes(n))) return;
      if (line.includes('"event":"net_flow_tcp_begin"')) begin++;
      else if (line.includes('"event":"net_flow_tcp_end"')) end++;
    };
    using file = Deno.openSync(this.file);
    const buf = new Uint8Array(1 << 20);
    const text = new TextDecoder();
    for (let n; (n = file.readSync(buf)) !== null;) {
      const lines = (rest + text.decode(buf.subarray(0, n), { stream: true })).split("\n");
      rest = lines.pop()!;
      for (const line of lines) tally(line);
    }
    tally(rest);
    return { begin, end };
  }
}

/** libbpf-tools tcplife (host-wide: its lines are filtered by port). */
class Tcplife {
  readonly child: Deno.ChildProcess;
  readonly file: string;
  readonly #copied: Promise<void>;

  private constructor(child: Deno.ChildProcess, file: string) {
    this.child = child;
    this.file = file;
    const out = Deno.openSync(file, { write: true, create: true, truncate: true });
    this.#copied = child.stdout.pipeTo(out.writable);
  }

  /** Starts tcplife and waits until its tracepoint program is loaded. */
  static async start(name: string): Promise<Tcplife> {
    const child = spawn("tcplife", [], { stdout: "piped" });
    const t = new Tcplife(child, `${OUT_DIR}/${name}.txt`);
    // Attached once it holds the tracepoint's perf event and its perf buffer's (one per CPU).
    for (let i = 0; i < 100; i++) {
      if (perfEventFds(child.pid) > navigator.hardwareConcurrency) return t;
      await sleep(100);
    }
    throw new Error("tcplife did not start");
  }

  get pid(): number {
    return this.child.pid;
  }

  count(port: number): number {
    const p = String(port);
    return Deno.readTextFileSync(this.file).split("\n").filter((l) => {
      const f = l.trim().split(/\s+/);
      return f[3] === p || f[5] === p; // LPORT or RPORT
    }).length;
  }

  async stop(): Promise<void> {
    this.child.kill("SIGINT");
    await this.child.status;
    await this.#copied;
  }
}

interface StormRow {
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

interface StormTotals {
  reference: number;
  begin: number;
  end: number;
}

async function storm(
  levels: number[],
  seconds: number,
): Promise<{ rows: StormRow[]; totals: StormTotals }> {
  const server = spawn(Deno.execPath(), [
    "run",
    "--allow-net",
    `${ROOT}bench/http_server.ts`,
    String(HTTP_PORT),
  ], {
    watched: true,
    stdout: "piped",
  });
  await waitForLine(server.stdout, /^listening/);
  const nf = await Netflow.start("storm");
  const rows: StormRow[] = [];
  try {
    let seenNf = { begin: 0, end: 0 };
    for (const c of levels) {
      // tcplife's stdout is block-buffered: one process per level, counted after it exits.
      const tl = await Tcplife.start(`tcplife-${c}`);
      const [snmp0, nf0, tl0, bpf0] = [
        await tcpCounters(),
        cpuTicks(nf.pid),
        cpuTicks(tl.pid),
        await bpfStats(),
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
        await bpfStats(),
      ];
      await tl.stop();
      const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
      // Every established endpoint: the connects that did not fail, and the accepts.
      const reference = (snmp1.ActiveOpens! - snmp0.ActiveOpens!) -
        (snmp1.AttemptFails! - snmp0.AttemptFails!) +
        (snmp1.PassiveOpens! - snmp0.PassiveOpens!);
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
        bpfNsPerRun: (bpf1.ns - bpf0.ns) / Math.max(1, bpf1.runs - bpf0.runs),
      };
      rows.push(row);
      console.error(`storm c=${c}: ${JSON.stringify(row)}`);
      seenNf = nfNow;
    }
  } finally {
    lost.storm = await nf.stop();
    console.error(`storm: ${lost.storm}`);
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
  return { rows, totals };
}

const lost: Record<string, string> = {};

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
  ], {
    watched: true,
  });
  await server.status;
  return JSON.parse(out).end.sum_received.bits_per_second / 1e9;
}

async function bulk(rounds: number, seconds: number) {
  const without: number[] = [], withNf: number[] = [];
  let bpfNs = 0, bpfRuns = 0;
  for (let r = 0; r < rounds; r++) {
    without.push(await iperfOnce(seconds));
    const nf = await Netflow.start(`iperf-${r}`);
    const b0 = await bpfStats();
    withNf.push(await iperfOnce(seconds));
    const b1 = await bpfStats();
    bpfNs += b1.ns - b0.ns;
    bpfRuns += b1.runs - b0.runs;
    lost[`iperf-${r}`] = await nf.stop();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return {
    without: median(without),
    withNf: median(withNf),
    all: { without, withNf },
    bpfNsPerPacket: bpfNs / Math.max(1, bpfRuns),
    packets: bpfRuns,
  };
}

async function held(n: number) {
  const ports = Array.from({ length: HOLD_PAIRS }, (_, i) => 9001 + i);
  const servers = ports.map((port) =>
    spawn("python3", [`${ROOT}bench/hold.py`, "serve", String(port)], {
      inNs: true,
      stdout: "piped",
    })
  );
  for (const server of servers) await waitForLine(server.stdout, /^listening/);
  const nf = await Netflow.start("held");
  const rssBefore = peakRssMiB(nf.pid);
  // One client after another, paced: the target is memory with many open flows,
  // not a burst that starves netflow of CPU (that is the storm's business).
  const clients: Deno.ChildProcess[] = [];
  for (const [i, port] of ports.entries()) {
    const args = [
      `${ROOT}bench/hold.py`,
      "connect",
      String(n / HOLD_PAIRS),
      String(port),
      `127.0.1.${i + 1}`,
      String(HOLD_RATE),
    ];
    const client = spawn("python3", args, { watched: true, stdout: "piped", stdin: "piped" });
    clients.push(client);
    await waitForLine(client.stdout, /^open \d+/, 300_000);
  }
  await sleep(2000);
  const rssOpen = peakRssMiB(nf.pid);
  const open = ports.map((p) => nf.count(p).begin).reduce((a, b) => a + b);
  for (const client of clients) await client.stdin.close();
  for (const client of clients) await client.status;
  await sleep(2000);
  const rssPeak = peakRssMiB(nf.pid);
  lost.held = await nf.stop();
  const ends = ports.map((p) => nf.count(p).end).reduce((a, b) => a + b);
  for (const server of servers) server.kill("SIGTERM");
  for (const server of servers) await server.status;
  return { rssBefore, rssOpen, rssPeak, begin: open, end: ends };
}

async function setUp(): Promise<() => Promise<void>> {
  const undo: (() => Promise<unknown>)[] = [];
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    for (const child of started) {
      try {
        child.kill("SIGKILL");
      } catch { /* already ended */ }
    }
    await Promise.allSettled(started.map((c) => c.status));
    for (const u of undo.reverse()) await u().catch((e) => console.error(`cleanup: ${e}`));
  };
  await sh("ip", "netns", "add", NS);
  undo.push(() => sh("ip", "netns", "del", NS));
  try {
    await sh("ip", "-n", NS, "link", "set", "lo", "up");
    Deno.mkdirSync(CGROUP);
    undo.push(async () => {
      for (let i = 0; i < 50; i++) {
        try {
          return Deno.removeSync(CGROUP);
        } catch {
          await sleep(100); // its processes are still exiting
        }
      }
    });
    // tcplife needs tracefs; mount it only for the run if it is not there.
    if (!isDir("/sys/kernel/tracing/events")) {
      await sh("mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing");
      undo.push(() => sh("umount", "/sys/kernel/tracing"));
    }
  } catch (err) {
    await cleanup();
    throw err;
  }
  const stats = (await sh("sysctl", "-n", "kernel.bpf_stats_enabled")).trim();
  await sh("sysctl", "-q", "-w", "kernel.bpf_stats_enabled=1");
  undo.push(() => sh("sysctl", "-q", "-w", `kernel.bpf_stats_enabled=${stats}`));
  return cleanup;
}

function isDir(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

function fmt(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toFixed(digits) : "n/a";
}

async function machine(): Promise<string> {
  const cpu = /model name\s*:\s*(.+)/.exec(Deno.readTextFileSync("/proc/cpuinfo"))?.[1] ??
    "unknown CPU";
  const mem = Math.round(
    Number(/MemTotal:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/meminfo"))![1]) / 2 ** 20,
  );
  return `${
    (await sh("uname", "-r")).trim()
  }, ${navigator.hardwareConcurrency} cores (${cpu}), ${mem} GiB, ` +
    `Deno ${Deno.version.deno}`;
}

async function main() {
  if (Deno.uid() !== 0) throw new Error("the benchmark needs root");
  const cleanup = await setUp();
  // Interrupted: clean up all the same, then leave.
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      console.error(`bench: ${signal}, cleaning up`);
      cleanup().finally(() => Deno.exit(130));
    });
  }
  let report = "";
  try {
    const t0 = performance.now();
    if (Deno.args.includes("--only")) {
      if (want("storm")) console.log(await storm(STORM.levels, STORM.seconds));
      if (want("bulk")) console.log(await bulk(IPERF.rounds, IPERF.seconds));
      if (want("held")) console.log(await held(HELD_FLOWS));
      console.log(lost);
      return;
    }
    const { rows, totals } = await storm(STORM.levels, STORM.seconds);
    const iperf = await bulk(IPERF.rounds, IPERF.seconds);
    const hold = await held(HELD_FLOWS);
    const seconds = (performance.now() - t0) / 1000;
    report = render(rows, totals, iperf, hold, await machine(), seconds);
  } finally {
    await cleanup();
    Deno.removeSync(OUT_DIR, { recursive: true });
  }
  if (report === "") return;
  // The hand-written findings travel with every fresh run.
  report += `\n${Deno.readTextFileSync(`${ROOT}bench/NOTES.md`)}`;
  console.log(report);
  if (!QUICK) Deno.writeTextFileSync(`${ROOT}bench/RESULTS.md`, report);
  else console.error("(--quick: bench/RESULTS.md left as it was)");
}

function render(
  rows: StormRow[],
  totals: StormTotals,
  iperf: Awaited<ReturnType<typeof bulk>>,
  hold: Awaited<ReturnType<typeof held>>,
  host: string,
  seconds: number,
): string {
  const top = rows.at(-1)!;
  const lines = [
    `# netflow benchmark results`,
    ``,
    `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC, ${host}; ` +
    `${QUICK ? "quick" : "full"} run, ${fmt(seconds)} s.`,
    ``,
    `## Connection storm (wrk, Connection: close, loopback in a network namespace)`,
    ``,
    `Each connection has two local endpoints (wrk and the server are both watched),`,
    `so a connection gives two flows. "kernel" is the namespace's own count of`,
    `established endpoints (ActiveOpens - AttemptFails + PassiveOpens).`,
    ``,
    `| wrk connections | conn/s | kernel endpoints | netflow begin | netflow end | tcplife | netflow CPU s/1k flows | tcplife CPU s/1k flows | ratio | BPF ns/run |`,
    `|---|---|---|---|---|---|---|---|---|---|`,
    ...rows.map((r) =>
      `| ${r.connections} | ${
        fmt(r.rate)
      } | ${r.reference} | ${r.netflowBegin} | ${r.netflowEnd} | ${r.tcplife} | ` +
      `${fmt(r.nfCpuPer1k, 3)} | ${fmt(r.tlCpuPer1k, 3)} | ${
        fmt(r.nfCpuPer1k / r.tlCpuPer1k, 2)
      } | ${fmt(r.bpfNsPerRun)} |`
    ),
    `| all levels, counted after netflow stopped | | ${totals.reference} | ${totals.begin} | ${totals.end} | | | | | |`,
    ``,
    `## Bulk transfer (iperf3 over loopback, ${IPERF.rounds} rounds, medians)`,
    ``,
    `| without netflow | with netflow | change | BPF ns per packet | packets seen |`,
    `|---|---|---|---|---|`,
    `| ${fmt(iperf.without, 2)} Gbit/s | ${fmt(iperf.withNf, 2)} Gbit/s | ${
      fmt((iperf.withNf / iperf.without - 1) * 100, 1)
    }% | ${fmt(iperf.bpfNsPerPacket, 1)} | ${iperf.packets} |`,
    ``,
    `All rounds (Gbit/s): without ${iperf.all.without.map((x) => fmt(x, 2)).join(", ")}; ` +
    `with ${iperf.all.withNf.map((x) => fmt(x, 2)).join(", ")}.`,
    ``,
    `## ${HELD_FLOWS} connections held open`,
    ``,
    `| netflow begin | netflow end | RSS at start | peak RSS with all open | peak RSS |`,
    `|---|---|---|---|---|`,
    `| ${hold.begin} | ${hold.end} | ${fmt(hold.rssBefore)} MiB | ${fmt(hold.rssOpen)} MiB | ${
      fmt(hold.rssPeak)
    } MiB |`,
    ``,
    `## Targets`,
    ``,
    `| target | measured | met |`,
    `|---|---|---|`,
    `| zero lost flows at the highest rate | ${
      top.reference - top.netflowEnd
    } missing ends of ${top.reference} | ${
      top.netflowEnd === top.reference && top.netflowBegin === top.reference ? "yes" : "no"
    } |`,
    `| CPU per 1,000 flows at most 1.5x tcplife's | ${fmt(top.nfCpuPer1k / top.tlCpuPer1k, 2)}x | ${
      top.nfCpuPer1k <= 1.5 * top.tlCpuPer1k ? "yes" : "no"
    } |`,
    `| BPF cost under 100 ns per ordinary packet | ${fmt(iperf.bpfNsPerPacket, 1)} ns | ${
      iperf.bpfNsPerPacket < 100 ? "yes" : "no"
    } |`,
    `| iperf3 within 3% of the run without netflow | ${
      fmt((iperf.withNf / iperf.without - 1) * 100, 1)
    }% | ${iperf.withNf >= 0.97 * iperf.without ? "yes" : "no"} |`,
    `| RSS under 150 MB with 100,000 open flows | ${fmt(hold.rssOpen * 1.048576)} MB | ${
      hold.rssOpen * 1.048576 < 150 ? "yes" : "no"
    } |`,
    ``,
    `netflow's own summaries: ${
      Object.entries(lost).map(([k, v]) => `${k}: \`${v.replace(/^netflow: /, "")}\``).join("; ")
    }`,
    ``,
  ];
  return lines.join("\n");
}

if (import.meta.main) {
  try {
    await main();
  } catch (err) {
    console.error(`bench: ${err instanceof Error ? err.message : err}`);
    Deno.exit(1);
  }
}
