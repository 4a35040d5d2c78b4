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
 * whose probe takes no such argument writes every row. Prints one JSON line
 * per process and the medians.
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

async function child(tree: string, runs: number, wanted: number): Promise<Result> {
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
      probe.holders(cookies); // warm-up
      const s0 = (await bpfStats(Deno.pid)).get("netflow_holders")!;
      const walls: number[] = [], cpus: number[] = [];
      let rows = 0;
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now(), c0 = threadCpuMs();
        rows = probe.holders(cookies).count;
        cpus.push(threadCpuMs() - c0);
        walls.push(performance.now() - t0);
      }
      const s1 = (await bpfStats(Deno.pid)).get("netflow_holders")!;
      return {
        tree,
        rows,
        wallMs: median(walls),
        cpuMs: median(cpus),
        progMsPerRun: (s1.ns - s0.ns) / runs / 1e6,
        filesPerRun: (s1.runs - s0.runs) / runs,
      };
    } finally {
      probe.close();
    }
  } finally {
    Deno.removeSync(cg);
  }
}

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
  console.log(
    JSON.stringify(await child(Deno.args[1]!, Number(Deno.args[2]), Number(Deno.args[3]))),
  );
} else {
  const here = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const base = arg("base", here), pairs = Number(arg("pairs", "5"));
  const runs = arg("runs", "10"), wanted = arg("wanted", "64");
  const held = Number(arg("sockets", "100000"));
  const holder = held > 0 ? await holdSockets(held) : undefined;
  try {
    const out: Record<string, Result[]> = { base: [], this: [] };
    for (let p = 0; p < pairs; p++) {
      for (const [name, tree] of [["base", base], ["this", here]] as const) {
        const r = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", new URL(import.meta.url).pathname, "--child", tree, runs, wanted],
          stdout: "piped",
        }).output();
        const result = JSON.parse(new TextDecoder().decode(r.stdout)) as Result;
        console.log(JSON.stringify({ pair: p, name, ...result }));
        out[name]!.push(result);
      }
    }
    for (const [name, rs] of Object.entries(out)) {
      console.log(
        `${name}: rows ${median(rs.map((r) => r.rows))}, files ${
          median(rs.map((r) => r.filesPerRun))
        }, wall ${median(rs.map((r) => r.wallMs)).toFixed(2)} ms, CPU ${
          median(rs.map((r) => r.cpuMs)).toFixed(2)
        } ms, program ${median(rs.map((r) => r.progMsPerRun)).toFixed(2)} ms per run (medians)`,
      );
    }
  } finally {
    holder?.kill("SIGKILL");
    await holder?.status;
  }
}
