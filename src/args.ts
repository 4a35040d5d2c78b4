/**
 * netflow's command line: one table of options (adding an option is one entry
 * here, plus where its value goes in {@link parseCli}), parsed by src/argv.ts,
 * with the value rules the library shares (src/options.ts).
 *
 * @module
 */
import { flag, optionsHelp, parseArgv, repeatable, single } from "./argv.ts";
import { UsageError } from "./errors.ts";
import {
  EVENT_BEGIN,
  EVENT_END,
  EVENT_NAMES,
  EVENT_UPDATE,
  type EventName,
  type FlowFilter,
} from "./events.ts";
import { cidrValue } from "./bpf/addr.ts";
import { commValue, containerValue, directionValue, pidValue, portValue } from "./flow/filter.ts";
import { type ListenAddress, listenAddress } from "./metrics/netflow.ts";
import {
  budgetValue,
  DEFAULT_BUDGET,
  DEFAULT_EXPIRY_MS,
  DEFAULT_METRIC_LABELS,
  FLOW_METRIC_EVENTS,
  type FlowMetricsOptions,
  metricLabels,
  netPrefixes,
} from "./metrics/flows.ts";
import type { MonitorOptions } from "./monitor_options.ts";
import { DEFAULT_MAX_FLOWS } from "./flow/state.ts";
import { type CollectorUrl, parseCollectorUrl } from "./export/url.ts";
import { type FormatName, FORMATS as STDOUT_FORMATS } from "./output/stdout.ts";
import type { TableOptions } from "./output/table.ts";
import {
  byteSize,
  cgroupPath,
  eventList,
  MIN_DNS_CACHE_BYTES,
  oneOf,
  positiveSeconds,
  readerKind,
  ringSize,
  shortEventName,
  wholeNumber,
} from "./options.ts";

/** The stdout formats (src/output/stdout.ts); `none`: nothing on stdout (export only). */
export const FORMATS = STDOUT_FORMATS;
export type Format = FormatName;

/** Every option netflow takes, in the order `--help` lists them. */
export const OPTIONS = {
  format: single({
    short: "f",
    metavar: "FORMAT",
    help: "table (default), json (JSON Lines), ecs (Elastic Common\n" +
      "Schema), tracee (Tracee's JSON) or none (with --ipfix)",
    parse: (text, name): Format => oneOf(name, text, FORMATS),
  }),
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
  wide: flag(
    "w",
    "table: full IPv6 addresses and names, plus UID, RTT,\nRETRANS and CGROUP (or container) columns",
  ),
  utc: flag(undefined, "table: times in UTC (default: local time, its UTC offset\nin the header)"),
  date: flag(undefined, "table: the date with each time"),
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
  // Filters: each repeatable (OR); different kinds combine (AND).
  pid: repeatable({
    metavar: "PID",
    help: "only flows of this process (repeatable, as every filter:\n" +
      "one kind matches any of its values; kinds combine)",
    parse: (text, name) => pidValue(name, text),
  }),
  comm: repeatable({
    metavar: "NAME",
    help: "only flows of processes named NAME (comm, as ps shows it)",
    parse: (text, name) => commValue(name, text),
  }),
  port: repeatable({
    metavar: "PORT",
    help: "only flows with PORT on either side",
    parse: (text, name) => portValue(name, text),
  }),
  container: repeatable({
    metavar: "ID",
    help: "only flows of the container whose id starts with ID",
    parse: (text, name) => containerValue(name, text),
  }),
  net: repeatable({
    metavar: "CIDR",
    help: "only flows whose remote address is in CIDR\n(10.0.0.0/8, fd00::/8, or one address)",
    parse: (text, name) => {
      cidrValue(name, text);
      return text;
    },
  }),
  direction: repeatable({
    metavar: "DIR",
    help: "only incoming or outgoing flows",
    parse: (text, name) => directionValue(name, text),
  }),
  ipv4: flag("4", "only IPv4 flows"),
  ipv6: flag("6", "only IPv6 flows"),
  metrics: single({
    metavar: "HOST:PORT",
    help: "serve netflow's counters and flow metrics for Prometheus at\n" +
      "http://HOST:PORT/metrics; PORT or :PORT listens on 127.0.0.1",
    parse: (text, name) => listenAddress(name, text),
  }),
  "metrics-labels": single({
    metavar: "LIST",
    help: "flow metrics' labels besides direction, comma-separated: comm,\n" +
      "container, cgroup, uid, remote_name, remote_port, remote_net,\n" +
      `or none (default: ${DEFAULT_METRIC_LABELS.join(",")})`,
    parse: (text, name) => metricLabels(name, text),
  }),
  "metrics-budget": single({
    metavar: "N",
    help:
      `series per flow metric at most; the idlest label sets fold\ninto "other" (default: ${DEFAULT_BUDGET}, at least 100)`,
    parse: (text, name) => budgetValue(name, text),
  }),
  "metrics-expiry": single({
    metavar: "SECONDS",
    help: 'a flow metric label set idle this long moves into "other"\n' +
      `(default: ${DEFAULT_EXPIRY_MS / 1000})`,
    parse: (text, name) => positiveSeconds(name, text),
  }),
  "metrics-net-prefix": single({
    metavar: "V4[,V6]",
    help: "remote_net's prefix lengths (default: 24,64)",
    parse: (text, name) => netPrefixes(name, text),
  }),
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
  format: Format;
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
  table: TableOptions;
  monitor: MonitorOptions<EventName>;
  /** --metrics: where to serve /metrics. */
  metrics: ListenAddress | undefined;
  /** With --metrics: the flow metrics' settings. */
  flowMetrics: FlowMetricsOptions | undefined;
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
  const filter: FlowFilter = {
    pid: o.pid,
    comm: o.comm,
    port: o.port,
    container: o.container,
    net: o.net,
    direction: o.direction,
    family: [...(o.ipv4 ? [4 as const] : []), ...(o.ipv6 ? [6 as const] : [])],
  };
  if (Object.values(filter).some((v) => v.length > 0)) monitor.filter = filter;
  const format = o.format ?? "table";
  if (format !== "table" && (o.wide || o.utc || o.date)) {
    const used = o.wide ? "--wide" : o.utc ? "--utc" : "--date";
    throw new UsageError(`${used} is for the table format, not --format ${format}`);
  }
  const metricsOptions = (
    ["metrics-labels", "metrics-budget", "metrics-expiry", "metrics-net-prefix"] as const
  ).filter((k) => o[k] !== undefined);
  if (o.metrics === undefined && metricsOptions.length > 0) {
    throw new UsageError(`--${metricsOptions[0]} needs --metrics`);
  }
  let flowMetrics: FlowMetricsOptions | undefined;
  if (o.metrics !== undefined) {
    flowMetrics = {
      labels: o["metrics-labels"] ?? DEFAULT_METRIC_LABELS,
      budget: o["metrics-budget"] ?? DEFAULT_BUDGET,
      expiryMs: o["metrics-expiry"] ?? DEFAULT_EXPIRY_MS,
      ...(o["metrics-net-prefix"] ?? { prefix4: 24, prefix6: 64 }),
      maxFlows: monitor.maxFlows ?? DEFAULT_MAX_FLOWS,
    };
    monitor.events = [...new Set([...events, ...FLOW_METRIC_EVENTS])];
  }
  return {
    format,
    ipfix: o.ipfix,
    events,
    verbose: o.verbose,
    help: o.help,
    version: o.version,
    count: o.count,
    durationMs: o.duration,
    table: { utc: o.utc, date: o.date, wide: o.wide },
    monitor,
    metrics: o.metrics,
    flowMetrics,
    exported,
  };
}
