/**
 * netflow's own metrics (`--metrics HOST:PORT`): the counters of the exit
 * summary, events by kind and open flows, served over HTTP at /metrics in the
 * Prometheus text format.
 *
 * @module
 */
import { NetflowError, UsageError } from "../errors.ts";
import { IpfixExporter } from "../export/exporter.ts";
import { EVENT_NAMES, type EventName } from "../events.ts";
import type { MonitorStats } from "../stats.ts";
import { shown } from "../options.ts";
import { contentType, type MetricsRegistry, negotiate } from "./prometheus.ts";
import { registerOwnerMetrics } from "./owners.ts";

/** Where the metrics server listens. */
export interface ListenAddress {
  hostname: string;
  port: number;
}

/**
 * `PORT`, `:PORT`, `HOST:PORT` or `[IPV6]:PORT`; without a host, loopback
 * (127.0.0.1). Port 0 picks a free port (netflow prints the one it got).
 */
export function listenAddress(name: string, value: unknown): ListenAddress {
  const text = typeof value === "string" ? value.trim() : "";
  const match = /^(?:(\[[0-9a-fA-F:.]+\]|[^:\[\]\s]+)?:)?(\d{1,5})$/.exec(text);
  const port = Number(match?.[2]);
  if (!match || port > 65535) {
    throw new UsageError(`${name} takes HOST:PORT, :PORT or PORT, not ${shown(value)}`);
  }
  const host = match[1] ?? "127.0.0.1";
  return { hostname: host.replace(/^\[(.*)\]$/, "$1"), port };
}

/** Events written, by kind. */
export class EventCounts {
  readonly #counts = new Map<EventName, number>(EVENT_NAMES.map((n) => [n, 0]));

  add(events: readonly { event: EventName }[]): void {
    for (const e of events) this.#counts.set(e.event, (this.#counts.get(e.event) ?? 0) + 1);
  }

