/**
 * Bytes as IPFIX lays them out: big-endian integers and RFC 7011 variable
 * length fields, in a buffer that grows as it is written.
 *
 * @module
 */
const utf8 = new TextEncoder();

/** Cuts a UTF-8 string to at most `max` bytes without splitting a character. */
export function utf8Bytes(text: string | null, max: number): Uint8Array {
  if (text === null) return new Uint8Array(0);
  let bytes = utf8.encode(text);
  if (bytes.length <= max) return bytes;
  let end = max;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  bytes = bytes.subarray(0, end);
  return bytes;
}

/** A growable big-endian byte writer. */
export class Writer {
  bytes = new Uint8Array(512);
  view = new DataView(this.bytes.buffer);
  length = 0;

  #room(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    const next = new Uint8Array(Math.max(this.bytes.length * 2, this.length + n));
    next.set(this.bytes.subarray(0, this.length));
    this.bytes = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.#room(1);
    this.view.setUint8(this.length, v);
    this.length += 1;
  }
  u16(v: number): void {
    this.#room(2);
    this.view.setUint16(this.length, v);
    this.length += 2;
  }
  u32(v: number): void {
    this.#room(4);
    this.view.setUint32(this.length, v >>> 0);
    this.length += 4;
  }
  /** Integers below 2^53 (all of netflow's counters and times are). */
  u64(v: number): void {
    this.#room(8);
    this.view.setUint32(this.length, Math.floor(v / 2 ** 32));
    this.view.setUint32(this.length + 4, v >>> 0);
    this.length += 8;
  }
  raw(b: Uint8Array): void {
    this.#room(b.length);
    this.bytes.set(b, this.length);
    this.length += b.length;
  }
  varlen(b: Uint8Array): void {
    if (b.length < 255) this.u8(b.length);
    else {
      this.u8(255);
      this.u16(b.length);
    }
    this.raw(b);
  }
  done(): Uint8Array {
    return this.bytes.slice(0, this.length);
  }
}
