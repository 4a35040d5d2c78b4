/**
 * The sockets whose holder netflow waits for, kept in the kernel's
 * `holders_wanted` map so that a holders iterator run writes rows only for
 * them and for listeners (bpf/iter.bpf.h): on a host with 200,000 sockets
 * held, a run then gives a few rows instead of 200,000. The map follows the
 * set asked for with at most one batched delete and one batched update per
 * run (what changed since the last). `holders_every` set makes a run write
 * every socket's row: asked for by the start snapshot, and used when more
 * sockets wait than the map takes or the kernel refuses some (counted in
 * {@link WantedSockets.stats}, said once).
 *
 * The mirror of the map is what the kernel holds: a cookie whose delete the
 * kernel refuses stays in it (and in the map, where it costs a row for a
 * socket nobody waits for) and is deleted again at the next run.
 *
 * @module
 */
import { check, libbpf, strerror } from "../ffi/libbpf.ts";

const ENOENT = 2;

/** What the filter could not do, so far. */
export interface WantedStats {
  /** Runs asked for some sockets that wrote every socket's row (too many, or the kernel refused). */
  unfiltered: number;
  /** Cookies the kernel refused to add to or delete from its map (a delete retried: once). */
  refused: number;
}

export class WantedSockets {
  readonly #wantedFd: number;
  readonly #everyFd: number;
  readonly #max: number;
  /** The cookies in the kernel's map now. */
  readonly #inMap = new Set<number>();
  #every = false;
  /** What was said on stderr already: a refused add, a refused delete. */
  readonly #said = { add: false, delete: false };
  readonly #stats: WantedStats = { unfiltered: 0, refused: 0 };
  /** Cookies whose delete the kernel refused, tried again at each run until it takes them. */
  readonly #stuck = new Set<number>();

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

  get stats(): WantedStats {
    return { ...this.#stats };
  }

  /** Whether the next run writes every socket's row. */
  get every(): boolean {
    return this.#every;
  }

  /** The next runs write rows for `cookies` (and listeners); null: for every socket. */
  set(cookies: ReadonlySet<number> | null): void {
    if (cookies === null || cookies.size > this.#max) {
      if (cookies !== null) this.#stats.unfiltered++;
      this.#setEvery(true);
      return;
    }
    const gone: number[] = [], added: number[] = [];
    for (const c of this.#inMap) if (!cookies.has(c)) gone.push(c);
    for (const c of cookies) if (!this.#inMap.has(c)) added.push(c);
    if (gone.length > 0) this.#delete(gone);
    const fit = added.length === 0 ? 0 : this.#add(added);
    for (let i = 0; i < fit; i++) this.#inMap.add(added[i]!);
    // The map refused some (full, out of memory, or the batch refused whole): every row this time.
    const refused = fit < added.length;
    if (refused) this.#stats.unfiltered++;
    this.#setEvery(refused);
  }

  /** Adds `cookies` in one call; how many it took (it stops where the map is full). */
  #add(cookies: number[]): number {
    const count = new Uint32Array([cookies.length]);
    const rc = libbpf().bpf_map_update_batch(
      this.#wantedFd,
      keys(cookies),
      new Uint8Array(cookies.length).fill(1),
      count,
      null,
    );
    if (rc >= 0) return cookies.length;
    // The kernel writes the count back only from its per-key loop: a batch refused before
    // it (EPERM, ENOMEM, EINVAL) leaves it as given, and added nothing.
    const took = count[0]! < cookies.length ? count[0]! : 0;
    this.#refused(cookies.length - took, "add", rc);
    return took;
  }

  /**
   * Deletes `cookies` from the map and the mirror; one the kernel refuses to
   * delete stays in both (the next run tries again). A key already gone
   * (ENOENT) is gone.
   */
  #delete(cookies: number[]): void {
    const count = new Uint32Array([cookies.length]);
    const rc = libbpf().bpf_map_delete_batch(this.#wantedFd, keys(cookies), count, null);
    let failed = 0, err = 0;
    for (const c of cookies) {
      if (rc < 0) {
        // Stopped early, or refused whole: one by one, each key's own answer.
        const one = libbpf().bpf_map_delete_elem(this.#wantedFd, new BigUint64Array([BigInt(c)]));
        if (one < 0 && one !== -ENOENT) {
          if (!this.#stuck.has(c)) failed++; // a retry is not counted again
          this.#stuck.add(c);
          err = one;
          continue;
        }
      }
      this.#inMap.delete(c);
      this.#stuck.delete(c);
    }
    if (failed > 0) this.#refused(failed, "delete", err);
  }

  /** Counts what the kernel refused; says it once for adds and once for deletes. */
  #refused(n: number, op: "add" | "delete", rc: number): void {
    if (n === 0) return;
    this.#stats.refused += n;
    if (this.#said[op]) return;
    this.#said[op] = true;
    console.error(
      op === "add"
        ? `netflow: the kernel refused ${n} socket(s) waiting for their owner into its ` +
          `filter (${strerror(-rc)}): owner lookups read every socket while it refuses ` +
          `(counted in netflow_owner_filter_refused_total)`
        : `netflow: the kernel refused to remove ${n} socket(s) from the owner filter ` +
          `(${strerror(-rc)}): runs write their rows until a later run removes them ` +
          `(counted in netflow_owner_filter_refused_total)`,
    );
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

function keys(cookies: readonly number[]): BigUint64Array {
  const out = new BigUint64Array(cookies.length);
  for (let i = 0; i < cookies.length; i++) out[i] = BigInt(cookies[i]!);
  return out;
}
