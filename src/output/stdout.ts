/**
 * The stdout sink: events as lines in one of the formats, written in one
 * piece per batch. `--format none` has no stdout sink at all. Each line goes
 * into one reused buffer as soon as it is made: no string of the whole batch
 * (a tree of every line, live until the batch is written, then copied flat to
 * be encoded), no new buffer per batch. JSON lines are written there as bytes
 * (src/output/json_bytes.ts: no string per line either); the other formats'
 * lines are strings, encoded into it.
 *
 * @module
 */
import type { NetflowEvent, Sink } from "../events.ts";
import { CommunityIds } from "./community_id.ts";
import { ecsFormatter } from "./ecs.ts";
import { jsonFormatter } from "./json.ts";
import { JsonBytes } from "./json_bytes.ts";
import { LineBytes } from "./line_bytes.ts";
import { type TableOptions, TableWriter } from "./table.ts";
import { traceeFormatter } from "./tracee.ts";

/** The values of --format. */
export const FORMATS = ["table", "json", "ecs", "tracee", "none"] as const;
export type FormatName = typeof FORMATS[number];

/**
 * A line per event, and a header line first for formats that have one;
 * `into`, where the format has it, writes the same line's UTF-8 bytes
 * straight into the sink's buffer (no string per line).
 */
export interface LineFormat {
  header?: string;
  line: (event: NetflowEvent) => string;
  into?: (event: NetflowEvent, out: LineBytes) => void;
}

export function lineFormat(name: Exclude<FormatName, "none">, table?: TableOptions): LineFormat {
  switch (name) {
    case "table": {
      const writer = new TableWriter(table);
      return { header: writer.header(), line: (e) => writer.row(e) };
    }
    case "json": {
      // One Community ID cache for both: a sink uses one of them.
      const ids = new CommunityIds();
      const bytes = new JsonBytes(ids);
      return { line: jsonFormatter(ids), into: (e, out) => bytes.write(e, out) };
    }
    case "ecs":
      return { line: ecsFormatter(new CommunityIds()) };
    case "tracee":
      return { line: traceeFormatter(new CommunityIds()) };
  }
}

const encoder = new TextEncoder();
const NEWLINE = 10;

/** Writes all of `bytes` to stdout; false once the reader has gone (EPIPE). */
export function writeOut(bytes: Uint8Array): boolean {
  try {
    while (bytes.length > 0) bytes = bytes.subarray(Deno.stdout.writeSync(bytes));
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.BrokenPipe) return false;
    throw err;
  }
}

export class StdoutSink implements Sink {
  readonly #format: LineFormat;
  readonly #write: (bytes: Uint8Array) => boolean;
  readonly #only: ReadonlySet<string> | undefined;
  #open = true;
  #headerDone = false;
  readonly #out = new LineBytes();

  /**
   * `write`: takes a batch's bytes (theirs only until it returns); `only`:
   * the event names it writes (default: all it is given).
   */
  constructor(
    format: LineFormat,
    write: (bytes: Uint8Array) => boolean = writeOut,
    only?: ReadonlySet<string>,
  ) {
    this.#format = format;
    this.#write = write;
    this.#only = only;
  }

  /** Writes the header line now (before any event arrives), if the format has one. */
  start(): boolean {
    if (this.#headerDone || this.#format.header === undefined) return this.#open;
    this.#headerDone = true;
    return this.#open = this.#open && this.#write(encoder.encode(`${this.#format.header}\n`));
  }

  write(batch: readonly NetflowEvent[]): boolean {
    if (!this.#open) return false;
    if (!this.start()) return false;
    const out = this.#out, into = this.#format.into, only = this.#only;
    out.reset();
    for (let i = 0; i < batch.length; i++) {
      const e = batch[i]!;
      if (only !== undefined && !only.has(e.event)) continue;
      if (into !== undefined) into(e, out);
      else out.encoded(this.#format.line(e));
      out.byte(NEWLINE);
    }
    return this.#open = this.#write(out.written());
  }

  close(): Promise<void> {
    this.#open = false;
    return Promise.resolve();
  }

  summary(): undefined {
    return undefined;
  }
}
