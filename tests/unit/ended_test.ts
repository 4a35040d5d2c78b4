import assert from "node:assert/strict";
import fc from "npm:fast-check@3.23.2";
import { ENDED_KEEP_NS, EndedKeys } from "../../src/flow/ended.ts";

const NETNS = 4026531840, BEGIN = 1_000_000_000_000;

Deno.test("EndedKeys keeps the newest keys past its count bound, over many evictions", () => {
  const keys = new EndedKeys(1000);
  for (let i = 0; i < 300_000; i++) keys.add(NETNS, i, BEGIN, i);
  assert.equal(keys.size, 1000);
  // Positive control: the newest thousand are all kept.
  for (let i = 299_000; i < 300_000; i++) assert.ok(keys.has(NETNS, i, BEGIN), `${i} forgotten`);
  for (const i of [0, 1, 150_000, 298_999]) assert.ok(!keys.has(NETNS, i, BEGIN), `${i} kept`);
});

Deno.test("EndedKeys forgets keys older than ENDED_KEEP_NS, and none younger", () => {
  const keys = new EndedKeys(1 << 20);
  for (let i = 0; i < 5000; i++) keys.add(NETNS, i, BEGIN, i * 1e9);
  // At 4999 s: nothing is older than 600 s yet... except what ended before 4399 s.
  assert.ok(!keys.has(NETNS, 4398, BEGIN));
  assert.ok(keys.has(NETNS, 4399, BEGIN) && keys.has(NETNS, 4999, BEGIN));
  assert.equal(keys.size, 601);
  keys.add(NETNS, 1e6, BEGIN, 4999e9 + ENDED_KEEP_NS);
  const kept = [keys.has(NETNS, 4999, BEGIN), keys.has(NETNS, 1e6, BEGIN), keys.size];
  assert.deepEqual(kept, [true, true, 2]);
});

Deno.test("EndedKeys keeps a key added again until its later place comes", () => {
  const keys = new EndedKeys(3);
  for (const [cookie, t] of [[1, 1], [2, 2], [1, 3], [3, 4], [4, 5]] as const) {
    keys.add(NETNS, cookie, BEGIN, t);
  }
  assert.deepEqual([1, 2, 3, 4].map((c) => keys.has(NETNS, c, BEGIN)), [true, false, true, true]);
});

Deno.test("EndedKeys tells apart ended flows that share a cookie, by namespace and begin time", () => {
  const keys = new EndedKeys(4);
  // One cookie in two namespaces, and a socket that connected again (another begin time).
  const ids = [[1, 7, 100], [2, 7, 100], [1, 7, 200]] as const;
  ids.forEach(([netns, cookie, begin], i) => keys.add(netns, cookie, begin, i));
  for (const [netns, cookie, begin] of ids) assert.ok(keys.has(netns, cookie, begin));
  assert.ok(!keys.has(3, 7, 100) && !keys.has(1, 7, 300) && !keys.has(1, 8, 100));
  // Two more: the oldest (netns 1, begin 100) goes, the rest of its cookie stays.
  keys.add(1, 8, 100, 3);
  keys.add(1, 9, 100, 4);
  assert.deepEqual(ids.map(([n, c, b]) => keys.has(n, c, b)), [false, true, true]);
  assert.equal(keys.size, 4);
});

/** The keys as a plain list in the order they ended (the model: what EndedKeys must answer). */
class ModelKeys {
  readonly #max: number;
  #list: { netns: number; cookie: number; begin: number; at: number }[] = [];
  constructor(max: number) {
    this.#max = max;
  }
  has(netns: number, cookie: number, begin: number): boolean {
    return this.#list.some((k) => k.netns === netns && k.cookie === cookie && k.begin === begin);
  }
  get size(): number {
    return this.#list.length;
  }
  add(netns: number, cookie: number, begin: number, at: number): void {
    this.#list = this.#list.filter((k) =>
      !(k.netns === netns && k.cookie === cookie && k.begin === begin)
    );
    this.#list.push({ netns, cookie, begin, at });
    // The oldest in the order they ended go first: past the count, or older than ENDED_KEEP_NS.
    while (this.#list.length > this.#max || this.#list[0]!.at < at - ENDED_KEEP_NS) {
      this.#list.shift();
    }
  }
}

Deno.test("EndedKeys answers as a plain list of keys does, over random adds (shared cookies, repeats, time jumps, any bound)", () => {
  // Few values of each part: cookies shared across namespaces and begin times, keys added again;
  // cookies past 2^32 and near 2^53 (the table hashes both halves); ends far apart in time.
  // Many cookies too: past 1,024 keys kept, the ring grows with keys in it.
  const cookie = fc.oneof(
    fc.constantFrom(0, 1, 2, 3, 7, 1024, 2 ** 32 + 1, 2 ** 53 - 2, 4_026_531_840),
    fc.integer({ min: 0, max: 5000 }),
  );
  const add = fc.tuple(
    fc.constantFrom(1, 2, 4_026_531_840),
    cookie,
    fc.constantFrom(100, 200),
    fc.oneof(
      { weight: 200, arbitrary: fc.integer({ min: 0, max: 5 }) },
      { weight: 1, arbitrary: fc.constant(ENDED_KEEP_NS / 2) },
    ),
  );
  fc.assert(
    // Bounds below and past the ring's first 1,024 entries: it wraps, and it grows with keys in it.
    fc.property(
      fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 900, max: 3000 })),
      fc.array(add, { maxLength: 4000, size: "max" }),
      (max, adds) => {
        const keys = new EndedKeys(max), model = new ModelKeys(max);
        let now = 0;
        for (const [netns, c, begin, step] of adds) {
          now += step;
          keys.add(netns, c, begin, now);
          model.add(netns, c, begin, now);
          assert.equal(keys.size, model.size);
        }
        for (const [netns, c, begin] of adds) {
          assert.equal(
            keys.has(netns, c, begin),
            model.has(netns, c, begin),
            `${netns} ${c} ${begin}`,
          );
        }
        assert.ok(!keys.has(3, 1, 100), "an identity never added");
      },
    ),
    { numRuns: 150 },
  );
});
