/**
 * What the output shapes need to know about an event beyond its fields: which
 * side is local, which side initiated, when it started, and the counters as
 * each side sent them. Written against the event contract only, so every
 * event kind (begin, update, end, fail, the packet view) maps the same way.
 *
 * @module
 */
import type { NetflowEvent } from "../flow/events.ts";

let cachedPrefix = "";
let cachedSecondUs = 0;

/** Microseconds since the epoch from netflow's RFC 3339 time (the inverse of formatTime). */
export function timeUs(text: string): number {
  const prefix = text.slice(0, 19); // 2026-11-23T12:34:56
  if (prefix !== cachedPrefix) {
    cachedPrefix = prefix;
    cachedSecondUs = Date.parse(`${prefix}Z`) * 1000;
  }
  const dot = text.indexOf(".", 19);
  if (dot < 0) return cachedSecondUs;
  const digits = text.slice(dot + 1).replace(/\D.*$/, "");
  return cachedSecondUs + Number(digits.padEnd(6, "0").slice(0, 6));
}

/** True when the event's `src` is this host's endpoint. */
export function localIsSrc(e: NetflowEvent): boolean {
  if (e.event === "net_packet_tcp") return e.direction === "egress";
  // An end is oriented by who closed it; every other flow event like a begin.
  if ("closed_by" in e) return e.closed_by === "local";
  return e.conn_direction === "outgoing";
}

/** True when the event's `src` sent the SYN; undefined for a single packet. */
export function initiatorIsSrc(e: NetflowEvent): boolean | undefined {
  if (e.event === "net_packet_tcp") return undefined;
  return localIsSrc(e) === (e.conn_direction === "outgoing");
}

/** Bytes and packets each side sent, or null where the kernel gave none. */
export interface SideCounters {
  srcBytes: number | null;
  srcPackets: number | null;
  dstBytes: number | null;
  dstPackets: number | null;
}

/** The local counters of an event that has them, as `src` and `dst` sent them. */
export function sideCounters(e: NetflowEvent): SideCounters | undefined {
  if (!("bytes_sent" in e)) return undefined;
  const local = localIsSrc(e);
  return {
    srcBytes: local ? e.bytes_sent : e.bytes_received,
    srcPackets: local ? e.packets_sent : e.packets_received,
    dstBytes: local ? e.bytes_received : e.bytes_sent,
    dstPackets: local ? e.packets_received : e.packets_sent,
  };
}

/** "ipv4" or "ipv6", as the addresses were written. */
export function ipFamily(e: NetflowEvent): "ipv4" | "ipv6" {
  return e.src.includes(":") ? "ipv6" : "ipv4";
}
