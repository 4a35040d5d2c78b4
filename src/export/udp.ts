/**
 * IPFIX over UDP (RFC 7011 section 10.3): one message per datagram, templates
 * sent first and then again on a schedule (a collector that starts late, or
 * restarts, learns them within one interval). UDP says nothing about
 * delivery: a record is counted sent once the kernel has the datagram, and
 * dropped when too many datagrams are still waiting or a send fails.
 * Datagrams go one at a time, in order (templates before the data they
 * describe): Deno's node:dgram does not keep the order of concurrent sends.
 *
 * @module
 */
import dgram from "node:dgram";
import { isIPv6 } from "node:net";
import { type DataMessage, IpfixEncoder } from "./ipfix.ts";
import { errorText, type ExporterOptions, type ExporterStats, IpfixExporter } from "./exporter.ts";
import type { FlowRecord } from "./ipfix.ts";
import type { CollectorUrl } from "./url.ts";

/** Datagrams waiting to be sent, at most. */
const MAX_PENDING = 256;

export class UdpExporter extends IpfixExporter {
  readonly #socket: dgram.Socket;
  readonly #encoder: IpfixEncoder;
  readonly #intervalMs: number;
  readonly #everyMessages: number;
  #lastTemplateMs = -Infinity;
  #messagesSinceTemplate = 0;
  /** Datagrams waiting, the first one in the socket. */
  #queue: DataMessage[] = [];
  #failing = false;
  #closed = false;
  #idle: (() => void) | undefined;

  constructor(url: CollectorUrl, options: ExporterOptions = {}) {
    super(url, options);
    this.#encoder = new IpfixEncoder({
      ...(options.domain === undefined ? {} : { domain: options.domain }),
    });
    this.#intervalMs = options.templateIntervalMs ?? 10_000;
    this.#everyMessages = options.templateEveryMessages ?? 100;
    this.#socket = dgram.createSocket(isIPv6(url.host) ? "udp6" : "udp4");
    this.#socket.on("error", (err) => this.#failed(err));
    this.#templatesIfDue(true);
  }

  protected enqueue(records: FlowRecord[]): void {
    if (this.#closed) {
      this.dropped += records.length;
      return;
    }
    this.#templatesIfDue(false);
    for (const m of this.#encoder.dataMessages(records, this.exportSec())) this.#send(m);
  }

  #templatesIfDue(force: boolean): void {
    const now = this.now();
    if (
      force || now - this.#lastTemplateMs >= this.#intervalMs ||
      this.#messagesSinceTemplate >= this.#everyMessages
    ) {
      this.#lastTemplateMs = now;
      this.#messagesSinceTemplate = 0;
      this.#send({ bytes: this.#encoder.templateMessage(this.exportSec()), records: 0 });
    }
  }

  /** Queues a datagram; one is in the socket at a time, so they leave in order. */
  #send(m: DataMessage): void {
    if (this.#queue.length >= MAX_PENDING) {
      this.dropped += m.records;
      return;
    }
    this.#messagesSinceTemplate++;
    this.#queue.push(m);
    if (this.#queue.length === 1) this.#next();
  }

  #next(): void {
    const m = this.#queue[0];
    if (m === undefined) {
      this.#idle?.();
      return;
    }
    this.#socket.send(m.bytes, this.url.port, this.url.host, (err) => {
      this.#queue.shift();
      if (err) {
        this.dropped += m.records;
        this.#failed(err);
      } else {
        this.sent += m.records;
        if (this.#failing) {
          this.#failing = false;
          this.warn(`netflow: IPFIX collector ${this.url.text}: sending again`);
        }
      }
      this.#next();
    });
  }

  #failed(err: unknown): void {
    if (this.#failing) return;
    this.#failing = true;
    this.warn(
      `netflow: warning: IPFIX collector ${this.url.text}: ${
        errorText(err)
      }; records are dropped until it works`,
    );
  }

  get stats(): ExporterStats {
    return {
      sent: this.sent,
      dropped: this.dropped,
      queued: this.#queue.reduce((n, m) => n + m.records, 0),
    };
  }

  /** Waits (at most a second) for datagrams still in flight, then closes the socket. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#queue.length > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#idle = resolve;
        timer = setTimeout(resolve, 1000);
      });
      clearTimeout(timer);
    }
    await new Promise<void>((resolve) => this.#socket.close(() => resolve()));
  }
}
