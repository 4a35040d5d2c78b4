/**
 * Builds netflow's kernel object, and with `--compile` the single executable.
 *
 *   deno task build     bpf/netflow.bpf.c -> bpf/netflow.bpf.o (skipped when unchanged)
 *   deno task compile   dist/netflow, with the object embedded (needs denort: DENORT_BIN)
 *
 * @module
 */
import { createHash } from "node:crypto";

const root = new URL(".", import.meta.url).pathname;
const source = `${root}bpf/netflow.bpf.c`;
const header = `${root}bpf/netflow.h`;
const dnsHeader = `${root}bpf/dns.bpf.h`;
const object = `${root}bpf/netflow.bpf.o`;
const stamp = `${object}.stamp`;
const CLANG_ARGS = [
  "-target",
  "bpf",
  "-O2",
  "-g",
  "-Wall",
  "-Werror",
  // Debian keeps <asm/types.h> under the multiarch include directory.
  "-I/usr/include/x86_64-linux-gnu",
  "-c",
  source,
  "-o",
  object,
];
/**
 * V8 flags netflow runs with (deno.json's start task repeats them). A 4 MiB
 * young generation keeps memory with 100,000 open flows under 150 MB and
 * costs no CPU per flow (bench/RESULTS.md).
 */
export const RUNTIME_V8_FLAGS = "--v8-flags=--max-semi-space-size=4";

const COMPILE_ARGS = [
  "compile",
  // FFI can do anything the process can, so finer permissions would only be
  // decoration; and Deno asks for all of them to read /proc/self/mountinfo.
  "--allow-all",
  RUNTIME_V8_FLAGS,
  "--output",
  `${root}dist/netflow`,
  `${root}src/cli.ts`,
];

async function run(cmd: string, args: string[], env?: Record<string, string>): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, { args, ...(env ? { env } : {}) }).output();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error(`"${cmd}" is not installed (run scripts/setup.sh, or apt-get install clang)`);
    }
    throw err;
  }
  const text = new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed:\n${text}`);
  return new TextDecoder().decode(out.stdout) + text;
}

/** The stamp: a hash of everything the object depends on. */
async function inputsHash(): Promise<string> {
  const hash = createHash("sha256");
  for (const file of [source, header, dnsHeader]) hash.update(await Deno.readFile(file));
  hash.update(CLANG_ARGS.join(" "));
  hash.update(await run("clang", ["--version"]));
  return hash.digest("hex");
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

export async function buildObject(): Promise<void> {
  const want = await inputsHash();
  if (await exists(object) && (await readText(stamp))?.trim() === want) return;
  console.error("build: clang -target bpf bpf/netflow.bpf.c -> bpf/netflow.bpf.o");
  await run("clang", CLANG_ARGS);
  await Deno.writeTextFile(stamp, `${want}\n`);
}

const BINARY = `${root}dist/netflow`;

async function compileBinary(): Promise<void> {
  const denort = Deno.env.get("DENORT_BIN");
  if (denort !== undefined && !(await exists(denort))) {
    throw new Error(`DENORT_BIN is set to "${denort}", which does not exist`);
  }
  console.error("build: deno compile -> dist/netflow");
  try {
    await run(Deno.execPath(), COMPILE_ARGS);
  } catch (err) {
    const why = (err instanceof Error ? err.message : String(err)).split("\n")
      .find((l) => /error sending request|dns error|Connect/.test(l));
    if (denort === undefined) {
      throw new Error(
        "deno compile needs the denort runtime and could not download it" +
          `${
            why ? ` (${why.trim()})` : ""
          }; set DENORT_BIN to a denort ${Deno.version.deno} binary`,
      );
    }
    throw err;
  }
  // A DENORT_BIN that is not denort (the full deno, say) makes a binary that
  // ignores the embedded program: check that it really is netflow.
  const version = await run(BINARY, ["--version"]).catch((e) => String(e));
  if (!version.startsWith("netflow ")) {
    await Deno.remove(BINARY).catch(() => {});
    throw new Error(
      `dist/netflow does not run netflow: DENORT_BIN "${denort}" is not a denort ${Deno.version.deno} binary`,
    );
  }
  console.error(`build: dist/netflow (${version.trim()})`);
}

if (import.meta.main) {
  try {
    await buildObject();
    if (Deno.args.includes("--compile")) await compileBinary();
  } catch (err) {
    console.error(`build: ${err instanceof Error ? err.message : String(err)}`);
    Deno.exit(1);
  }
}
