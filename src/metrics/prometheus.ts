/**
 * A small metrics registry rendered in the Prometheus text exposition format
 * (version 0.0.4), or in OpenMetrics 1.0 when the scraper asks for it: each
 * metric is a name, a HELP line, a TYPE and a function that reads its current
 * samples, so values come from the counters netflow keeps anyway, read at
 * scrape time.
 *
 * @module
 */

/** The metric types netflow exposes. */
export type MetricType = "counter" | "gauge" | "histogram";

/** One sample: label values (may be empty) and the value. */
export interface Sample {
  labels?: Readonly<Record<string, string>>;
  value: number;
  /** A histogram's `_bucket`, `_sum` or `_count` (a bucket's labels end with `le`). */
  suffix?: "_bucket" | "_sum" | "_count";
}

/** The two exposition formats: Prometheus text 0.0.4, and OpenMetrics 1.0. */
export type ExpositionFormat = "text" | "openmetrics";

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

  /**
   * The exposition of every metric, each with its HELP and TYPE lines. In
   * OpenMetrics a counter's family is named without `_total` (its samples
   * keep it), HELP escapes quotes too, and the text ends with `# EOF`.
   */
  render(format: ExpositionFormat = "text"): string {
    for (const fn of this.#before) fn();
    const om = format === "openmetrics";
    let out = "";
    for (const m of this.#metrics.values()) {
      const family = om && m.type === "counter" ? m.name.slice(0, -"_total".length) : m.name;
      out += `# HELP ${family} ${escapeHelp(m.help, om)}\n# TYPE ${family} ${m.type}\n`;
      const collected = m.collect();
      const samples = typeof collected === "number" ? [{ value: collected }] : collected;
      for (const s of samples) {
        out += `${m.name}${s.suffix ?? ""}${labels(s.labels)} ${value(s.value)}\n`;
      }
    }
    return om ? `${out}# EOF\n` : out;
  }
}

/** The format a scraper asked for in its Accept header (OpenMetrics when it names it). */
export function negotiate(accept: string | null): ExpositionFormat {
  return accept !== null && /application\/openmetrics-text/i.test(accept) ? "openmetrics" : "text";
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

function escapeHelp(text: string, om: boolean): string {
  const escaped = text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
  return om ? escaped.replace(/"/g, '\\"') : escaped;
}

function value(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

/** The Content-Type of the text format. */
export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
/** The Content-Type of OpenMetrics 1.0. */
export const OPENMETRICS_CONTENT_TYPE =
  "application/openmetrics-text; version=1.0.0; charset=utf-8";

/** The Content-Type of a format. */
export function contentType(format: ExpositionFormat): string {
  return format === "openmetrics" ? OPENMETRICS_CONTENT_TYPE : CONTENT_TYPE;
}
