/**
 * A clock read once every so many calls: the monitor times the owner waits
 * of a drain's records (milliseconds long) with it, and a read costs a tenth
 * of a µs, as much as a record's whole dispatch.
 *
 * @module
 */

/** Calls that share one read unless told: well under a millisecond of a drain's work. */
const EVERY = 64;

export class SampledClock {
  readonly #every: number;
  readonly #read: () => number;
  #calls = 0;
  #last = 0;

  /** `every`: calls that share one read of `read` (ms). */
  constructor(every = EVERY, read: () => number = () => performance.now()) {
    this.#every = every;
    this.#read = read;
  }

  /** The next call reads the clock (a drain begins). */
  restart(): void {
    this.#calls = 0;
  }

  /** The time, read at the first call and then every `every` calls. */
  now(): number {
    if (this.#calls++ % this.#every === 0) this.#last = this.#read();
    return this.#last;
  }
}
