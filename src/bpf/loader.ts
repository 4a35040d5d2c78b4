/**
 * Opens, loads and attaches netflow's kernel programs, and owns every native
 * handle they need. Teardown runs in reverse order through one DisposableStack.
 *
 * @module
 */
import { NetflowError } from "../errors.ts";
import { LibbpfError } from "../ffi/libbpf.ts";
import { type BpfLink, BpfObject } from "../ffi/objects.ts";
import {
  countMapKeys,
  sumPerCpu,
  takeMapValue,
  takeMapValues,
  updateMap,
} from "../ffi/syscalls.ts";
import { openRingReader, type RingReader } from "../ffi/ringbuf.ts";
import type { ReaderKind } from "../options.ts";
import type { FlowFilter } from "../events.ts";
import { encodeConfig, kernelFilter } from "./kernel_filter.ts";
import { attachOrExplain, checkPrivileges, explainLoadFailure, openCgroup } from "./refusals.ts";
import { kernelRelease, offLine, optional, probeKernel, refusal, sectionOf } from "./features.ts";
import { BPF_OBJECT } from "./object.generated.ts";
import { DNS_KEY_SIZE, NF_CNT } from "./abi.ts";
import { LAYOUT } from "./layout.ts";
import type { HolderRows } from "./holders.ts";
import { HoldersIterator } from "./holders_run.ts";
import { WantedSockets } from "./wanted.ts";

/** Names in bpf/netflow.bpf.c that TypeScript uses; a test checks them against the object. */
export const BPF_NAMES = {
  programs: {
    ingress: "netflow_ingress",
    egress: "netflow_egress",
    sockCreate: "netflow_sock_create",
    connect4: "netflow_connect4",
    connect6: "netflow_connect6",
    sockops: "netflow_sockops",
    sockRelease: "netflow_sock_release",
  },
  /** Not attached to the cgroup: run on demand. */
  iterators: { holders: "netflow_holders", snapshot: "netflow_snapshot", open: "netflow_open" },
  maps: {
    events: "events",
    packets: "packets",
    counters: "counters",
    owners: "owners",
    socks: "socks",
    snapshotCgroups: "snapshot_cgroups",
    dnsEvents: "dns_events",
    dnsQueries: "dns_queries",
    kept: "kept",
    holdersWanted: "holders_wanted",
    holdersEvery: "holders_every",
  },
  /** The .rodata section: struct nf_config nf_config, its only variable. */
  config: ".rodata",
} as const;

export const DEFAULT_RING_BYTES = 16 << 20;
/** DNS's own ring (dns_events): 4 MiB, about 3,000 answers of the largest size the kernel copies. */
export const DEFAULT_DNS_RING_BYTES = 4 << 20;
/**
 * The handshake and packet-view ring (`packets`): 1 MiB, about 8,700 records.
 * A SYN flood fills it (losses counted), never the flow ring.
 */
export const DEFAULT_PACKET_RING_BYTES = 1 << 20;

export interface ProbeOptions {
  /** Absolute path of the cgroup v2 directory to attach to. */
  cgroupDir: string;
  /** Ring buffer size in bytes: a power of two, at least one page. */
  ringBytes?: number;
  /** DNS's ring (dns_events) size in bytes: a power of two, at least one page. */
  dnsRingBytes?: number;
  /** The handshake and packet-view ring's size in bytes: a power of two, at least one page. */
  packetRingBytes?: number;
  /** Entries of the kernel's `kept` map (ended flows kept while the ring is full). */
  keptFlows?: number;
  reader?: ReaderKind;
  /** Copy every TCP control packet to the ring (the net_packet_tcp debug view). */
  forwardAll?: boolean;
  /** The start snapshot takes every cgroup's sockets (the root is watched). */
  snapshotAll?: boolean;
  /** Write failed attempts (net_flow_tcp_fail): SYN_SENT closes, handshake packets. */
  reportFail?: boolean;
  /** The filters sock_ops applies where a flow begins (src/bpf/kernel_filter.ts). */
  filter?: FlowFilter;
}

