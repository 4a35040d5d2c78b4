/**
 * IP addresses from raw bytes: IPv4 dotted, IPv6 in RFC 5952 form, and
 * IPv4-mapped IPv6 (::ffff:a.b.c.d) shown as plain IPv4.
 *
 * @module
 */

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
