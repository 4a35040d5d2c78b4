import assert from "node:assert/strict";
import { exitValues } from "../helpers/xlated.ts";

// Dumps in bpftool's text form (`bpftool prog dump xlated id N`), cut down.
const OK = `int prog(struct __sk_buff * skb):
; int prog(struct __sk_buff *skb)
   0: (bf) r6 = r1
   1: (18) r1 = map[id:7]
   3: (85) call bpf_map_lookup_elem#1
   4: (15) if r0 == 0x0 goto pc+2
   5: (b4) w0 = 1
   6: (05) goto pc+1
   7: (b7) r0 = 1
   8: (95) exit
   9: (b4) w0 = 0
  10: (95) exit
`;

Deno.test("exitValues: every path of the main function sets r0 = 1 (subprogram exits not counted)", () => {
  // 9-10 is a subprogram (reached by no jump): its `r0 = 0` is its caller's business.
  assert.deepEqual([...exitValues(OK)], [[8, 1]]);
});

Deno.test("exitValues: a jump that skips r0 = 1 to land on the exit is caught", () => {
  // Each exit here is preceded by r0 = 1, yet the path 2 -> 5 exits with r0 from the helper.
  const skip = `   0: (85) call bpf_get_prandom_u32#7
   1: (15) if r0 == 0x0 goto pc+3
   2: (b7) r0 = 1
   3: (95) exit
   4: (b7) r0 = 1
   5: (95) exit
`;
  assert.deepEqual([...exitValues(skip)].sort(), [[3, 1], [5, "unknown"]]);
  const zero = OK.replace("   7: (b7) r0 = 1", "   7: (b7) r0 = 0");
  assert.deepEqual([...exitValues(zero)], [[8, "unknown"]]);
  const load = OK.replace("   7: (b7) r0 = 1", "   7: (61) r0 = *(u32 *)(r6 +0)");
  assert.deepEqual([...exitValues(load)], [[8, "unknown"]]);
});
