/**
 * Many loopback connections held open (bench/hold.py): pairs of processes,
 * each pair's server in the benchmark's namespace and its client in the
 * watched cgroup and namespace, so the client ends are the watched flows.
 *
 * @module
 */
import { ROOT } from "./env.ts";
import { spawn, waitForLine } from "./proc.ts";

/** Pairs of hold.py processes (each below the 20,000-fd limit). */
export const HOLD_PAIRS = 8;
/** Connections opened per second. */
export const HOLD_RATE = 5000;

/**
 * Opens `n` connections to ports `port`.. `port + HOLD_PAIRS - 1` (each pair
 * from its own 127.0.4.x, so ephemeral ports do not run out) and holds them;
 * returns what closes them all and ends the processes.
 */
export async function holdOpen(n: number, port: number): Promise<() => Promise<void>> {
  const servers: Deno.ChildProcess[] = [], clients: Deno.ChildProcess[] = [];
  for (let i = 0; i < HOLD_PAIRS; i++) {
    const server = spawn("python3", [`${ROOT}bench/hold.py`, "serve", String(port + i)], {
      inNs: true,
      stdout: "piped",
    });
    servers.push(server);
    await waitForLine(server.stdout, /^listening/);
  }
  for (let i = 0; i < HOLD_PAIRS; i++) {
    const per = Math.floor(n / HOLD_PAIRS) + (i < n % HOLD_PAIRS ? 1 : 0);
    const args = [`${ROOT}bench/hold.py`, "connect", String(per), String(port + i)];
    const client = spawn("python3", [...args, `127.0.4.${i + 1}`, String(HOLD_RATE)], {
      watched: true,
      stdout: "piped",
      stdin: "piped",
    });
    clients.push(client);
    await waitForLine(client.stdout, /^open \d+/, 300_000);
  }
  return async () => {
    for (const c of clients) await c.stdin.close();
    for (const c of clients) await c.status;
    for (const s of servers) s.kill("SIGTERM");
    for (const s of servers) await s.status;
  };
}
