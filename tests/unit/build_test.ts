import assert from "node:assert/strict";

const BUILD = new URL("../../build.ts", import.meta.url).pathname;

async function compile(env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", BUILD, "--compile"],
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0", ...env },
    clearEnv: false,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("deno task compile names a DENORT_BIN that does not exist", async () => {
  const { code, stderr } = await compile({ DENORT_BIN: "/nonexistent/denort" });
  assert.equal(code, 1);
  assert.match(
    stderr,
    /^build: DENORT_BIN is set to "\/nonexistent\/denort", which does not exist$/m,
  );
});

Deno.test("deno task compile makes a working netflow, or says plainly that it needs denort", async () => {
  const env = Deno.env.toObject();
  delete env.DENORT_BIN;
  const { code, stderr } = await compile(env);
  if (code === 0) {
    // denort was reachable: the binary must be netflow itself.
    const out = await new Deno.Command(new URL("../../dist/netflow", import.meta.url).pathname, {
      args: ["--version"],
    }).output();
    assert.match(new TextDecoder().decode(out.stdout), /^netflow \d+\.\d+\.\d+/);
  } else {
    assert.equal(code, 1);
    assert.match(
      stderr,
      /build: deno compile needs the denort runtime .*set DENORT_BIN to a denort \d/,
    );
  }
});
