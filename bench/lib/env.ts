/**
 * The benchmark's own network namespace and child cgroup, tcplife's tracefs
 * and kernel.bpf_stats_enabled: set up once, undone at cleanup (restored to
 * what they were), and the readings that depend on them.
 *
 * @module
 */
import { findCgroup2Mount } from "../../src/bpf/cgroup.ts";
import { isDir, killStarted, sh, sleep } from "./proc.ts";

export const ROOT = new URL("../../", import.meta.url).pathname;
/** The namespace of the namespaced workloads: its /proc/net/snmp counts only them. */
export const NS = `nf-bench-${Deno.pid}`;
/** The cgroup netflow watches in the namespaced workloads. */
export const CGROUP = `${findCgroup2Mount()}/netflow-bench-${Deno.pid}`;
/** Output files of the tools (removed at cleanup). */
export const OUT_DIR = Deno.makeTempDirSync({ prefix: "netflow-bench-" });

/**
 * Makes the namespace and cgroup, mounts tracefs when it is not (tcplife
 * needs it; left mounted) and turns on kernel.bpf_stats_enabled; returns the
 * cleanup, which ends every started process and undoes the rest, in reverse.
 */
export async function setUp(): Promise<() => Promise<void>> {
  const undo: (() => Promise<unknown>)[] = [];
  // One cleanup, however many callers (a signal and the main path's finally) wait on it.
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    cleaning ??= (async () => {
      await killStarted();
      for (const u of undo.reverse()) await u().catch((e) => console.error(`cleanup: ${e}`));
      Deno.removeSync(OUT_DIR, { recursive: true });
    })();
  try {
    await sh("ip", "netns", "add", NS);
    undo.push(() => sh("ip", "netns", "del", NS));
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
    // Left mounted: another bench running meanwhile may have found it mounted (and so not
    // mounted its own); unmounting it under that one's tcplife stopped it ("did not start").
    if (!isDir("/sys/kernel/tracing/events")) {
      await sh("mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing");
    }
    stats = enableBpfStats();
    undo.push(() => Promise.resolve(stats?.close()));
  } catch (err) {
    await cleanup();
    throw err;
  }
  return cleanup;
}

/** This benchmark's hold on bpf_stats (setUp), released by {@link withBpfStatsOff}. */
let stats: { close(): void } | undefined;

/**
 * Runs `fn` with this benchmark's bpf_stats released, for measurements that
 * must not pay its two clock reads per run. Another process can hold them on
 * all the same (kernel.bpf_stats_enabled reads only the sysctl's own setting,
 * not BPF_ENABLE_STATS holders): a caller that must know looks at whether a
 * program's run count moved meanwhile.
 */
export async function withBpfStatsOff<T>(fn: () => T | Promise<T>): Promise<T> {
  stats?.close();
  stats = undefined;
  try {
    return await fn();
  } finally {
    stats = enableBpfStats();
  }
}

/**
 * BPF programs' run time and count, for as long as the returned fd is open:
 * BPF_ENABLE_STATS (libbpf's bpf_enable_stats) rather than the
 * kernel.bpf_stats_enabled sysctl, so that two runs never switch it off under
 * each other and nothing is left on if this process dies.
 */
function enableBpfStats(): { close(): void } {
  const BPF_STATS_RUN_TIME = 0;
  const bpf = Deno.dlopen(
    "libbpf.so.1",
    {
      bpf_enable_stats: { parameters: ["i32"], result: "i32" },
    } as const,
  );
  const libc = Deno.dlopen("libc.so.6", { close: { parameters: ["i32"], result: "i32" } } as const);
  const fd = bpf.symbols.bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (fd < 0) throw new Error(`bpf_enable_stats: errno ${-fd}`);
  return {
    close() {
      libc.symbols.close(fd);
      bpf.close();
      libc.close();
    },
  };
}

/** The namespace's TCP counters (exactly the namespaced workloads' connections). */
export async function tcpCounters(): Promise<Record<string, number>> {
  const snmp = await sh("ip", "netns", "exec", NS, "cat", "/proc/net/snmp");
  const [names, values] = snmp.split("\n").filter((l) => l.startsWith("Tcp:"));
  const keys = names!.trim().split(/\s+/).slice(1);
  const vals = values!.trim().split(/\s+/).slice(1).map(Number);
  return Object.fromEntries(keys.map((k, i) => [k, vals[i]!]));
}

/** Established endpoints between two readings of {@link tcpCounters}. */
export function endpoints(a: Record<string, number>, b: Record<string, number>): number {
  return (b.ActiveOpens! - a.ActiveOpens!) - (b.AttemptFails! - a.AttemptFails!) +
    (b.PassiveOpens! - a.PassiveOpens!);
}

/** The ids of the BPF programs a process holds (its fds' fdinfo). */
export function heldProgIds(pid: number): Set<number> {
  const ids = new Set<number>();
  for (const fd of Deno.readDirSync(`/proc/${pid}/fdinfo`)) {
    try {
      const id = /^prog_id:\s+(\d+)/m.exec(Deno.readTextFileSync(`/proc/${pid}/fdinfo/${fd.name}`));
      if (id) ids.add(Number(id[1]));
    } catch { /* closed meanwhile */ }
  }
  return ids;
}

/**
 * Summed run time and count, by name, of the BPF programs process `pid`
 * holds (kernel.bpf_stats_enabled): other netflows on the host are not counted.
 */
export async function bpfStats(pid: number): Promise<Map<string, { ns: number; runs: number }>> {
  const held = heldProgIds(pid);
  const progs = JSON.parse(await sh("bpftool", "prog", "show", "-j")) as {
    id: number;
    name?: string;
    run_time_ns?: number;
    run_cnt?: number;
  }[];
  const out = new Map<string, { ns: number; runs: number }>();
  for (const p of progs) {
    if (p.name === undefined || !held.has(p.id)) continue;
    const s = out.get(p.name) ?? { ns: 0, runs: 0 };
    s.ns += p.run_time_ns ?? 0;
    s.runs += p.run_cnt ?? 0;
    out.set(p.name, s);
  }
  return out;
}

/** ns per run of the named programs between two readings of {@link bpfStats}. */
export function nsPerRun(
  a: Map<string, { ns: number; runs: number }>,
  b: Map<string, { ns: number; runs: number }>,
  names: readonly string[],
): { ns: number; runs: number; perRun: number } {
  let ns = 0, runs = 0;
  for (const n of names) {
    ns += (b.get(n)?.ns ?? 0) - (a.get(n)?.ns ?? 0);
    runs += (b.get(n)?.runs ?? 0) - (a.get(n)?.runs ?? 0);
  }
  return { ns, runs, perRun: ns / Math.max(1, runs) };
}

/** The machine, for the results' header. */
export async function machine(): Promise<string> {
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
