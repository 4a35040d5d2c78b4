/**
 * The netflow command: parse arguments, watch, write events, report on exit.
 *
 *   sudo netflow --format json --cgroup /system.slice
 *
 * It stops, detaches, flushes and prints the summary on SIGINT, SIGTERM or
 * SIGHUP, after `--count` events or `--duration` seconds, when the reader of
 * stdout goes away (a pipe's POLLERR, seen within half a second even when no
 * event comes), and when the watched cgroup is removed (checked twice a
 * second; a removed cgroup has no process left, so nothing more can come).
 *
 * `--help` and `--version` load nothing else: they work for any user.
 *
 * @module
 */
import { parseCli, SHORT_USAGE, USAGE } from "./args.ts";
import { NetflowError, UsageError } from "./errors.ts";
import { writeAll } from "./events.ts";
import type { MonitorStats } from "./stats.ts";
import denoJson from "../deno.json" with { type: "json" };

/** The exit line: the process contract's first words, then what the sinks counted (IPFIX). */
export function summary(events: number, stats: MonitorStats, sinks: string[] = []): string {
  return `netflow: ${events} events, ${stats.lost} lost records, ` +
    `${stats.evicted} evicted flows, ${stats.malformed} malformed records, ` +
    `${stats.dnsResponses} DNS responses (${stats.dnsMalformed} malformed, ${stats.dnsCut} cut, ` +
    `${stats.dnsEvicted} evicted from the cache), ${stats.dnsLost} lost DNS records, ` +
    `${stats.dnsUnmatched} unmatched DNS answers, ${stats.dnsRepeated} repeated DNS answers, ` +
    `${stats.dnsQueriesEvicted} evicted DNS queries, ` +
    `${stats.halfOpenEvicted} evicted half-open attempts, ${stats.unknownEnds} unknown ends, ` +
    `${stats.duplicates} duplicate records, ${stats.dnsStreamsDropped} dropped DNS TCP streams, ` +
    `${stats.ownerTimeouts} owner waits timed out, ` +
    `${stats.flowsRecovered} flows recovered from the kernel's store, ` +
    `${stats.flowsLost} flows lost, ${stats.dnsUnordered} flow records ahead of a DNS answer, ` +
    `${stats.dnsCgroupOnly} DNS answers for their cgroup only, ` +
    `${stats.packetsLost} lost handshake records, ` +
    `${stats.openFlows} flows still open` +
    sinks.map((s) => `, ${s}`).join("");
}

