/**
 * netflow's command line: one table of options, parsed by src/argv.ts, with
 * the value rules the library shares (src/options.ts). The monitor's options
 * are here; the filters (src/flow/filter.ts), the stdout format and table
 * (src/output/options.ts) and the metrics (src/metrics/options.ts) bring
 * their own, and say what they ask for. Adding an option is one entry in its
 * group, plus where its value goes.
 *
 * @module
 */
import { flag, optionsHelp, parseArgv, repeatable, single } from "./argv.ts";
import { UsageError } from "./errors.ts";
import { EVENT_BEGIN, EVENT_END, EVENT_NAMES, EVENT_UPDATE, type EventName } from "./events.ts";
import { type CollectorUrl, parseCollectorUrl } from "./export/url.ts";
import { FILTER_OPTIONS, filterOf } from "./flow/filter.ts";
import { DEFAULT_MAX_FLOWS } from "./flow/state.ts";
import { METRICS_OPTIONS, metricsOf } from "./metrics/options.ts";
import type { MonitorOptions } from "./monitor_options.ts";
import { FORMAT_OPTION, outputOf, TABLE_OPTIONS } from "./output/options.ts";
import {
  byteSize,
  cgroupPath,
  eventList,
  MIN_DNS_CACHE_BYTES,
  positiveSeconds,
  readerKind,
  ringSize,
  shortEventName,
  wholeNumber,
} from "./options.ts";

/** Every option netflow takes, in the order `--help` lists them. */
export const OPTIONS = {
  ...FORMAT_OPTION,
  ipfix: repeatable({
    metavar: "URL",
    help: "also export flows as IPFIX to a collector, udp://HOST:PORT\n" +
      "or tcp://HOST:PORT (repeatable)",
    parse: (text) => parseCollectorUrl(text),
  }),
  cgroup: single({
    short: "c",
    metavar: "PATH",
    help: "cgroup v2 directory to watch: a path under the v2 root\n" +
      "(/system.slice) or inside the v2 mount (default: the root,\n" +
      "i.e. the whole host)",
    parse: (text, name) => cgroupPath(name, text),
  }),
  events: repeatable({
    short: "e",
    metavar: "LIST",
    help: `comma-separated: ${EVENT_NAMES.map(shortEventName).join(", ")} (or the full names,\n` +
      `e.g. ${EVENT_BEGIN}); default: ${shortEventName(EVENT_BEGIN)},${shortEventName(EVENT_END)}`,
    parse: (text, name) => eventList(name, text),
  }),
  count: single({
    short: "n",
    metavar: "N",
    help: "exit after N events",
    parse: (text, name) => wholeNumber(name, text, 1),
  }),
  duration: single({
    short: "d",
    metavar: "SECONDS",
    help: "exit after SECONDS (decimals allowed)",
    parse: (text, name) => positiveSeconds(name, text),
  }),
  ...TABLE_OPTIONS,
  "update-interval": single({
    metavar: "SECONDS",
    help: "updates per open flow every SECONDS (decimals allowed, at\n" +
      "least 0.1; default 10): on stdout with update in --events,\n" +
      "to IPFIX collectors with --ipfix; refused with neither",
    parse: (text, name) => {
      const ms = positiveSeconds(name, text);
      if (ms < 100) throw new UsageError(`${name} takes at least 0.1 seconds, not "${text}"`);
      return ms;
    },
  }),
  "max-flows": single({
    metavar: "N",
    help: "open flows tracked at most (default: 131072)",
    parse: (text, name) => wholeNumber(name, text, 1),
  }),
  "dns-cache-bytes": single({
    metavar: "BYTES",
    help: "heap the DNS cache may hold, all network namespaces\n" +
      "together; K, M, G suffixes (default: 64M, at least 64K)",
    parse: (text, name) => byteSize(name, text, MIN_DNS_CACHE_BYTES),
  }),
  "dns-max-entries": single({
    metavar: "N",
    help: "addresses in the DNS cache at most, all network namespaces\n" +
      "together (default: 262144)",
    parse: (text, name) => wholeNumber(name, text, 1),
  }),
  "dns-grace": single({
    metavar: "SECONDS",
    help: "keep DNS answers this long past their TTL (default: 5)",
    parse: (text, name) => wholeNumber(name, text, 0),
  }),
  "kernel-store": single({
    metavar: "N",
    help: "ended flows the kernel keeps while the ring buffer is full\n" +
      "(netflow's reader stalled), read after the ring (default: 65536)",
    parse: (text, name) => wholeNumber(name, text, 1),
  }),
  "ring-size": single({
    metavar: "BYTES",
    help: "the flows' ring buffer size, a power of two from 4K to 1G;\n" +
      "K, M, G suffixes, B or iB optional (default: 16M, ~100,000\n" +
      "records); DNS has its own, --dns-ring-size",
    parse: (text, name) => ringSize(name, text),
  }),
  "dns-ring-size": single({
    metavar: "BYTES",
    help: "DNS answers' own ring buffer size, as --ring-size (default:\n" +
      "4M, ~3,000 answers of the largest size copied)",
    parse: (text, name) => ringSize(name, text),
  }),
  reader: single({
    metavar: "KIND",
    help: "ring buffer reader: mmap (default) or callback",
    parse: (text, name) => readerKind(name, text),
  }),
  ...FILTER_OPTIONS,
  ...METRICS_OPTIONS,
  verbose: flag("v", "libbpf's log, and error details (the verifier log)"),
  help: flag("h", "this help"),
  version: flag("V", "the version"),
};

