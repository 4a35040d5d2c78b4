/**
 * The tests' netflow launcher (tests/helpers/netflow.ts) against a stand-in
 * CLI (tests/fixtures/fake_netflow.ts): no root needed, so a broken launcher
 * fails here before it makes e2e tests pass or fail for the wrong reason.
 */
import assert from "node:assert/strict";
import { Netflow, netflowCommand, runNetflow } from "../helpers/netflow.ts";

const cli = new URL("../fixtures/fake_netflow.ts", import.meta.url).pathname;

Deno.test("launcher: ready line, every event as written, a condition, SIGINT and the summary", async () => {
  await using nf = await Netflow.start(["events", "5"], { cli });
  assert.match(nf.stderr, /^netflow: watching cgroup \/fake\n/);
  await nf.until((events) => events.length === 5, "five events");
  assert.deepEqual(nf.flows().map((e) => e.flow_id), ["f-0", "f-1", "f-2", "f-3", "f-4"]);
  assert.equal(await nf.stderrLine(/^netflow: wrote/), "netflow: wrote 5 events");
  const { code, events, summary } = await nf.stop();
  assert.equal(code, 0);
  assert.equal(events.length, 5);
  assert.equal(summary, "netflow: 5 events, 0 lost records, 0 evicted flows, 0 flows still open");
});

Deno.test("launcher: a start that fails throws with netflow's own line", async () => {
  await assert.rejects(
    Netflow.start(["refuse"], { cli }),
    /netflow did not start \(it ended\): netflow: Cannot attach to cgroup "\/fake"/,
  );
  const run = await runNetflow(["refuse"], { cli });
  assert.deepEqual([run.code, run.stdout], [1, ""]);
});

Deno.test("launcher: a condition that cannot hold fails at once when netflow ends, or at its timeout", async () => {
  await using ended = await Netflow.start(["exit", "2"], { cli });
  const t0 = performance.now();
  await assert.rejects(ended.until((e) => e.length > 2, "a third event"), /ended before a third/);
  assert.ok(performance.now() - t0 < 10_000);
  await using quiet = await Netflow.start(["events", "1"], { cli });
  await assert.rejects(quiet.until((e) => e.length > 1, "a second", 300), /timed out .* a second/);
  await quiet.until((e) => e.length === 1, "the one event");
});

Deno.test("launcher: stdout held unread until the stop, or written straight to a file", async () => {
  await using held = await Netflow.start(["events", "3"], { cli, holdStdout: true });
  await held.stderrLine(/^netflow: wrote 3/);
  assert.equal(held.events.length, 0);
  assert.equal((await held.stop("SIGTERM")).events.length, 3);
  const file = await Deno.makeTempFile();
  try {
    await using direct = await Netflow.start(["events", "2"], { cli, stdoutFile: file });
    await direct.stderrLine(/^netflow: wrote 2/);
    await direct.stop();
    assert.equal((await Deno.readTextFile(file)).trim().split("\n").length, 2);
    assert.equal(direct.events.length, 0);
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("launcher: dispose ends netflow whatever the test did", async () => {
  let pid = 0;
  {
    await using nf = await Netflow.start(["events", "0"], { cli });
    pid = nf.pid;
  }
  assert.throws(() => Deno.kill(pid, "SIGCONT")); // no such process
});

Deno.test("launcher: the command line under a wrapper and into a file", () => {
  const cmd = netflowCommand(["--cgroup", "/x"], { wrapper: ["setpriv", "--x"], stdoutFile: "/f" });
  assert.deepEqual(cmd.slice(0, 5), ["sh", "-c", 'out=$1; shift; exec "$@" > "$out"', "sh", "/f"]);
  assert.deepEqual(cmd.slice(5, 7), ["setpriv", "--x"]);
  assert.ok(cmd[8] === "run" && cmd.at(-3)!.endsWith("src/cli.ts"));
  assert.deepEqual(cmd.slice(-2), ["--cgroup", "/x"]);
});
