/**
 * Command-line arguments, parsed with Node's built-in util.parseArgs.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { UsageError } from "./errors.ts";
import { EVENT_BEGIN, EVENT_END, EVENT_NAMES, type EventName } from "./flow/events.ts";
import type { MonitorOptions } from "./monitor.ts";

export const USAGE = `Usage: netflow [options]

Reports net_flow_tcp_begin when a TCP connection is established and
net_flow_tcp_end when it ends, for every socket in a cgroup v2 subtree.

Options:
  -f, --format FORMAT        table (default) or json (JSON Lines)
  -c, --cgroup PATH          cgroup v2 directory to watch, absolute or under the
                             v2 root (default: the root, i.e. the whole host)
  -e, --events LIST          comma-separated: ${EVENT_NAMES.join(", ")}
                             (default: ${EVENT_BEGIN},${EVENT_END})
      --max-flows N          open flows tracked at most (default: 131072)
      --dns-max-entries N    addresses in the DNS cache at most (default: 65536)
      --dns-grace SECONDS    keep DNS answers this long past their TTL (default: 5)
      --ring-size BYTES      ring buffer size, a power of two; K and M suffixes
                             allowed (default: 16M, about 100,000 records)
      --reader KIND          ring buffer reader: mmap (default) or callback
  -v, --verbose              libbpf's log and error details on stderr
  -h, --help                 this help
  -V, --version              the version`;

export interface CliOptions {
  format: "table" | "json";
  verbose: boolean;
  help: boolean;
  version: boolean;
  monitor: MonitorOptions;
}

export function parseCli(argv: string[]): CliOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        format: { type: "string", short: "f", default: "table" },
        cgroup: { type: "string", short: "c" },
        events: { type: "string", short: "e" },
        "max-flows": { type: "string" },
        "dns-max-entries": { type: "string" },
        "dns-grace": { type: "string" },
        "ring-size": { type: "string" },
        reader: { type: "string", default: "mmap" },
        verbose: { type: "boolean", short: "v", default: false },
        help: { type: "boolean", short: "h", default: false },
        version: { type: "boolean", short: "V", default: false },
      },
    }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message.split("\n")[0]! : String(err));
  }
  const format = values.format;
  if (format !== "table" && format !== "json") {
    throw new UsageError(`Unknown format "${format}" (use table or json)`);
  }
  const reader = values.reader;
  if (reader !== "mmap" && reader !== "callback") {
    throw new UsageError(`Unknown reader "${reader}" (use mmap or callback)`);
  }
  const monitor: MonitorOptions = { reader };
  if (values.cgroup !== undefined) monitor.cgroup = values.cgroup;
  if (values.events !== undefined) monitor.events = parseEvents(values.events);
  if (values["max-flows"] !== undefined) {
    monitor.maxFlows = integer("--max-flows", values["max-flows"], 1);
  }
  if (values["ring-size"] !== undefined) monitor.ringBytes = ringSize(values["ring-size"]);
  const dns: NonNullable<MonitorOptions["dns"]> = {};
  if (values["dns-max-entries"] !== undefined) {
    dns.maxEntries = integer("--dns-max-entries", values["dns-max-entries"], 1);
  }
  if (values["dns-grace"] !== undefined) {
    dns.graceMs = integer("--dns-grace", values["dns-grace"], 0) * 1000;
  }
  monitor.dns = dns;
  return {
    format,
    verbose: values.verbose,
    help: values.help,
    version: values.version,
    monitor,
  };
}

function parseEvents(list: string): EventName[] {
  const names = list.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (names.length === 0) throw new UsageError("--events needs at least one event name");
  for (const name of names) {
    if (!(EVENT_NAMES as readonly string[]).includes(name)) {
      throw new UsageError(`Unknown event "${name}" (known: ${EVENT_NAMES.join(", ")})`);
    }
  }
  return names as EventName[];
}

function integer(flag: string, text: string, min: number): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text)) || Number(text) < min) {
    throw new UsageError(`${flag} takes a whole number of at least ${min}, not "${text}"`);
  }
  return Number(text);
}

function ringSize(text: string): number {
  const match = /^(\d+)([KM]?)$/i.exec(text);
  const n = match
    ? Number(match[1]) * ({ "": 1, K: 1024, M: 1 << 20 }[match[2]!.toUpperCase()] ?? 1)
    : NaN;
  const MIN = 4096, MAX = 1 << 30;
  if (!(n >= MIN && n <= MAX && (n & (n - 1)) === 0)) {
    throw new UsageError(`--ring-size takes a power of two from 4K to 1024M, not "${text}"`);
  }
  return n;
}
