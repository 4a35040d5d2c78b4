/**
 * Community ID flow hashing, version 1
 * (https://github.com/corelight/community-id-spec): the same string for a
 * flow in netflow's JSON and ECS output as in Zeek's, Suricata's, Arkime's or
 * Wireshark's records of it, so they join on one field.
 *
 * It is SHA-1 over seed (2 bytes), the two addresses, the protocol, a zero
 * byte and the two ports, all in network byte order, with the endpoints
 * ordered so that the smaller address (then port) comes first; base64, with
 * "1:" in front.
 *
 * @module
 */
import { parseIPInto } from "../bpf/addr.ts";
import { IPPROTO_TCP, type NetflowEvent } from "../events.ts";

/**
 * The Community ID v1 of a 5-tuple; the same whichever way round the
 * endpoints are given.
 *
 * @example
 * ```ts
 * import { IPPROTO_TCP } from "../events.ts";
 * import { communityIdV1 } from "./community_id.ts";
 * // The spec's own baseline (baseline/baseline_deflt.json).
 * const id = communityIdV1(IPPROTO_TCP, "128.232.110.120", 34855, "66.35.250.204", 80);
 * if (id !== "1:LQU9qZlK+B5F3KDmev6m5PMibrg=") throw new Error(id);
 * ```
 */
export function communityIdV1(
  proto: number,
  saddr: string,
  sport: number,
  daddr: string,
  dport: number,
  seed = 0,
): string {
  // Everything goes into one preallocated buffer: a typed array allocation
  // costs more than the parsing here.
  const b = SCRATCH;
  const n = parseIPInto(saddr, b, 2);
  if (n === 0 || parseIPInto(daddr, b, 2 + n) !== n) {
    throw new RangeError(`Not a pair of addresses of one family: "${saddr}", "${daddr}"`);
  }
  let pa = sport, pb = dport;
  const order = compare(b, 2, 2 + n, n);
  if (order > 0 || (order === 0 && pa > pb)) {
    for (let i = 2; i < 2 + n; i++) {
      const t = b[i]!;
      b[i] = b[i + n]!;
      b[i + n] = t;
    }
    [pa, pb] = [pb, pa];
  }
  const at = 2 + 2 * n;
  b[0] = seed >> 8;
  b[1] = seed & 0xff;
  b[at] = proto;
  b[at + 1] = 0; // padding
  b[at + 2] = pa >> 8;
  b[at + 3] = pa & 0xff;
  b[at + 4] = pb >> 8;
  b[at + 5] = pb & 0xff;
  return sha1Base64(n === 4 ? INPUT_V4 : INPUT_V6);
}

const SCRATCH = new Uint8Array(40);
/** The hash input: seed, two addresses, protocol, padding, two ports. */
const INPUT_V4 = SCRATCH.subarray(0, 2 + 8 + 2 + 4);
const INPUT_V6 = SCRATCH.subarray(0, 2 + 32 + 2 + 4);

/**
 * "1:" and the SHA-1, base64. The inputs here are at most 40 bytes, one SHA-1 block:
 * hashed in TypeScript (~0.3 us), not through node:crypto (0.7-1.5 us a call
 * on Deno 2.9, most of it the call itself).
 */
function sha1Base64(data: Uint8Array): string {
  const w = W, n = data.length;
  // One padded block: the message, 0x80, zeros, the length in bits (big-endian).
  w.fill(0);
  for (let i = 0; i < n; i++) w[i >> 2] = w[i >> 2]! | (data[i]! << (24 - 8 * (i & 3)));
  w[n >> 2] = w[n >> 2]! | (0x80 << (24 - 8 * (n & 3)));
  w[15] = n * 8;
  for (let i = 16; i < 80; i++) {
    const x = w[i - 3]! ^ w[i - 8]! ^ w[i - 14]! ^ w[i - 16]!;
    w[i] = (x << 1) | (x >>> 31);
  }
  let a = 0x67452301, b = 0xefcdab89 | 0, c = 0x98badcfe | 0, d = 0x10325476, e = 0xc3d2e1f0 | 0;
  for (let i = 0; i < 80; i++) {
    const f = i < 20
      ? ((b & c) | (~b & d)) + 0x5a827999
      : i < 40
      ? (b ^ c ^ d) + 0x6ed9eba1
      : i < 60
      ? ((b & c) | (b & d) | (c & d)) + (0x8f1bbcdc | 0)
      : (b ^ c ^ d) + (0xca62c1d6 | 0);
    const t = (((a << 5) | (a >>> 27)) + f + e + w[i]!) | 0;
    e = d;
    d = c;
    c = (b << 30) | (b >>> 2);
    b = a;
    a = t;
  }
  digestWord(0, a + 0x67452301);
  digestWord(1, b + 0xefcdab89);
  digestWord(2, c + 0x98badcfe);
  digestWord(3, d + 0x10325476);
  digestWord(4, e + 0xc3d2e1f0);
  return digestBase64();
}

const W = new Int32Array(80);
const DIGEST = new Uint8Array(20);

