/**
 * Runs a heap workload of tests/workloads/ in a Deno of its own with
 * `--expose-gc` (a full collection before each measurement) and returns what
 * it printed on stdout, parsed as JSON.
 *
 * @module
 */
import assert from "node:assert/strict";

export async function heapWorkload(name: string, ...args: string[]): Promise<unknown> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL(`../workloads/${name}`, import.meta.url).pathname,
      ...args,
    ],
    stderr: "inherit",
  }).output();
  assert.ok(out.success, `${name} failed`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}
