/**
 * The stdout sink: events as lines in one of the formats, written in one
 * piece per batch. `--format none` has no stdout sink at all.
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

/** Writes all of `text` to stdout; false once the reader has gone (EPIPE). */
export function writeOut(text: string): boolean {
  let bytes = encoder.encode(text);
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
  readonly #write: (text: string) => boolean;
  readonly #only: ReadonlySet<string> | undefined;
  #open = true;
  #headerDone = false;

  /** `only`: the event names it writes (default: all it is given). */
  constructor(
    format: LineFormat,
    write: (text: string) => boolean = writeOut,
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
    return this.#open = this.#open && this.#write(`${this.#format.header}\n`);
  }

  write(batch: readonly NetflowEvent[]): boolean {
    if (!this.#open) return false;
    if (!this.start()) return false;
    let text = "";
    for (const e of batch) {
      if (this.#only === undefined || this.#only.has(e.event)) text += `${this.#format.line(e)}\n`;
    }
    return this.#open = this.#write(text);
  }

  close(): Promise<void> {
    this.#open = false;
    return Promise.resolve();
  }

  summary(): undefined {
    return undefined;
  }
}
