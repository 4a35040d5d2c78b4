/**
 * Collector addresses: `udp://HOST:PORT` or `tcp://HOST:PORT` (IPv6 in
 * brackets), as `--ipfix` takes them.
 *
 * @module
 */
import { UsageError } from "../errors.ts";

export interface CollectorUrl {
  scheme: "udp" | "tcp";
  /** A name or an address; IPv6 without brackets. */
  host: string;
  port: number;
  /** As the user wrote it, for messages. */
  text: string;
}

/** Parses a collector URL; a UsageError (exit 2) says what is wrong with it. */
export function parseCollectorUrl(text: string): CollectorUrl {
  const bad = (why: string) =>
    new UsageError(`--ipfix takes udp://HOST:PORT or tcp://HOST:PORT, not "${text}" (${why})`);
  const match = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/(\[[0-9a-fA-F:.]+\]|[^/:?#@\[\]]+):(\d+)\/?$/
    .exec(text);
  if (!match) {
    if (!/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(text)) throw bad("no scheme");
    throw bad("HOST:PORT expected, nothing else");
  }
  const scheme = match[1]!.toLowerCase();
  if (scheme !== "udp" && scheme !== "tcp") throw bad(`unknown scheme "${scheme}"`);
  const port = Number(match[3]);
  if (!(port >= 1 && port <= 65535)) throw bad("the port must be 1 to 65535");
  const host = match[2]!.startsWith("[") ? match[2]!.slice(1, -1) : match[2]!;
  return { scheme, host, port, text };
}
