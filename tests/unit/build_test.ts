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

Deno.test("deno task compile refuses a DENORT_BIN that is not denort, and leaves no binary", async () => {
  // The full deno binary compiles, but the result ignores the embedded program.
  const { code, stderr } = await compile({ DENORT_BIN: Deno.execPath() });
  assert.equal(code, 1);
  assert.match(
    stderr,
    /build: dist\/netflow does not run netflow: DENORT_BIN ".*" is not a denort \d/,
  );
  assert.throws(
    () => Deno.statSync(new URL("../../dist/netflow", import.meta.url)),
    Deno.errors.NotFound,
  );
});
