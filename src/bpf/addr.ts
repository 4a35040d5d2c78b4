/**
 * IP addresses from raw bytes: IPv4 dotted, IPv6 in RFC 5952 form, and
 * IPv4-mapped IPv6 (::ffff:a.b.c.d) shown as plain IPv4; CIDR blocks
 * (`--net`) parsed and matched.
 *
 * @module
 */
import { refuse } from "../options.ts";

/** Formats 4 bytes at `offset` as dotted IPv4. */
export function formatIPv4(bytes: Uint8Array, offset = 0): string {
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

/** Formats 16 bytes at `offset` as RFC 5952 IPv6; IPv4-mapped addresses as IPv4. */
export function formatIPv6(bytes: Uint8Array, offset = 0): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) {
    groups.push((bytes[offset + 2 * i]! << 8) | bytes[offset + 2 * i + 1]!);
  }
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return formatIPv4(bytes, offset + 12);
  }
  // RFC 5952 4.2: compress the longest run of two or more zero groups, the first on a tie.
  let bestStart = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [bestStart, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(":");
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/**
 * The bytes of an address as netflow writes it: 4 for dotted IPv4, 16 for
 * IPv6 (with `::` and an embedded dotted quad allowed); undefined when `text`
 * is not an address.
 */
export function parseIP(text: string): Uint8Array | undefined {
  const out = new Uint8Array(16);
  const n = parseIPInto(text, out, 0);
  return n === 0 ? undefined : out.slice(0, n);
}

/**
 * Writes the address's bytes into `out` at `offset`; returns how many (4 or
 * 16), or 0 when `text` is not an address. Allocates nothing for IPv4 (it runs
 * once per flow, for its Community ID).
 */
export function parseIPInto(text: string, out: Uint8Array, offset: number): number {
  if (!text.includes(":")) return parseIPv4Into(text, out, offset) ? 4 : 0;
  let head = text, tail = "";
  const gap = text.indexOf("::");
  if (gap >= 0) {
    if (text.indexOf("::", gap + 1) >= 0) return 0;
    head = text.slice(0, gap);
    tail = text.slice(gap + 2);
  }
  const v4 = new Uint8Array(4);
  const groups = (part: string): number[] | undefined => {
    if (part === "") return [];
    const list: number[] = [];
    const items = part.split(":");
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      if (i === items.length - 1 && item.includes(".")) {
        if (!parseIPv4Into(item, v4, 0)) return undefined;
        list.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(item)) {
        list.push(parseInt(item, 16));
      } else {
        return undefined;
      }
    }
    return list;
  };
  const before = groups(head), after = groups(tail);
  if (!before || !after) return 0;
  const missing = 8 - before.length - after.length;
  if (gap >= 0 ? missing < 1 : missing !== 0) return 0;
  const all = [...before, ...new Array<number>(missing).fill(0), ...after];
  for (let i = 0; i < 8; i++) {
    out[offset + 2 * i] = all[i]! >> 8;
    out[offset + 2 * i + 1] = all[i]! & 0xff;
  }
  return 16;
}

function parseIPv4Into(text: string, out: Uint8Array, offset: number): boolean {
  let part = 0, value = 0, digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || part === 3) return false;
      out[offset + part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      value = value * 10 + c - 48;
      digits++;
      if (value > 255) return false;
    } else {
      return false;
    }
  }
  if (digits === 0 || part !== 3) return false;
  out[offset + 3] = value;
  return true;
}

/** A parsed CIDR block. */
export interface Cidr {
  bytes: Uint8Array;
  prefix: number;
}

/** `ADDRESS/PREFIX` or `ADDRESS` (IPv4 or IPv6), with the host bits zero or not. */
export function cidrValue(name: string, value: unknown): Cidr {
  const text = typeof value === "string" ? value : "";
  const [address = "", prefix, extra] = text.split("/");
  const bytes = extra === undefined ? parseIP(address) : undefined;
  const bits = bytes === undefined ? NaN : prefix === undefined ? bytes.length * 8 : Number(prefix);
  if (
    bytes === undefined || (prefix !== undefined && !/^\d{1,3}$/.test(prefix)) ||
    bits > bytes.length * 8
  ) {
    refuse(name, "an address or CIDR block (10.0.0.0/8, fd00::/8)", value);
  }
  // IPv4-mapped IPv6 (::ffff:a.b.c.d) is IPv4, as netflow prints it.
  const mapped = bytes.length === 16 && bits >= 96 && bytes.subarray(0, 10).every((b) => b === 0) &&
    bytes[10] === 0xff && bytes[11] === 0xff;
  if (mapped) return { bytes: bytes.slice(12), prefix: bits - 96 };
  return { bytes, prefix: bits };
}

/** True when `address` (netflow's text form) is in `cidr`. */
export function inCidr(cidr: Cidr, address: Uint8Array): boolean {
  if (address.length !== cidr.bytes.length) return false;
  const whole = cidr.prefix >> 3;
  for (let i = 0; i < whole; i++) if (address[i] !== cidr.bytes[i]) return false;
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (address[whole]! & mask) === (cidr.bytes[whole]! & mask);
}
