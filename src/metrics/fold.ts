/**
 * One flow metric's series under a budget (src/metrics/flows.ts feeds them).
 *
 * A metric's series are grouped by label set (direction plus the configured
 * labels); a label set holds one cell per value of the event's own bounded
 * labels (`reason`, `closed_by`), a counter or a histogram. The exported
 * series, `other` included, never exceed the budget:
 *
 * - When a new series would not fit, the label set idle longest is folded:
 *   its counts move into the `other` label set of its direction (every
 *   configured label "other"; `direction`, `reason` and `closed_by` kept, they
 *   are bounded) and its series are no longer exported. Only a label set idle
 *   for at least {@link FoldOptions.foldIdleMs} is folded so; otherwise the
 *   newcomer is (a new label set is the least active: one flow so far), so a
 *   scan or a flood of new names cannot push out the series that are busy.
 * - A folded label set is remembered (a tombstone): until it has been quiet
 *   for {@link FoldOptions.expiryMs}, its counts go on to `other`. It does not
 *   come back as a new series from 0 while it is busy, which Prometheus would
 *   read as its counter going backwards.
 * - A label set with no new counts for {@link FoldOptions.expiryMs} expires:
 *   its counts move into `other` in the same way, without a tombstone.
 *
 * So each exported series only ever increases, `other` included, and the sum
 * over a metric's series is exactly the total since netflow started, at
 * every scrape but for the series new since the previous one: a new series
 * shows 0 at its first scrape and its counts from the next, since Prometheus
 * counts no increase before a series' first sample. The cost of moving: a
 * fold or expiry shows in `other` as one step of the moved counts
 * (`increase()` of `other` includes it); per-workload series stay exact.
 *
 * @module
 */

/** Budget, idle and expiry rules, shared by every flow metric. */
export interface FoldOptions {
  /** Series a metric exports at most, `other` included (a histogram's label set costs its buckets + 3). */
  budget: number;
  /** A label set must have been idle this long to be folded for a newcomer (ms). */
  foldIdleMs: number;
  /** A label set idle this long expires, and a tombstone this old is forgotten (ms). */
  expiryMs: number;
}

/** One exported sample of a family (labels in the metric's label order). */
export interface FamilySample {
  labels: Record<string, string>;
  value: number;
  suffix?: "_bucket" | "_sum" | "_count";
}

interface Cell {
  sub: readonly string[];
  /** Counter: [value]; histogram: per-bucket counts (not cumulative, +Inf last), then sum, count. */
  v: Float64Array;
  /** The scrape count when it was made: its first scrape shows it at 0. */
  born: number;
}

interface Entry {
  labels: readonly string[];
  cells: Map<string, Cell>;
  last: number;
}

const SEP = "\u0000";
/** Activity is recorded to this resolution (ms). */
const TOUCH_MS = 1000;

/** The key of a label set (its values joined). */
export function labelKey(labels: readonly string[]): string {
  return labels.join(SEP);
}

/** A metric's label sets, their cells, the `other` sets and the tombstones. */
export class FoldingFamily {
  readonly name: string;
  readonly #labelNames: readonly string[];
  readonly #subNames: readonly string[];
  /** Leading labels kept in `other` (direction). */
  readonly #keep: number;
  readonly #buckets: readonly number[] | undefined;
  /** Series per cell, and its values: 1 for a counter; buckets, +Inf, sum, count. */
  readonly #cellCost: number;
  readonly #o: FoldOptions;
  readonly #now: () => number;
  /** In order of last activity, oldest first (a touch moves an entry to the end). */
  readonly #entries = new Map<string, Entry>();
  readonly #other = new Map<string, Entry>();
  /** Folded label sets: key -> when last seen. Oldest first; at most budget of them. */
  readonly #tombstones = new Map<string, number>();
  #series = 0;
  /** Label sets folded into `other` (for room, newcomers included). */
  folded = 0;
  /** Label sets expired into `other`. */
  expired = 0;
  /** Scrapes so far (calls of samples()). */
  #scrapes = 0;

