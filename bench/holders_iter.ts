/**
 * One owner-iterator run (netflow_holders, iter/task_file) on a host holding
 * many TCP sockets, two trees side by side (issue 24 goal 6, the owner part),
 * as root and inside the whole-host lock (it holds `--sockets` sockets):
 *
 *   flock /tmp/netflow-ok.lock deno run -A bench/holders_iter.ts \
 *     [--sockets 100000] [--pairs 5] [--runs 10] [--wanted 64] [--base DIR]
 *
 * Idle processes hold `--sockets` TCP sockets (1,000 per process); then, per
 * pair, a process of the base tree (`--base`, another checkout; default this
 * one) and one of this tree each open netflow's probe on a cgroup of their
 * own and time `--runs` runs: wall and thread CPU per run, rows written, and
 * the iterator program's own run time (bpf_stats, BPF_ENABLE_STATS held only
 * by that process). This tree asks for `--wanted` sockets (cookies of no
 * socket: what a storm's waiting records cost), as its resolver does; a tree
 * whose probe takes no such argument writes every row. Where the tree and the
 * kernel have them (Linux 6.1+), also runs on one process only: a server
 * holding a listener and 64 connections, as the resolver's first looks run
 * on the listener's holders. Prints one JSON line per process and the medians.
 *
 * @module
 */
import { bpfStats } from "./lib/env.ts";

const arg = (name: string, fallback: string) => {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1]! : fallback;
};

interface Result {
  tree: string;
  rows: number;
  wallMs: number;
  cpuMs: number;
  progMsPerRun: number;
  filesPerRun: number;
  /** A run on the server's process only (a tree and kernel that have them). */
  one?: { rows: number; wallMs: number; cpuMs: number; progMsPerRun: number; filesPerRun: number };
}

const libc = Deno.dlopen(
  "libc.so.6",
  {
    clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  } as const,
);
const ts = new BigInt64Array(2);
/** This thread's CPU time in ms (CLOCK_THREAD_CPUTIME_ID: exact, unlike schedstat between ticks). */
function threadCpuMs(): number {
  libc.symbols.clock_gettime(3, ts);
  return Number(ts[0]!) * 1e3 + Number(ts[1]!) / 1e6;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** `runs` runs of `run`: medians of wall and thread CPU, the program's time and files per run. */
async function timed(runs: number, run: () => number) {
  run(); // warm-up
  const s0 = (await bpfStats(Deno.pid)).get("netflow_holders")!;
  const walls: number[] = [], cpus: number[] = [];
  let rows = 0;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now(), c0 = threadCpuMs();
    rows = run();
    cpus.push(threadCpuMs() - c0);
    walls.push(performance.now() - t0);
  }
  const s1 = (await bpfStats(Deno.pid)).get("netflow_holders")!;
  return {
    rows,
    wallMs: median(walls),
    cpuMs: median(cpus),
    progMsPerRun: (s1.ns - s0.ns) / runs / 1e6,
    filesPerRun: (s1.runs - s0.runs) / runs,
  };
}

async function child(tree: string, runs: number, wanted: number, server: number): Promise<Result> {
  const { Probe } = await import(`${tree}/src/bpf/loader.ts`);
  const { findCgroup2Mount } = await import(`${tree}/src/bpf/cgroup.ts`);
  const bpf = Deno.dlopen(
    "libbpf.so.1",
    {
      bpf_enable_stats: { parameters: ["i32"], result: "i32" },
    } as const,
  );
  if (bpf.symbols.bpf_enable_stats(0) < 0) throw new Error("BPF_ENABLE_STATS refused");
  const cg = `${findCgroup2Mount()}/netflow-holders-iter-${Deno.pid}`;
  Deno.mkdirSync(cg);
  try {
    const probe = Probe.open({ cgroupDir: cg });
    try {
      const cookies = new Set(Array.from({ length: wanted }, (_, i) => 2 ** 52 + i));
      const all = await timed(runs, () => probe.holders(cookies).count);
      const iter = probe.holdersIterator;
      const one = iter?.runIn([server], cookies) &&
        await timed(runs, () => iter.runIn([server], cookies).count);
      return { tree, ...all, ...(one ? { one } : {}) };
    } finally {
      probe.close();
    }
  } finally {
    Deno.removeSync(cg);
  }
}

