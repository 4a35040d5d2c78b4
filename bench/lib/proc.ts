/**
 * Processes for the benchmarks: every one started here is remembered and
 * ended by pid at cleanup, whatever happens; readings of their CPU and memory
 * from /proc.
 *
 * @module
 */
import { CGROUP, NS } from "./env.ts";

const decoder = new TextDecoder();

/** Runs a command to its end; its stdout, or an error with its stderr. */
export async function sh(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${decoder.decode(out.stderr).trim()}`);
  }
  return decoder.decode(out.stdout);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Every process the benchmark started, ended by pid at the end whatever happens. */
export const started: Deno.ChildProcess[] = [];

export interface SpawnOptions {
  /** Run in the benchmark's cgroup and network namespace (the watched workload). */
  watched?: boolean;
  /** Run in the namespace only (not watched). */
  inNs?: boolean;
  /** Run in the benchmark's cgroup only, in the host's network namespace. */
  inCgroup?: boolean;
  stdout?: "piped" | "null";
  stdin?: "piped" | "null";
}

export function spawn(cmd: string, args: string[], o: SpawnOptions = {}): Deno.ChildProcess {
  let argv = [cmd, ...args];
  if (o.watched || o.inNs) argv = ["ip", "netns", "exec", NS, ...argv];
  if (o.watched || o.inCgroup) {
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

/** Runs a command to its end (spawned as {@link spawn} does); its stdout. */
export async function run(cmd: string, args: string[], o: SpawnOptions = {}): Promise<string> {
  const child = spawn(cmd, args, { ...o, stdout: "piped" });
  const [status, out, err] = await Promise.all([
    child.status,
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  if (!status.success) throw new Error(`${cmd} failed: ${err.trim()}`);
  return out;
}

/** Ends every started process (SIGKILL, by pid) and waits for them. */
export async function killStarted(): Promise<void> {
  for (const child of started) {
    try {
      child.kill("SIGKILL");
    } catch { /* already ended */ }
  }
  await Promise.allSettled(started.map((c) => c.status));
}

/** Reads lines from a stream until one matches. */
export async function waitForLine(
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

/** Clock ticks a second (USER_HZ). */
export const CLK_TCK = 100;

/** CPU time a process has used so far, in clock ticks (utime + stime). */
export function cpuTicks(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]!.split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/** Perf event fds a process holds (tcplife: one per tracepoint and per CPU buffer). */
export function perfEventFds(pid: number): number {
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

/**
 * Kernel memory charged to the BPF maps a process holds open, MiB: the
 * `memlock` of each `anon_inode:bpf-map` fd's fdinfo, each map counted once
 * (by `map_id`). Neither tool's maps are in its RSS.
 */
export function bpfMapMiB(pid: number): number {
  const seen = new Map<string, number>();
  try {
    for (const fd of Deno.readDirSync(`/proc/${pid}/fd`)) {
      try {
        if (Deno.readLinkSync(`/proc/${pid}/fd/${fd.name}`) !== "anon_inode:bpf-map") continue;
        const info = Deno.readTextFileSync(`/proc/${pid}/fdinfo/${fd.name}`);
        const id = /map_id:\s+(\d+)/.exec(info)?.[1];
        const bytes = /memlock:\s+(\d+)/.exec(info)?.[1];
        if (id !== undefined && bytes !== undefined) seen.set(id, Number(bytes));
      } catch { /* closed meanwhile */ }
    }
  } catch { /* gone */ }
  return [...seen.values()].reduce((a, b) => a + b, 0) / 1048576;
}

/** Peak resident memory (VmHWM), MiB. */
export function peakRssMiB(pid: number): number {
  const kb = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))?.[1];
  return Number(kb) / 1024;
}

/** Resident memory now (VmRSS), MiB. */
export function rssMiB(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))?.[1];
  return Number(kb) / 1024;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function fmt(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toFixed(digits) : "n/a";
}

export function isDir(path: string): boolean {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return false;
  }
}

/** Waits until a file has not grown for `quietMs` (a monitor caught up), at most `maxMs`. */
export async function settled(file: string, quietMs = 1000, maxMs = 30_000): Promise<void> {
  let size = -1, since = performance.now();
  for (const end = performance.now() + maxMs; performance.now() < end;) {
    const now = Deno.statSync(file).size;
    if (now !== size) [size, since] = [now, performance.now()];
    else if (performance.now() - since >= quietMs) return;
    await sleep(100);
  }
}
