/**
 * The ./netflow launcher from a clean clone, as a new user runs it: the
 * clone holds exactly what git tracks (the working tree's tracked files, so an
 * uncommitted change is tested too), with no build step and no dist/.
 */
import assert from "node:assert/strict";
import {
  e2eTest,
  LOCAL,
  Proc,
  ROOT,
  sh,
  TestCgroup,
  withTimeout,
  workload,
} from "../helpers/e2e.ts";

const ENV = { NO_COLOR: "1", RUST_BACKTRACE: "0" };

/**
 * A `git clone` of this checkout at its tracked working state. `.tools` (the
 * pinned Deno, untracked) links to this checkout's, so the first run does not
 * download Deno again: the setup it runs is the same one that installs it.
 */
async function cleanClone(): Promise<{ dir: string; clone: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "netflow-clone-" });
  const clone = `${dir}/netflow`;
  const dispose = () => Deno.remove(dir, { recursive: true });
  try {
    const state = (await sh("git", "-C", ROOT, "stash", "create")).trim() ||
      (await sh("git", "-C", ROOT, "rev-parse", "HEAD")).trim();
    await sh("git", "clone", "-q", "--no-checkout", ROOT, clone);
    await sh("git", "-C", clone, "checkout", "-q", state);
    await Deno.symlink(await Deno.realPath(`${ROOT}.tools`), `${clone}/.tools`);
  } catch (err) {
    await dispose();
    throw err;
  }
  return { dir, clone, [Symbol.asyncDispose]: dispose };
}

async function launch(clone: string, ...args: string[]) {
  const out = await new Deno.Command(`${clone}/netflow`, {
    args,
    env: ENV,
    stdout: "piped",
    stderr: "piped",
    cwd: "/",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test("./netflow --help from a clean clone prints the usage", async () => {
  await using c = await cleanClone();
  const { code, stdout, stderr } = await launch(c.clone, "--help");
  assert.equal(stderr, "");
  assert.equal(code, 0);
  assert.match(stdout, /^Usage: netflow /);
  assert.match(stdout, /--format/);
});

Deno.test("./netflow runs dist/netflow unless a source is newer than it", async () => {
  await using c = await cleanClone();
  // A stand-in for `deno task compile`'s output: the launcher's choice is what is tested.
  await Deno.mkdir(`${c.clone}/dist`);
  await Deno.writeTextFile(`${c.clone}/dist/netflow`, '#!/bin/sh\necho "compiled $*"\n', {
    mode: 0o755,
  });
  assert.deepEqual(await launch(c.clone, "--version"), {
    code: 0,
    stdout: "compiled --version\n",
    stderr: "",
  });
  const past = new Date(Date.now() - 3600_000);
  await Deno.utime(`${c.clone}/dist/netflow`, past, past);
  const { code, stdout, stderr } = await launch(c.clone, "--version");
  assert.equal(code, 0);
  assert.match(stdout, /^netflow \d+\.\d+\.\d+/);
  assert.match(
    stderr,
    /^netflow: \S+ is newer than dist\/netflow, running the sources \(deno task compile rebuilds it\)\n$/,
  );
});

e2eTest("sudo ./netflow --format table from a clean clone shows a real connection", async () => {
  await using c = await cleanClone();
  await using cg = new TestCgroup();
  // Literally the quick start: the whole host, for the seconds this test runs; only the
  // test's own connection is looked at.
  await using nf = new Proc("sh", [
    "-c",
    `cd "$0" && exec env NO_COLOR=1 RUST_BACKTRACE=0 ./netflow --format table`,
    c.clone,
  ]);
  const header = await nf.line(120_000);
  assert.match(header, /^TIME\(\S+\)\s+EVENT\s/);
  const w = await workload(cg, { where: LOCAL, host: "127.0.0.1" }, {
    where: LOCAL,
    connectTo: "127.0.0.1",
  });
  const client = `127.0.0.1:${w.clientPorts[0]}`, server = `127.0.0.1:${w.serverPort}`;
  const mine: string[] = [];
  // The client's begin and end, and the server side's: four lines name both ports (the
  // client's port alone may also be another process's, to another server, on this busy host).
  while (mine.length < 4) {
    const line = await nf.line();
    if (line.includes(` ${client} `) && line.includes(` ${server} `)) mine.push(line);
  }
  const outgoing = mine.filter((l) => /\bout\b/.test(l));
  assert.equal(outgoing.length, 2, mine.join("\n"));
  assert.match(outgoing[0]!, /\bbegin\b.*nf-client/);
  assert.match(outgoing[1]!, /\bend\b.*nf-client/);
  // The rest of the host's flows keep coming: read them on, so that netflow never blocks
  // on a full pipe (with other sessions' storms, it did, and never stopped).
  const rest = (async () => {
    try {
      for (;;) await nf.line(60_000);
    } catch { /* it ended */ }
  })();
  nf.child.kill("SIGTERM");
  const status = await withTimeout(nf.child.status, 30_000, "./netflow to stop");
  await rest;
  assert.equal(status.code, 0);
  assert.match(await nf.stderr, /^netflow: watching cgroup /m);
  assert.match(await nf.stderr, /^netflow: \d+ events, \d+ lost records, \d+ evicted flows/m);
});