  /**
   * @param labelNames the label set's names, the first `keep` of them kept in `other`
   * @param subNames the bounded labels of each cell (`reason`, `closed_by`)
   * @param buckets a histogram's upper bounds (ascending, +Inf implied), or none for a counter
   */
  constructor(
    name: string,
    labelNames: readonly string[],
    keep: number,
    subNames: readonly string[],
    buckets: readonly number[] | undefined,
    options: FoldOptions,
    now: () => number = () => performance.now(),
  ) {
    this.name = name;
    this.#labelNames = labelNames;
    this.#keep = keep;
    this.#subNames = subNames;
    this.#buckets = buckets;
    this.#cellCost = buckets === undefined ? 1 : buckets.length + 3;
    this.#o = options;
    this.#now = now;
  }

  /** Series exported now, `other` included (never above the budget). */
  get series(): number {
    return this.#series;
  }

  /** Label sets held now (`other` not included). */
  get labelSets(): number {
    return this.#entries.size;
  }

  /** Adds `n` to a counter (`key`: {@link labelKey} of `labels`, when the caller keeps it). */
  add(labels: readonly string[], sub: readonly string[], n: number, key?: string): void {
    const cell = this.#cell(labels, sub, key ?? labelKey(labels));
    cell.v[0]! += n;
  }

  /** Records one observation in a histogram. */
  observe(labels: readonly string[], sub: readonly string[], x: number, key?: string): void {
    const buckets = this.#buckets!;
    const cell = this.#cell(labels, sub, key ?? labelKey(labels));
    let i = 0;
    while (i < buckets.length && x > buckets[i]!) i++;
    cell.v[i]! += 1;
    cell.v[buckets.length + 1]! += x;
    cell.v[buckets.length + 2]! += 1;
  }

