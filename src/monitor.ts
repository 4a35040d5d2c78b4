/**
 * The pipeline, composed: reader (src/bpf/loader.ts, the rings) -> decoder (src/bpf/records.ts)
 * -> flow table (src/flow/state.ts) -> enrichers (src/enrich/enricher.ts: owner, cgroup and
 * container, DNS names) -> filter (src/flow/filter.ts) -> the caller, who hands each batch to the
 * sinks. DNS answers go from the decoder into the names cache, in the kernel's time order with the
 * flow records; control packets (--events packet) become events of their own
 * (src/flow/packet.ts); the kernel's list of open flows is read when src/flow/reconcile.ts says.
 *
 * @module
 */
import { findHostCgroupRoot, relativeCgroupPath, resolveCgroupDir } from "./bpf/cgroup.ts";
import { clockOffsetUs, followClock, nowClocks } from "./bpf/clock.ts";
import { KernelDrain } from "./bpf/kernel_drain.ts";
import { noCallbacksNote } from "./bpf/features.ts";
import { sharesSockOps } from "./bpf/peers.ts";
import {
  BPF_NAMES,
  DEFAULT_DNS_RING_BYTES,
  DEFAULT_RING_BYTES,
  Probe,
  type ProbeCounters,
} from "./bpf/loader.ts";
import { type KernelRecord, RecordDecoder } from "./bpf/records.ts";
import { DRAIN_MAX } from "./ffi/ringbuf.ts";
import { DnsNames } from "./dns/names.ts";
import { ProcResolvers } from "./dns/resolvers.ts";
import { CgroupPaths } from "./enrich/cgroups.ts";
import { DnsEnricher } from "./enrich/dns.ts";
import { Enrichers } from "./enrich/enricher.ts";
import { NetnsPaths } from "./enrich/netns.ts";
import type { OwnerEnricher } from "./enrich/owner.ts";
import { ownerStage } from "./enrich/owner_stage.ts";
import { NetflowError } from "./errors.ts";
import {
  EVENT_BEGIN,
  EVENT_END,
  EVENT_FAIL,
  EVENT_PACKET,
  EVENT_UPDATE,
  type EventName,
  type FlowEvent,
  type NetflowEvent,
} from "./events.ts";
import { compileFilter } from "./flow/filter.ts";
import { packetEvent } from "./flow/packet.ts";
import { SweepPolicy } from "./flow/reconcile.ts";
import { SNAPSHOT_BATCH, SnapshotFeed } from "./flow/snapshot.ts";
import { DEFAULT_MAX_FLOWS, FlowTable } from "./flow/state.ts";
import {
  checkMonitorOptions,
  type DefaultEventName,
  type EventOf,
  type MonitorOptions,
} from "./monitor_options.ts";
import { SampledClock } from "./sampled_clock.ts";
import { type MonitorStats, monitorStats } from "./stats.ts";

/** Drains at most after a stop: a full 16 MiB ring (~100,000 records) and the store's 65,536. */
const FINAL_DRAINS = (1 << 18) / DRAIN_MAX;
const DEFAULT_UPDATE_MS = 10_000;

/** Idle: one poll with this timeout; it also bounds how long a stop takes. */
const IDLE_WAIT_MS = 200;
/** Busy: drain, then let records gather for this long (cheaper than waking per record). */
const BUSY_PAUSE_MS = 10;

/**
 * Watches a cgroup: attached when constructed, detached by close(), by
 * dispose, or when a loop over it ends. Iterating it yields the events named
 * in `events` (begin and end by default), typed accordingly.
 *
 * @example One connection's end, typed without narrowing
 * ```ts
 * import { findCgroup2Mount, FlowMonitor } from "../mod.ts";
 *
 * const cgroup = `${findCgroup2Mount()}/netflow-doc-${Deno.pid}`;
 * Deno.mkdirSync(cgroup);
 * const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * try {
 *   using monitor = new FlowMonitor({ cgroup, events: ["net_flow_tcp_end"] });
 *   const timeout = setTimeout(() => monitor.close(), 10_000);
 *   server.accept().then((conn) => conn.close());
 *   // A client inside the cgroup connects, then exits.
 *   const client = `echo $$ > ${cgroup}/cgroup.procs && ` +
 *     `exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/${server.addr.port}; sleep 0.2'`;
 *   await new Deno.Command("sh", { args: ["-c", client] }).output();
 *   let ends = 0;
 *   for await (const end of monitor) {
 *     // `end` is a FlowEndEvent: its counters need no narrowing.
 *     console.log(end.conn_direction, end.reason, end.bytes_sent, end.rtt_us);
 *     ends++;
 *     break; // leaving the loop detaches
 *   }
 *   clearTimeout(timeout);
 *   if (ends !== 1) throw new Error("no end event within 10 s");
 * } finally {
 *   server.close();
 *   Deno.removeSync(cgroup);
 * }
 * ```
 */