/** Kernel-side counters. */
export interface ProbeCounters {
  /** Records lost because the ring buffer was full. */
  lost: number;
  /** DNS messages cut at the kernel's copy limit. */
  dnsCut: number;
  /** Sockets netflow could not follow (no socket storage could be had). */
  untracked: number;
  /** DNS answers lost because the dns_events ring was full. */
  dnsLost: number;
  /** DNS answers that matched no recorded query of their namespace (dropped in the kernel). */
  dnsUnmatched: number;
  /** Queries recorded, and those that left the map through their answer (or stale). */
  dnsQueries: number;
  dnsAnswered: number;
  /** More copies of an answered query's answer (a resolver and its client both watched). */
  dnsRepeated: number;
  /** Sockets that began and did not pass the kernel's filters (never written). */
  filtered: number;
  /** Packets not looked at (DNS, fail, packet view): every scratch slot of their CPU busy. */
  scratchBusy: number;
  /** Sockets older than netflow whose state callbacks this kernel cannot turn on (before 6.12). */
  noCallbacks: number;
  /** End and fail records kept in the kernel's `kept` map while the ring was full. */
  kept: number;
  /** End and fail records lost: the ring and `kept` were both full. */
  flowsLost: number;
  /** Begin records the full ring lost, written with their end instead. */
  beginsDeferred: number;
  /**
   * Sockets whose state callbacks another sock_ops program had turned off
   * (bpf_sock_ops_cb_flags_set replaces them), turned on again by netflow's.
   */
  callbacksRestored: number;
  /** Handshake (fail events) and packet-view records lost: their own ring was full. */
  packetsLost: number;
  /** Handshake packets of attempts that did not pass the kernel's filters (never written). */
  attemptsFiltered: number;
  /** Sockets closed by their holder while the holders iterator looked: closer not known. */
  lookCloses: number;
}

/** netflow's programs, attached to one cgroup, with the reader of their ring buffer. */
export class Probe implements Disposable {
  readonly cgroupDir: string;
  readonly reader: RingReader;
  /** The reader of `dns_events`, DNS's own ring (DNS never costs a TCP record). */
  readonly dnsReader: RingReader;
  /** The reader of `packets`: handshake packets and the packet view (a flood never costs a flow). */
  readonly packetReader: RingReader;
  readonly #stack = new DisposableStack();
  readonly #countersFd: number;
  readonly #dnsQueriesFd: number;
  readonly #keptFd: number;
  /** Kept records taken so far (the kernel counts those it kept: NF_CNT.KEPT). */
  #keptTaken = 0;
  /** The kernel's count of kept records at the last takeKept. */
  #keptCounted = 0;
  readonly #holders: HoldersIterator | null;
  readonly #snapshot: BpfLink | null;
  readonly #open: BpfLink | null;
  readonly #snapshotCgroupsFd: number;
  /** One line for each program this kernel refused (or that cannot attach), saying what is off. */
  readonly featuresOff: readonly string[];
  /** Program name -> why this kernel cannot run it. */
  readonly #skipped: ReadonlyMap<string, string>;

