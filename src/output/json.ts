/**
 * JSON Lines: one event per line, fields in the contract's order. Written by
 * hand for speed (JSON.stringify of a whole event was the largest single cost
 * per flow); every string that did not come from netflow itself still goes
 * through JSON.stringify, which escapes control characters and lone
 * surrogates, so any name a DNS answer held stays valid JSON. A test checks
 * the output equals JSON.stringify's, byte for byte.
 *
 * @module
 */
import type { FlowCounters, FlowEvent, NetflowEvent } from "../events.ts";
import { CommunityIds } from "./community_id.ts";

const quote = JSON.stringify;
const encoder = new TextEncoder();

function num(n: number | null): string {
  return n === null ? "null" : String(n);
}

/**
 * A string's JSON, remembered for the last one given: the events of one
 * process and one cgroup come in runs, and their comm and cgroup are the
 * same strings (the decoder and the cgroup enricher share them).
 */
class LastQuoted {
  #last: string | null = null;
  #json = "null";

  of(s: string | null): string {
    if (s !== this.#last) {
      this.#last = s;
      this.#json = s === null ? "null" : quote(s);
    }
    return this.#json;
  }
}

const comms = new LastQuoted();
const cgroups = new LastQuoted();

/** The fields of an event that name where its socket lives: most flows share them with others. */
type Place = Pick<
  FlowEvent,
  "pid" | "comm" | "uid" | "cgroup_id" | "cgroup" | "container_id" | "netns" | "preexisting"
>;

/**
 * The JSON from `"pid"` to `"preexisting"`, remembered for the last few
 * places: a flow's begin and end, and the flows of one process in one
 * cgroup, share it, so it is one piece of the line instead of sixteen.
 */
export class Places {
  readonly #kept: ({ place: Place; json: string; bytes: Uint8Array | undefined } | undefined)[] = [
    undefined,
    undefined,
    undefined,
    undefined,
  ];
  #next = 0;

  of(e: Place): string {
    return this.#entry(e).json;
  }

  /** The same JSON in UTF-8 (made once per place kept). */
  bytesOf(e: Place): Uint8Array {
    const k = this.#entry(e);
    return k.bytes ??= encoder.encode(k.json);
  }

  #entry(e: Place): { json: string; bytes: Uint8Array | undefined } {
    const kept = this.#kept;
    for (let i = 0; i < kept.length; i++) {
      const k = kept[i];
      if (k === undefined) break;
      const p = k.place;
      if (
        p.pid === e.pid && p.comm === e.comm && p.uid === e.uid && p.cgroup_id === e.cgroup_id &&
        p.cgroup === e.cgroup && p.container_id === e.container_id && p.netns === e.netns &&
        p.preexisting === e.preexisting
      ) return k;
    }
    const json = `"pid":${num(e.pid)},"comm":${comms.of(e.comm)},"uid":${num(e.uid)},` +
      `"cgroup_id":${e.cgroup_id},"cgroup":${cgroups.of(e.cgroup)},"container_id":${
        strOrNull(e.container_id)
      },"netns":${e.netns},"preexisting":${e.preexisting}`;
    const place = {
      pid: e.pid,
      comm: e.comm,
      uid: e.uid,
      cgroup_id: e.cgroup_id,
      cgroup: e.cgroup,
      container_id: e.container_id,
      netns: e.netns,
      preexisting: e.preexisting,
    };
    const entry = { place, json, bytes: undefined };
    this.#kept[this.#next] = entry;
    this.#next = (this.#next + 1) % this.#kept.length;
    return entry;
  }
}

/** The places the JSON lines share (src/output/json_bytes.ts writes the same from their bytes). */
export const places: Places = new Places();

function strOrNull(s: string | null): string {
  return s === null ? "null" : quote(s);
}

/** A list of DNS names as JSON. */
export function names(list: readonly string[]): string {
  return list.length === 0 ? "[]" : quote(list);
}

/**
 * One event as a JSON line (without the newline); `communityId`, when given,
 * is written last as `community_id`.
 */
export function formatJson(event: NetflowEvent, communityId?: string): string {
  if (event.event === "net_packet_tcp") {
    return quote(communityId === undefined ? event : { ...event, community_id: communityId });
  }
  const body = flowJson(event);
  // The ID is base64 and digits: no escaping needed.
  return communityId === undefined ? `${body}}` : `${body},"community_id":"${communityId}"}`;
}

/** JSON Lines with each flow's Community ID, computed once per flow. */
export function jsonFormatter(ids = new CommunityIds()): (event: NetflowEvent) => string {
  return (event) => formatJson(event, ids.of(event));
}

/** The event's object without its closing brace. */
function flowJson(e: FlowEvent): string {
  // time, event, flow_id, conn_direction and the addresses are netflow's own
  // text (digits, hex, dots and colons): no escaping needed.
  const head = `{"time":"${e.time}","event":"${e.event}","flow_id":"${e.flow_id}",` +
    `"conn_direction":"${e.conn_direction}","src":"${e.src}","dst":"${e.dst}",` +
    `"src_port":${e.src_port},"dst_port":${e.dst_port},` +
    `"src_dns":${names(e.src_dns)},"dst_dns":${names(e.dst_dns)},${places.of(e)}`;
  switch (e.event) {
    case "net_flow_tcp_begin":
      return head;
    case "net_flow_tcp_fail":
      return `${head},"reason":"${e.reason}","duration_ms":${e.duration_ms}`;
    case "net_flow_tcp_update":
      return `${head},"duration_ms":${e.duration_ms},${counters(e)}`;
    case "net_flow_tcp_end":
      return `${head},"closed_by":"${e.closed_by}","reason":"${e.reason}",` +
        `"duration_ms":${num(e.duration_ms)},${counters(e)}`;
  }
}

function counters(e: FlowCounters): string {
  return `"bytes_sent":${num(e.bytes_sent)},` +
    `"bytes_received":${num(e.bytes_received)},"packets_sent":${num(e.packets_sent)},` +
    `"packets_received":${num(e.packets_received)},"rtt_us":${num(e.rtt_us)},` +
    `"retransmits":${num(e.retransmits)}`;
}
