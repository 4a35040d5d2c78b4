/**
 * bench/fixtures/skb_probe.bpf.c beside netflow in the benchmark's cgroup:
 * a return-1 cgroup_skb pair (the floor of a bpf_stats reading) and a pair
 * that counts packets by class (TCP control, other TCP, other). Built with
 * clang, loaded by this process through netflow's own libbpf bindings and
 * attached only while costs are read (links, nothing pinned: they go when
 * this process does).
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
  #links: BpfLink[] = [];

  private constructor(obj: BpfObject) {
    this.#obj = obj;
  }

  /** Builds and loads the fixture (attached by {@link link}). */
  static async load(): Promise<Probe> {
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
    try {
      obj.load();
    } catch (err) {
      obj.close();
      throw err;
    }
    return new Probe(obj);
  }

  /** Attaches both pairs to the benchmark's cgroup. */
  link(): void {
    using cg = new CgroupFd(CGROUP);
    try {
      for (const p of [...FLOOR, ...CLASSIFIERS]) this.#links.push(this.#obj.attachCgroup(p, cg));
    } catch (err) {
      this.unlink();
      throw err;
    }
  }

  /** Detaches them (throughput is measured without them). */
  unlink(): void {
    for (const l of this.#links) l.close();
    this.#links = [];
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
    this.unlink();
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