export class FlowMonitor<const E extends EventName = DefaultEventName>
  implements AsyncIterable<EventOf<E>>, Disposable {
  /** The watched cgroup directory (absolute). */
  readonly cgroupDir: string;
  /** The watched cgroup as a path under the v2 root. */
  readonly cgroup: string;
  /**
   * One line for each feature this kernel does not offer, saying what is off
   * (`netflow: this kernel (5.10.0-32-amd64) has no bpf_loop ...: DNS names
   * are off`); empty where everything loaded.
   */
  readonly featuresOff: readonly string[];
  /**
   * One line for what netflow cannot see from where it runs (a container
   * without the host's pid namespace: src/bpf/cgroup.ts); empty on a host.
   */
  readonly notes: readonly string[];
  readonly #probe: Probe;
  readonly #decoder: RecordDecoder;
  /** The start snapshot's records not yet handed on. */
  readonly #snapshot: SnapshotFeed;
  readonly #flows: FlowTable;
  readonly #enrichers: Enrichers;
  readonly #owners: OwnerEnricher;
  readonly #dns: DnsNames;
  readonly #want: ReadonlySet<EventName>;
  readonly #pass: ((e: NetflowEvent) => boolean) | undefined;
  #batch: NetflowEvent[] = [];
  #events = 0;
  /** Update events every this many ms, or null when not asked for. */
  readonly #updateMs: number | null;
  readonly #sweeps: SweepPolicy;
  readonly #netns = new NetnsPaths();
  #malformed = 0;
  readonly #kernel: KernelDrain;
  #stopping = false;
  /** The enrichers' clock for a drain's records (read once every 64 records). */
  readonly #clock = new SampledClock();
  /** A loop over batches() is running (it tears down when it ends). */
  #iterating = false;
  #closed = false;
  #final: (ProbeCounters & { dnsPending: number }) | undefined;

  /**
   * Loads netflow's programs and attaches them to the cgroup.
   *
   * @throws {UsageError} an option is not valid (same words as the command line).
   * @throws {NetflowError} the programs cannot be loaded or attached: no
   *   privileges, no cgroup v2, no such cgroup, libbpf missing, the verifier
   *   refused them (its log in `detail`).
   */
  constructor(options: MonitorOptions<E> = {}) {
    options = checkMonitorOptions(options);
    const want: readonly EventName[] = options.events ?? [EVENT_BEGIN, EVENT_END];
    this.#want = new Set(want);
    this.#updateMs = this.#want.has(EVENT_UPDATE)
      ? options.updateIntervalMs ?? DEFAULT_UPDATE_MS
      : null;
    this.#pass = options.filter && compileFilter(options.filter);
    const host = findHostCgroupRoot(), mount = host.mount;
    this.notes = host.notes;
    this.cgroupDir = resolveCgroupDir(mount, options.cgroup);
    this.cgroup = relativeCgroupPath(mount, this.cgroupDir);
    this.#dns = new DnsNames(options.dns, new ProcResolvers(mount));
    const cgroups = new CgroupPaths(mount, this.cgroupDir);
    const maxFlows = options.maxFlows ?? DEFAULT_MAX_FLOWS;
    const stage = ownerStage(() => this.#probe, options.ownerWaitMs);
    const holders = stage.holders;
    this.#owners = stage.owners;
    this.#flows = new FlowTable({ maxFlows, untimedBegins: !this.#want.has(EVENT_BEGIN) });
    this.#probe = Probe.open({
      cgroupDir: this.cgroupDir,
      ringBytes: options.ringBytes ?? DEFAULT_RING_BYTES,
      dnsRingBytes: options.dnsRingBytes ?? DEFAULT_DNS_RING_BYTES,
      ...(options.keptFlows === undefined ? {} : { keptFlows: options.keptFlows }),
      reader: options.reader ?? "mmap",
      forwardAll: this.#want.has(EVENT_PACKET),
      snapshotAll: host.whole && this.cgroupDir === mount,
      reportFail: this.#want.has(EVENT_FAIL),
      ...(options.filter === undefined ? {} : { filter: options.filter }),
    });
    const featuresOff = [...this.#probe.featuresOff];
    const noList = this.#probe.missing(BPF_NAMES.iterators.open);
    if (this.#updateMs !== null && noList !== undefined) {
      this.#probe.close();
      throw new NetflowError(`Cannot report ${EVENT_UPDATE}: ${noList}`);
    }
    this.#decoder = new RecordDecoder(clockOffsetUs());
    // The connections open now (begins with preexisting: true), then who holds
    // them (they have no socket storage). In that order: the snapshot gives each
    // socket its cookie, which the holders iterator can only read, not create.
    const namespaces = this.#netns.all();
    // In order: the owner (who may wait), then what depends on it.
    this.#enrichers = new Enrichers([
      this.#owners,
      cgroups,
      new DnsEnricher(this.#dns, { netns: { paths: this.#netns, live: namespaces.keys() } }),
    ]);
    // Read whole now (the kernel marks those sockets begun), handed on in batches by batches().
    const cgroupIds = host.whole && this.cgroupDir === mount ? [] : cgroups.ids();
    this.#snapshot = new SnapshotFeed(this.#probe.snapshot(cgroupIds, namespaces), this.#decoder);
    holders.refresh();
    this.featuresOff = [...featuresOff, ...noCallbacksNote(this.#probe.counters().noCallbacks)];
    this.#sweeps = new SweepPolicy(this.#updateMs, performance.now());
    this.#kernel = new KernelDrain(
      this.#probe,
      (view, offset, length) => this.#decoder.decode(view, offset, length),
      (record) => {
        if (record === undefined) this.#malformed++;
        else this.#dispatch(record);
      },
      (record) => {
        if (record?.kind === "dns") this.#dns.onMessage(record);
        else this.#malformed++;
      },
    );
  }

  /**
   * The unexpired names network namespace `netns` (its inode) resolved to
   * `address`: for all its processes, and (with `cgroupId`) for that cgroup's own.
   */
  dnsNames(netns: number, address: string, cgroupId = 0): readonly string[] {
    return this.#dns.names({ netns, netnsCookie: 0, cgroupId }, address);
  }

  /** The counts so far (final once the monitor is closed): what the exit summary prints. */
  get stats(): MonitorStats {
    return monitorStats({
      kernel: this.#final ?? { ...this.#probe.counters(), dnsPending: 0 },
      final: this.#final !== undefined,
      events: this.#events,
      malformed: this.#malformed,
      flows: this.#flows.stats,
      dns: this.#dns.stats,
      owners: this.#owners.stats,
      ownerFilter: this.#probe.holdersIterator?.filterStats,
      recovered: this.#kernel.recovered,
      dnsUnordered: this.#kernel.unordered,
    });
  }

  /** Events in the batches the reader drains them; ends (and detaches) after close(). */
  async *batches(): AsyncGenerator<EventOf<E>[], void, undefined> {
    this.#iterating = true;
    try {
      // The start snapshot first, a batch at a time: a preexisting flow's end may be in the ring.
      while (!this.#snapshot.done) {
        this.#push(
          this.#flows.onSnapshot(this.#snapshot.next(SNAPSHOT_BATCH), this.#snapshot.listens),
        );
        if (this.#batch.length > 0) yield this.#take();
      }
      while (!this.#stopping) {
        let drained = this.#drain();
        this.#enriched(this.#enrichers.settle(performance.now()));
        drained += this.#sweep();
        this.#enrichers.tick(performance.now());
        if (this.#batch.length > 0) yield this.#take();
        if (this.#stopping) break;
        const owners = this.#enrichers.wakeInMs(performance.now()) ?? IDLE_WAIT_MS;
        // Behind (a backlog, in bounded batches): the next at once, after I/O (a 0 ms timer: 1-2 ms).
        const pause = this.#kernel.behind ? 0 : Math.min(BUSY_PAUSE_MS, owners);
        if (drained > 0) await new Promise((r) => pause ? setTimeout(r, pause) : setImmediate(r));
        else await this.#probe.reader.wait(Math.min(IDLE_WAIT_MS, owners));
      }
      if (!this.#closed) {
        // What arrived before the stop, in bounded batches too (at most a full ring's worth
        // more: records still coming do not hold the stop).
        for (let i = 0; i < FINAL_DRAINS && (i === 0 || this.#kernel.behind); i++) {
          this.#drain();
          if (this.#batch.length > 0) yield this.#take();
        }
        this.#enriched(this.#enrichers.settle(performance.now(), true));
        if (this.#batch.length > 0) yield this.#take();
      }
    } finally {
      this.#iterating = false;
      this.#teardown();
    }
  }

  /** The events one by one, typed by the `events` option; the loop's end detaches. */
  async *[Symbol.asyncIterator](): AsyncGenerator<EventOf<E>, void, undefined> {
    for await (const batch of this.batches()) yield* batch;
  }

  /** Stops watching: a running loop ends after its current wait (at most 200 ms). */
  close(): void {
    this.#stopping = true;
    // A running loop ends by itself, draining the ring and settling waiting
    // owners first: tearing down under it would drop what it holds.
    if (!this.#iterating) this.#teardown();
  }

  /** Closes the monitor (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }

  #teardown(): void {
    if (this.#closed) return;
    this.#final = { ...this.#probe.counters(), dnsPending: this.#probe.pendingDnsQueries() };
    this.#closed = true;
    this.#probe.close();
  }

  #drain(): number {
    if (this.#closed) return 0;
    followClock(this.#decoder);
    this.#clock.restart(); // the first record of a drain reads the clock
    return this.#kernel.drain();
  }

  /**
   * Reads the kernel's list of open flows: updates for those open long
   * enough, and an unknown end for those whose socket is gone. The ring is
   * drained after the list is taken, so an end written meanwhile wins.
   */
  #sweep(): number {
    const counts = () => ({
      ...this.#probe.counters(),
      sharesSockOps: () => sharesSockOps(this.#probe.cgroupDir),
    });
    // Not while a backlog is read: a flow missing from the list may have its end in it.
    if (this.#closed || this.#kernel.behind || !this.#sweeps.due(performance.now(), counts)) {
      return 0;
    }
    const lists = this.#probe.openFlows(this.#netns.of(this.#flows.namespaces()));
    const drained = this.#drain();
    const at = nowClocks();
    const updateEveryUs = this.#updateMs === null ? null : this.#updateMs * 1000;
    const open = [...lists.values()].map((bytes) => this.#decoder.openList(bytes));
    // Still behind (the ring or the kernel's store): no namespace's list is taken as complete.
    const listed = this.#kernel.behind ? new Set<number>() : new Set(lists.keys());
    this.#push(this.#flows.onOpenList(open, at, updateEveryUs, listed));
    return drained + 1;
  }

  #take(): EventOf<E>[] {
    // Only events in #want are batched, and E is what #want was made of.
    const batch = this.#batch as EventOf<E>[];
    this.#batch = [];
    this.#events += batch.length;
    return batch;
  }

  #dispatch(record: KernelRecord): void {
    switch (record.kind) {
      case "dns":
        this.#malformed++; // DNS has its own ring
        return;
      case "packet":
        if (this.#want.has(EVENT_PACKET)) this.#keep(packetEvent(record));
        return;
      case "syn":
      case "hs-rst":
      case "refused": {
        const fail = this.#flows.onHandshake(record);
        if (fail !== undefined) this.#push([fail]);
        return;
      }
      case "release":
        this.#enriched(this.#enrichers.observe(record, this.#clock.now()));
        return;
      default: {
        // Each event through the enrichers before the table's next call (its facts).
        const lost = this.#flows.lostBegin(record);
        const begin = lost && this.#flows.onRecord(lost);
        if (begin !== undefined) this.#pushOne(begin, this.#clock.now());
        const event = this.#flows.onRecord(record);
        if (event !== undefined) this.#pushOne(event, this.#clock.now());
      }
    }
  }

  /** The table's events, through the enrichers. */
  #push(events: readonly FlowEvent[]): void {
    this.#clock.restart();
    for (const event of events) this.#pushOne(event, this.#clock.now());
  }

  #pushOne(event: FlowEvent, now: number): void {
    this.#enriched(this.#enrichers.push({ event, facts: this.#flows.factsOf(event) }, now));
  }

  #enriched(items: readonly { event: FlowEvent }[]): void {
    for (let i = 0; i < items.length; i++) this.#keep(items[i]!.event); // indexed: no iterator
  }

  /** Batches an event asked for (from the enrichers, or a packet) that passes the filter. */
  #keep(event: NetflowEvent): void {
    if (!this.#want.has(event.event)) return;
    if (this.#pass === undefined || this.#pass(event)) this.#batch.push(event);
  }
}