/** How often the stdout and cgroup watchers look. */
const WATCH_MS = 500;
const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

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
  // Loaded only to watch, so --help needs neither libbpf nor any package.
  const [
    { libbpf, setVerboseLog },
    { EventCounts, MetricsServer, registerExportMetrics, registerNetflowMetrics },
    { FlowMetrics },
    { MetricsRegistry },
    { FlowMonitor },
    { buildSinks },
    { registerProcessMetrics },
  ] = await Promise.all([
    import("./ffi/libbpf.ts"),
    import("./metrics/netflow.ts"),
    import("./metrics/flows.ts"),
    import("./metrics/prometheus.ts"),
    import("./monitor.ts"),
    import("./sinks.ts"),
    import("./metrics/process.ts"),
  ]);
  setVerboseLog(options.verbose);
  // Metrics: the same counters as the exit summary, read at each scrape.
  const registry = new MetricsRegistry();
  const events = new EventCounts();
  await using metrics = options.metrics && new MetricsServer(options.metrics, registry);
  // Flow metrics ask for updates; on a kernel that cannot list open flows, they
  // count each flow at its end instead (unless --events asked for updates).
  const notes: string[] = [];
  const openMonitor = () => {
    try {
      return new FlowMonitor(options.monitor);
    } catch (err) {
      const update = "net_flow_tcp_update";
      if (
        !options.flowMetrics || options.events.includes(update) ||
        // Updates asked for the exporters (--update-interval with --ipfix) are not given up.
        options.monitor.updateIntervalMs !== undefined ||
        !(err instanceof NetflowError) || !err.message.startsWith(`Cannot report ${update}`)
      ) throw err;
      notes.push(`netflow: flow metrics count each flow at its end only: ${err.message}`);
      return new FlowMonitor({
        ...options.monitor,
        events: options.monitor.events?.filter((e) => e !== update) ?? [],
      });
    }
  };
  using monitor = openMonitor();
  registerNetflowMetrics(registry, denoJson.version, events, () => monitor.stats);
  registerProcessMetrics(registry);
  // Flow metrics take begin, update, end and fail events; the outputs only those of --events.
  const flowMetrics = options.flowMetrics && new FlowMetrics(registry, options.flowMetrics);
  let stopped = false;
  const stop = () => {
    stopped = true;
    monitor.close();
  };
  for (const signal of SIGNALS) Deno.addSignalListener(signal, stop);
  const timer = options.durationMs === undefined ? undefined : setTimeout(stop, options.durationMs);

  // A closed pipe on stdout: poll(2) reports POLLERR (or POLLHUP) with no event asked for.
  const POLLERR = 0x8, POLLHUP = 0x10;
  const pollfd = new Int32Array(2); // struct pollfd { int fd; short events; short revents; }
  const watchStdout = async () => {
    while (!stopped && options.format !== "none") {
      pollfd[0] = 1;
      pollfd[1] = 0;
      const ready = await libbpf().poll(pollfd, 1n, WATCH_MS);
      if (ready > 0 && ((pollfd[1]! >>> 16) & (POLLERR | POLLHUP)) !== 0) stop();
    }
  };
  const root = monitor.cgroup === "/";
  const watchCgroup = async () => {
    while (!stopped && !root) {
      await new Promise((r) => setTimeout(r, WATCH_MS));
      try {
        await Deno.stat(monitor.cgroupDir);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound) || stopped) continue;
        console.error(`netflow: cgroup ${monitor.cgroupDir} was removed`);
        stop();
      }
    }
  };

  let left = options.count ?? Infinity;
  // Exporters connect after the ready line, so their warnings come after it.
  for (const line of [...monitor.notes, ...monitor.featuresOff, ...notes]) console.error(line);
  console.error(`netflow: watching cgroup ${monitor.cgroupDir}`);
  if (metrics) console.error(`netflow: metrics at ${metrics.url}`);
  const sinks = buildSinks(options);
  // What --events asked for: shown, counted, and what --count counts; the
  // monitor may make more for the exporters (every end, and updates).
  const asked = new Set<string>(options.events);
  registerExportMetrics(registry, sinks);
  try {
    void watchStdout();
    void watchCgroup();
    if (!writeAll(sinks, [])) stop();
    for await (const all of monitor.batches()) {
      flowMetrics?.write(all);
      // Stdout shows (and --count counts) only what --events asked for; the
      // exporters take their own (ends, asked-for updates) from the whole batch.
      let batch = all;
      let shown = 0;
      for (let i = 0; i < batch.length; i++) {
        if (!asked.has(batch[i]!.event)) continue;
        if (shown === left) {
          batch = batch.slice(0, i);
          break;
        }
        shown++;
      }
      left -= shown;
      if (!writeAll(sinks, batch)) stop();
      else events.add(batch.filter((e) => asked.has(e.event)));
      if (left === 0) break; // --count reached: ends the loop, which detaches
    }
  } finally {
    stopped = true;
    clearTimeout(timer);
    for (const signal of SIGNALS) Deno.removeSignalListener(signal, stop);
    await Promise.all(sinks.map((s) => s.close()));
  }
  const counted = sinks.map((s) => s.summary()).filter((s) => s !== undefined);
  console.error(summary(events.total, monitor.stats, counted));
  return 0;
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (err) {
    const verbose = Deno.args.includes("--verbose") || Deno.args.includes("-v");
    if (err instanceof UsageError) {
      console.error(`netflow: ${err.message}\n${SHORT_USAGE}`);
      code = 2;
    } else if (err instanceof NetflowError) {
      // With --verbose, libbpf's log (the error's detail) went to stderr as it came.
      console.error(`netflow: ${err.message}`);
      code = 1;
    } else {
      console.error(`netflow: unexpected error: ${err instanceof Error ? err.message : err}`);
      if (verbose && err instanceof Error && err.stack) console.error(err.stack);
      code = 1;
    }
  }
  Deno.exit(code);
}
