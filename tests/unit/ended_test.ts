import assert from "node:assert/strict";
import { ENDED_KEEP_NS, EndedKeys } from "../../src/flow/ended.ts";

Deno.test("EndedKeys keeps the newest keys past its count bound, over many evictions", () => {
  const keys = new EndedKeys(1000);
  for (let i = 0; i < 300_000; i++) keys.add(`k${i}`, i);
  assert.equal(keys.size, 1000);
  // Positive control: the newest thousand are all kept.
  for (let i = 299_000; i < 300_000; i++) assert.ok(keys.has(`k${i}`), `k${i} forgotten`);
  for (const i of [0, 1, 150_000, 298_999]) assert.ok(!keys.has(`k${i}`), `k${i} kept`);
});

Deno.test("EndedKeys forgets keys older than ENDED_KEEP_NS, and none younger", () => {
  const keys = new EndedKeys(1 << 20);
  for (let i = 0; i < 5000; i++) keys.add(`k${i}`, i * 1e9);
  // At 4999 s: nothing is older than 600 s yet... except what ended before 4399 s.
  assert.ok(!keys.has("k4398"));
  assert.ok(keys.has("k4399") && keys.has("k4999"));
  assert.equal(keys.size, 601);
  keys.add("late", 4999e9 + ENDED_KEEP_NS);
  assert.deepEqual([keys.has("k4999"), keys.has("late"), keys.size], [true, true, 2]);
});

Deno.test("EndedKeys keeps a key added again until its later place comes", () => {
  const keys = new EndedKeys(3);
  for (const [key, t] of [["a", 1], ["b", 2], ["a", 3], ["c", 4], ["d", 5]] as const) {
    keys.add(key, t);
  }
  assert.deepEqual(["a", "b", "c", "d"].map((k) => keys.has(k)), [true, false, true, true]);
});
