/**
 * A growing byte buffer that lines are written into as bytes (src/output/json_bytes.ts): fixed
 * pieces copied from byte arrays made once, numbers written as digits, netflow's own text (times,
 * ids, addresses: ASCII) a character a byte; no string made per line, and no new buffer per batch.
 *
 * @module
 */

const encoder = new TextEncoder();

/** The bytes of `text` in UTF-8 (made once per fixed piece). */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** The buffer's first size; it grows to the largest batch (and goes back past SHRINK_PAST). */
const FIRST_BYTES = 64 * 1024;
const SHRINK_PAST = 8 * 1024 * 1024;
const ZERO = 48;
/**
 * Pieces up to this long are copied a byte at a time; longer ones by set()
 * (~14 ns a call, against ~0.8 ns a byte for the loop).
 */
const SHORT = 16;
const TWO_31 = 2 ** 31;

export class LineBytes {
  /** The bytes; only the first {@link at} are written. */
  buf = new Uint8Array(FIRST_BYTES);
  /** Where the next byte goes. */
  at = 0;

  /** Empties it (and lets a buffer grown past 8 MiB go). */
  reset(): void {
    this.at = 0;
    if (this.buf.length > SHRINK_PAST) this.buf = new Uint8Array(FIRST_BYTES);
  }

  /** Makes room for `more` bytes after {@link at}. */
  room(more: number): void {
    if (this.buf.length - this.at >= more) return;
    let size = this.buf.length * 2;
    while (size - this.at < more) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.buf.subarray(0, this.at));
    this.buf = bigger;
  }

  /** What was written. */
  written(): Uint8Array {
    return this.buf.subarray(0, this.at);
  }

  byte(b: number): void {
    if (this.at >= this.buf.length) this.room(1);
    this.buf[this.at++] = b;
  }

  /** A piece made once. */
  put(piece: Uint8Array): void {
    const n = piece.length;
    if (this.buf.length - this.at < n) this.room(n);
    if (n > SHORT) {
      this.buf.set(piece, this.at);
      this.at += n;
      return;
    }
    const buf = this.buf;
    let at = this.at;
    for (let i = 0; i < n; i++) buf[at++] = piece[i]!;
    this.at = at;
  }

  /** A key made once, then `s`. */
  keyText(key: Uint8Array, s: string): void {
    this.put(key);
    this.text(s);
  }

  /** A key made once, then a number or null. */
  keyNum(key: Uint8Array, n: number | null): void {
    this.put(key);
    if (n === null) this.put(NULL);
    else this.num(n);
  }

  /** Two pieces made once. */
  put2(a: Uint8Array, b: Uint8Array): void {
    this.put(a);
    this.put(b);
  }

  /**
   * `s` (from its character `from` on) in UTF-8: a byte a character while it
   * is ASCII (netflow's own text), the rest through the encoder.
   */
  text(s: string, from = 0): void {
    const n = s.length;
    if (this.buf.length - this.at < n - from) this.room(n - from);
    const buf = this.buf;
    let at = this.at;
    for (let i = from; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        this.at = at;
        this.#rest(s, i);
        return;
      }
      buf[at++] = c;
    }
    this.at = at;
  }

  #rest(s: string, from: number): void {
    this.encoded(from === 0 ? s : s.slice(from));
  }

  /** `s` in UTF-8 through the encoder (a whole line of a format written as text). */
  encoded(s: string): void {
    this.room(s.length * 3); // at most 3 bytes a UTF-16 unit
    this.at += encoder.encodeInto(s, this.buf.subarray(this.at)).written;
  }

  /** `n` as JSON and String() write it: digits for integers, String() for the rest. */
  num(n: number): void {
    if (this.buf.length - this.at < 24) this.room(24); // "-1.2345678901234567e+308"
    if (n >= 0 && n < TWO_31 && (n | 0) === n) {
      this.#small(n);
      return;
    }
    if (Number.isSafeInteger(n) && n > 0) {
      this.#large(n);
      return;
    }
    this.text(String(n)); // negative, fractions, -0 ("0"), past 2^53
  }

  /** A number or null. */
  numOrNull(n: number | null): void {
    if (n === null) this.put(NULL);
    else this.num(n);
  }

  #small(n: number): void {
    let len = 1;
    for (let t = n; t >= 10; t = (t / 10) | 0) len++;
    const buf = this.buf;
    let at = this.at + len;
    this.at = at;
    do {
      const q = (n / 10) | 0;
      buf[--at] = ZERO + (n - q * 10);
      n = q;
    } while (n > 0);
  }

  #large(n: number): void {
    let len = 1;
    for (let t = n; t >= 10; t = Math.floor(t / 10)) len++;
    const buf = this.buf;
    let at = this.at + len;
    this.at = at;
    do {
      const q = Math.floor(n / 10);
      buf[--at] = ZERO + (n - q * 10);
      n = q;
    } while (n > 0);
  }
}

const NULL = utf8("null");
