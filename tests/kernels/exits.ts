/**
 * For the kernel matrix's check (guest_check.py): what every program a
 * process attached to a cgroup returns. The programs are those behind the
 * process's cgroup links, read from /proc/PID/fdinfo (not `bpftool cgroup
 * show`, which this host's bpftool cannot run against a 5.10 kernel); each is
 * dumped with `bpftool prog dump xlated id N` and followed over every path by
 * tests/helpers/xlated.ts. Prints one JSON line:
 * `[{"pid", "link", "id", "name", "exits": [r0 at each exit: a number or "unknown"]}]`.
 *
 *   deno run -A tests/kernels/exits.ts PID...
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

/** The links of process `pid` that attach a program to a cgroup: link id and program id. */
export function cgroupLinksOf(pid: number): { link: number; prog: number }[] {
  const out = [];
  for (const fd of Deno.readDirSync(`/proc/${pid}/fd`)) {
    let info;
    try {
      if (Deno.readLinkSync(`/proc/${pid}/fd/${fd.name}`) !== "anon_inode:bpf_link") continue;
      info = Deno.readTextFileSync(`/proc/${pid}/fdinfo/${fd.name}`);
    } catch {
      continue; // closed meanwhile
    }
    const field = (name: string) => new RegExp(`^${name}:\\s*(\\S+)`, "m").exec(info)?.[1];
    if (field("link_type") !== "cgroup") continue;
    out.push({ link: Number(field("link_id")), prog: Number(field("prog_id")) });
  }
  return out;
}

/** Each program the processes `pids` attached to a cgroup, and the values r0 holds at its exits. */
export async function exitsOf(
  pids: number[],
): Promise<
  { pid: number; link: number; id: number; name: string; exits: (number | "unknown")[] }[]
> {
  const out = [];
  for (const pid of pids) {
    for (const { link, prog } of cgroupLinksOf(pid)) {
      const { name } = JSON.parse(await bpftool("prog", "show", "id", String(prog), "--json"));
      const dump = await bpftool("prog", "dump", "xlated", "id", String(prog));
      out.push({ pid, link, id: prog, name, exits: [...exitValues(dump).values()] });
    }
  }
  return out;
}

if (import.meta.main) {
  const pids = Deno.args.map(Number);
  if (pids.length === 0 || pids.some((p) => !Number.isInteger(p) || p <= 0)) {
    console.error("usage: deno run -A tests/kernels/exits.ts PID...");
    Deno.exit(2);
  }
  console.log(JSON.stringify(await exitsOf(pids)));
}
