/**
 * A stalled reader during a connection storm, on the whole host (issue 23), as root:
 *
 *   sudo deno run -A bench/stall_bench.ts [CONNECTIONS] [STALL_SECONDS] [--cgroup] [--ring-size=SIZE] [--cli=PATH]
 *
 * netflow watches the whole host (--port keeps the storm's flows only, in the
 * kernel), writing JSON to a file; with `--cgroup` it watches a child cgroup
 * the server and clients run in (the same storm, without the whole host: no
 * suites' lock needed). Four client processes open CONNECTIONS
 * (default 44,000) loopback connections to a server that reads to EOF; one
 * second in, netflow is stopped (SIGSTOP) for STALL_SECONDS (default 6),
 * then continued. Once every endpoint's end is written (or 120 s pass),
 * netflow is stopped and the bench prints: connections, endpoints with one
 * begin and one end and exact bytes, endpoints missing, records lost, flows
 * recovered from the kernel's store, flows lost, owner waits timed out, netflow's peak RSS (VmHWM)
 * and its anonymous part at the peak (RssAnon: heap and allocator, not the
 * mapped binary), sampled every 100 ms. Nothing is asserted: the figures go
 * in bench/RESULTS.md.
 *
 * @module
 */
import { Netflow } from "../tests/helpers/netflow.ts";
import { TestCgroup } from "../tests/helpers/e2e.ts";

const positional = Deno.args.filter((a) => !a.startsWith("--"));
const CONNECTIONS = Number(positional[0] ?? 44_000);
const STALL_S = Number(positional[1] ?? 6);
const cg = Deno.args.includes("--cgroup") ? new TestCgroup() : undefined;
const CLIENTS = 4;
const decoder = new TextDecoder();

const SERVER = `
import socket, threading, json, sys
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0)); ls.listen(4096)
print(json.dumps({"port": ls.getsockname()[1]}), flush=True)
def drain(c):
    while c.recv(65536): pass
    c.close()
while True:
    c, _ = ls.accept()
    threading.Thread(target=drain, args=(c,), daemon=True).start()
`;
const CLIENT = `
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"s" * 100)
    s.close()
`;

/** Python running `code`, in the bench's cgroup when there is one. */
function python(code: string, ...args: string[]): Deno.ChildProcess {
  const cmd = cg === undefined ? ["python3", "-c", code, ...args] : [
    "sh",
    "-c",
    'echo $$ > "$0/cgroup.procs" && exec "$@"',
    cg.dir,
    "python3",
    "-c",
    code,
    ...args,
  ];
  return new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
}

async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value);
  }
  reader.releaseLock();
  return text.split("\n")[0]!;
}

function peakRssMb(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

/** CPU seconds (user and system) the process has used. */
function cpuS(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in ticks (USER_HZ 100)
}

/** RSS and its anonymous part now, MB. */
function rssMb(pid: number): { rss: number; anon: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
  return { rss: kb("VmRSS") / 1024, anon: kb("RssAnon") / 1024 };
}

const out = await Deno.makeTempFile({ suffix: ".json" });
const server = python(SERVER);
let started: Netflow | undefined;
try {
  const port = JSON.parse(await firstLine(server.stdout)).port as number;
  // netflow writes its events straight to the file: no pipe between.
  const where = cg === undefined ? [] : ["--cgroup", cg.dir];
  // --ring-size=SIZE: netflow's ring (default 16M): a smaller one overflows sooner.
  const ring = Deno.args.find((a) => a.startsWith("--ring-size="));
  if (ring !== undefined) where.push("--ring-size", ring.slice("--ring-size=".length));
  // --cli=PATH: another checkout's src/cli.ts (before and after, in the same minutes).
  const cli = Deno.args.find((a) => a.startsWith("--cli="))?.slice("--cli=".length);
  const nf = started = await Netflow.start(["--format", "json", "--port", String(port), ...where], {
    stdoutFile: out,
    ...(cli === undefined ? {} : { cli }),
  });
  const t0 = performance.now();
  let peak = { rss: 0, anon: 0 };
  const sampler = setInterval(() => {
    try {
      const now = rssMb(nf.pid);
      if (now.rss > peak.rss) peak = now;
    } catch { /* ended */ }
  }, 100);
  const clients = Array.from(
    { length: CLIENTS },
    () => python(CLIENT, String(port), String(Math.ceil(CONNECTIONS / CLIENTS))),
  );
  await new Promise((r) => setTimeout(r, 1000));
  Deno.kill(nf.pid, "SIGSTOP");
  await new Promise((r) => setTimeout(r, STALL_S * 1000));
  Deno.kill(nf.pid, "SIGCONT");
  for (const c of clients) await c.status;
  const stormS = (performance.now() - t0) / 1000;
  // Every end written, or 120 s.
  const want = 2 * CLIENTS * Math.ceil(CONNECTIONS / CLIENTS);
  for (let i = 0; i < 240; i++) {
    const ends = (await Deno.readTextFile(out)).split("\n")
      .filter((l) => l.includes('"net_flow_tcp_end"')).length;
    if (ends >= want) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const rss = peakRssMb(nf.pid);
  const cpu = cpuS(nf.pid);
  clearInterval(sampler);
  const { stderr } = await nf.stop();
  const flows = new Map<
    string,
    { begins: number; ends: number; exact: boolean; lines: string[] }
  >();
  for (const line of (await Deno.readTextFile(out)).split("\n")) {
    if (!line) continue;
    const e = JSON.parse(line);
    const f = flows.get(e.flow_id) ?? { begins: 0, ends: 0, exact: false, lines: [] };
    f.lines.push(line);
    if (e.event === "net_flow_tcp_begin") f.begins++;
    if (e.event === "net_flow_tcp_end") {
      f.ends++;
      const bytes = e.conn_direction === "outgoing" ? [100, 0] : [0, 100];
      f.exact = e.bytes_sent === bytes[0] && e.bytes_received === bytes[1];
    }
    flows.set(e.flow_id, f);
  }
  const whole = [...flows.values()].filter((f) => f.begins === 1 && f.ends === 1 && f.exact);
  // The first few that are not: their events, to see what went wrong.
  const broken = [...flows.values()].filter((f) => !(f.begins === 1 && f.ends === 1 && f.exact));
  for (const f of broken.slice(0, 5)) console.error(f.lines.join("\n"));
  const num = (re: RegExp) => Number(re.exec(stderr)?.[1] ?? NaN);
  console.log(JSON.stringify(
    {
      connections: want / 2,
      stall_s: STALL_S,
      storm_s: Math.round(stormS * 10) / 10,
      endpoints: want,
      endpoints_whole_and_exact: whole.length,
      endpoints_missing: want - flows.size,
      records_lost: num(/(\d+) lost records/),
      flows_recovered: num(/(\d+) flows recovered from the kernel's store/),
      flows_lost: num(/(\d+) flows lost/),
      owner_timeouts: num(/(\d+) owner waits timed out/),
      peak_rss_mb: Math.round(rss),
      anon_mb_at_sampled_peak: Math.round(peak.anon),
      cpu_s: cpu,
    },
    null,
    1,
  ));
} finally {
  await started?.[Symbol.asyncDispose]();
  server.kill("SIGKILL");
  await server.status;
  await Deno.remove(out).catch(() => {});
  await cg?.[Symbol.asyncDispose]();
}
