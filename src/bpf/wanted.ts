/**
 * The sockets whose holder netflow waits for, kept in the kernel's
 * `holders_wanted` map so that a holders iterator run writes rows only for
 * them and for listeners (bpf/iter.bpf.h): on a host with 200,000 sockets
 * held, a run then gives a few rows instead of 200,000. The map follows the
 * set asked for with at most one batched delete and one batched update per
 * run (what changed since the last). `holders_every` set makes a run write
 * every socket's row: asked for by the start snapshot, and used when more
 * sockets wait than the map takes.
 *
 * @module
 */
import { check, libbpf, strerror } from "../ffi/libbpf.ts";

export class WantedSockets {
  readonly #wantedFd: number;
  readonly #everyFd: number;
  readonly #max: number;
  /** The cookies in the kernel's map now. */
  readonly #inMap = new Set<number>();
  #every = false;
  #warned = false;

  /** `wantedFd`: holders_wanted (u64 cookie -> u8), `max` its entries; `everyFd`: holders_every. */
  constructor(wantedFd: number, everyFd: number, max: number) {
    this.#wantedFd = wantedFd;
    this.#everyFd = everyFd;
    this.#max = max;
  }

  /** How many cookies the kernel's map holds now. */
  get size(): number {
    return this.#inMap.size;
  }

  /** Whether the next run writes every socket's row. */
  get every(): boolean {
    return this.#every;
  }

  /** The next runs write rows for `cookies` (and listeners); null: for every socket. */
  set(cookies: ReadonlySet<number> | null): void {
    if (cookies === null || cookies.size > this.#max) {
      this.#setEvery(true);
      return;
    }
    const gone: number[] = [], added: number[] = [];
    for (const c of this.#inMap) if (!cookies.has(c)) gone.push(c);
    for (const c of cookies) if (!this.#inMap.has(c)) added.push(c);
    if (gone.length > 0) {
      this.#batch(gone, false);
      for (const c of gone) this.#inMap.delete(c);
    }
    const fit = added.length === 0 ? 0 : this.#batch(added, true);
    for (let i = 0; i < fit; i++) this.#inMap.add(added[i]!);
    // The map refused some (full, out of memory, or the batch refused whole): every row this time.
    this.#setEvery(fit < added.length);
  }

  /** Deletes or adds `cookies` in one call; how many it took (an add stops where the map is full). */
  #batch(cookies: number[], add: boolean): number {
    const keys = new BigUint64Array(cookies.length);
    for (let i = 0; i < cookies.length; i++) keys[i] = BigInt(cookies[i]!);
    const count = new Uint32Array([cookies.length]);
    const lib = libbpf();
    const rc = add
      ? lib.bpf_map_update_batch(
        this.#wantedFd,
        keys,
        new Uint8Array(cookies.length).fill(1),
        count,
        null,
      )
      : lib.bpf_map_delete_batch(this.#wantedFd, keys, count, null);
    if (rc >= 0) return cookies.length;
    if (add) {
      // The kernel writes the count back only from its per-key loop: a batch refused before
      // it (EPERM, ENOMEM, EINVAL) leaves it as given, and added nothing.
      const took = count[0]! < cookies.length ? count[0]! : 0;
      if (took === 0 && !this.#warned) {
        this.#warned = true;
        console.error(
          `netflow: the kernel took none of the sockets waiting for their owner into its ` +
            `filter (${strerror(-rc)}): owner lookups read every socket while it refuses`,
        );
      }
      return took;
    }
    // A delete that stopped early (a key not there: cannot be, the mirror says what is): one by one.
    for (const key of keys) libbpf().bpf_map_delete_elem(this.#wantedFd, new BigUint64Array([key]));
    return cookies.length;
  }

  #setEvery(every: boolean): void {
    if (every === this.#every) return;
    check(
      "Update map",
      libbpf().bpf_map_update_elem(
        this.#everyFd,
        new Uint32Array([0]),
        new Uint32Array([every ? 1 : 0]),
        0n,
      ),
    );
    this.#every = every;
  }
}
