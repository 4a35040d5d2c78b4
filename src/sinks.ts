/**
 * The CLI's list of sinks: the stdout format (unless `none`), then one IPFIX
 * exporter per `--ipfix`, in the order given. Stdout shows only the events
 * asked for (`events`); an exporter takes what it exports (ends, updates)
 * from every batch.
 *
 * @module
 */
import type { EventName, Sink } from "./events.ts";
import type { ExporterOptions } from "./export/exporter.ts";
import { TcpExporter } from "./export/tcp.ts";
import { UdpExporter } from "./export/udp.ts";
import type { CollectorUrl } from "./export/url.ts";
import { type FormatName, lineFormat, StdoutSink } from "./output/stdout.ts";
import type { TableOptions } from "./output/table.ts";

export function buildSinks(
  options: {
    format: FormatName;
    ipfix: readonly CollectorUrl[];
    table?: TableOptions;
    /** What stdout shows (default: every event it is given). */
    events?: readonly EventName[];
    /** What the exporters export (default: every end and update they are given). */
    exported?: readonly EventName[];
  },
  exporter: ExporterOptions = {},
): Sink[] {
  const sinks: Sink[] = [];
  if (options.format !== "none") {
    const only = options.events === undefined ? undefined : new Set<string>(options.events);
    sinks.push(new StdoutSink(lineFormat(options.format, options.table), undefined, only));
  }
  if (options.exported !== undefined && exporter.events === undefined) {
    exporter = { ...exporter, events: new Set(options.exported) };
  }
  for (const url of options.ipfix) {
    sinks.push(
      url.scheme === "udp" ? new UdpExporter(url, exporter) : new TcpExporter(url, exporter),
    );
  }
  return sinks;
}