function digestWord(i: number, x: number): void {
  DIGEST[4 * i] = x >>> 24;
  DIGEST[4 * i + 1] = x >>> 16;
  DIGEST[4 * i + 2] = x >>> 8;
  DIGEST[4 * i + 3] = x;
}

const B64 = new TextEncoder().encode(
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
);
/** The ID's characters: "1:", then 28 of base64. */
const ID = new Uint8Array(30).fill("=".charCodeAt(0));
ID[0] = "1".charCodeAt(0);
ID[1] = ":".charCodeAt(0);

/**
 * "1:" and the base64 (padded) of the 20 digest bytes, as one flat string: a
 * string built by appending would stay a tree of ~10 pieces (~400 bytes, not
 * ~50) for as long as the ID is kept (an open flow's, in CommunityIds).
 */
function digestBase64(): string {
  for (let i = 0, o = 2; i < 20; i += 3, o += 4) {
    // The last group has two bytes: its fourth character stays "=".
    const v = (DIGEST[i]! << 16) | (DIGEST[i + 1]! << 8) | (i < 18 ? DIGEST[i + 2]! : 0);
    ID[o] = B64[v >> 18]!;
    ID[o + 1] = B64[(v >> 12) & 63]!;
    ID[o + 2] = B64[(v >> 6) & 63]!;
    if (i < 18) ID[o + 3] = B64[v & 63]!;
  }
  const c = ID;
  // Thirty arguments: one flat string, without the generic path of apply().
  return String.fromCharCode(
    c[0]!,
    c[1]!,
    c[2]!,
    c[3]!,
    c[4]!,
    c[5]!,
    c[6]!,
    c[7]!,
    c[8]!,
    c[9]!,
    c[10]!,
    c[11]!,
    c[12]!,
    c[13]!,
    c[14]!,
    c[15]!,
    c[16]!,
    c[17]!,
    c[18]!,
    c[19]!,
    c[20]!,
    c[21]!,
    c[22]!,
    c[23]!,
    c[24]!,
    c[25]!,
    c[26]!,
    c[27]!,
    c[28]!,
    c[29]!,
  );
}

function compare(b: Uint8Array, x: number, y: number, n: number): number {
  for (let i = 0; i < n; i++) if (b[x + i] !== b[y + i]) return b[x + i]! - b[y + i]!;
  return 0;
}

/** A TCP event's Community ID. */
export function eventCommunityId(e: NetflowEvent): string {
  return communityIdV1(IPPROTO_TCP, e.src, e.src_port, e.dst, e.dst_port);
}

const OPENING: ReadonlySet<string> = new Set(["net_flow_tcp_begin", "net_flow_tcp_update"]);
const RECENT = 8;

/**
 * The IDs of the last few 5-tuples hashed, either way round: both endpoints
 * of a connection on this host (loopback, or two watched namespaces) have the
 * same ID, and their events come close together.
 */
class RecentTuples {
  readonly #a: string[] = new Array(RECENT).fill("");
  readonly #b: string[] = new Array(RECENT).fill("");
  readonly #aPort: number[] = new Array(RECENT).fill(-1);
  readonly #bPort: number[] = new Array(RECENT).fill(-1);
  readonly #ids: string[] = new Array(RECENT).fill("");
  #next = 0;

  /** The event's ID (a pure function of the tuple, the same either way round). */
  of(e: NetflowEvent): string {
    const a = this.#a, b = this.#b, aPort = this.#aPort, bPort = this.#bPort;
    const { src, dst, src_port, dst_port } = e;
    for (let i = 0; i < RECENT; i++) {
      if (
        (aPort[i] === src_port && bPort[i] === dst_port && a[i] === src && b[i] === dst) ||
        (aPort[i] === dst_port && bPort[i] === src_port && a[i] === dst && b[i] === src)
      ) return this.#ids[i]!;
    }
    const id = eventCommunityId(e);
    const at = this.#next;
    this.#next = (at + 1) % RECENT;
    a[at] = src;
    b[at] = dst;
    aPort[at] = src_port;
    bPort[at] = dst_port;
    this.#ids[at] = id;
    return id;
  }
}

export class CommunityIds {
  readonly #byFlow = new Map<string, string>();
  readonly #recent = new RecentTuples();
  readonly #max: number;

  constructor(max = 131072) {
    this.#max = max;
  }

  of(e: NetflowEvent): string {
    if (!("flow_id" in e)) return this.#recent.of(e);
    const known = this.#byFlow.get(e.flow_id);
    if (e.event === "net_flow_tcp_end") {
      if (known === undefined) return this.#recent.of(e);
      this.#byFlow.delete(e.flow_id);
      return known;
    }
    if (known !== undefined) return known;
    // Only events that a later one of the same flow follows keep an entry.
    if (!OPENING.has(e.event)) return this.#recent.of(e);
    const id = this.#recent.of(e);
    if (this.#byFlow.size >= this.#max) this.#byFlow.delete(this.#byFlow.keys().next().value!);
    this.#byFlow.set(e.flow_id, id);
    return id;
  }

  /** Flows holding an entry now. */
  get size(): number {
    return this.#byFlow.size;
  }
}
