/**
 * bench/fixtures/skb_probe.bpf.c beside netflow in the benchmark's cgroup:
 * a return-1 cgroup_skb pair (the floor of a bpf_stats reading) and a pair
 * that counts packets by class (TCP control, other TCP, other). Built with
 * clang, loaded and attached by this process through netflow's own libbpf
 * bindings (links, nothing pinned: they go when this process does).
 *
 * @module
 */
import { type BpfLink, BpfObject, CgroupFd } from "../../src/ffi/objects.ts";
import { sumPerCpu } from "../../src/ffi/syscalls.ts";
import { bpfStats, CGROUP, nsPerRun } from "./env.ts";
import { sh } from "./proc.ts";

const SOURCE = new URL("../fixtures/skb_probe.bpf.c", import.meta.url).pathname;
export const FLOOR = ["floor_ingress", "floor_egress"];
const CLASSIFIERS = ["class_ingress", "class_egress"];

/** Packets counted by class (as bpf/triage.bpf.h tells them). */
export interface Classes {
  control: number;
  data: number;
  other: number;
}

/** One reading: the floor programs' bpf_stats and the class counts so far. */
export interface ProbeReading {
  stats: Map<string, { ns: number; runs: number }>;
  classes: Classes;
}

export class Probe implements AsyncDisposable {
  readonly #obj: BpfObject;
  readonly #links: BpfLink[];

  private constructor(obj: BpfObject, links: BpfLink[]) {
    this.#obj = obj;
    this.#links = links;
  }

  /** Builds the fixture and attaches both pairs to the benchmark's cgroup. */
  static async attach(): Promise<Probe> {
    const dir = await Deno.makeTempDir({ prefix: "netflow-probe-" });
    let elf: Uint8Array<ArrayBuffer>;
    try {
      await sh(
        "clang",
        ..."-target bpf -O2 -g -I/usr/include/x86_64-linux-gnu -c".split(" "),
        SOURCE,
        "-o",
        `${dir}/probe.o`,
      );
      elf = await Deno.readFile(`${dir}/probe.o`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
    const obj = new BpfObject(elf);
    const links: BpfLink[] = [];
    try {
      obj.load();
      using cg = new CgroupFd(CGROUP);
      for (const p of [...FLOOR, ...CLASSIFIERS]) links.push(obj.attachCgroup(p, cg));
    } catch (err) {
      for (const l of links) l.close();
      obj.close();
      throw err;
    }
    return new Probe(obj, links);
  }

  async read(): Promise<ProbeReading> {
    const fd = this.#obj.map("classes").fd;
    const n = (i: number) => Number(sumPerCpu(fd, i));
    return {
      stats: await bpfStats(Deno.pid),
      classes: { control: n(0), data: n(1), other: n(2) },
    };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const l of this.#links) l.close();
    this.#obj.close();
    await Promise.resolve();
  }
}

/** The floor's ns per run and the packets by class between two readings. */
export function probeDelta(a: ProbeReading, b: ProbeReading): { floor: number; classes: Classes } {
  return {
    floor: nsPerRun(a.stats, b.stats, FLOOR).perRun,
    classes: {
      control: b.classes.control - a.classes.control,
      data: b.classes.data - a.classes.data,
      other: b.classes.other - a.classes.other,
    },
  };
}
