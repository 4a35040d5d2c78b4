/**
 * A small metrics registry rendered in the Prometheus text exposition format
 * (version 0.0.4): each metric is a name, a HELP line, a TYPE and a function
 * that reads its current samples, so values come from the counters netflow
 * keeps anyway, read at scrape time.
 *
 * @module
 */

/** The metric types netflow exposes. */
export type MetricType = "counter" | "gauge";

/** One sample: label values (may be empty) and the value. */
export interface Sample {
  labels?: Readonly<Record<string, string>>;
  value: number;
}

/** A metric: `collect` is called at each scrape. */
export interface Metric {
  /** `[a-zA-Z_:][a-zA-Z0-9_:]*`; counters end in `_total`. */
  name: string;
  help: string;
  type: MetricType;
  collect: () => readonly Sample[] | number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Metrics by name, rendered in the order they were registered. */
export class MetricsRegistry {
  readonly #metrics = new Map<string, Metric>();
  readonly #before: (() => void)[] = [];

  /** Runs `fn` at the start of each render (to read a snapshot the metrics then share). */
  beforeCollect(fn: () => void): void {
    this.#before.push(fn);
  }

  /**
   * Adds a metric (other parts of netflow, such as exporters, register their
   * own counters here). Throws on a malformed or duplicate name.
   */
  register(metric: Metric): void {
    if (!NAME.test(metric.name)) throw new Error(`Invalid metric name "${metric.name}"`);
    if (metric.type === "counter" && !metric.name.endsWith("_total")) {
      throw new Error(`Counter "${metric.name}" must end in _total`);
    }
    if (this.#metrics.has(metric.name)) throw new Error(`Metric "${metric.name}" exists`);
    this.#metrics.set(metric.name, metric);
  }

  /** The exposition text of every metric, each with its HELP and TYPE lines. */
  render(): string {
    for (const fn of this.#before) fn();
    let out = "";
    for (const m of this.#metrics.values()) {
      out += `# HELP ${m.name} ${escapeHelp(m.help)}\n# TYPE ${m.name} ${m.type}\n`;
      const collected = m.collect();
      const samples = typeof collected === "number" ? [{ value: collected }] : collected;
      for (const s of samples) out += `${m.name}${labels(s.labels)} ${value(s.value)}\n`;
    }
    return out;
  }
}

function labels(set: Readonly<Record<string, string>> | undefined): string {
  const entries = Object.entries(set ?? {});
  if (entries.length === 0) return "";
  return `{${
    entries.map(([k, v]) => {
      if (!LABEL.test(k)) throw new Error(`Invalid label name "${k}"`);
      return `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
    }).join(",")
  }}`;
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function value(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

/** The Content-Type of the text format. */
export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
