/**
 * What it costs to name the process that accepted each connection
 * (src/enrich/owners.ts), as root:
 *
 *   sudo deno run -A bench/owners_bench.ts [--quick]
 *
 * 1. netflow's CPU per 1,000 incoming connections, with owner resolution (the
 *    default: incoming begins wait for a task_file iterator run) and without
 *    (`ownerWaitMs: 0`: the kernel's stamps only), on a prefork server
 *    (tests/workloads/owners.py: 3 workers accept, the master only listens)
 *    driven by a python client, all in a child cgroup netflow watches.
 * 2. One iterator run's cost (the read that runs it, and decoding) as the
 *    host's processes and open files grow: idle processes holding TCP sockets.
 *
 * Writes bench/OWNERS.md with the date and the machine.
 *
 * @module
 */
import { findCgroup2Mount } from "../src/bpf/cgroup.ts";
import { Probe } from "../src/bpf/loader.ts";

const QUICK = Deno.args.includes("--quick");
const ROOT = new URL("../", import.meta.url).pathname;
const OWNERS = `${ROOT}tests/workloads/owners.py`;
const CONNECTIONS = QUICK ? 2000 : 6000;
const ROUNDS = QUICK ? 2 : 5;
const CGROUP = `${findCgroup2Mount()}/netflow-owners-bench-${Deno.pid}`;
const started: Deno.ChildProcess[] = [];
const decoder = new TextDecoder();

const LOAD = `
import socket, sys, threading
port, n, threads = int(sys.argv[1]), int(sys.argv[2]), 4
def work(k):
    for _ in range(k):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"x")
        got = 0
        while got < 50:
            c = s.recv(50 - got)
            if not c: break
            got += len(c)
        s.close()
ts = [threading.Thread(target=work, args=(n // threads,)) for _ in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
`;

/** A monitor in its own process, so its CPU is its own. */
const MONITOR = `
import { FlowMonitor } from "${ROOT}mod.ts";
const [cgroup, wait] = Deno.args;
const monitor = new FlowMonitor({ cgroup, ownerWaitMs: Number(wait) });
let incoming = 0, named = 0;
Deno.addSignalListener("SIGTERM", () => monitor.close());
console.error("ready");
for await (const e of monitor) {
  if (e.event === "net_flow_tcp_begin" && e.conn_direction === "incoming") {
    incoming++;
    if (e.comm?.startsWith("nf-pre-w")) named++;
  }
}
console.log(JSON.stringify({ incoming, named }));
`;

function spawn(cmd: string, args: string[], watched = false, stdout: "piped" | "null" = "null") {
  const argv = watched
    ? ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', CGROUP, cmd, ...args]
    : [cmd, ...args];
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    stdout,
    stderr: "piped",
    stdin: "null",
  }).spawn();
  started.push(child);
  return child;
}

