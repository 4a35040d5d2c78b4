/**
 * The rules for option values, shared by the command line (src/args.ts) and
 * the library (FlowMonitor's options), so both refuse the same values with
 * the same words: `<name> takes <what>, not <value>`, where `name` is the
 * flag (`--max-flows`) or the option (`maxFlows`) and the value is shown as
 * given (quoted when it is text).
 *
 * @module
 */
import { UsageError } from "./errors.ts";
import { EVENT_NAMES, type EventName } from "./events.ts";

/** The value as the user gave it: text quoted, anything else as JSON would show it. */
export function shown(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || value === null) {
    return String(value);
  }
  if (value === undefined) return "undefined";
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Throws the rules' one line: `<name> takes <what>, not <value>`. */
export function refuse(name: string, what: string, value: unknown): never {
  throw new UsageError(`${name} takes ${what}, not ${shown(value)}`);
}

/** Text that is not empty or only whitespace. */
export function nonEmpty(name: string, value: unknown, hint = ""): string {
  if (typeof value !== "string") refuse(name, "text", value);
  if (value.trim() === "") throw new UsageError(`${name} needs a non-empty value${hint}`);
  return value;
}

/** A whole number (a number, or decimal digits with an optional minus sign) of at least `min`. */
export function wholeNumber(name: string, value: unknown, min: number): number {
  const n = typeof value === "string" && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < min) {
    refuse(name, `a whole number of at least ${min}`, value);
  }
  return n;
}

/** A number of seconds greater than zero (decimals allowed), returned in milliseconds. */
export function positiveSeconds(name: string, value: unknown): number {
  const n = typeof value === "string" && /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isFinite(n) || n <= 0) {
    refuse(name, "a number of seconds greater than 0", value);
  }
  return Math.round(n * 1000);
}

/** One of `choices`. */
export function oneOf<const T extends string>(
  name: string,
  value: unknown,
  choices: readonly T[],
): T {
  if (typeof value !== "string" || !(choices as readonly string[]).includes(value)) {
    const list = choices.length === 2
      ? `${choices[0]} or ${choices[1]}`
      : `one of ${choices.join(", ")}`;
    refuse(name, list, value);
  }
  return value as T;
}

export const MIN_RING_BYTES = 4096;
export const MAX_RING_BYTES = 1 << 30;
const RING_RULE = "a power of two from 4K to 1G bytes (K, M, G suffixes; B or iB optional)";

/**
 * A ring buffer size: a number of bytes, or text with a K, M or G suffix
 * (binary: 1K = 1024), with or without `B` / `iB` (`16M`, `16MB`, `16MiB`).
 */
export function ringSize(name: string, value: unknown): number {
  let n: unknown = value;
  if (typeof value === "string") {
    const m = /^(\d+)\s*(?:([KMG])(?:i?B)?|B)?$/i.exec(value.trim());
    n = m ? Number(m[1]) * 1024 ** (" KMG".indexOf((m[2] ?? " ").toUpperCase())) : NaN;
  }
  if (
    typeof n !== "number" || !Number.isSafeInteger(n) || n < MIN_RING_BYTES ||
    n > MAX_RING_BYTES || (n & (n - 1)) !== 0
  ) {
    refuse(name, RING_RULE, value);
  }
  return n;
}

export const MIN_DNS_CACHE_BYTES = 65_536;

/**
 * A number of bytes of at least `min`: a whole number, or text with a K, M
 * or G suffix (binary), with or without `B` / `iB` (`64M`, `64MiB`).
 */
export function byteSize(name: string, value: unknown, min: number): number {
  let n: unknown = value;
  if (typeof value === "string") {
    const m = /^(\d+)\s*(?:([KMG])(?:i?B)?|B)?$/i.exec(value.trim());
    n = m ? Number(m[1]) * 1024 ** (" KMG".indexOf((m[2] ?? " ").toUpperCase())) : NaN;
  }
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < min) {
    refuse(
      name,
      `a number of bytes of at least ${min} (K, M, G suffixes; B or iB optional)`,
      value,
    );
  }
  return n;
}

/** The short name of an event: `begin`, `end`, `update`, `fail`, `packet`. */
export function shortEventName(event: string): string {
  if (event.startsWith("net_flow_tcp_")) return event.slice("net_flow_tcp_".length);
  if (event === "net_packet_tcp") return "packet";
  return event;
}

/** The event names, full or short, from a list or from comma-separated text. */
export function eventList(name: string, value: unknown): EventName[] {
  const items = typeof value === "string" ? value.split(",") : value;
  if (!Array.isArray(items)) refuse(name, "a list of event names", value);
  const names: EventName[] = [];
  for (const item of items) {
    if (typeof item !== "string") refuse(name, "event names", item);
    const text = item.trim();
    if (text === "") continue;
    const event = EVENT_NAMES.find((e) => e === text || shortEventName(e) === text);
    if (event === undefined) {
      throw new UsageError(
        `Unknown event ${shown(text)} in ${name} (known: ${
          EVENT_NAMES.map(shortEventName).join(", ")
        }, or the full names ${EVENT_NAMES.join(", ")})`,
      );
    }
    if (!names.includes(event)) names.push(event);
  }
  if (names.length === 0) throw new UsageError(`${name} needs at least one event name`);
  return names;
}

/**
 * How the ring buffer is read: `mmap` (the default) maps its pages and parses
 * records in TypeScript (~20 ns per record); `callback` uses libbpf's
 * `ring_buffer__consume` with an FFI callback (~500 ns per record).
 */
export type ReaderKind = "mmap" | "callback";

export const READERS: readonly ReaderKind[] = ["mmap", "callback"];

/** `mmap` or `callback`. */
export function readerKind(name: string, value: unknown): ReaderKind {
  return oneOf(name, value, READERS);
}

/**
 * A cgroup path as given (`--cgroup`): not empty, and, with `..` resolved, not
 * above the cgroup v2 root. Returns the path normalized (`a/./b/../c` ->
 * `a/c`, absolute paths stay absolute); whether it exists and lies inside the
 * v2 mount is checked against the system by resolveCgroupDir.
 */
export function cgroupPath(name: string, value: unknown): string {
  const text = nonEmpty(name, value, " (omit it to watch the whole host)").trim();
  const parts: string[] = [];
  for (const part of text.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (parts.length === 0) {
        throw new UsageError(`${name} ${shown(value)} leads above the cgroup v2 root`);
      }
      parts.pop();
    } else parts.push(part);
  }
  const joined = parts.join("/");
  return text.startsWith("/") ? `/${joined}` : joined || ".";
}
