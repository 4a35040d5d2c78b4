/**
 * What the IPFIX sinks share: events in, records built, counts kept. Each
 * transport (udp.ts, tcp.ts) decides how records leave.
 *
 * @module
 */
import type { NetflowEvent, Sink } from "../events.ts";
import type { FlowRecord } from "./ipfix.ts";
import { RecordBuilder } from "./record.ts";
import type { CollectorUrl } from "./url.ts";

export interface ExporterOptions {
  /** Observation Domain ID (default 1). */
  domain?: number;
  /** Records waiting for a collector at most (default 10,000); beyond, the oldest are dropped. */
  maxQueuedRecords?: number;
  /** UDP: resend templates after this long (default 10 s)... */
  templateIntervalMs?: number;
  /** ...or after this many messages (default 100), whichever comes first. */
  templateEveryMessages?: number;
  /** Where warnings go (one line each); default stderr. */
  warn?: (line: string) => void;
  /** Milliseconds since the epoch (tests pass their own). */
  now?: () => number;
  /**
   * The event kinds exported (default: every end and update it is given);
   * the CLI leaves out updates made only for flow metrics.
   */
  events?: ReadonlySet<string>;
}

export interface ExporterStats {
  /** Records handed to the socket. */
  sent: number;
  /** Records given up on: queue full, send failed, or no collector at exit. */
  dropped: number;
  /** Records waiting now. */
  queued: number;
}

export abstract class IpfixExporter implements Sink {
  readonly url: CollectorUrl;
  protected readonly now: () => number;
  protected readonly warn: (line: string) => void;
  protected sent = 0;
  protected dropped = 0;
  readonly #builder = new RecordBuilder();
  readonly #events: ReadonlySet<string> | undefined;

  constructor(url: CollectorUrl, options: ExporterOptions) {
    this.url = url;
    this.#events = options.events;
    this.now = options.now ?? Date.now;
    this.warn = options.warn ?? ((line) => console.error(line));
  }

  write(batch: readonly NetflowEvent[]): boolean {
    const records: FlowRecord[] = [];
    for (const e of batch) {
      if (this.#events !== undefined && !this.#events.has(e.event)) continue;
      const r = this.#builder.build(e);
      if (r) records.push(r);
    }
    if (records.length > 0) this.enqueue(records);
    return true;
  }

  /** Takes records; never waits. */
  protected abstract enqueue(records: FlowRecord[]): void;

  abstract close(): Promise<void>;

  abstract get stats(): ExporterStats;

  summary(): string {
    const s = this.stats;
    return `${this.url.text}: ${s.sent} IPFIX records sent, ${s.dropped} dropped`;
  }

  protected exportSec(): number {
    return Math.floor(this.now() / 1000);
  }
}

/** The one-line description of a socket error: its code, else its message. */
export function errorText(err: unknown): string {
  if (err && typeof err === "object" && "code" in err && typeof err.code === "string") {
    return err.code;
  }
  return err instanceof Error ? err.message : String(err);
}
