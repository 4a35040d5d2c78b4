/**
 * The command as a process, for what needs no privileges: bad arguments,
 * --help and --version.
 */
import assert from "node:assert/strict";
import { BAD } from "../helpers/bad_args.ts";
import { runNetflow as run } from "../helpers/netflow.ts";

Deno.test("each bad argument is one line on stderr, the usage line, exit 2", async () => {
  const results = await Promise.all(BAD.map(([args]) => run(args)));
  BAD.forEach(([args, message], i) => {
    const { code, stdout, stderr } = results[i]!;
    const what = args.join(" ");
    assert.equal(code, 2, what);
    assert.equal(stdout, "", what);
    assert.equal(
      stderr,
      `netflow: ${message}\nUsage: netflow [options] (netflow --help lists them)\n`,
      what,
    );
  });
});

Deno.test("--help and --version print to stdout and exit 0", async () => {
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: netflow \[options\]\n/);
  assert.equal(help.stderr, "");
  const version = await run(["-V"]);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^netflow \d+\.\d+\.\d+\n$/);
});
