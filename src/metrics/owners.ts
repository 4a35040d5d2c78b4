/**
 * The owner lookups' metrics: runs of the holders iterator that could not
 * be as narrow as netflow asked (src/enrich/owners.ts, src/bpf/wanted.ts).
 * Owners stay right either way; such runs cost more on a busy host.
 *
 * @module
 */
import type { MonitorStats } from "../stats.ts";
import type { MetricsRegistry } from "./prometheus.ts";

/** Registers them, read from `stats()` (the snapshot of the scrape). */
export function registerOwnerMetrics(registry: MetricsRegistry, stats: () => MonitorStats): void {
  registry.register({
    name: "netflow_owner_fallback_runs_total",
    help: "Owner iterator runs wider than asked: on every process where this kernel cannot run " +
      "on one (before Linux 6.1), or writing every socket's row where the kernel refused its filter",
    type: "counter",
    collect: () => [
      { labels: { to: "every_process" }, value: stats().ownerRunsEveryProcess },
      { labels: { to: "every_socket" }, value: stats().ownerRunsEverySocket },
    ],
  });
  registry.register({
    name: "netflow_owner_look_closes_total",
    help: "Sockets their holder closed while the owner iterator looked at them (released in " +
      "netflow): the closer is not known, their end keeps the begin's owner",
    type: "counter",
    collect: () => stats().ownerLookCloses,
  });
  registry.register({
    name: "netflow_owner_filter_refused_total",
    help: "Sockets the kernel refused to add to or remove from the owner iterator's filter map",
    type: "counter",
    collect: () => stats().ownerFilterRefused,
  });
}
