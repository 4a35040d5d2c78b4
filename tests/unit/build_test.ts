import assert from "node:assert/strict";
import { createHash } from "node:crypto";

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

const ROOT = new URL("../../", import.meta.url).pathname;

/** A copy of what the build reads and writes, in a temporary directory. */
async function copyTree(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "netflow-build-test-" });
  await Deno.mkdir(`${dir}/bpf`);
  await Deno.mkdir(`${dir}/src/bpf`, { recursive: true });
  for await (const entry of Deno.readDir(`${ROOT}bpf`)) {
    if (entry.isFile) await Deno.copyFile(`${ROOT}bpf/${entry.name}`, `${dir}/bpf/${entry.name}`);
  }
  await Deno.copyFile(`${ROOT}build.ts`, `${dir}/build.ts`);
  await Deno.copyFile(`${ROOT}src/bpf/object.generated.ts`, `${dir}/src/bpf/object.generated.ts`);
  return dir;
}

async function build(dir: string, ...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", `${dir}/build.ts`, ...args],
    env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

const STALE =
  "build: src/bpf/object.generated.ts is stale (bpf/ changed since it was generated): " +
  "run `deno task build` (or ./task build) and commit src/bpf/object.generated.ts\n";

Deno.test("the committed BPF module is current, and a rebuild gives the same bytes", async () => {
  const dir = await copyTree();
  try {
    const { code, stderr } = await build(dir, "--check");
    assert.equal(
      stderr,
      "build: src/bpf/object.generated.ts is current (input hash, and a rebuild gives the same bytes)\n",
    );
    assert.equal(code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the staleness check fails on a changed .bpf.c or a new header, until a rebuild", async () => {
  const dir = await copyTree();
  try {
    const source = `${dir}/bpf/netflow.bpf.c`;
    await Deno.writeTextFile(source, `${await Deno.readTextFile(source)}\n// changed\n`);
    assert.deepEqual(await build(dir, "--check"), { code: 1, stderr: STALE });
    const before = await Deno.readTextFile(`${dir}/src/bpf/object.generated.ts`);
    assert.equal((await build(dir)).code, 0);
    const after = await Deno.readTextFile(`${dir}/src/bpf/object.generated.ts`);
    assert.notEqual(after, before);
    assert.equal((await build(dir, "--check")).code, 0);

    await Deno.writeTextFile(`${dir}/bpf/extra.h`, "/* a header nobody includes yet */\n");
    assert.deepEqual(await build(dir, "--check"), { code: 1, stderr: STALE });
    assert.match(
      after,
      /^\/\/ Inputs: bpf\/dns\.bpf\.h .*bpf\/netflow\.bpf\.c bpf\/netflow\.h .*bpf\/vmlinux\.h /m,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a module edited by hand fails the check although its input hash is current", async () => {
  const dir = await copyTree();
  try {
    const module = `${dir}/src/bpf/object.generated.ts`;
    const text = await Deno.readTextFile(module);
    // One base64 character of the object changed: the input hash still matches.
    const at = text.indexOf("fromBase64(`\n") + 20;
    await Deno.writeTextFile(
      module,
      text.slice(0, at) + (text[at] === "A" ? "B" : "A") + text.slice(at + 1),
    );
    const { code, stderr } = await build(dir, "--check");
    assert.equal(code, 1);
    assert.match(stderr, /holds bytes other than the object it records/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a module whose object a rebuild does not reproduce fails the check", async () => {
  const dir = await copyTree();
  try {
    const module = `${dir}/src/bpf/object.generated.ts`;
    const text = await Deno.readTextFile(module);
    // Consistent in itself (bytes and recorded hash agree), but not what clang builds.
    const base64 = /fromBase64\(`([^`]*)`\)/.exec(text)![1]!;
    const other = new Uint8Array([...Uint8Array.fromBase64(base64), 0]);
    const hash = createHash("sha256").update(other).digest("hex");
    await Deno.writeTextFile(
      module,
      text.replace(base64, `\n${other.toBase64()}\n`)
        .replace(/objectSha256: "[0-9a-f]+"/, `objectSha256: "${hash}"`),
    );
    const { code, stderr } = await build(dir, "--check");
    assert.equal(code, 1);
    assert.match(
      stderr,
      /differs from a rebuild of the same inputs with .*: run `deno task build --force` and commit it/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
