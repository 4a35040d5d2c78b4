/**
 * Builds netflow's kernel object into a committed TypeScript module, and with
 * `--compile` the single executable.
 *
 *   deno task build            bpf/*.c, bpf/*.h -> src/bpf/object.generated.ts
 *                              (skipped when the recorded input hash is current)
 *   deno run -A build.ts --check   fails when the module is stale (deno task check runs it)
 *   deno task compile          dist/netflow (needs denort: DENORT_BIN)
 *
 * The object is committed as a module (as bpf2go commits its objects) so that
 * `mod.ts` works by path or URL with plain `deno run`: no clang, no raw-import
 * flag, no import map at run time.
 *
 * @module
 */
import { createHash } from "node:crypto";

const root = new URL(".", import.meta.url).pathname;
/** Where the generated module lives, relative to the root. */
export const MODULE = "src/bpf/object.generated.ts";
const SOURCE = "bpf/netflow.bpf.c";
/** What to tell whoever finds the module stale. */
const REBUILD = `run \`deno task build\` (or ./task build) and commit ${MODULE}`;
// Relative paths from the root and a prefix map keep the checkout's location
// out of the object, so any clone builds the same bytes.
const CLANG_FLAGS = [
  "-target",
  "bpf",
  // ISA v3 (Linux 5.1): 32-bit ALU and jumps, and the atomic fetch-and-or the
  // skb programs claim their scratch slot with (executed from 5.12 only: the
  // skb programs need bpf_loop, 5.17, anyway).
  "-mcpu=v3",
  "-O2",
  "-g",
  "-Wall",
  "-Werror",
  "-fdebug-prefix-map=ROOT=.",
  // Debian keeps <asm/types.h> under the multiarch include directory.
  "-I/usr/include/x86_64-linux-gnu",
  "-c",
  SOURCE,
];
/** DWARF goes (libbpf does not read it), BTF stays: as libbpf-bootstrap and bpf2go do. */
const STRIP_FLAGS = ["-g"];

/**
 * V8 flags netflow runs with (deno.json's start task, ./netflow and
 * tests/kernels/guest_check.py repeat them; tests/unit/v8_flags_test.ts checks).
 * A 4 MiB young generation: 16 MiB cost 26 MB more with 100,000 open flows
 * (and saved 15-20% of CPU per flow: bench/RESULTS.md, "Tried and not kept");
 * an old generation collected once it has grown to twice what was live after
 * the last full collection (V8 lets it reach 3-4 times) keeps the peak while a
 * backlog is read down (bench/RESULTS.md, "A stalled reader"). With 100,000
 * open flows netflow's RSS peaks at 180-220 MB (bench/held.ts).
 */
export const RUNTIME_V8_FLAGS = "--v8-flags=--max-semi-space-size=4,--heap-growing-percent=100";

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

async function run(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, { args, ...options }).output();
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

/** The object's inputs: every .c and .h file in bpf/, sorted. */
async function inputFiles(): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(`${root}bpf`)) {
    if (entry.isFile && /\.[ch]$/.test(entry.name)) names.push(`bpf/${entry.name}`);
  }
  return names.sort();
}

/**
 * sha256 over the input files (names and contents) and the compiler flags.
 * The compiler's version is left out, so that an unchanged tree is not stale
 * on a machine with another clang; --check rebuilds to compare the bytes.
 */
export async function inputsHash(files: string[]): Promise<string> {
  const hash = createHash("sha256");
  for (const file of files) {
    const data = await Deno.readFile(`${root}${file}`);
    hash.update(`${file}\0${data.length}\0`).update(data);
  }
  hash.update([...CLANG_FLAGS, "|", ...STRIP_FLAGS].join(" "));
  return hash.digest("hex");
}

async function clangVersion(): Promise<string> {
  return (await run("clang", ["--version"])).split("\n")[0]!.trim();
}

