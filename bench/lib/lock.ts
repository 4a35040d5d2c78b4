/**
 * The shared whole-host lock (`flock /tmp/netflow-ok.lock`): a whole-host
 * benchmark section holds it only while it runs, so the suites of others
 * queue behind one section at a time, never behind the whole benchmark.
 *
 * @module
 */
import { spawn, waitForLine } from "./proc.ts";

export const HOST_LOCK = "/tmp/netflow-ok.lock";

/**
 * Runs `fn` holding the lock: a `flock` child holds it until its stdin closes.
 * `held`: the caller already holds it (`flock ... deno task bench --lock-held`).
 */
export async function withHostLock<T>(held: boolean, fn: () => Promise<T>): Promise<T> {
  if (held) return await fn();
  const holder = spawn("flock", [HOST_LOCK, "sh", "-c", "echo held; exec cat > /dev/null"], {
    stdout: "piped",
    stdin: "piped",
  });
  console.error(`bench: waiting for ${HOST_LOCK}`);
  await waitForLine(holder.stdout, /^held/, 3_600_000);
  try {
    return await fn();
  } finally {
    await holder.stdin.close();
    await holder.status;
  }
}
