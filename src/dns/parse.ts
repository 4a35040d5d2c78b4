/**
 * DNS answers to address -> name chains. Hostile input is the normal case:
 * the header's counts are checked against the message's length before any
 * record is read, every record is bounded by its own RDLENGTH, names are
 * decompressed by the npm package dns-packet (bounds-checked, pointers only
 * backwards, so no loops), and only the chain that starts at the question is
 * followed (answers for names not asked are ignored).
 *
 * A message cut short (the kernel copies at most 1,280 bytes) gives the
 * records that are complete, and says it was cut.
 *
 * @module
 */
import dnsPacket from "npm:dns-packet@5.6.1";
import { Buffer } from "node:buffer";
import { formatIPv4, formatIPv6 } from "../bpf/addr.ts";

/** One address an answer resolved, with the names that led to it. */
export interface Resolution {
  /** As netflow prints addresses (RFC 5952 IPv6, mapped IPv4 as IPv4). */
  address: string;
  /** The queried name, then each CNAME on the way, lowercased, in chain order. */
  names: string[];
  /**
   * The smallest TTL on the chain, in seconds: a TTL of 2^31 or more counts
   * as 0 (RFC 2181 section 8), and none is kept longer than {@link MAX_TTL_S}.
   */
  ttl: number;
}

/** One parsed answer message. */
export interface Answer {
  /** The transaction id. */
  id: number;
  /** The question's hash, as bpf/dns.bpf.h computes it (see {@link questionHash}). */
  question: bigint;
  resolutions: Resolution[];
  /** False when the message was cut: only the records that fit were read. */
  complete: boolean;
}

/** A message that is not a DNS answer netflow can read. */
export class DnsFormatError extends Error {}

/**
 * TTLs kept at most, in seconds: one day (as unbound's cache-max-ttl). A
 * longer TTL would keep a name past any plausible re-resolution; a hostile
 * one would keep it forever.
 */
export const MAX_TTL_S = 86_400;
/** RFC 2181 section 8: a TTL with the top bit set is treated as zero. */
const TTL_TOP_BIT = 2 ** 31;

/** A chain longer than this is treated as hostile and cut. */
export const MAX_CHAIN = 16;
const HEADER = 12;
/** The smallest resource record: a root name (1), type, class, TTL, RDLENGTH (10). */
const MIN_RECORD = 11;
const TYPE_A = 1, TYPE_CNAME = 5, TYPE_AAAA = 28, CLASS_IN = 1;
const FNV_OFFSET = 0xcbf29ce484222325n, FNV_PRIME = 0x100000001b3n, MASK64 = (1n << 64n) - 1n;

/**
 * The question's hash the kernel keeps for a query: FNV-1a 64 over the wire
 * name (ASCII lowercased), then type and class. `end` is where the question
 * ends. Throws unless there is exactly one uncompressed question.
 */
export function questionHash(message: Uint8Array): { hash: bigint; end: number } {
  if (message.length < HEADER + 5) throw new DnsFormatError("shorter than a DNS question");
  if (message[4] !== 0 || message[5] !== 1) throw new DnsFormatError("not one question");
  let h = FNV_OFFSET;
  let next = 0;
  for (let i = 0; i < 255; i++) {
    const at = HEADER + i;
    if (at >= message.length) break;
    let b = message[at]!;
    if (i === next) {
      if (b === 0) {
        const end = at + 1 + 4;
        if (end > message.length) break;
        for (let k = at + 1; k < end; k++) h = ((h ^ BigInt(message[k]!)) * FNV_PRIME) & MASK64;
        return { hash: h === 0n ? 1n : h, end };
      }
      if (b > 63) throw new DnsFormatError("a compressed or bad label in the question");
      next = i + 1 + b;
    } else if (b >= 0x41 && b <= 0x5a) {
      b += 0x20;
    }
    h = ((h ^ BigInt(b)) * FNV_PRIME) & MASK64;
  }
  throw new DnsFormatError("the question does not fit");
}

/**
 * Parses one DNS message (for TCP, without its 2-byte length). `wireLength`
 * is its length on the wire: more than `message.length` when it was cut.
 * Returns the resolutions of a NOERROR answer (none for other answers);
 * throws {@link DnsFormatError} on anything that is not a DNS answer.
 */