/** The line printed under a usage error. */
export const SHORT_USAGE = "Usage: netflow [options] (netflow --help lists them)";

export const USAGE = `Usage: netflow [options]

Reports net_flow_tcp_begin when a TCP connection is established and
net_flow_tcp_end when it ends, for every socket in a cgroup v2 subtree.
Needs root, or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON.

Options:
${optionsHelp(OPTIONS)}`;

export interface CliOptions {
  format: ReturnType<typeof outputOf>["format"];
  /** IPFIX collectors (--ipfix), in the order given. */
  ipfix: CollectorUrl[];
  /**
   * The events asked for with --events (begin and end by default): what
   * stdout shows, --count counts and the summary's "N events" counts. The
   * monitor may make more (`monitor.events`): IPFIX exports every end, and
   * with --update-interval every update, whatever stdout shows; with flow
   * metrics (--metrics) it is asked for begin, update, end and fail too.
   */
  events: EventName[];
  verbose: boolean;
  help: boolean;
  version: boolean;
  /** Stop after this many events. */
  count: number | undefined;
  /** Stop after this many milliseconds. */
  durationMs: number | undefined;
  table: ReturnType<typeof outputOf>["table"];
  monitor: MonitorOptions<EventName>;
  /** --metrics: where to serve /metrics. */
  metrics: ReturnType<typeof metricsOf>["metrics"];
  /** With --metrics: the flow metrics' settings. */
  flowMetrics: ReturnType<typeof metricsOf>["flowMetrics"];
  /**
   * What the IPFIX exporters take from the monitor's events: every end, and
   * every update when updates were asked for (--update-interval, or update
   * in --events; flow metrics' own updates are not exported).
   */
  exported: EventName[];
}

export function parseCli(argv: readonly string[]): CliOptions {
  const o = parseArgv(argv, OPTIONS);
  const monitor: MonitorOptions<EventName> = { reader: o.reader ?? "mmap" };
  if (o.cgroup !== undefined) monitor.cgroup = o.cgroup;
  const events: EventName[] = o.events.length > 0
    ? [...new Set(o.events.flat())]
    : [EVENT_BEGIN, EVENT_END];
  const interval = o["update-interval"];
  if (interval !== undefined && !events.includes(EVENT_UPDATE) && o.ipfix.length === 0) {
    throw new UsageError(
      "--update-interval needs update in --events or an --ipfix collector (it would do nothing)",
    );
  }
  // IPFIX exports every end, and every update when there are updates, whatever stdout shows.
  const made = new Set(events);
  if (o.ipfix.length > 0) {
    made.add(EVENT_END);
    if (interval !== undefined) made.add(EVENT_UPDATE);
  }
  monitor.events = [...made];
  // What the exporters take: every end, and updates when they were asked for.
  const exported: EventName[] = [EVENT_END];
  if (interval !== undefined || events.includes(EVENT_UPDATE)) exported.push(EVENT_UPDATE);
  if (o["max-flows"] !== undefined) monitor.maxFlows = o["max-flows"];
  if (interval !== undefined) monitor.updateIntervalMs = interval;
  if (o["ring-size"] !== undefined) monitor.ringBytes = o["ring-size"];
  if (o["dns-ring-size"] !== undefined) monitor.dnsRingBytes = o["dns-ring-size"];
  if (o["kernel-store"] !== undefined) monitor.keptFlows = o["kernel-store"];
  const dns: NonNullable<MonitorOptions["dns"]> = {};
  if (o["dns-max-entries"] !== undefined) dns.maxEntries = o["dns-max-entries"];
  if (o["dns-cache-bytes"] !== undefined) dns.maxBytes = o["dns-cache-bytes"];
  if (o["dns-grace"] !== undefined) dns.graceMs = o["dns-grace"] * 1000;
  monitor.dns = dns;
  const filter = filterOf(o);
  if (filter !== undefined) monitor.filter = filter;
  const { format, table } = outputOf(o);
  const { metrics, flowMetrics, needs } = metricsOf(o, monitor.maxFlows ?? DEFAULT_MAX_FLOWS);
  if (needs.length > 0) monitor.events = [...new Set([...events, ...needs])];
  return {
    format,
    ipfix: o.ipfix,
    events,
    verbose: o.verbose,
    help: o.help,
    version: o.version,
    count: o.count,
    durationMs: o.duration,
    table,
    monitor,
    metrics,
    flowMetrics,
    exported,
  };
}
