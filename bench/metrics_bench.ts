/**
 * What flow metrics cost (`--metrics`: begin, update, end and fail events
 * counted into label sets, and a scrape every second), as root:
 *
 *   sudo deno run -A bench/metrics_bench.ts [--quick]
 *
 * netflow's CLI watches a child cgroup (`--format json` to /dev/null) three
 * ways, in interleaved rounds: without metrics; with `--events
 * begin,end,update,fail` (the kernel work flow metrics ask for: handshakes
 * followed for fail events, open-flow sweeps for updates; nothing more
 * written in a storm without failures); and with `--metrics 0` (that, plus
 * the sink and an HTTP scrape every second). A python client and server in
 * the cgroup make a storm of loopback connections (two flows each: outgoing
 * and incoming). netflow's CPU (all its threads, from
 * /proc/PID/task/*\/schedstat) per 1,000 flows, median of the rounds.
 * Writes bench/METRICS.md (and prints it).
 *
 * @module
 */
import { findCgroup2Mount } from "../src/bpf/cgroup.ts";
import { Netflow, ROOT } from "../tests/helpers/netflow.ts";

const QUICK = Deno.args.includes("--quick");
const CONNECTIONS = QUICK ? 2000 : 5000;
const ROUNDS = QUICK ? 2 : 5;
const CGROUP = `${findCgroup2Mount()}/netflow-metrics-bench-${Deno.pid}`;
const decoder = new TextDecoder();

const SERVER = `
import socket, threading, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(1024)
print(srv.getsockname()[1], flush=True)
def one(c):
    with c:
        c.recv(100); c.sendall(b"y" * 50)
while True:
    c, _ = srv.accept()
    threading.Thread(target=one, args=(c,), daemon=True).start()
`;

const LOAD = `
import socket, sys, threading
port, n, threads = int(sys.argv[1]), int(sys.argv[2]), 4
def work(k):
    for _ in range(k):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"x" * 100)
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

/** CPU seconds of all of a process's threads (schedstat: time on a CPU). */
function cpuSeconds(pid: number): number {
  let ns = 0;
  for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/schedstat`).split(" ")[0]);
    } catch { /* the thread ended */ }
  }
  return ns / 1e9;
}

/** Reads a stream line by line until `match`; the line. The stream is then drained. */
async function waitLine(
  stream: ReadableStream<Uint8Array>,
  match: (l: string) => boolean,
): Promise<string> {
  const reader = stream.getReader();
  let text = "";
  for (;;) {
    const line = text.split("\n").slice(0, -1).find(match);
    if (line !== undefined) {
      (async () => {
        while (!(await reader.read()).done) { /* drain */ }
      })().catch(() => {});
      return line;
    }
    const { value, done } = await reader.read();
    if (done) throw new Error(`stream ended: ${text}`);
    text += decoder.decode(value);
  }
}

