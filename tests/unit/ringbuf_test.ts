import assert from "node:assert/strict";
import fc from "npm:fast-check@3.23.2";
import { LOW_WORD } from "../../src/ffi/ringbuf.ts";

// The mmap reader tells a ring's backlog from the low 32 bits of its producer and consumer
// positions (64-bit counters the kernel keeps), read where this machine keeps them.
Deno.test("ring positions differ exactly when their low 32 bits do (the producer never 2^32 ahead)", () => {
  const page = new ArrayBuffer(16);
  const [consumer, producer] = [new BigUint64Array(page, 0, 1), new BigUint64Array(page, 8, 1)];
  const low = [new Uint32Array(page, LOW_WORD * 4, 1), new Uint32Array(page, 8 + LOW_WORD * 4, 1)];
  fc.assert(
    fc.property(
      fc.bigInt({ min: 0n, max: 2n ** 53n }),
      fc.oneof(fc.constant(0n), fc.bigInt({ min: 1n, max: 2n ** 32n - 1n })),
      (at, ahead) => {
        consumer[0] = at;
        producer[0] = at + ahead;
        assert.equal(low[1]![0] !== low[0]![0], ahead > 0n);
      },
    ),
  );
  consumer[0] = 0x1_0000_0005n;
  assert.equal(low[0]![0], 5);
});
