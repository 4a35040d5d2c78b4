/**
 * Flow metrics (`--metrics`): the flows themselves as Prometheus counters and
 * histograms, a sink fed by begin, update, end and fail events.
 *
 * Updates and ends carry a flow's cumulative counters; the sink keeps each
 * open flow's last-seen values (bounded like the flow table) and adds the
 * difference, so a flow's update deltas add up exactly to its end, and a flow
 * that ends unseen adds its final counters once. A flow's labels are taken
 * from the first event of it seen (its begin), so all its counts land in
 * one label set. Every metric's series are kept under a budget by
 * src/metrics/fold.ts.
 *
 * @module
 */
import { formatIPv4, formatIPv6, parseIP } from "../bpf/addr.ts";
import { UsageError } from "../errors.ts";
import {
  EVENT_BEGIN,
  EVENT_END,
  EVENT_FAIL,
  EVENT_UPDATE,
  type FlowCounters,
  type FlowEvent,
  type NetflowEvent,
  type Sink,
} from "../events.ts";
import { shown, wholeNumber } from "../options.ts";
import { FoldingFamily, type FoldOptions, labelKey } from "./fold.ts";
import type { MetricsRegistry } from "./prometheus.ts";

/** The labels `--metrics-labels` may choose (direction is always there). */
export const METRIC_LABELS = [
  "comm",
  "container",
  "cgroup",
  "uid",
  "remote_name",
  "remote_port",
  "remote_net",
] as const;
/** One of {@link METRIC_LABELS}. */
export type MetricLabel = typeof METRIC_LABELS[number];

/**
 * The default labels: the local program, its container (empty on a plain
 * server, the container id on a Kubernetes node), the remote's DNS name and
 * the service port. Each is bounded by what the host runs and resolves;
 * cgroup, uid and remote_net are opt-in (remote_net grows with every client
 * network an internet-facing server sees).
 */
export const DEFAULT_METRIC_LABELS: readonly MetricLabel[] = [
  "comm",
  "container",
  "remote_name",
  "remote_port",
];

/** The events flow metrics need from the monitor. */
export const FLOW_METRIC_EVENTS = [EVENT_BEGIN, EVENT_UPDATE, EVENT_END, EVENT_FAIL] as const;

/** Flow metrics' settings (the `--metrics-*` options). */
export interface FlowMetricsOptions {
  labels: readonly MetricLabel[];
  /** Series per metric at most, `other` included. */
  budget: number;
  /** A label set with no new counts for this long expires into `other` (ms). */
  expiryMs: number;
  /** remote_net's prefix lengths. */
  prefix4: number;
  prefix6: number;
  /** Open flows whose last counters are kept at most (the flow table's size). */
  maxFlows: number;
}

export const DEFAULT_BUDGET = 2000;
export const MIN_BUDGET = 100;
export const DEFAULT_EXPIRY_MS = 600_000;
/** A label set must be idle this long to be folded to make room for a new one. */
export const FOLD_IDLE_MS = 60_000;

/** Flow durations (s): 1 ms to 1 h. */
export const DURATION_BUCKETS = [0.001, 0.01, 0.1, 1, 10, 60, 600, 3600];
/** Smoothed RTTs (s): 100 us to 500 ms. */
export const RTT_BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5];

/** `--metrics-labels`: a comma-separated list of {@link METRIC_LABELS}, or `none`. */
export function metricLabels(name: string, value: unknown): MetricLabel[] {
  const text = typeof value === "string" ? value.trim() : "";
  if (text === "none") return [];
  const list = text.split(",").map((s) => s.trim());
  for (const l of list) {
    if (!(METRIC_LABELS as readonly string[]).includes(l)) {
      throw new UsageError(
        `${name} takes a comma-separated list of ${METRIC_LABELS.join(", ")} (or none), ` +
          `not ${shown(value)}`,
      );
    }
  }
  return [...new Set(list as MetricLabel[])];
}

/** `--metrics-net-prefix`: `V4` or `V4,V6` prefix lengths (default 24,64). */
export function netPrefixes(name: string, value: unknown): { prefix4: number; prefix6: number } {
  const text = typeof value === "string" ? value.trim() : "";
  const m = /^(\d{1,2})(?:,(\d{1,3}))?$/.exec(text);
  const prefix4 = Number(m?.[1]), prefix6 = m?.[2] === undefined ? 64 : Number(m[2]);
  if (!m || prefix4 > 32 || prefix6 > 128) {
    throw new UsageError(
      `${name} takes an IPv4 prefix length, optionally with an IPv6 one (24 or 24,64), ` +
        `not ${shown(value)}`,
    );
  }
  return { prefix4, prefix6 };
}

