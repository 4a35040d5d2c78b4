/**
 * The command line's metrics options (`--metrics` and the flow metrics'
 * settings), and what they ask for.
 *
 * @module
 */
import { type Parsed, single } from "../argv.ts";
import { UsageError } from "../errors.ts";
import type { EventName } from "../events.ts";
import { positiveSeconds } from "../options.ts";
import {
  budgetValue,
  DEFAULT_BUDGET,
  DEFAULT_EXPIRY_MS,
  DEFAULT_METRIC_LABELS,
  FLOW_METRIC_EVENTS,
  type FlowMetricsOptions,
  metricLabels,
  netPrefixes,
} from "./flows.ts";
import { type ListenAddress, listenAddress } from "./netflow.ts";

export const METRICS_OPTIONS = {
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
};

/**
 * Where to serve /metrics and the flow metrics' settings (`maxFlows`: the
 * monitor's bound); a flow metrics option without --metrics is refused.
 */
export function metricsOf(
  o: Parsed<typeof METRICS_OPTIONS>,
  maxFlows: number,
): {
  metrics: ListenAddress | undefined;
  flowMetrics: FlowMetricsOptions | undefined;
  /** The events flow metrics count (begin, update, end, fail), which the monitor must make. */
  needs: readonly EventName[];
} {
  const given = (
    ["metrics-labels", "metrics-budget", "metrics-expiry", "metrics-net-prefix"] as const
  ).filter((k) => o[k] !== undefined);
  if (o.metrics === undefined) {
    if (given.length > 0) throw new UsageError(`--${given[0]} needs --metrics`);
    return { metrics: undefined, flowMetrics: undefined, needs: [] };
  }
  return {
    metrics: o.metrics,
    flowMetrics: {
      labels: o["metrics-labels"] ?? DEFAULT_METRIC_LABELS,
      budget: o["metrics-budget"] ?? DEFAULT_BUDGET,
      expiryMs: o["metrics-expiry"] ?? DEFAULT_EXPIRY_MS,
      ...(o["metrics-net-prefix"] ?? { prefix4: 24, prefix6: 64 }),
      maxFlows,
    },
    needs: FLOW_METRIC_EVENTS,
  };
}
