/**
 * IPFIX over TCP (RFC 7011 section 10.4): one connection, a new transport
 * session at each connect (sequence numbers from 0, all templates first).
 * Records wait in a bounded queue while the collector is away or slow (the
 * socket's own buffer above a high-water mark counts as slow); when the
 * queue is full the oldest records are dropped and counted. A lost
 * connection is retried with exponential backoff; netflow never waits for it.
 *
 * A record counts as sent once it is written to the socket: if the collector
 * dies, what the kernel still held for it (at most the socket buffers) is
 * lost without netflow knowing.
 *
 * @module
 */
import net from "node:net";
import { IpfixEncoder } from "./ipfix.ts";
import type { FlowRecord } from "./ipfix.ts";
import { errorText, type ExporterOptions, type ExporterStats, IpfixExporter } from "./exporter.ts";
import type { CollectorUrl } from "./url.ts";

/** Bytes the socket may buffer before records wait in the queue instead. */
const HIGH_WATER = 1 << 20;
const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 4000;
/** Records per write when the queue drains. */
const CHUNK = 512;

export class TcpExporter extends IpfixExporter {
  readonly #encoder: IpfixEncoder;
  readonly #maxQueued: number;
  #queue: FlowRecord[] = [];
  #socket: net.Socket | undefined;
  #connected = false;
  #everConnected = false;
  #down = false;
  #lastError = "";
  #retryMs = FIRST_RETRY_MS;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closing = false;

  constructor(url: CollectorUrl, options: ExporterOptions = {}) {
    super(url, options);
    this.#encoder = new IpfixEncoder({
      ...(options.domain === undefined ? {} : { domain: options.domain }),
      maxMessageBytes: 16384,
    });
    this.#maxQueued = options.maxQueuedRecords ?? 10_000;
    this.#connect();
  }

  /** True while a connection to the collector is up. */
  get connected(): boolean {
    return this.#connected;
  }

  get stats(): ExporterStats {
    return { sent: this.sent, dropped: this.dropped, queued: this.#queue.length };
  }

  protected enqueue(records: FlowRecord[]): void {
    if (this.#closing) {
      this.dropped += records.length;
      return;
    }
    for (const r of records) this.#queue.push(r);
    const excess = this.#queue.length - this.#maxQueued;
    if (excess > 0) {
      this.#queue.splice(0, excess);
      this.dropped += excess;
    }
    this.#flush(false);
  }

  #connect(): void {
    this.#timer = undefined;
    const socket = net.connect({ host: this.url.host, port: this.url.port });
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on("connect", () => {
      this.#connected = true;
      this.#retryMs = FIRST_RETRY_MS;
      if (this.#down) {
        this.#down = false;
        this.warn(`netflow: IPFIX collector ${this.url.text}: connected again`);
      }
      this.#everConnected = true;
      // A new transport session: sequence numbers restart, templates come first.
      this.#encoder.reset();
      socket.write(this.#encoder.templateMessage(this.exportSec()));
      this.#flush(false);
    });
    socket.on("drain", () => this.#flush(false));
    socket.on("data", () => {}); // a collector has nothing to say; read and forget
    socket.on("error", (err) => this.#lastError = errorText(err));
    socket.on("close", () => this.#closed(socket));
  }

  #closed(socket: net.Socket): void {
    if (this.#socket !== socket) return;
    const was = this.#connected;
    this.#connected = false;
    this.#socket = undefined;
    if (this.#closing) return;
    if (!this.#down) {
      this.#down = true;
      const what = was || this.#everConnected ? "connection lost" : "unreachable";
      this.warn(
        `netflow: warning: IPFIX collector ${this.url.text}: ${what}${
          this.#lastError ? ` (${this.#lastError})` : ""
        }; retrying, up to ${this.#maxQueued} records wait`,
      );
    }
    this.#lastError = "";
    this.#timer = setTimeout(() => this.#connect(), this.#retryMs);
    this.#retryMs = Math.min(this.#retryMs * 2, MAX_RETRY_MS);
  }

  /** Writes queued records while the socket takes them (all of them when `all`). */
  #flush(all: boolean): void {
    const socket = this.#socket;
    while (
      this.#connected && socket && this.#queue.length > 0 &&
      (all || socket.writableLength < HIGH_WATER)
    ) {
      const chunk = this.#queue.splice(0, CHUNK);
      for (const m of this.#encoder.dataMessages(chunk, this.exportSec())) socket.write(m.bytes);
      this.sent += chunk.length;
    }
  }

  /**
   * Writes what is queued if connected, then closes, waiting at most two
   * seconds for the collector to take it; what never left counts as dropped.
   */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearTimeout(this.#timer);
    const socket = this.#socket;
    if (socket && this.#connected) {
      this.#flush(true);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        socket.once("close", () => resolve());
        socket.end();
        timer = setTimeout(resolve, 2000);
      });
      clearTimeout(timer);
      socket.destroy();
    } else {
      socket?.destroy();
    }
    this.dropped += this.#queue.length;
    this.#queue = [];
  }
}
