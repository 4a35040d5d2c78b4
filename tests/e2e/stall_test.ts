/**
 * e2e (root): a stalled reader loses no flow. netflow is stopped (SIGSTOP)
 * while a storm of connections far larger than its ring runs; the kernel
 * keeps the ends it could not write (the `kept` map) and marks the begins it
 * lost, and once netflow runs again every endpoint gets one begin and one
 * end with exact bytes.
 */
import assert from "node:assert/strict";
import type { FlowEvent } from "../../mod.ts";
import { e2eTest, ROOT, TestCgroup } from "../helpers/e2e.ts";
import { Netflow } from "../helpers/netflow.ts";
import { assertEveryEndpoint } from "../helpers/storm_check.ts";

const LIFECYCLE = `${ROOT}tests/workloads/lifecycle.py`;
const STORM = `${ROOT}tests/workloads/storm.py`;
const CONNECTIONS = 1000;

async function line(proc: { line(timeoutMs?: number): Promise<string> }, ms = 60_000) {
  return JSON.parse(await proc.line(ms));
}

/**
 * netflow on the cgroup with a 16 KiB ring (97 flow records), the storm's port
 * only; --count: it ends after the storm's events, so no fixed wait.
 */
function tinyRing(cg: TestCgroup, port: number, want: number): string[] {
  return ["--format", "json", "--cgroup", cg.dir, "--ring-size", "16K", "--port", String(port)]
    .concat(["--count", String(2 * want)]);
}

e2eTest(
  "a reader stopped during a storm 30 times its ring loses no flow: ends kept in the kernel, begins written with them",
  async () => {
    await using cg = new TestCgroup();
    await using server = cg.spawn("python3", LIFECYCLE, "serve", "127.0.0.1");
    const { port } = await line(server);
    const want = 2 * CONNECTIONS; // endpoints: each a begin and an end
    // 16 KiB: about 100 records; the storm makes 4,000.
    await using nf = await Netflow.start(tinyRing(cg, port, want));
    Deno.kill(nf.pid, "SIGSTOP");
    try {
      await using s = cg.spawn("python3", STORM, "127.0.0.1", String(port), String(CONNECTIONS));
      assert.equal((await line(s, 120_000)).ports.length, CONNECTIONS);
    } finally {
      Deno.kill(nf.pid, "SIGCONT");
    }
    const { events, stderr, code } = await nf.finish(60_000);
    assert.equal(code, 0, stderr);
    assertEveryEndpoint(events as FlowEvent[], port, want);
    // The ring overflowed, and the kernel's store kept what it could not take.
    const lost = Number(/(\d+) lost records/.exec(stderr)?.[1]);
    const recovered = Number(/(\d+) flows recovered from the kernel's store/.exec(stderr)?.[1]);
    const flowsLost = Number(/(\d+) flows lost/.exec(stderr)?.[1]);
    assert.ok(lost > 0, `the ring never overflowed: ${stderr}`);
    assert.ok(recovered > 0, `nothing was recovered: ${stderr}`);
    assert.equal(flowsLost, 0, stderr);
  },
);

e2eTest(
  "a 16 KiB ring read while a storm runs through it: records that wrap around its end are read whole",
  async () => {
    // The reader maps the data area once and only WRAP_BYTES of its second
    // mapping: a record that wraps must be read from there (one mapping alone:
    // netflow died at the first such record).
    await using cg = new TestCgroup();
    await using server = cg.spawn("python3", LIFECYCLE, "serve", "127.0.0.1");
    const { port } = await line(server);
    const want = 2 * CONNECTIONS;
    await using nf = await Netflow.start(tinyRing(cg, port, want));
    await using s = cg.spawn("python3", STORM, "127.0.0.1", String(port), String(CONNECTIONS));
    assert.equal((await line(s, 120_000)).ports.length, CONNECTIONS);
    const { events, stderr, code } = await nf.finish(60_000);
    assert.equal(code, 0, stderr);
    assertEveryEndpoint(events as FlowEvent[], port, want);
    // Positive control: at least 1,000 records (168 bytes each with their header) went
    // through the ring of 97, so it wrapped, with a record across its end, again and again.
    const lost = Number(/(\d+) lost records/.exec(stderr)?.[1]);
    assert.ok(2 * want + CONNECTIONS - lost >= 1000, `too few records through the ring: ${stderr}`);
  },
);
