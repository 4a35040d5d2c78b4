/**
 * For the kernel matrix's check (guest_check.py): what every program attached
 * to a cgroup returns, read from the loaded programs with bpftool (`cgroup
 * show`, then `prog dump xlated`) and followed over every path by
 * tests/helpers/xlated.ts. Prints one JSON line:
 * `[{"id", "name", "exits": [r0 at each exit: a number or "unknown"]}]`.
 *
 *   deno run -A tests/kernels/exits.ts CGROUP_DIR
 *
 * @module
 */
import { exitValues } from "../helpers/xlated.ts";

async function bpftool(...args: string[]): Promise<string> {
  const out = await new Deno.Command("bpftool", { args, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder();
  if (!out.success) throw new Error(`bpftool ${args.join(" ")}: ${text.decode(out.stderr).trim()}`);
  return text.decode(out.stdout);
}

/** Each program attached to `dir` and the values r0 holds at its exits. */
export async function exitsOf(
  dir: string,
): Promise<{ id: number; name: string; exits: (number | "unknown")[] }[]> {
  // An empty cgroup gives a bare newline, not [].
  const attached: { id: number; name: string }[] = JSON.parse(
    (await bpftool("cgroup", "show", dir, "--json")).trim() || "[]",
  );
  const out = [];
  for (const { id, name } of attached) {
    const dump = await bpftool("prog", "dump", "xlated", "id", String(id));
    out.push({ id, name, exits: [...exitValues(dump).values()] });
  }
  return out;
}

if (import.meta.main) {
  const dir = Deno.args[0];
  if (dir === undefined) {
    console.error("usage: deno run -A tests/kernels/exits.ts CGROUP_DIR");
    Deno.exit(2);
  }
  console.log(JSON.stringify(await exitsOf(dir)));
}
