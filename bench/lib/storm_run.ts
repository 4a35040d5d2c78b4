/**
 * One storm of short loopback connections (bench/lib/storm.py): server
 * processes on a port (one, or several sharing it with SO_REUSEPORT), then
 * client processes that each make their share of the connections, paced
 * or not; it ends when every client has said how it went and the servers
 * are gone. Used by the whole-host benchmarks (bench/hoststorm.ts,
 * bench/rates.ts).
 *
 * @module
 */
import { ROOT } from "./env.ts";
import { CLK_TCK, cpuTicks, spawn, waitForLine } from "./proc.ts";

export interface StormOptions {
  port: number;
  /** Connections in all, shared evenly between the clients. */
  connections: number;
  /** Client processes (one asyncio client tops out near 3,000 a second here). */
  clients: number;
  /** Connections each client keeps in flight. */
  concurrency: number;
  /** Server processes sharing the port (SO_REUSEPORT when more than one); 1 when not given. */
  servers?: number;
  /** Connections a second asked of all the clients together (unpaced when not given). */
  rate?: number;
  /** Run every process in the benchmark's cgroup (bench/lib/env.ts CGROUP). */
  inCgroup?: boolean;
}

export interface StormRun {
  /** Connections made (closed by both sides). */
  done: number;
  failed: number;
  /** From the clients' start to the last client's report. */
  seconds: number;
  /** CPU ticks of the storm's own processes (clients and servers). */
  ticks: number;
}

const STORM = `${ROOT}bench/lib/storm.py`;

export async function runStorm(o: StormOptions): Promise<StormRun> {
  const inCgroup = o.inCgroup ?? false;
  const serverCount = o.servers ?? 1;
  const shared = serverCount > 1 ? ["reuseport"] : [];
  const servers = Array.from(
    { length: serverCount },
    () =>
      spawn("python3", [STORM, "serve", String(o.port), ...shared], { stdout: "piped", inCgroup }),
  );
  for (const s of servers) await waitForLine(s.stdout, /^listening/);
  const each = Math.ceil(o.connections / o.clients);
  const pace = o.rate === undefined ? [] : [String(o.rate / o.clients)];
  const t0 = performance.now();
  const clients = Array.from({ length: o.clients }, () =>
    spawn(
      "python3",
      [STORM, "connect", String(o.port), String(each), String(o.concurrency), ...pace],
      { stdout: "piped", inCgroup },
    ));
  const outs = await Promise.all(clients.map(async (c) => {
    const line = await waitForLine(c.stdout, /^\{/, 600_000);
    return JSON.parse(line) as { connections: number; failed: number; cpu: number };
  }));
  const seconds = (performance.now() - t0) / 1000;
  // The clients report their own CPU (they may be gone already); the servers are read here.
  let ticks = outs.reduce((a, x) => a + x.cpu * CLK_TCK, 0);
  for (const s of servers) ticks += cpuTicks(s.pid);
  for (const s of servers) s.kill("SIGTERM");
  await Promise.all([...servers, ...clients].map((c) => c.status));
  return {
    done: outs.reduce((a, x) => a + x.connections, 0),
    failed: outs.reduce((a, x) => a + x.failed, 0),
    seconds,
    ticks,
  };
}
