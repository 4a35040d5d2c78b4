/**
 * e2e (root): the command as a process: the capabilities it needs (run under
 * setpriv with exactly them, and with each one left out), ending by itself
 * (--count, --duration, a removed cgroup, a closed pipe, SIGHUP), and --help
 * for a user who is not root, from a clean clone.
 */
import assert from "node:assert/strict";
import { findCgroup2Mount } from "../../src/bpf/cgroup.ts";
import { missingCapabilitiesMessage, REQUIRED_CAPABILITIES } from "../../src/caps.ts";
import type { FlowEvent } from "../../src/events.ts";
import { e2eTest, LOCAL, ROOT, sh, TestCgroup, withTimeout, workload } from "../helpers/e2e.ts";
import { ENV, Netflow, runNetflow } from "../helpers/netflow.ts";

const decoder = new TextDecoder();

/** setpriv with exactly `caps` (inheritable, ambient, bounding): a wrapper for netflow. */
function withCapabilities(caps: readonly string[]): string[] {
  const set = ["-all", ...caps.map((c) => `+${c.replace(/^CAP_/, "").toLowerCase()}`)].join(",");
  return ["setpriv", `--inh-caps=${set}`, `--ambient-caps=${set}`, `--bounding-set=${set}`];
}

async function runWithCapabilities(caps: readonly string[], args: string[]) {
  return await runNetflow(args, { wrapper: withCapabilities(caps) });
}

e2eTest(
  "with exactly the documented capabilities netflow reports flows and their owners",
  async () => {
    await using cg = new TestCgroup();
    await using nf = await Netflow.start(["--format", "json", "--cgroup", cg.dir, "--count", "4"], {
      wrapper: withCapabilities(REQUIRED_CAPABILITIES),
    });
    assert.match(nf.stderr, /^netflow: watching cgroup /, nf.stderr);
    const lo = "127.0.0.1";
    const w = await workload(cg, { where: LOCAL, host: lo }, { where: LOCAL, connectTo: lo });
    const { code, events } = await nf.finish(30_000);
    assert.equal(code, 0);
    const seen = (events as FlowEvent[]).map((e) => `${e.event} ${e.conn_direction} ${e.comm}`)
      .sort();
    assert.deepEqual(seen, [
      "net_flow_tcp_begin incoming nf-server",
      "net_flow_tcp_begin outgoing nf-client",
      "net_flow_tcp_end incoming nf-server",
      "net_flow_tcp_end outgoing nf-client",
    ]);
    for (const e of events as FlowEvent[]) {
      assert.equal(e.pid, e.conn_direction === "outgoing" ? w.clientPid : w.serverPid);
    }
  },
);

