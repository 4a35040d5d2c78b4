/**
 * DNS responses to address -> name chains, with the wire format parsed by the
 * npm package dns-packet (bounds-checked, rejects compression-pointer loops).
 *
 * @module
 */
import dnsPacket from "dns-packet";
import { Buffer } from "node:buffer";
import { isIP } from "node:net";
import { formatIPv6 } from "../bpf/addr.ts";

/** One address an answer resolved, with the names that led to it. */
export interface Resolution {
  /** As netflow prints addresses (RFC 5952 IPv6, mapped IPv4 as IPv4). */
  address: string;
  /** The queried name, then each CNAME on the way, lowercased, in chain order. */
  names: string[];
  /** The smallest TTL on the chain, in seconds. */
  ttl: number;
}

/** A chain longer than this is treated as hostile and cut. */
const MAX_CHAIN = 16;

/**
 * Parses one DNS message (for TCP, the stream's content: length-prefixed
 * messages). Returns the resolutions of every NOERROR response in it; throws
 * on a message that is not valid DNS.
 */
export function parseResponses(payload: Uint8Array, transport: "udp" | "tcp"): Resolution[] {
  if (transport === "udp") return resolutions(payload);
  const out: Resolution[] = [];
  let at = 0;
  while (at + 2 <= payload.length) {
    const len = (payload[at]! << 8) | payload[at + 1]!;
    if (len === 0 || at + 2 + len > payload.length) {
      throw new Error("DNS over TCP: message longer than the captured segment");
    }
    out.push(...resolutions(payload.subarray(at + 2, at + 2 + len)));
    at += 2 + len;
  }
  return out;
}

function resolutions(message: Uint8Array): Resolution[] {
  const packet = dnsPacket.decode(Buffer.from(message.buffer, message.byteOffset, message.length));
  if (packet.type !== "response" || packet.rcode !== "NOERROR") return [];
  const question = packet.questions?.[0];
  if (!question || question.class !== "IN") return [];

  // CNAME owner -> target, and owner -> addresses, over the answer section.
  const cnames = new Map<string, { target: string; ttl: number }>();
  const addresses = new Map<string, { address: string; ttl: number }[]>();
  for (const answer of packet.answers ?? []) {
    if (answer.class !== "IN") continue;
    const owner = answer.name.toLowerCase();
    const ttl = answer.ttl ?? 0;
    if (answer.type === "CNAME" && typeof answer.data === "string") {
      if (!cnames.has(owner)) cnames.set(owner, { target: answer.data.toLowerCase(), ttl });
    } else if ((answer.type === "A" || answer.type === "AAAA") && typeof answer.data === "string") {
      const address = normalizeAddress(answer.data);
      if (address === undefined) continue;
      const list = addresses.get(owner) ?? [];
      list.push({ address, ttl });
      addresses.set(owner, list);
    }
  }

  // Walk the chain from the question; a loop or an overlong chain stops it.
  const out: Resolution[] = [];
  const chain: string[] = [];
  let name = question.name.toLowerCase();
  let ttl = Number.MAX_SAFE_INTEGER;
  while (chain.length < MAX_CHAIN && !chain.includes(name)) {
    chain.push(name);
    for (const a of addresses.get(name) ?? []) {
      out.push({ address: a.address, names: [...chain], ttl: Math.min(ttl, a.ttl) });
    }
    const next = cnames.get(name);
    if (next === undefined) break;
    ttl = Math.min(ttl, next.ttl);
    name = next.target;
  }
  return out;
}

/** dns-packet's text form of an address, in netflow's form; undefined if not an address. */
function normalizeAddress(text: string): string | undefined {
  const family = isIP(text);
  if (family === 4) return text;
  if (family !== 6) return undefined;
  return formatIPv6(ipv6Bytes(text));
}

function ipv6Bytes(text: string): Uint8Array {
  // Expand "a::b" (and a trailing dotted IPv4) into 16 bytes.
  const bytes = new Uint8Array(16);
  let groups = text;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)?.[1];
  if (dotted !== undefined) {
    const [a, b, c, d] = dotted.split(".").map(Number);
    groups = text.slice(0, -dotted.length) +
      `${((a! << 8) | b!).toString(16)}:${((c! << 8) | d!).toString(16)}`;
  }
  const [head = "", tail] = groups.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const all = [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  all.forEach((g, i) => {
    const v = parseInt(g, 16);
    bytes[2 * i] = v >> 8;
    bytes[2 * i + 1] = v & 0xff;
  });
  return bytes;
}
