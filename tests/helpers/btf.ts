/**
 * The BTF of the object netflow loads (the generated module's bytes), as
 * `bpftool btf dump file` prints it, and what the unit tests read from it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { BPF_OBJECT } from "../../src/bpf/object.generated.ts";

let cached: Promise<string> | undefined;

/** The object's BTF in bpftool's raw text form (dumped once per test process). */
export function btfDump(): Promise<string> {
  cached ??= (async () => {
    const file = await Deno.makeTempFile({ suffix: ".bpf.o" });
    try {
      await Deno.writeFile(file, BPF_OBJECT);
      const out = await new Deno.Command("bpftool", { args: ["btf", "dump", "file", file] })
        .output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      return new TextDecoder().decode(out.stdout);
    } finally {
      await Deno.remove(file);
    }
  })();
  return cached;
}

/** The lines of the first type `KIND 'name'` and its members. */
function typeLines(dump: string, kind: string, name: string): { head: string; members: string[] } {
  const lines = dump.split("\n");
  const at = lines.findIndex((l) => new RegExp(`\\] ${kind} '${name}' `).test(l));
  assert.ok(at >= 0, `${kind.toLowerCase()} ${name} is not in the object's BTF`);
  const vlen = Number(/vlen=(\d+)/.exec(lines[at]!)![1]);
  return { head: lines[at]!, members: lines.slice(at + 1, at + 1 + vlen) };
}

/** A struct's size and member byte offsets. */
export function btfStruct(
  dump: string,
  name: string,
): { size: number; fields: Record<string, number> } {
  const { head, members } = typeLines(dump, "STRUCT", name);
  const fields: Record<string, number> = {};
  for (const line of members) {
    const [, field, bits] = /'(\w+)' type_id=\d+ bits_offset=(\d+)/.exec(line)!;
    fields[field!] = Number(bits) / 8;
  }
  return { size: Number(/size=(\d+)/.exec(head)![1]), fields };
}

/** An enum's enumerators and their values. */
export function btfEnum(dump: string, name: string): Record<string, number> {
  const values: Record<string, number> = {};
  for (const line of typeLines(dump, "ENUM", name).members) {
    const [, enumerator, value] = /'(\w+)' val=(-?\d+)/.exec(line)!;
    values[enumerator!] = Number(value);
  }
  return values;
}