/** Runs a command inside the bench cgroup. */
function inCgroup(cmd: string, args: string[], stdout: "piped" | "null" = "null") {
  return new Deno.Command("sh", {
    args: ["-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', CGROUP, cmd, ...args],
    stdout,
    stderr: "null",
  }).spawn();
}

function kill(child: Deno.ChildProcess, signal: Deno.Signal = "SIGKILL") {
  try {
    child.kill(signal);
  } catch { /* gone */ }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

type Arm = "off" | "events" | "on";

/** One storm; netflow's CPU seconds, flows ended, scrapes and series. */
async function storm(arm: Arm) {
  const metrics = arm === "on";
  await using nf = await Netflow.start([
    "--format",
    "json",
    "--cgroup",
    CGROUP,
    ...(arm === "events" ? ["--events", "begin,end,update,fail"] : []),
    ...(metrics ? ["--metrics", "0"] : []),
  ], { stdoutFile: "/dev/null" });
  const url = metrics
    ? /(http:\S+)$/.exec(await nf.stderrLine(/^netflow: metrics at /))![1]!
    : undefined;
  const srv = inCgroup("python3", ["-c", SERVER], "piped");
  const port = await waitLine(srv.stdout, (l) => /^\d+$/.test(l));
  let scrapes = 0, last = "";
  let scraping = url !== undefined;
  const scraper = (async () => {
    while (scraping) {
      last = await (await fetch(url!)).text();
      scrapes++;
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  const before = cpuSeconds(nf.pid);
  const t0 = performance.now();
  const load = inCgroup("python3", ["-c", LOAD, port, String(CONNECTIONS)]);
  await load.status;
  const seconds = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 1500)); // the last ends, and (with metrics) a scrape
  const cpu = cpuSeconds(nf.pid) - before;
  scraping = false;
  await scraper;
  const err = (await nf.stop("SIGTERM")).stderr;
  kill(srv);
  await srv.status;
  const events = Number(/netflow: (\d+) events/.exec(err)?.[1]);
  const series = last.split("\n").filter((l) => l.startsWith("netflow_tcp_")).length;
  return { cpu, seconds, flows: events / 2, scrapes, series };
}

Deno.mkdirSync(CGROUP);
try {
  const runs: Record<Arm, Awaited<ReturnType<typeof storm>>[]> = { off: [], events: [], on: [] };
  for (let round = 0; round < ROUNDS; round++) {
    // Interleaved, and the order rotated every round, so drift hits all alike.
    const arms: Arm[] = ["off", "events", "on"];
    for (let k = 0; k < arms.length; k++) {
      const arm = arms[(k + round) % arms.length]!;
      const r = await storm(arm);
      runs[arm].push(r);
      console.error(
        `round ${round + 1}: ${arm.padEnd(6)} ${r.flows} flows in ${r.seconds.toFixed(1)} s, CPU ${
          r.cpu.toFixed(3)
        } s${arm === "on" ? `, ${r.scrapes} scrapes, ${r.series} series` : ""}`,
      );
    }
  }
  const per1k = (rs: typeof runs.on) => median(rs.map((r) => r.cpu / (r.flows / 1000)));
  const [off, events, on] = [per1k(runs.off), per1k(runs.events), per1k(runs.on)];
  const ratio = (a: Arm, b: Arm) =>
    runs[a].map((r, i) => (r.cpu / r.flows) / (runs[b][i]!.cpu / runs[b][i]!.flows));
  const row = (name: string, arm: Arm, v: number) =>
    `| ${name} | ${v.toFixed(4)} | ${
      runs[arm].map((r) => (r.cpu / r.flows * 1000).toFixed(4)).join(", ")
    } |`;
  const uname = decoder.decode(new Deno.Command("uname", { args: ["-r"] }).outputSync().stdout)
    .trim();
  const report = [
    `## Flow metrics' CPU per 1,000 flows (${
      new Date().toISOString().slice(0, 16)
    }Z, kernel ${uname}, ${navigator.hardwareConcurrency} CPUs)`,
    "",
    `${CONNECTIONS} loopback connections per storm (${
      2 * CONNECTIONS
    } flows: outgoing and incoming), 4 client threads, child cgroup, \`--format json\` to /dev/null; ` +
    `${ROUNDS} rounds, interleaved; with \`--metrics 0\` (default labels) a scrape every second.`,
    "",
    "| netflow | CPU s per 1,000 flows (median) | per round |",
    "| --- | --- | --- |",
    row("without --metrics", "off", off),
    row("`--events begin,end,update,fail`, no metrics", "events", events),
    row("with --metrics", "on", on),
    "",
    `Metrics add ${(on - off).toFixed(4)} CPU s per 1,000 flows (median ratio with/without ${
      median(ratio("on", "off")).toFixed(3)
    }; per round ${ratio("on", "off").map((x) => x.toFixed(3)).join(", ")}): ${
      (events - off).toFixed(4)
    } for the events they need from the kernel (median ratio ${
      median(ratio("events", "off")).toFixed(3)
    }), ${(on - events).toFixed(4)} for counting and scraping (median ratio ${
      median(ratio("on", "events")).toFixed(3)
    }).`,
  ].join("\n");
  console.log(report);
  Deno.writeTextFileSync(
    `${ROOT}bench/METRICS.md`,
    `# What flow metrics cost\n\nWritten by \`sudo deno run -A bench/metrics_bench.ts\`.\n\n${report}\n`,
  );
} finally {
  for (let i = 0; i < 50; i++) {
    try {
      Deno.removeSync(CGROUP);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100)); // processes still exiting
    }
  }
}