  /** Moves label sets idle for the expiry time into `other` (before each scrape). */
  expire(): void {
    const now = this.#now();
    for (const [key, entry] of this.#entries) {
      if (now - entry.last < this.#o.expiryMs) break; // the rest are newer
      this.#moveToOther(key, entry);
      this.expired++;
    }
    for (const [key, last] of this.#tombstones) {
      if (now - last < this.#o.expiryMs) break;
      this.#tombstones.delete(key);
    }
  }

  /**
   * The exported samples (one scrape): label sets oldest activity first,
   * then `other`. A series made since the last scrape shows 0 this once:
   * Prometheus counts no increase before a series' first sample, so its
   * first counts would be lost to rate() and increase(); they show from the
   * next scrape.
   */
  samples(): FamilySample[] {
    const out: FamilySample[] = [];
    for (const e of this.#entries.values()) this.#emit(e, out);
    for (const e of this.#other.values()) this.#emit(e, out);
    this.#scrapes++;
    return out;
  }

  #emit(entry: Entry, out: FamilySample[]): void {
    for (const cell of entry.cells.values()) {
      const labels: Record<string, string> = {};
      this.#labelNames.forEach((n, i) => labels[n] = entry.labels[i]!);
      this.#subNames.forEach((n, i) => labels[n] = cell.sub[i]!);
      const buckets = this.#buckets;
      const k = cell.born === this.#scrapes ? 0 : 1; // new since the last scrape: 0 this once
      if (buckets === undefined) {
        out.push({ labels, value: k * cell.v[0]! });
        continue;
      }
      let cumulative = 0;
      for (let i = 0; i <= buckets.length; i++) {
        cumulative += cell.v[i]!;
        const le = i < buckets.length ? String(buckets[i]) : "+Inf";
        out.push({ labels: { ...labels, le }, value: k * cumulative, suffix: "_bucket" });
      }
      out.push({ labels, value: k * cell.v[buckets.length + 1]!, suffix: "_sum" });
      out.push({ labels, value: k * cell.v[buckets.length + 2]!, suffix: "_count" });
    }
  }

  /** The cell that takes this count: the label set's own, or its `other`. */
  #cell(labels: readonly string[], sub: readonly string[], key: string): Cell {
    const now = this.#now();
    const subKey = sub.length === 0 ? "" : sub.join(SEP);
    let entry = this.#entries.get(key);
    if (entry !== undefined) {
      // Touch: to the end of the activity order, at most once a second (the
      // order is kept to the second; folding and expiry count in minutes).
      if (now - entry.last >= TOUCH_MS) {
        this.#entries.delete(key);
        this.#entries.set(key, entry);
        entry.last = now;
      }
    } else {
      const tomb = this.#tombstones.get(key);
      if (tomb !== undefined) {
        this.#tombstones.delete(key);
        if (now - tomb < this.#o.expiryMs) {
          this.#tombstones.set(key, now); // still busy: stays folded
          return this.#otherCell(labels, sub, subKey);
        }
      }
      entry = { labels: [...labels], cells: new Map(), last: now };
      this.#entries.set(key, entry);
    }
    const cell = entry.cells.get(subKey);
    if (cell !== undefined) return cell;
    if (!this.#makeRoom(this.#cellCost, entry)) {
      if (entry.cells.size === 0) {
        // The newcomer is the least active: it folds, and stays folded while busy.
        this.#entries.delete(key);
        this.#tomb(key, now);
        this.folded++;
      }
      return this.#otherCell(labels, sub, subKey);
    }
    return this.#newCell(entry, sub, subKey);
  }

  #newCell(entry: Entry, sub: readonly string[], subKey: string): Cell {
    const cell = { sub: [...sub], v: new Float64Array(this.#cellCost), born: this.#scrapes };
    entry.cells.set(subKey, cell);
    this.#series += this.#cellCost;
    return cell;
  }

  /**
   * Folds label sets, idle longest first, until `cost` more series fit.
   * Only those idle for foldIdleMs; never `except`.
   */
  #makeRoom(cost: number, except: Entry): boolean {
    while (this.#series + cost > this.#o.budget) {
      if (!this.#foldIdlest(except, false)) return false;
    }
    return true;
  }

  /** Folds the idlest label set other than `except`; unless `force`, only one idle for foldIdleMs. */
  #foldIdlest(except: Entry | undefined, force: boolean): boolean {
    const now = this.#now();
    // `except` was just touched: it is last, so this looks at one or two entries.
    let victim: [string, Entry] | undefined;
    for (const kv of this.#entries) {
      if (kv[1] === except) continue;
      victim = kv;
      break;
    }
    if (victim === undefined || (!force && now - victim[1].last < this.#o.foldIdleMs)) {
      return false;
    }
    this.#moveToOther(victim[0], victim[1]);
    this.#tomb(victim[0], now);
    this.folded++;
    return true;
  }

  #tomb(key: string, now: number): void {
    this.#tombstones.set(key, now);
    // Bounded: the oldest tombstone is forgotten first (its label set may then come back from 0).
    if (this.#tombstones.size > this.#o.budget) {
      this.#tombstones.delete(this.#tombstones.keys().next().value!);
    }
  }

  /** Moves an entry's counts into its `other` and drops its series. */
  #moveToOther(key: string, entry: Entry): void {
    this.#entries.delete(key);
    this.#series -= entry.cells.size * this.#cellCost;
    for (const [subKey, cell] of entry.cells) {
      const into = this.#otherCell(entry.labels, cell.sub, subKey);
      for (let i = 0; i < cell.v.length; i++) into.v[i]! += cell.v[i]!;
    }
  }

  #otherCell(labels: readonly string[], sub: readonly string[], subKey: string): Cell {
    const kept = labels.map((v, i) => i < this.#keep ? v : "other");
    const key = kept.join(SEP);
    let entry = this.#other.get(key);
    if (entry === undefined) {
      entry = { labels: kept, cells: new Map(), last: 0 };
      this.#other.set(key, entry);
    }
    let cell = entry.cells.get(subKey);
    // `other` is never folded: a new cell of it makes room by force (at most
    // 2 directions x the bounded labels' values, well within any budget allowed).
    // A label set folded for it may make the cell itself.
    while (cell === undefined && this.#series + this.#cellCost > this.#o.budget) {
      if (!this.#foldIdlest(undefined, true)) break;
      cell = entry.cells.get(subKey);
    }
    return cell ?? this.#newCell(entry, sub, subKey);
  }
}