/** Compiles and strips the object in a temporary directory; returns its bytes. */
async function compileObject(): Promise<Uint8Array> {
  const dir = await Deno.makeTempDir({ prefix: "netflow-build-" });
  try {
    const flags = CLANG_FLAGS.map((f) => f.replace("=ROOT=", `=${root.replace(/\/$/, "")}=`));
    await run("clang", [...flags, "-o", `${dir}/full.o`], { cwd: root });
    await run("llvm-strip", [...STRIP_FLAGS, `${dir}/full.o`, "-o", `${dir}/netflow.bpf.o`]);
    return await Deno.readFile(`${dir}/netflow.bpf.o`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** What the committed module records about itself. */
interface Recorded {
  inputs: string;
  object: string;
  clang: string;
  /** sha256 of the bytes the module really holds. */
  bytes: string;
}

async function recorded(): Promise<Recorded | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(`${root}${MODULE}`);
  } catch {
    return undefined;
  }
  const value = (name: string) => new RegExp(`^  ${name}: "([^"]*)",$`, "m").exec(text)?.[1];
  const inputs = value("inputsSha256"), object = value("objectSha256"), clang = value("clang");
  const base64 = /fromBase64\(`([^`]*)`\)/.exec(text)?.[1];
  if ([inputs, object, clang, base64].includes(undefined)) return undefined;
  let bytes: string;
  try {
    bytes = sha256(Uint8Array.fromBase64(base64!));
  } catch {
    return undefined;
  }
  return { inputs: inputs!, object: object!, clang: clang!, bytes };
}

function moduleText(files: string[], inputs: string, clang: string, object: Uint8Array): string {
  // fromBase64 skips ASCII whitespace, so the literal can be wrapped.
  const base64 = btoa(Array.from(object, (b) => String.fromCharCode(b)).join(""));
  const lines = base64.match(/.{1,96}/g) ?? [];
  return `// Code generated by build.ts (deno task build); DO NOT EDIT.
// Inputs: ${files.join(" ")} (sha256 of their names, contents and the
// compiler flags below: OBJECT_BUILD.inputsSha256), compiled with
//   clang ${CLANG_FLAGS.join(" ")}
//   llvm-strip ${STRIP_FLAGS.join(" ")}
// \`deno task check\` fails when the inputs no longer match the hash.

/** Where BPF_OBJECT comes from: build.ts --check compares these with the tree. */
export const OBJECT_BUILD = {
  /** sha256 of the inputs (file names, contents, compiler flags). */
  inputsSha256: "${inputs}",
  /** sha256 of the object's bytes. */
  objectSha256: "${sha256(object)}",
  /** The compiler that built it (a rebuild with the same one gives the same bytes). */
  clang: "${clang}",
} as const;

/** netflow's kernel programs: a BPF ELF object, ${object.length} bytes, BTF kept, DWARF stripped. */
export const BPF_OBJECT: Uint8Array = Uint8Array.fromBase64(\`
${lines.join("\n")}
\`);
`;
}

/** Regenerates the module when its inputs changed (or always, with force). */
export async function buildObject(force = false): Promise<void> {
  const files = await inputFiles();
  const inputs = await inputsHash(files);
  if (!force && (await recorded())?.inputs === inputs) return;
  console.error(`build: clang -target bpf ${SOURCE} -> ${MODULE}`);
  const object = await compileObject();
  await Deno.writeTextFile(
    `${root}${MODULE}`,
    moduleText(files, inputs, await clangVersion(), object),
  );
}

/**
 * Fails when the module is stale (its inputs changed without a rebuild);
 * where this machine's clang is the one recorded, also when a rebuild does not
 * give the same bytes (a hand edit, or other system headers).
 */
export async function checkObject(): Promise<void> {
  const files = await inputFiles();
  const have = await recorded();
  if (have === undefined) throw new Error(`${MODULE} is missing or malformed: ${REBUILD}`);
  if (have.inputs !== await inputsHash(files)) {
    throw new Error(`${MODULE} is stale (bpf/ changed since it was generated): ${REBUILD}`);
  }
  if (have.bytes !== have.object) {
    throw new Error(
      `${MODULE} holds bytes other than the object it records (edited by hand?): ` +
        `run \`deno task build --force\` and commit it`,
    );
  }
  let clang: string;
  try {
    clang = await clangVersion();
  } catch {
    console.error(`build: ${MODULE} is current (input hash; clang not installed, no rebuild)`);
    return;
  }
  if (clang !== have.clang) {
    console.error(
      `build: ${MODULE} is current (input hash; built with "${have.clang}", ` +
        `this is "${clang}", so the bytes were not compared)`,
    );
    return;
  }
  const rebuilt = sha256(await compileObject());
  if (rebuilt !== have.object) {
    throw new Error(
      `${MODULE} differs from a rebuild of the same inputs with ${clang} ` +
        `(edited by hand, or other system headers): run \`deno task build --force\` and commit it`,
    );
  }
  console.error(`build: ${MODULE} is current (input hash, and a rebuild gives the same bytes)`);
}

const BINARY = `${root}dist/netflow`;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

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
    if (Deno.args.includes("--check")) {
      await checkObject();
    } else {
      await buildObject(Deno.args.includes("--force"));
      if (Deno.args.includes("--compile")) await compileBinary();
    }
  } catch (err) {
    console.error(`build: ${err instanceof Error ? err.message : String(err)}`);
    Deno.exit(1);
  }
}
