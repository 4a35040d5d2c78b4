/**
 * netflow's start with connections already open (issue 24 goal 6; bench/sockets.ts,
 * bench/memory_ab.ts): the time, CPU and peak RSS until the start snapshot's
 * begins are written, then its idle CPU and RSS over a quiet window.
 *
 * @module
 */
import { effectiveSockOps } from "../../src/bpf/peers.ts";
import { CGROUP } from "./env.ts";
import { HOLD_PAIRS } from "./hold.ts";
import { CLK_TCK, cpuTicks, peakRssMiB, sleep } from "./proc.ts";
import { Netflow, type NetflowOptions } from "./tools.ts";

/** The first port of the held connections (bench/lib/hold.ts holdOpen). */
export const HOLD_PORT = 9101;

const cpuS = (pid: number) => cpuTicks(pid) / CLK_TCK;

export interface Start {
  /** From spawn to the last begin written, ms. */
  ms: number;
  cpuS: number;
  begins: number;
  /** CPU per second over the quiet window after the snapshot (default events). */
  idleCpuPerS: number;
  /**
   * Share of the idle window's samples in which another sock_ops program ran
   * for the cgroup (another monitor on the root: then netflow reads its list
   * of open flows every 3 s, src/bpf/peers.ts).
   */
  shared: number;
  /** RSS after the quiet window. */
  rssMiB: number;
  /** Peak RSS (VmHWM) when the last preexisting begin was written. */
  peakMiB: number;
}

/** Waits until the file has not grown for `quietMs`; the time it last grew (performance.now). */
export async function lastGrowth(file: string, quietMs: number, maxMs: number): Promise<number> {
  let size = -1, since = performance.now();
  for (const end = performance.now() + maxMs; performance.now() < end; await sleep(50)) {
    const now = Deno.statSync(file).size;
    if (now !== size) [size, since] = [now, performance.now()];
    else if (performance.now() - since >= quietMs) break;
  }
  return since;
}

/** Waits `ms`; the share of 4-a-second samples in which netflow shared the cgroup's sock_ops. */
async function sharing(ms: number): Promise<number> {
  let n = 0, shared = 0;
  for (const end = performance.now() + ms; performance.now() < end; await sleep(250)) {
    n++;
    if (effectiveSockOps(CGROUP) > 1) shared++;
  }
  return shared / Math.max(1, n);
}

/**
 * 1: netflow started now; the time and CPU until its begins are out, then its idle CPU.
 * `netflow`: which netflow, and its V8 flags (bench/memory_ab.ts; default this checkout's).
 */
export async function startUp(
  name: string,
  held: number,
  window: number,
  netflow: Pick<NetflowOptions, "cli" | "v8Flags" | "env"> = {},
): Promise<Start & { summary: string }> {
  const t0 = performance.now();
  const nf = await Netflow.start(name, {
    cgroup: CGROUP,
    extra: ["--events", "begin,end"],
    ...netflow,
  });
  const readyAt = performance.now();
  const doneAt = await lastGrowth(nf.file, 2000, 300_000);
  const cpu = cpuS(nf.pid);
  const peakMiB = peakRssMiB(nf.pid);
  const idle0 = cpuS(nf.pid);
  const shared = await sharing(window * 1000);
  const idle = (cpuS(nf.pid) - idle0) / window;
  const rss = Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${nf.pid}/status`))![1]);
  const summary = await nf.stop();
  let begins = 0;
  for (let i = 0; i < HOLD_PAIRS; i++) begins += nf.count(HOLD_PORT + i).begin;
  if (begins !== held) console.error(`sockets: ${begins} preexisting begins of ${held}`);
  const ms = (held === 0 ? readyAt : doneAt) - t0;
  return { ms, cpuS: cpu, begins, idleCpuPerS: idle, shared, rssMiB: rss / 1024, peakMiB, summary };
}
