import assert from "node:assert/strict";
import { RUNTIME_V8_FLAGS } from "../../build.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("every way netflow is run passes build.ts's V8 flags", () => {
  // build.ts's compile and the tests' launcher import RUNTIME_V8_FLAGS; these repeat it.
  const repeats = {
    "netflow": Deno.readTextFileSync(`${ROOT}netflow`),
    "deno.json start task": JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks.start
      .command,
    "tests/kernels/guest_check.py": Deno.readTextFileSync(`${ROOT}tests/kernels/guest_check.py`),
  };
  for (const [where, text] of Object.entries(repeats)) {
    const flags = [...(text as string).matchAll(/--v8-flags=[^\s"']+/g)].map((m) => m[0]);
    assert.deepEqual(flags, [RUNTIME_V8_FLAGS], where);
  }
});