/** `--metrics-budget`: a whole number of at least {@link MIN_BUDGET}. */
export function budgetValue(name: string, value: unknown): number {
  return wholeNumber(name, value, MIN_BUDGET);
}

interface FlowState {
  labels: readonly string[];
  /** labelKey(labels), made once per flow. */
  key: string;
  /** bytes sent, received, packets sent, received, retransmits: last seen. */
  last: number[];
}

const COUNTER_FIELDS = [
  "bytes_sent",
  "bytes_received",
  "packets_sent",
  "packets_received",
  "retransmits",
] as const satisfies readonly (keyof FlowCounters)[];

const COUNTER_HELP: Record<typeof COUNTER_FIELDS[number], string> = {
  bytes_sent: "TCP payload bytes sent by local endpoints (acknowledged; at a FIN end, plus queued)",
  bytes_received: "TCP payload bytes received in order by local endpoints",
  packets_sent: "TCP segments sent by local endpoints (retransmissions and pure ACKs included)",
  packets_received: "TCP segments received by local endpoints",
  retransmits: "TCP segments retransmitted by local endpoints",
};

/** The flow metrics sink; registers its metrics on construction. */
export class FlowMetrics implements Sink {
  readonly #labels: readonly MetricLabel[];
  readonly #o: FlowMetricsOptions;
  readonly #flows = new Map<string, FlowState>();
  readonly #begun: FoldingFamily;
  readonly #ended: FoldingFamily;
  readonly #failed: FoldingFamily;
  readonly #counters: FoldingFamily[];
  readonly #duration: FoldingFamily;
  readonly #rtt: FoldingFamily;
  readonly families: readonly FoldingFamily[];

  constructor(
    registry: MetricsRegistry,
    options: FlowMetricsOptions,
    now: () => number = () => performance.now(),
  ) {
    this.#o = options;
    this.#labels = options.labels;
    const names = ["direction", ...options.labels];
    const fold: FoldOptions = {
      budget: options.budget,
      foldIdleMs: FOLD_IDLE_MS,
      expiryMs: options.expiryMs,
    };
    const family = (name: string, sub: string[], buckets?: number[]) =>
      new FoldingFamily(name, names, 1, sub, buckets, fold, now);
    this.#begun = family("netflow_tcp_flows_begun_total", []);
    this.#ended = family("netflow_tcp_flows_ended_total", ["reason", "closed_by"]);
    this.#failed = family("netflow_tcp_flows_failed_total", ["reason"]);
    this.#counters = COUNTER_FIELDS.map((f) => family(`netflow_tcp_${f}_total`, []));
    this.#duration = family("netflow_tcp_flow_duration_seconds", [], DURATION_BUCKETS);
    this.#rtt = family("netflow_tcp_rtt_seconds", [], RTT_BUCKETS);
    this.families = [
      this.#begun,
      this.#ended,
      this.#failed,
      ...this.#counters,
      this.#duration,
      this.#rtt,
    ];
    registry.beforeCollect(() => {
      for (const f of this.families) f.expire();
    });
    const help: Record<string, string> = {
      netflow_tcp_flows_begun_total:
        "TCP flows that began (reached ESTABLISHED, or were open at start)",
      netflow_tcp_flows_ended_total: "TCP flows that ended, by reason and by who closed",
      netflow_tcp_flows_failed_total: "TCP connection attempts that never established, by reason",
      netflow_tcp_flow_duration_seconds: "Durations of ended TCP flows whose begin was seen",
      netflow_tcp_rtt_seconds: "Smoothed round-trip times of TCP flows at their end",
    };
    COUNTER_FIELDS.forEach((f) => help[`netflow_tcp_${f}_total`] = COUNTER_HELP[f]);
    for (const f of this.families) {
      registry.register({
        name: f.name,
        help: help[f.name]!,
        type: f.name.endsWith("_total") ? "counter" : "histogram",
        collect: () => f.samples(),
      });
    }
    const per = (read: (f: FoldingFamily) => number) => () =>
      this.families.map((f) => ({ labels: { metric: f.name }, value: read(f) }));
    registry.register({
      name: "netflow_metrics_series",
      help: "Series a flow metric exports now, its other series included",
      type: "gauge",
      collect: per((f) => f.series),
    });
    registry.register({
      name: "netflow_metrics_series_budget",
      help: "Series each flow metric exports at most (--metrics-budget)",
      type: "gauge",
      collect: () => options.budget,
    });
    registry.register({
      name: "netflow_metrics_series_folded_total",
      help: "Label sets of a flow metric folded into its other series to stay within the budget",
      type: "counter",
      collect: per((f) => f.folded),
    });
    registry.register({
      name: "netflow_metrics_series_expired_total",
      help: "Label sets of a flow metric idle for the expiry time, moved into its other series",
      type: "counter",
      collect: per((f) => f.expired),
    });
  }