const SERVER = `
import os, socket, signal
lis = socket.socket()
lis.bind(("127.0.0.1", 0))
lis.listen(128)
conns = [socket.create_connection(lis.getsockname()) for _ in range(64)]
accepted = [lis.accept()[0] for _ in range(64)]
os.write(1, b"up\\n")
signal.pause()
`;

/** Idle processes holding `sockets` TCP sockets, 1,000 each (ended with the returned child). */
async function holdSockets(sockets: number): Promise<Deno.ChildProcess> {
  const code = `
import os, resource, socket, signal, sys, ctypes
procs = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_NOFILE, (2048, 2048))
libc = ctypes.CDLL(None)
for _ in range(procs):
    if os.fork() == 0:
        libc.prctl(1, signal.SIGKILL)
        socks = [socket.socket() for _ in range(1000)]
        os.write(1, b".")
        signal.pause()
signal.pause()
`;
  const procs = Math.ceil(sockets / 1000);
  const c = new Deno.Command("python3", { args: ["-c", code, String(procs)], stdout: "piped" })
    .spawn();
  const reader = c.stdout.getReader();
  for (let seen = 0; seen < procs;) seen += (await reader.read()).value?.length ?? 0;
  reader.releaseLock();
  return c;
}

if (Deno.args[0] === "--child") {
  const [, tree, runs, wanted, server] = Deno.args;
  console.log(JSON.stringify(await child(tree!, Number(runs), Number(wanted), Number(server))));
} else {
  const here = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const base = arg("base", here), pairs = Number(arg("pairs", "5"));
  const runs = arg("runs", "10"), wanted = arg("wanted", "64");
  const held = Number(arg("sockets", "100000"));
  const holder = held > 0 ? await holdSockets(held) : undefined;
  // The server whose listener the waiting flows arrived on: a listener and 64 connections.
  const server = new Deno.Command("python3", {
    args: ["-c", SERVER],
    stdout: "piped",
  }).spawn();
  const reader = server.stdout.getReader();
  await reader.read();
  reader.releaseLock();
  try {
    const out: Record<string, Result[]> = { base: [], this: [] };
    for (let p = 0; p < pairs; p++) {
      for (const [name, tree] of [["base", base], ["this", here]] as const) {
        const r = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            new URL(import.meta.url).pathname,
            "--child",
            tree,
            runs,
            wanted,
            String(server.pid),
          ],
          stdout: "piped",
        }).output();
        const result = JSON.parse(new TextDecoder().decode(r.stdout)) as Result;
        console.log(JSON.stringify({ pair: p, name, ...result }));
        out[name]!.push(result);
      }
    }
    for (const [name, rs] of Object.entries(out)) {
      const ones = rs.flatMap((r) => r.one ? [r.one] : []);
      if (ones.length > 0) {
        console.log(
          `${name}, a run on the server only: rows ${median(ones.map((r) => r.rows))}, files ${
            median(ones.map((r) => r.filesPerRun))
          }, wall ${median(ones.map((r) => r.wallMs)).toFixed(3)} ms, CPU ${
            median(ones.map((r) => r.cpuMs)).toFixed(3)
          } ms, program ${median(ones.map((r) => r.progMsPerRun)).toFixed(3)} ms per run`,
        );
      }
      console.log(
        `${name}: rows ${median(rs.map((r) => r.rows))}, files ${
          median(rs.map((r) => r.filesPerRun))
        }, wall ${median(rs.map((r) => r.wallMs)).toFixed(2)} ms, CPU ${
          median(rs.map((r) => r.cpuMs)).toFixed(2)
        } ms, program ${median(rs.map((r) => r.progMsPerRun)).toFixed(2)} ms per run (medians)`,
      );
    }
  } finally {
    server.kill("SIGKILL");
    await server.status;
    holder?.kill("SIGKILL");
    await holder?.status;
  }
}