export function parseAnswer(message: Uint8Array, wireLength = message.length): Answer {
  const cut = wireLength > message.length;
  const { hash, end: questionEnd } = questionHash(message);
  const u16 = (at: number) => (message[at]! << 8) | message[at + 1]!;
  const id = u16(0);
  const flags = u16(2);
  if ((flags & 0x8000) === 0) throw new DnsFormatError("a query, not an answer");
  const counts = u16(6) + u16(8) + u16(10);
  // Before reading any record: could the counted records fit at all?
  if (counts * MIN_RECORD > wireLength - questionEnd) {
    throw new DnsFormatError("more records than the message can hold");
  }
  const answer: Answer = { id, question: hash, resolutions: [], complete: !cut };
  const opcode = (flags >> 11) & 0xf, rcode = flags & 0xf;
  if (opcode !== 0 || rcode !== 0) return answer;
  const qtype = u16(questionEnd - 4), qclass = u16(questionEnd - 2);
  if (qclass !== CLASS_IN) return answer;

  const buf = Buffer.from(message.buffer, message.byteOffset, message.length);
  const question = decodeName(buf, HEADER);
  const cnames = new Map<string, { target: string; ttl: number }>();
  const addresses = new Map<string, { address: string; ttl: number }[]>();
  let at = questionEnd;
  for (let i = 0, n = u16(6); i < n; i++) {
    let owner: string, type: number, klass: number, ttl: number, rdata: number, rdlength: number;
    try {
      owner = decodeName(buf, at);
      at += dnsPacket.name.decode.bytes;
      if (at + 10 > message.length) throw new DnsFormatError("record header past the end");
      type = u16(at);
      klass = u16(at + 2);
      ttl = ((message[at + 4]! << 24) >>> 0) + (message[at + 5]! << 16) + u16(at + 6);
      ttl = ttl >= TTL_TOP_BIT ? 0 : Math.min(ttl, MAX_TTL_S);
      rdlength = u16(at + 8);
      rdata = at + 10;
      at = rdata + rdlength;
      if (at > message.length) throw new DnsFormatError("record data past the end");
    } catch (err) {
      // In a cut message the first record that does not fit is the cut.
      if (cut) break;
      throw err instanceof DnsFormatError ? err : new DnsFormatError(String(err));
    }
    if (klass !== CLASS_IN) continue;
    if (type === TYPE_CNAME && (qtype === TYPE_A || qtype === TYPE_AAAA)) {
      const target = decodeName(buf, rdata);
      if (dnsPacket.name.decode.bytes !== rdlength) throw new DnsFormatError("CNAME length");
      if (!cnames.has(owner)) cnames.set(owner, { target, ttl });
    } else if ((type === TYPE_A && rdlength === 4) || (type === TYPE_AAAA && rdlength === 16)) {
      if (type !== qtype) continue; // only what was asked
      const address = type === TYPE_A ? formatIPv4(message, rdata) : formatIPv6(message, rdata);
      const list = addresses.get(owner) ?? [];
      list.push({ address, ttl });
      addresses.set(owner, list);
    } else if (type === TYPE_A || type === TYPE_AAAA) {
      throw new DnsFormatError("address of the wrong length");
    }
  }

  // Walk the chain from the question; a loop or an overlong chain stops it.
  const chain: string[] = [];
  let name = question;
  let ttl = Number.MAX_SAFE_INTEGER;
  while (chain.length < MAX_CHAIN && !chain.includes(name)) {
    chain.push(name);
    for (const a of addresses.get(name) ?? []) {
      answer.resolutions.push({ address: a.address, names: [...chain], ttl: Math.min(ttl, a.ttl) });
    }
    const next = cnames.get(name);
    if (next === undefined) break;
    ttl = Math.min(ttl, next.ttl);
    name = next.target;
  }
  return answer;
}

/** A name at `at`, lowercased (ASCII); dns-packet leaves its length in name.decode.bytes. */
function decodeName(buf: Buffer, at: number): string {
  try {
    return dnsPacket.name.decode(buf, at).toLowerCase();
  } catch (err) {
    throw new DnsFormatError(err instanceof Error ? err.message : String(err));
  }
}