  private constructor(options: ProbeOptions) {
    this.cgroupDir = options.cgroupDir;
    const stack = this.#stack;
    try {
      const { obj, skipped } = loadObject(options);
      stack.use(obj);
      this.#skipped = skipped;
      // ingress and egress are off for the same reason: one line.
      this.featuresOff = [
        ...new Set([...skipped].map(([program, why]) => offLine(program, why))),
      ];
      const loaded = (program: string) => !skipped.has(program);
      const iterator = (program: string) =>
        loaded(program) ? stack.use(obj.attachIterator(program)) : null;
      const events = obj.map(BPF_NAMES.maps.events);
      this.#countersFd = obj.map(BPF_NAMES.maps.counters).fd;
      this.reader = stack.use(
        openRingReader(options.reader ?? "mmap", events.fd, events.maxEntries),
      );
      const dnsEvents = obj.map(BPF_NAMES.maps.dnsEvents);
      this.dnsReader = stack.use(
        openRingReader(options.reader ?? "mmap", dnsEvents.fd, dnsEvents.maxEntries),
      );
      const packets = obj.map(BPF_NAMES.maps.packets);
      this.packetReader = stack.use(
        openRingReader(options.reader ?? "mmap", packets.fd, packets.maxEntries),
      );
      this.#dnsQueriesFd = obj.map(BPF_NAMES.maps.dnsQueries).fd;
      this.#keptFd = obj.map(BPF_NAMES.maps.kept).fd;
      const holders = iterator(BPF_NAMES.iterators.holders);
      const wanted = obj.map(BPF_NAMES.maps.holdersWanted);
      this.#holders = holders && stack.use(
        new HoldersIterator(
          obj,
          BPF_NAMES.iterators.holders,
          holders,
          new WantedSockets(wanted.fd, obj.map(BPF_NAMES.maps.holdersEvery).fd, wanted.maxEntries),
        ),
      );
      this.#snapshot = iterator(BPF_NAMES.iterators.snapshot);
      this.#open = iterator(BPF_NAMES.iterators.open);
      this.#snapshotCgroupsFd = obj.map(BPF_NAMES.maps.snapshotCgroups).fd;
      // The cgroup fd is needed only to attach: each link holds the cgroup itself.
      using cgroup = openCgroup(options.cgroupDir);
      const off: string[] = [];
      for (const program of Object.values(BPF_NAMES.programs).filter(loaded)) {
        try {
          stack.use(attachOrExplain(obj, program, cgroup, options.cgroupDir));
        } catch (err) {
          // Another tool's exclusive (legacy) attachment refuses a link:
          // an optional program is then left out like a refused one.
          if (!optional(program) || !(err instanceof NetflowError)) throw err;
          off.push(offLine(program, `${sectionOf(program)} cannot be attached (${err.message})`));
        }
      }
      this.featuresOff = [...this.featuresOff, ...off];
    } catch (err) {
      stack.dispose();
      throw err;
    }
  }

  /** Why this kernel runs no `program` (a BPF_NAMES entry), or undefined when it runs. */
  missing(program: string): string | undefined {
    return this.#skipped.get(program);
  }

  /** Checks privileges, then loads and attaches; everything is released on failure. */
  static open(options: ProbeOptions): Probe {
    checkPrivileges();
    return new Probe(options);
  }

  counters(): ProbeCounters {
    return {
      lost: Number(sumPerCpu(this.#countersFd, NF_CNT.LOST)),
      dnsCut: Number(sumPerCpu(this.#countersFd, NF_CNT.DNS_CUT)),
      untracked: Number(sumPerCpu(this.#countersFd, NF_CNT.UNTRACKED)),
      dnsLost: Number(sumPerCpu(this.#countersFd, NF_CNT.DNS_LOST)),
      dnsUnmatched: Number(sumPerCpu(this.#countersFd, NF_CNT.DNS_UNMATCHED)),
      dnsQueries: Number(sumPerCpu(this.#countersFd, NF_CNT.DNS_QUERIES)),
      dnsAnswered: Number(sumPerCpu(this.#countersFd, NF_CNT.DNS_ANSWERED)),
      dnsRepeated: Number(sumPerCpu(this.#countersFd, NF_CNT.DNS_REPEATED)),
      filtered: Number(sumPerCpu(this.#countersFd, NF_CNT.FILTERED)),
      scratchBusy: Number(sumPerCpu(this.#countersFd, NF_CNT.SCRATCH_BUSY)),
      noCallbacks: Number(sumPerCpu(this.#countersFd, NF_CNT.NO_CALLBACKS)),
      kept: Number(sumPerCpu(this.#countersFd, NF_CNT.KEPT)),
      flowsLost: Number(sumPerCpu(this.#countersFd, NF_CNT.FLOWS_LOST)),
      beginsDeferred: Number(sumPerCpu(this.#countersFd, NF_CNT.BEGINS_DEFERRED)),
      callbacksRestored: Number(sumPerCpu(this.#countersFd, NF_CNT.CALLBACKS_RESTORED)),
      packetsLost: Number(sumPerCpu(this.#countersFd, NF_CNT.PACKETS_LOST)),
      attemptsFiltered: Number(sumPerCpu(this.#countersFd, NF_CNT.ATTEMPTS_FILTERED)),
      lookCloses: Number(sumPerCpu(this.#countersFd, NF_CNT.LOOK_CLOSES)),
    };
  }

  /**
   * Up to `max` end and fail records the kernel kept while the ring was full
   * (nf_flow records), taken out of its `kept` map.
   */
  takeKept(max: number): Uint8Array[] {
    // Walking the empty map (65,536 buckets) cost ~30 us a drain; one read of
    // the kernel's count of kept records says whether there is anything.
    this.#keptCounted = Number(sumPerCpu(this.#countersFd, NF_CNT.KEPT));
    if (this.#keptCounted <= this.#keptTaken) return [];
    const kept = takeMapValues(this.#keptFd, LAYOUT.nf_flow.size, max);
    this.#keptTaken += kept.length;
    return kept;
  }

  /**
   * The record the kernel kept for socket `cookie`, taken out of its `kept`
   * map; undefined when there is none, at no cost while the last takeKept
   * found the map empty.
   */
  takeKeptOf(cookie: number): Uint8Array | undefined {
    if (this.#keptCounted <= this.#keptTaken) return undefined;
    const key = new Uint8Array(8);
    new DataView(key.buffer).setBigUint64(0, BigInt(cookie), true);
    const kept = takeMapValue(this.#keptFd, key, LAYOUT.nf_flow.size);
    if (kept !== undefined) this.#keptTaken++;
    return kept;
  }

  /** Queries recorded now and not yet answered (a walk over the map's keys). */
  pendingDnsQueries(): number {
    return countMapKeys(this.#dnsQueriesFd, DNS_KEY_SIZE);
  }

  /**
   * The start snapshot (a tcp iterator run): the listening sockets, and the
   * established sockets of `cgroupIds` (ignored when snapshotAll) that no
   * program has seen begin, which are marked begun and get their state
   * callbacks from now on. Back-to-back nf_flow records. Run it once, after
   * the programs are attached, so no connection falls between the two.
   */
  snapshot(cgroupIds: Iterable<number>, netns: ReadonlyMap<number, string>): Uint8Array[] {
    const key = new Uint8Array(8), one = new Uint8Array([1]);
    const view = new DataView(key.buffer);
    for (const id of cgroupIds) {
      view.setBigUint64(0, BigInt(id), true);
      updateMap(this.#snapshotCgroupsFd, key, one);
    }
    if (this.#snapshot === null) return [];
    return eachNetns(this.#snapshot, netns).map(([, bytes]) => bytes);
  }

  /**
   * The flows open now in each namespace of `netns` (one iterator run each):
   * back-to-back nf_flow update records, by namespace inode. A namespace that
   * could not be entered is missing from the result.
   */
  openFlows(netns: ReadonlyMap<number, string>): Map<number, Uint8Array> {
    if (this.#open === null) return new Map();
    return new Map(eachNetns(this.#open, netns));
  }

  /**
   * The TCP sockets some process holds now, with the process (a task_file
   * iterator run): every listener, and the sockets of `cookies` (null: every
   * socket); null when this kernel refused the iterator.
   */
  holders(cookies: ReadonlySet<number> | null = null): HolderRows | null {
    return this.#holders?.run(cookies) ?? null;
  }

  /** The holders iterator's runs on every process or a few (null: this kernel refused it). */
  get holdersIterator(): HoldersIterator | null {
    return this.#holders;
  }

  /** Detaches everything and frees every handle; safe to call twice. */
  close(): void {
    this.#stack.dispose();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Runs a tcp iterator once in each namespace (it lists only its creator's namespace). */
function eachNetns(
  link: BpfLink,
  netns: ReadonlyMap<number, string>,
): [number, Uint8Array][] {
  const out: [number, Uint8Array][] = [];
  for (const [ino, path] of netns) {
    const bytes = link.readIteratorIn(path);
    if (bytes !== null) out.push([ino, bytes]);
  }
  return out;
}

/**
 * Opens, configures and loads the object, leaving out the programs this
 * kernel cannot run (probed first, then any the verifier still refuses, one
 * at a time); a refusal of what netflow cannot run without becomes one line.
 */
function loadObject(options: ProbeOptions): { obj: BpfObject; skipped: Map<string, string> } {
  const { skip: skipped, kernelHas } = probeKernel();
  for (;;) {
    const obj = new BpfObject(new Uint8Array(BPF_OBJECT));
    try {
      obj.resizeMap(BPF_NAMES.maps.events, options.ringBytes ?? DEFAULT_RING_BYTES);
      obj.resizeMap(BPF_NAMES.maps.dnsEvents, options.dnsRingBytes ?? DEFAULT_DNS_RING_BYTES);
      obj.resizeMap(
        BPF_NAMES.maps.packets,
        options.packetRingBytes ?? DEFAULT_PACKET_RING_BYTES,
      );
      if (options.keptFlows !== undefined) obj.resizeMap(BPF_NAMES.maps.kept, options.keptFlows);
      obj.setInitialValue(
        BPF_NAMES.config,
        encodeConfig({
          forwardAll: options.forwardAll ?? false,
          snapshotAll: options.snapshotAll ?? false,
          selfPid: Deno.pid,
          reportFail: options.reportFail ?? false,
          filter: kernelFilter(options.filter),
          kernelHas,
        }),
      );
      for (const program of skipped.keys()) obj.skip(program);
      obj.load();
      return { obj, skipped };
    } catch (err) {
      obj.close();
      if (!(err instanceof LibbpfError)) throw err;
      const refused = refusal(err.detail ?? "");
      if (refused === null || !optional(refused.program) || skipped.has(refused.program)) {
        throw explainLoadFailure(err);
      }
      skipped.set(
        refused.program,
        `this kernel (${kernelRelease()}) refused ${sectionOf(refused.program)}` +
          (refused.reason ? ` (${refused.reason})` : ""),
      );
    }
  }
}