e2eTest(
  "netflow runs with exactly the documented capabilities and names the one left out",
  async () => {
    await using cg = new TestCgroup();
    // --duration: it also ends by itself, with the summary.
    const ok = await runWithCapabilities(REQUIRED_CAPABILITIES, [
      "--cgroup",
      cg.dir,
      "--duration",
      "0.5",
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const lines = ok.stderr.trimEnd().split("\n");
    assert.equal(lines[0], `netflow: watching cgroup ${cg.dir}`);
    assert.match(
      lines[1]!,
      /^netflow: 0 events, 0 lost records, 0 evicted flows, .*, 0 flows still open$/,
    );
    assert.equal(lines.length, 2);
    for (const left of REQUIRED_CAPABILITIES) {
      const caps = REQUIRED_CAPABILITIES.filter((c) => c !== left);
      const { code, stdout, stderr } = await runWithCapabilities(caps, ["--cgroup", cg.dir]);
      assert.equal(code, 1, left);
      assert.equal(stdout, "", left);
      assert.equal(stderr, `netflow: ${missingCapabilitiesMessage([left])}\n`, left);
    }
  },
);

e2eTest("--count N writes N events, then detaches and prints the summary", async () => {
  await using cg = new TestCgroup();
  await using nf = await Netflow.start(["--format", "json", "--cgroup", cg.dir, "--count", "2"]);
  // One loopback connection: four events (a begin and an end per endpoint).
  const lo = "127.0.0.1";
  await workload(cg, { where: LOCAL, host: lo }, { where: LOCAL, connectTo: lo });
  const { events, stderr, code } = await nf.finish();
  assert.equal(code, 0, stderr);
  assert.equal(events.length, 2);
  for (const e of events as FlowEvent[]) assert.equal(e.src, lo);
  assert.match(
    stderr,
    /^netflow: 2 events, 0 lost records, 0 evicted flows, .*, \d+ flows still open$/m,
  );
});

e2eTest("SIGHUP stops netflow like SIGTERM: summary, exit 0", async () => {
  await using cg = new TestCgroup();
  await using nf = await Netflow.start(["--cgroup", cg.dir]);
  const { stderr, code } = await nf.stop("SIGHUP");
  assert.equal(code, 0, stderr);
  assert.match(stderr, /^netflow: 0 events, 0 lost records, 0 evicted flows/m);
});

e2eTest("a watched cgroup that is removed ends netflow with one line and the summary", async () => {
  const dir = `${findCgroup2Mount()}/netflow-test-${Deno.pid}-removed`;
  Deno.mkdirSync(dir);
  try {
    await using nf = await Netflow.start(["--cgroup", dir]);
    Deno.removeSync(dir);
    const { stdout, stderr, code } = await nf.finish();
    assert.equal(code, 0, stderr);
    const lines = stderr.trimEnd().split("\n");
    assert.equal(lines.length, 3, stderr);
    assert.equal(lines[0], `netflow: watching cgroup ${dir}`);
    assert.equal(lines[1], `netflow: cgroup ${dir} was removed`);
    assert.match(
      lines[2]!,
      /^netflow: 0 events, 0 lost records, 0 evicted flows, .*, 0 flows still open$/,
    );
    assert.match(stdout, /^TIME\(/);
  } finally {
    try {
      Deno.removeSync(dir);
    } catch { /* removed by the test */ }
  }
});

e2eTest(
  "netflow | head -1 on a quiet cgroup ends when head exits, with no event written",
  async () => {
    await using cg = new TestCgroup();
    const dir = Deno.makeTempDirSync();
    const fifo = `${dir}/stdout`;
    await sh("mkfifo", fifo);
    // head reads one line; netflow writes into the fifo (once head has it open).
    const head = new Deno.Command("head", { args: ["-1", fifo], stdout: "piped" }).spawn();
    await using nf = Netflow.spawn(["--cgroup", cg.dir], { stdoutFile: fifo });
    try {
      const headOut = await withTimeout(head.output(), 60_000, "head to read a line");
      assert.match(decoder.decode(headOut.stdout), /^TIME\(\S+\) +EVENT +DIR +LOCAL +REMOTE/);
      const started = performance.now();
      // Nothing more is written: only watching the pipe can notice that head left.
      const { code, stderr } = await nf.finish(15_000);
      console.log(`netflow ended ${Math.round(performance.now() - started)} ms after head`);
      assert.equal(code, 0, stderr);
      assert.match(stderr, /^netflow: watching cgroup .*\nnetflow: 0 events, 0 lost records/);
    } finally {
      try {
        head.kill("SIGKILL");
      } catch { /* already gone */ }
      await head.status;
      Deno.removeSync(dir, { recursive: true });
    }
  },
);

e2eTest(
  "./task start --help and ./netflow --help work for a user who is not root, from a clean clone",
  async () => {
    const dir = Deno.makeTempDirSync();
    try {
      const clone = `${dir}/netflow`;
      await sh("git", "clone", "--quiet", ROOT, clone);
      // Deno itself is set up once per machine (.tools, as in every worktree).
      Deno.symlinkSync(Deno.realPathSync(`${ROOT}.tools`), `${clone}/.tools`);
      // The cache ./task uses must hold the npm packages (it does after any run by root).
      await new Deno.Command(Deno.execPath(), {
        args: ["cache", "--quiet", `${clone}/src/cli.ts`],
        env: { ...ENV, DENO_DIR: `${clone}/.tools/deno-dir` },
        stdout: "null",
        stderr: "null",
      }).output();
      await sh("chown", "-R", "nobody:nogroup", dir);
      for (const command of [["./task", "start", "--help"], ["./netflow", "--help"]]) {
        const out = await new Deno.Command("setpriv", {
          args: [
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "env",
            "-i",
            "PATH=/usr/bin:/bin",
            "HOME=/nonexistent",
            ...command,
          ],
          cwd: clone,
          stdin: "null",
        }).output();
        const stdout = decoder.decode(out.stdout), stderr = decoder.decode(out.stderr);
        const what = command.join(" ");
        assert.equal(out.code, 0, `${what}: ${stderr}`);
        assert.match(stdout, /^Usage: netflow \[options\]\n/, what);
        // Nothing of Deno's ("Task ...", colours); the BPF build check may say it is current.
        assert.deepEqual(
          stderr.split("\n").filter((l) => l !== "" && !l.startsWith("build: ")),
          [],
          what,
        );
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
);