  /** Open flows whose last counters are held now. */
  get openFlows(): number {
    return this.#flows.size;
  }

  write(batch: readonly NetflowEvent[]): boolean {
    for (const e of batch) {
      switch (e.event) {
        case EVENT_BEGIN: {
          const labels = this.labelsOf(e);
          const state = { labels, key: labelKey(labels), last: [0, 0, 0, 0, 0] };
          this.#track(e.flow_id, state);
          this.#begun.add(labels, [], 1, state.key);
          // Its counters' series start at 0, so rate() and increase() count the first bytes too.
          for (const c of this.#counters) c.add(labels, [], 0, state.key);
          break;
        }
        case EVENT_UPDATE:
          this.#count(this.#state(e), e);
          break;
        case EVENT_END: {
          const state = this.#state(e);
          const { labels, key } = state;
          this.#flows.delete(e.flow_id);
          this.#count(state, e);
          this.#ended.add(labels, [e.reason, e.closed_by], 1, key);
          if (e.duration_ms !== null) this.#duration.observe(labels, [], e.duration_ms / 1e3, key);
          if (e.rtt_us !== null) this.#rtt.observe(labels, [], e.rtt_us / 1e6, key);
          break;
        }
        case EVENT_FAIL:
          this.#failed.add(this.labelsOf(e), [e.reason], 1);
          break;
      }
    }
    return true;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  summary(): string | undefined {
    return undefined;
  }

  #state(e: FlowEvent): FlowState {
    const state = this.#flows.get(e.flow_id);
    if (state !== undefined) return state;
    // Not seen before (its begin went before a filter, or was evicted): counts from 0.
    const labels = this.labelsOf(e);
    const fresh = { labels, key: labelKey(labels), last: [0, 0, 0, 0, 0] };
    this.#track(e.flow_id, fresh);
    for (const c of this.#counters) c.add(labels, [], 0, fresh.key);
    return fresh;
  }

  #track(id: string, state: FlowState): void {
    this.#flows.set(id, state);
    // Bounded like the flow table: the oldest flow's last counters go first.
    if (this.#flows.size > this.#o.maxFlows) this.#flows.delete(this.#flows.keys().next().value!);
  }

  /** Adds what a flow's counters grew by since they were last seen. */
  #count(state: FlowState, e: FlowCounters): void {
    for (let i = 0; i < COUNTER_FIELDS.length; i++) {
      const now = e[COUNTER_FIELDS[i]!];
      const last = state.last[i]!;
      if (now === null || now <= last) continue;
      this.#counters[i]!.add(state.labels, [], now - last, state.key);
      state.last[i] = now;
    }
  }

  /** The label values of a flow event: direction, then the configured labels in order. */
  labelsOf(e: FlowEvent): string[] {
    // Which side is remote: begins, updates and fails are oriented initiator
    // first; an end puts the side that closed first.
    const srcIsLocal = e.event === EVENT_END
      ? e.closed_by === "local"
      : e.conn_direction === "outgoing";
    const out = [e.conn_direction as string];
    for (const l of this.#labels) {
      switch (l) {
        case "comm":
          out.push(e.comm ?? "");
          break;
        case "container":
          out.push(e.container_id ?? "");
          break;
        case "cgroup":
          out.push(e.cgroup);
          break;
        case "uid":
          out.push(e.uid === null ? "" : String(e.uid));
          break;
        case "remote_name":
          out.push((srcIsLocal ? e.dst_dns[0] : e.src_dns[0]) ?? "");
          break;
        case "remote_port": {
          // The service's port: the remote's for outgoing flows, the local one for incoming.
          const serviceIsDst = (e.conn_direction === "outgoing") === srcIsLocal;
          out.push(String(serviceIsDst ? e.dst_port : e.src_port));
          break;
        }
        case "remote_net":
          out.push(remoteNet(srcIsLocal ? e.dst : e.src, this.#o.prefix4, this.#o.prefix6));
          break;
      }
    }
    return out;
  }
}

/** The CIDR block of `prefix` bits holding `address` (`198.18.5.0/24`, `fd00:1::/64`). */
export function remoteNet(address: string, prefix4: number, prefix6: number): string {
  const bytes = parseIP(address);
  if (bytes === undefined) return "";
  const prefix = bytes.length === 4 ? prefix4 : prefix6;
  for (let bit = prefix; bit < bytes.length * 8; bit++) {
    bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  }
  return `${bytes.length === 4 ? formatIPv4(bytes) : formatIPv6(bytes)}/${prefix}`;
}