/** CPU seconds of all of a process's threads, to the ns (schedstat: time on a CPU). */
function cpuSeconds(pid: number): number {
  let ns = 0;
  for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/schedstat`).split(" ")[0]);
    } catch { /* the thread ended */ }
  }
  return ns / 1e9;
}

/** The first line of a stream that passes `match` (the rest of the stream stays unread). */
async function firstLine(
  stream: ReadableStream<Uint8Array>,
  match: (line: string) => boolean = () => true,
): Promise<string> {
  const reader = stream.getReader();
  let text = "";
  try {
    for (;;) {
      const line = text.split("\n").slice(0, -1).find(match);
      if (line !== undefined) return line;
      const { value, done } = await reader.read();
      if (done) throw new Error(`stream ended: ${text}`);
      text += decoder.decode(value);
    }
  } finally {
    reader.releaseLock();
  }
}

function kill(child: Deno.ChildProcess, signal: Deno.Signal = "SIGKILL") {
  try {
    child.kill(signal);
  } catch { /* gone */ }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** One storm of CONNECTIONS against the prefork server; netflow's CPU seconds. */
async function storm(waitMs: number) {
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(script, MONITOR);
  const mon = spawn(Deno.execPath(), ["run", "-A", script, CGROUP, String(waitMs)], false, "piped");
  const stdout = new Response(mon.stdout).text();
  await firstLine(mon.stderr, (l) => l === "ready");
  const srv = spawn("python3", [OWNERS, "prefork", "--workers", "3"], true, "piped");
  const port = JSON.parse(await firstLine(srv.stdout, (l) => l.includes('"listening"'))).port;
  srv.stdout.pipeTo(new WritableStream()).catch(() => {}); // drain the workers' lines
  const before = cpuSeconds(mon.pid);
  const t0 = performance.now();
  const load = spawn("python3", ["-c", LOAD, String(port), String(CONNECTIONS)], true);
  await load.status;
  const seconds = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 500)); // the last waits (200 ms) run out
  const cpu = cpuSeconds(mon.pid) - before;
  kill(mon, "SIGTERM");
  const result = JSON.parse((await stdout).trim() || "{}");
  await mon.status;
  kill(srv);
  await srv.status;
  await Deno.remove(script);
  return { cpu, seconds, ...result as { incoming: number; named: number } };
}

/** Idle processes holding `fds` TCP sockets each (forked from one python). */
async function holders(procs: number, fds: number) {
  const code = `
import os, socket, signal, sys, ctypes
procs, fds = int(sys.argv[1]), int(sys.argv[2])
libc = ctypes.CDLL(None)
kids = []
for _ in range(procs):
    pid = os.fork()
    if pid == 0:
        libc.prctl(1, signal.SIGKILL)
        socks = [socket.socket() for _ in range(fds)]
        signal.pause()
    kids.append(pid)
print("up", flush=True)
signal.pause()
`;
  const child = spawn("python3", ["-c", code, String(procs), String(fds)], false, "piped");
  await firstLine(child.stdout);
  await new Promise((r) => setTimeout(r, 300 + procs)); // the children open their sockets
  return child;
}

function hostCounts() {
  let procs = 0, files = 0;
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    procs++;
    try {
      for (const _ of Deno.readDirSync(`/proc/${e.name}/fd`)) files++;
    } catch { /* gone */ }
  }
  return { procs, files };
}

async function iteratorCost(probe: Probe, procs: number, fds: number) {
  const child = procs > 0 ? await holders(procs, fds) : undefined;
  try {
    const host = hostCounts();
    const times: number[] = [];
    let sockets = 0;
    for (let i = 0; i < 21; i++) {
      const t0 = performance.now();
      sockets = probe.holders()?.count ?? 0;
      times.push(performance.now() - t0);
    }
    return { procs, fds, host, sockets, ms: median(times) };
  } finally {
    if (child) {
      kill(child);
      await child.status;
    }
  }
}

async function main() {
  Deno.mkdirSync(CGROUP);
  try {
    const rows: string[] = [];
    const runs: Record<
      string,
      { cpu: number; seconds: number; incoming: number; named: number }[]
    > = { resolved: [], stamps: [] };
    for (let i = 0; i < ROUNDS; i++) {
      for (const [name, wait] of [["resolved", 200], ["stamps", 0]] as const) {
        const r = await storm(wait);
        runs[name]!.push(r);
        console.error(`${name}: ${JSON.stringify(r)}`);
      }
    }
    const per1k = (r: { cpu: number; incoming: number }) => r.cpu / (r.incoming / 1000);
    rows.push(
      "| owners | incoming begins | named the accepting worker | conn/s | netflow CPU s per 1,000 incoming connections (median of " +
        `${ROUNDS}) |`,
      "| --- | --- | --- | --- | --- |",
    );
    for (
      const [name, label] of [["resolved", "resolved (default, 200 ms wait)"], [
        "stamps",
        "kernel stamps only (ownerWaitMs 0)",
      ]] as const
    ) {
      const rs = runs[name]!;
      const m = rs.find((r) => per1k(r) === median(rs.map(per1k)))!;
      rows.push(
        `| ${label} | ${m.incoming} | ${m.named} | ${Math.round(CONNECTIONS / m.seconds)} | ${
          median(rs.map(per1k)).toFixed(4)
        } |`,
      );
    }
    const probe = Probe.open({ cgroupDir: CGROUP });
    const iter: string[] = [
      "| extra idle processes x TCP sockets each | processes on the host | open files on the host | TCP sockets found | one run (ms, median of 21) |",
      "| --- | --- | --- | --- | --- |",
    ];
    try {
      const configs: [number, number][] = QUICK
        ? [[0, 0], [200, 10]]
        : [[0, 0], [100, 10], [400, 10], [1, 5000], [400, 50]];
      for (const [procs, fds] of configs) {
        const r = await iteratorCost(probe, procs, fds);
        console.error(`iterator: ${JSON.stringify(r)}`);
        iter.push(
          `| ${procs} x ${fds} | ${r.host.procs} | ${r.host.files} | ${r.sockets} | ${
            r.ms.toFixed(2)
          } |`,
        );
      }
    } finally {
      probe.close();
    }
    const uname = decoder.decode(
      (await new Deno.Command("uname", { args: ["-r"], stdout: "piped" }).output()).stdout,
    ).trim();
    const doc = [
      "# Owner resolution: cost",
      "",
      `Written by \`bench/owners_bench.ts\`${QUICK ? " --quick" : ""} on ${
        new Date().toISOString().slice(0, 16)
      }Z, kernel ${uname}, ${navigator.hardwareConcurrency} CPUs, ${CONNECTIONS} connections per storm.`,
      "",
      "## netflow's CPU per 1,000 incoming connections (prefork server, 3 workers, loopback, child cgroup)",
      "",
      "Both sides of each connection are watched (an outgoing and an incoming flow per connection).",
      "",
      ...rows,
      "",
      "## One task_file iterator run as the host grows",
      "",
      ...iter,
      "",
    ].join("\n");
    await Deno.writeTextFile(`${ROOT}bench/OWNERS.md`, doc);
    console.log(doc);
  } finally {
    for (const c of started) kill(c);
    for (const c of started) await c.status.catch(() => {});
    for (let i = 0; i < 50; i++) {
      try {
        Deno.removeSync(CGROUP);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}

await main();
