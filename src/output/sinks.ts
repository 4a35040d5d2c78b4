/**
 * The CLI's list of sinks: the stdout format (unless `none`), then one IPFIX
 * exporter per `--ipfix`, in the order given.
 *
 * @module
 */
import type { ExporterOptions } from "../export/exporter.ts";
import { TcpExporter } from "../export/tcp.ts";
import { UdpExporter } from "../export/udp.ts";
import type { CollectorUrl } from "../export/url.ts";
import type { Sink } from "./sink.ts";
import { type FormatName, lineFormat, StdoutSink } from "./stdout.ts";
import type { TableOptions } from "./table.ts";

export function buildSinks(
  options: { format: FormatName; ipfix: readonly CollectorUrl[]; table?: TableOptions },
  exporter: ExporterOptions = {},
): Sink[] {
  const sinks: Sink[] = [];
  if (options.format !== "none") {
    sinks.push(new StdoutSink(lineFormat(options.format, options.table)));
  }
  for (const url of options.ipfix) {
    sinks.push(
      url.scheme === "udp" ? new UdpExporter(url, exporter) : new TcpExporter(url, exporter),
    );
  }
  return sinks;
}