  get total(): number {
    let n = 0;
    for (const v of this.#counts.values()) n += v;
    return n;
  }

  entries(): [EventName, number][] {
    return [...this.#counts];
  }
}

/** Registers netflow's metrics, read from `stats()` once per scrape. */
export function registerNetflowMetrics(
  registry: MetricsRegistry,
  version: string,
  events: EventCounts,
  stats: () => MonitorStats,
): void {
  let s = stats();
  registry.beforeCollect(() => s = stats());
  registry.register({
    name: "netflow_build_info",
    help: "netflow's version (netflow --version); always 1",
    type: "gauge",
    collect: () => [{ labels: { version }, value: 1 }],
  });
  registry.register({
    name: "netflow_events_total",
    help: "Events written, by kind (the exit summary's events)",
    type: "counter",
    collect: () => events.entries().map(([event, value]) => ({ labels: { event }, value })),
  });
  const counters: [string, string, "counter" | "gauge", (s: MonitorStats) => number][] = [
    [
      "records_lost_total",
      "Records lost because the ring buffer was full",
      "counter",
      (s) => s.lost,
    ],
    [
      "records_malformed_total",
      "Records of a wrong size or unknown kind",
      "counter",
      (s) => s.malformed,
    ],
    ["flows_open", "Flows open now", "gauge", (s) => s.openFlows],
    [
      "flows_evicted_total",
      "Open flows dropped because the flow table was full",
      "counter",
      (s) => s.evicted,
    ],
    [
      "sockets_untracked_total",
      "Sockets the kernel could not follow (no socket storage)",
      "counter",
      (s) => s.untracked,
    ],
    [
      "dns_responses_total",
      "DNS answers read (each matched a query of its namespace)",
      "counter",
      (s) => s.dnsResponses,
    ],
    [
      "dns_responses_malformed_total",
      "DNS answers that could not be parsed",
      "counter",
      (s) => s.dnsMalformed,
    ],
    ["dns_responses_cut_total", "DNS answers read only in part", "counter", (s) => s.dnsCut],
    [
      "dns_cache_evicted_total",
      "Addresses dropped from full DNS caches",
      "counter",
      (s) => s.dnsEvicted,
    ],
    [
      "dns_records_lost_total",
      "DNS records lost because the DNS ring buffer was full",
      "counter",
      (s) => s.dnsLost,
    ],
    [
      "dns_answers_cgroup_only_total",
      "DNS answers from a server the namespace is not configured to use (named for the asking cgroup only)",
      "counter",
      (s) => s.dnsCgroupOnly,
    ],
    [
      "handshake_records_lost_total",
      "Handshake and packet-view records lost because their ring was full (never a flow record)",
      "counter",
      (s) => s.packetsLost,
    ],
    [
      "dns_unordered_total",
      "Flow records handed over before an older DNS answer another CPU was still writing",
      "counter",
      (s) => s.dnsUnordered,
    ],
    [
      "dns_answers_unmatched_total",
      "DNS answers that matched no query, dropped in the kernel",
      "counter",
      (s) => s.dnsUnmatched,
    ],
    [
      "flows_filtered_in_kernel_total",
      "Flows that began and did not pass --port, --net, --direction or -4/-6, dropped in the kernel",
      "counter",
      (s) => s.kernelFiltered,
    ],
    [
      "attempts_filtered_in_kernel_total",
      "Handshake packets of connection attempts (--events fail) that did not pass --port, --net, --direction or -4/-6, dropped in the kernel",
      "counter",
      (s) => s.attemptsFiltered,
    ],
    [
      "dns_answers_repeated_total",
      "More copies of an answered query's answer, dropped in the kernel",
      "counter",
      (s) => s.dnsRepeated,
    ],
    [
      "half_open_evicted_total",
      "Half-open connection attempts (--events fail) dropped because their table was full",
      "counter",
      (s) => s.halfOpenEvicted,
    ],
    [
      "flows_unknown_end_total",
      "Flows ended with reason unknown (their socket went away, its end record lost)",
      "counter",
      (s) => s.unknownEnds,
    ],
    [
      "records_duplicate_total",
      "Records that repeated a begin or end already reported (ignored)",
      "counter",
      (s) => s.duplicates,
    ],
    [
      "dns_tcp_streams_dropped_total",
      "DNS-over-TCP answer streams dropped unfinished (too many at once, or idle too long)",
      "counter",
      (s) => s.dnsStreamsDropped,
    ],
    [
      "owner_waits_timed_out_total",
      "Incoming flows whose wait for the accepting process ran out (owner null)",
      "counter",
      (s) => s.ownerTimeouts,
    ],
    [
      "flows_recovered_total",
      "Flows whose end the kernel kept aside while the ring buffer was full, all reported",
      "counter",
      (s) => s.flowsRecovered,
    ],
    [
      "flows_lost_total",
      "Flows whose end record was lost: the ring buffer and the kernel's store were both full",
      "counter",
      (s) => s.flowsLost,
    ],
  ];
  for (const [name, help, type, read] of counters) {
    registry.register({ name: `netflow_${name}`, help, type, collect: () => read(s) });
  }
  registerOwnerMetrics(registry, () => s);
}

/** The IPFIX exporters' counts (--ipfix), one series per collector. */
export function registerExportMetrics(registry: MetricsRegistry, sinks: readonly unknown[]): void {
  const exporters = sinks.filter((s) => s instanceof IpfixExporter);
  const per = (read: (e: IpfixExporter) => number) => () =>
    exporters.map((e) => ({ labels: { collector: e.url.text }, value: read(e) }));
  registry.register({
    name: "netflow_ipfix_records_sent_total",
    help: "IPFIX records handed to the collector's socket",
    type: "counter",
    collect: per((e) => e.stats.sent),
  });
  registry.register({
    name: "netflow_ipfix_records_dropped_total",
    help: "IPFIX records given up on (queue full, send failed, no collector at exit)",
    type: "counter",
    collect: per((e) => e.stats.dropped),
  });
  registry.register({
    name: "netflow_ipfix_queued_records",
    help: "IPFIX records waiting for their collector now",
    type: "gauge",
    collect: per((e) => e.stats.queued),
  });
}

/** The HTTP server of `--metrics`: GET /metrics (text 0.0.4, or OpenMetrics when asked). */
export class MetricsServer implements AsyncDisposable {
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  /** Where it listens, e.g. http://127.0.0.1:9100/metrics. */
  readonly url: string;

  constructor(address: ListenAddress, registry: MetricsRegistry) {
    try {
      this.#server = Deno.serve({
        hostname: address.hostname,
        port: address.port,
        onListen: () => {},
      }, (request) => {
        const path = new URL(request.url).pathname;
        if (path !== "/metrics") return new Response("Not found: try /metrics\n", { status: 404 });
        if (request.method !== "GET" && request.method !== "HEAD") {
          return new Response("Method not allowed\n", { status: 405 });
        }
        // OpenMetrics when the scraper names it in Accept (Prometheus does), else text 0.0.4.
        const format = negotiate(request.headers.get("accept"));
        return new Response(registry.render(format), {
          headers: { "content-type": contentType(format) },
        });
      });
    } catch (err) {
      const why = err instanceof Error ? err.message.split(" (os error")[0] : String(err);
      throw new NetflowError(
        `Cannot serve metrics on "${address.hostname}:${address.port}": ${why}`,
        { cause: err },
      );
    }
    const { hostname, port } = this.#server.addr;
    this.url = `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}/metrics`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    // Scrapers keep connections alive: do not wait on them for long.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#server.shutdown(),
      new Promise((r) => timer = setTimeout(r, 1000)),
    ]);
    clearTimeout(timer);
  }
}
