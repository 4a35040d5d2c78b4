/**
 * The stdout sink: events as lines in one of the formats, written in one
 * piece per batch. `--format none` has no stdout sink at all. Each line is
 * encoded into one reused buffer as soon as it is made: no string of the
 * whole batch (a tree of every line, live until the batch is written, then
 * copied flat to be encoded), no new buffer per batch.
 *
 * @module
 */
import type { NetflowEvent, Sink } from "../events.ts";
import { CommunityIds } from "./community_id.ts";
import { ecsFormatter } from "./ecs.ts";
import { jsonFormatter } from "./json.ts";
import { type TableOptions, TableWriter } from "./table.ts";
import { traceeFormatter } from "./tracee.ts";

/** The values of --format. */
export const FORMATS = ["table", "json", "ecs", "tracee", "none"] as const;
export type FormatName = typeof FORMATS[number];

/** A line per event, and a header line first for formats that have one. */
export interface LineFormat {
  header?: string;
  line: (event: NetflowEvent) => string;
}

export function lineFormat(name: Exclude<FormatName, "none">, table?: TableOptions): LineFormat {
  switch (name) {
    case "table": {
      const writer = new TableWriter(table);
      return { header: writer.header(), line: (e) => writer.row(e) };
    }
    case "json":
      return { line: jsonFormatter(new CommunityIds()) };
    case "ecs":
      return { line: ecsFormatter(new CommunityIds()) };
    case "tracee":
      return { line: traceeFormatter(new CommunityIds()) };
  }
}

const encoder = new TextEncoder();
const NEWLINE = 10;
/** The line buffer's first size; it grows to the largest batch (and goes back past SHRINK_PAST). */
const FIRST_BYTES = 64 * 1024;
const SHRINK_PAST = 8 * 1024 * 1024;

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
  #buffer = new Uint8Array(FIRST_BYTES);

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
    let at = 0;
    for (let i = 0; i < batch.length; i++) {
      const e = batch[i]!;
      if (this.#only !== undefined && !this.#only.has(e.event)) continue;
      const line = this.#format.line(e);
      // At most 3 bytes a UTF-16 unit, and the newline.
      if (this.#buffer.length - at < line.length * 3 + 1) this.#grow(at, line.length * 3 + 1);
      at += encoder.encodeInto(line, this.#buffer.subarray(at)).written;
      this.#buffer[at++] = NEWLINE;
    }
    this.#open = this.#write(this.#buffer.subarray(0, at));
    if (this.#buffer.length > SHRINK_PAST) this.#buffer = new Uint8Array(FIRST_BYTES);
    return this.#open;
  }

  /** Room for `more` bytes after the first `used`. */
  #grow(used: number, more: number): void {
    let size = this.#buffer.length * 2;
    while (size - used < more) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.#buffer.subarray(0, used));
    this.#buffer = bigger;
  }

  close(): Promise<void> {
    this.#open = false;
    return Promise.resolve();
  }

  summary(): undefined {
    return undefined;
  }
}
