/**
 * What a `FlowMonitor` takes: its options, checked with the rules and words of
 * the command line (src/options.ts), and the event types they select.
 *
 * @module
 */
import type { DnsNamesOptions } from "./dns/names.ts";
import { UsageError } from "./errors.ts";
import {
  type EVENT_BEGIN,
  type EVENT_END,
  EVENT_UPDATE,
  type EventName,
  type FlowFilter,
  type NetflowEvent,
} from "./events.ts";
import { checkFilter } from "./flow/filter.ts";
import {
  byteSize,
  cgroupPath,
  eventList,
  MIN_DNS_CACHE_BYTES,
  type ReaderKind,
  readerKind,
  refuse,
  ringSize,
  wholeNumber,
} from "./options.ts";

/** The events a monitor reports when `events` is not given. */
export type DefaultEventName = typeof EVENT_BEGIN | typeof EVENT_END;

/** The event type of the named events: `EventOf<"net_flow_tcp_end">` is FlowEndEvent. */
export type EventOf<E extends EventName> = Extract<NetflowEvent, { event: E }>;

/**
 * What a `FlowMonitor` watches and how. Every value is checked when the
 * monitor is constructed, with the command line's rules and words: a bad one
 * throws `UsageError`.
 */
export interface MonitorOptions<E extends EventName = EventName> {
  /**
   * The cgroup v2 directory to watch: a path under the v2 root
   * (`/system.slice`, `a/b`), or an absolute path inside the v2 mount;
   * `..` is resolved but may not leave the root. Default: the root, the whole
   * host. Empty or whitespace-only text is refused (omit it instead).
   */
  cgroup?: string;
  /**
   * Which events to report, by full (`net_flow_tcp_end`) or short (`end`)
   * name; at least one. Default: `net_flow_tcp_begin` and `net_flow_tcp_end`.
   * The monitor's iterator yields exactly these event types.
   */
  events?: readonly E[];
  /**
   * Open flows tracked at most, a whole number of at least 1 (default
   * 131072); beyond it the oldest is evicted and counted in `stats.evicted`.
   */
  maxFlows?: number;
  /**
   * Ring buffer size in bytes: a power of two from 4096 to 2^30 (default
   * 16 MiB, about 100,000 records). Records that do not fit are counted in
   * `stats.lost`.
   */
  ringBytes?: number;
  /**
   * DNS's own ring buffer size in bytes (DNS answers never cost a TCP
   * record): a power of two from 4096 to 2^30 (default 4 MiB). Answers that
   * do not fit are counted in `stats.dnsLost`.
   */
  dnsRingBytes?: number;
  /**
   * Ended flows the kernel keeps aside while the ring buffer is full (the
   * reader stalled), read after the ring; beyond them a flow is lost, and
   * counted (default 65,536).
   */
  keptFlows?: number;
  /** Ring buffer reader: "mmap" (default) or "callback" (libbpf's ring_buffer__consume). */
  reader?: ReaderKind;
  /**
   * How long an end the peer closed may wait for its holder's name at
   * close, in ms: a whole number, default 200; an incoming begin waits for
   * the process that accepts it up to 2 s, or this if longer
   * (src/enrich/owners.ts). 0: no wait and no
   * iterator runs; owners are the kernel's stamps only (an incoming flow
   * then names its listener's creator, e.g. a prefork master).
   */
  ownerWaitMs?: number;
  /**
   * The DNS cache, one for all network namespaces: heap bytes it may hold
   * (`maxBytes`, default 64 MiB, at least 65536), addresses (`maxEntries`,
   * default 262144, at least 1) and expiry (`graceMs`, at least 0).
   */
  dns?: DnsNamesOptions;
  /**
   * With `net_flow_tcp_update` in `events`: one update per open flow every
   * this many milliseconds (at least 100; default 10,000). Refused without
   * `net_flow_tcp_update` in `events` (it would do nothing).
   */
  updateIntervalMs?: number;
  /**
   * Report only the events that pass (`--pid`, `--comm`, `--port`,
   * `--container`, `--net`, `--direction`, `-4`/`-6`): OR within a kind,
   * AND across kinds (src/flow/filter.ts). Default: everything.
   */
  filter?: FlowFilter;
}

/**
 * Checks FlowMonitor's options and returns them normalized (the cgroup path,
 * short event names made full); throws {@link UsageError} with the words the
 * command line uses for the same mistake.
 */
export function checkMonitorOptions<T extends MonitorOptions>(options: T): T {
  if (typeof options !== "object" || options === null) refuse("options", "an object", options);
  const out: T = { ...options };
  if (options.cgroup !== undefined) out.cgroup = cgroupPath("cgroup", options.cgroup);
  if (options.events !== undefined) {
    (out as MonitorOptions).events = eventList("events", options.events);
  }
  if (options.maxFlows !== undefined) out.maxFlows = wholeNumber("maxFlows", options.maxFlows, 1);
  if (options.ringBytes !== undefined) out.ringBytes = ringSize("ringBytes", options.ringBytes);
  if (options.dnsRingBytes !== undefined) {
    out.dnsRingBytes = ringSize("dnsRingBytes", options.dnsRingBytes);
  }
  if (options.keptFlows !== undefined) {
    out.keptFlows = wholeNumber("keptFlows", options.keptFlows, 1);
  }
  if (options.reader !== undefined) out.reader = readerKind("reader", options.reader);
  if (options.filter !== undefined) out.filter = checkFilter(options.filter);
  if (options.ownerWaitMs !== undefined) {
    out.ownerWaitMs = wholeNumber("ownerWaitMs", options.ownerWaitMs, 0);
  }
  if (options.updateIntervalMs !== undefined) {
    out.updateIntervalMs = wholeNumber("updateIntervalMs", options.updateIntervalMs, 100);
    if (!(out as MonitorOptions).events?.includes(EVENT_UPDATE)) {
      throw new UsageError(
        `updateIntervalMs needs ${EVENT_UPDATE} in events (without it no update is made)`,
      );
    }
  }
  if (options.dns !== undefined) {
    if (typeof options.dns !== "object" || options.dns === null) {
      refuse("dns", "an object", options.dns);
    }
    const dns = { ...options.dns };
    if (dns.maxEntries !== undefined) {
      dns.maxEntries = wholeNumber("dns.maxEntries", dns.maxEntries, 1);
    }
    if (dns.graceMs !== undefined) dns.graceMs = wholeNumber("dns.graceMs", dns.graceMs, 0);
    if (dns.maxBytes !== undefined) {
      dns.maxBytes = byteSize("dns.maxBytes", dns.maxBytes, MIN_DNS_CACHE_BYTES);
    }
    out.dns = dns;
  }
  return out;
}
