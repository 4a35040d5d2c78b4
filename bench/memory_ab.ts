/**
 * netflow's memory with many open flows (issue 24 goals 3 and 6), two netflows
 * interleaved in the same minutes (the host is noisy): this checkout's (or
 * `--after DIR`'s) against another's (`--before DIR`), or against other V8
 * flags (`--flags-before`, `--flags-after`: the whole `--v8-flags=...`
 * argument; default the runtime's).
 *
 *   sudo deno run -A bench/memory_ab.ts held|start [--n 100000] [--pairs 2]
 *     [--before DIR] [--after DIR] [--flags-before F] [--flags-after F]
 *     [--side before|after] [--keep DIR]
 *
 * held: bench/held.ts per run: peak RSS with n open flows and after they all
 * close at once, netflow's CPU in each phase. start: n connections held open
 * once (bench/lib/hold.ts), then each netflow started over them: the start
 * snapshot's CPU and time until the last preexisting begin is written, its
 * peak RSS then, RSS after a 5 s quiet window. Pairs alternate their order
 * (before, after; after, before). One JSON line per run on stderr, the
 * medians on stdout. `--side`: one side only (a diagnostic run); `--keep
 * DIR`: what netflow wrote to stdout besides its JSON lines (V8's
 * `--trace-gc`, its C stdout made line-buffered so that no trace is lost at
 * exit) is copied to DIR/NAME.txt before the cleanup removes it.
 * Heavy: run it inside the shared lock (`flock /tmp/netflow-ok.lock`),
 * keeping each hold under ~6 minutes.
 *
 * @module
 */
import { held } from "./held.ts";
import { OUT_DIR, setUp } from "./lib/env.ts";
import { holdOpen } from "./lib/hold.ts";
import { fmt, median } from "./lib/proc.ts";
import { HOLD_PORT, startUp } from "./lib/start.ts";
import type { NetflowOptions } from "./lib/tools.ts";

const arg = (name: string) =>
  Deno.args.includes(name) ? Deno.args[Deno.args.indexOf(name) + 1] : undefined;
const MODE = Deno.args[0];
const N = Number(arg("--n") ?? 100_000);
const PAIRS = Number(arg("--pairs") ?? 2);
const BEFORE = arg("--before");
const SIDE = arg("--side");
const KEEP = arg("--keep");
/** V8 writes its traces with printf: line-buffered (coreutils' stdbuf), none is lost at exit. */
const LINES = KEEP === undefined
  ? {}
  : { env: { LD_PRELOAD: "/usr/libexec/coreutils/libstdbuf.so", _STDBUF_O: "L" } };

type Side = Pick<NetflowOptions, "cli" | "v8Flags" | "env">;
const sides: Record<"before" | "after", Side> = {
  before: {
    ...LINES,
    ...(BEFORE === undefined ? {} : { cli: `${BEFORE}/src/cli.ts` }),
    ...(arg("--flags-before") === undefined ? {} : { v8Flags: arg("--flags-before")! }),
  },
  after: {
    ...LINES,
    ...(arg("--after") === undefined ? {} : { cli: `${arg("--after")}/src/cli.ts` }),
    ...(arg("--flags-after") === undefined ? {} : { v8Flags: arg("--flags-after")! }),
  },
};

/** One run's figures by name (MiB, CPU seconds, counts). */
type Figures = Record<string, number>;

async function runHeld(side: Side): Promise<Figures> {
  const h = await held(N, side);
  return {
    rssStart: h.rssBefore,
    peakOpen: h.rssOpen,
    peakClosed: h.rssPeak,
    cpuOpenUsPerFlow: h.cpuOpenS * 1e6 / N,
    cpuCloseUsPerFlow: h.cpuCloseS * 1e6 / N,
    begins: h.begin,
    ends: h.end,
  };
}

async function runStart(side: Side, name: string): Promise<Figures> {
  const s = await startUp(name, N, 5, side);
  return {
    peakStart: s.peakMiB,
    rssAfter: s.rssMiB,
    cpuUsPerFlow: s.cpuS * 1e6 / N,
    seconds: s.ms / 1000,
    begins: s.begins,
  };
}

/** The lines of netflow's output files that are not JSON (V8's traces), into `dir`. */
function keep(dir: string): void {
  Deno.mkdirSync(dir, { recursive: true });
  for (const { name } of Deno.readDirSync(OUT_DIR)) {
    const text = Deno.readTextFileSync(`${OUT_DIR}/${name}`);
    const other = text.split("\n").filter((line) => !line.startsWith("{"));
    Deno.writeTextFileSync(`${dir}/${name.replace(/\.jsonl$/, "")}.txt`, other.join("\n"));
  }
}

async function main() {
  if (MODE !== "held" && MODE !== "start") throw new Error("memory_ab.ts held|start [options]");
  if (Deno.uid() !== 0) throw new Error("the benchmark needs root");
  const cleanup = await setUp();
  const runs: Record<"before" | "after", Figures[]> = { before: [], after: [] };
  try {
    const close = MODE === "start" ? await holdOpen(N, HOLD_PORT) : async () => {};
    try {
      for (let i = 0; i < PAIRS; i++) {
        const order = i % 2 === 0 ? (["before", "after"] as const) : (["after", "before"] as const);
        for (const which of order.filter((w) => SIDE === undefined || w === SIDE)) {
          const f = MODE === "held"
            ? await runHeld(sides[which])
            : await runStart(sides[which], `start-${which}-${i}`);
          runs[which].push(f);
          console.error(JSON.stringify({ pair: i, which, at: new Date().toISOString(), ...f }));
        }
      }
    } finally {
      await close();
    }
    if (KEEP !== undefined) keep(KEEP);
  } finally {
    await cleanup();
  }
  for (const which of ["before", "after"] as const) {
    const keys = Object.keys(runs[which][0] ?? {});
    const medians = keys.map((k) => `${k} ${fmt(median(runs[which].map((f) => f[k]!)), 1)}`);
    console.log(`${which} (${runs[which].length} runs, medians): ${medians.join(", ")}`);
  }
}

await main();
