/**
 * The netflow command: parse arguments, watch, write events, report on exit.
 *
 *   sudo netflow --format json --cgroup /system.slice
 *
 * @module
 */
import { parseCli, SHORT_USAGE, USAGE } from "./args.ts";
import { NetflowError, UsageError } from "./errors.ts";
import { setVerboseLog } from "./ffi/libbpf.ts";
import {
  EventCounts,
  MetricsServer,
  registerExportMetrics,
  registerNetflowMetrics,
} from "./metrics/netflow.ts";
import { MetricsRegistry } from "./metrics/prometheus.ts";
import { FlowMonitor, type MonitorStats } from "./monitor.ts";
import { buildSinks } from "./output/sinks.ts";
import { writeAll } from "./output/sink.ts";
import denoJson from "../deno.json" with { type: "json" };

/** The exit summary; what the sinks counted (IPFIX exports) comes after the monitor's counts. */
function summary(events: number, stats: MonitorStats, sinks: string[]): string {
  return `netflow: ${events} events, ${stats.lost} lost records, ` +
    `${stats.evicted} evicted flows, ${stats.malformed} malformed records, ` +
    `${stats.dnsResponses} DNS responses (${stats.dnsMalformed} malformed, ${stats.dnsCut} cut, ` +
    `${stats.dnsEvicted} evicted from the cache), ${stats.dnsLost} lost DNS records, ` +
    `${stats.dnsUnmatched} unmatched DNS answers, ${stats.dnsRepeated} repeated DNS answers, ` +
    `${stats.dnsQueriesEvicted} evicted DNS queries` +
    sinks.map((s) => `, ${s}`).join("");
}

async function main(argv: string[]): Promise<number> {
  const options = parseCli(argv);
  if (options.help) {
    console.log(USAGE);
    return 0;
  }
  if (options.version) {
    console.log(`netflow ${denoJson.version}`);
    return 0;
  }
  setVerboseLog(options.verbose);
  // Metrics: the same counters as the exit summary, read at each scrape.
  const registry = new MetricsRegistry();
  const events = new EventCounts();
  await using metrics = options.metrics && new MetricsServer(options.metrics, registry);
  using monitor = new FlowMonitor(options.monitor);
  registerNetflowMetrics(registry, denoJson.version, events, () => monitor.stats);
  const stop = () => monitor.close();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  // --duration: stop by itself; --count: after that many events written.
  const timer = options.durationMs === undefined ? undefined : setTimeout(stop, options.durationMs);
  let left = options.count ?? Infinity;
  // Exporters connect after the ready line, so their warnings come after it.
  console.error(`netflow: watching cgroup ${monitor.cgroupDir}`);
  if (metrics) console.error(`netflow: metrics at ${metrics.url}`);
  const sinks = buildSinks(options);
  registerExportMetrics(registry, sinks);
  try {
    if (!writeAll(sinks, [])) return 0;
    for await (let batch of monitor.batches()) {
      if (batch.length > left) batch = batch.slice(0, left);
      left -= batch.length;
      if (!writeAll(sinks, batch)) monitor.close();
      else events.add(batch);
      if (left === 0) break; // --count reached: ends the loop, which detaches
    }
  } finally {
    clearTimeout(timer);
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
    await Promise.all(sinks.map((s) => s.close()));
  }
  const counted = sinks.map((s) => s.summary()).filter((s) => s !== undefined);
  console.error(summary(events.total, monitor.stats, counted));
  return 0;
}

if (import.meta.main) {
  let code: number;
  const verbose = Deno.args.includes("--verbose") || Deno.args.includes("-v");
  try {
    code = await main(Deno.args);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`netflow: ${err.message}\n${SHORT_USAGE}`);
      code = 2;
    } else if (err instanceof NetflowError) {
      console.error(`netflow: ${err.message}`);
      if (verbose && err.detail) console.error(err.detail.trimEnd());
      code = 1;
    } else {
      console.error(`netflow: unexpected error: ${err instanceof Error ? err.message : err}`);
      if (verbose && err instanceof Error && err.stack) console.error(err.stack);
      code = 1;
    }
  }
  Deno.exit(code);
}
