import assert from "node:assert/strict";
import type { NetflowEvent } from "../../src/events.ts";
import { lineFormat, StdoutSink } from "../../src/output/stdout.ts";
import { endEvent } from "../helpers/events.ts";

/** Everything a sink wrote, batch by batch (copied: the sink reuses its buffer). */
function capture(): { sink: StdoutSink; batches: Uint8Array[] } {
  const batches: Uint8Array[] = [];
  const sink = new StdoutSink(lineFormat("json"), (bytes) => {
    batches.push(bytes.slice());
    return true;
  });
  return { sink, batches };
}

Deno.test("stdout writes each batch as its lines in UTF-8, one newline each, whatever their size", () => {
  const names = ["a.test", "é.test", "名前.test", "\u{1F600}.test", "\ud800x"];
  // Past the buffer's first 64 KiB several times over, with names of 1 to 4 bytes a character.
  const batch: NetflowEvent[] = Array.from({ length: 3000 }, (_, i) =>
    endEvent({
      flow_id: `f-${i}`,
      dst_dns: names.slice(0, i % (names.length + 1)),
      comm: i % 7 === 0 ? "ü".repeat(15) : "curl",
    }));
  const { sink, batches } = capture();
  const line = lineFormat("json").line;
  for (const part of [batch, batch.slice(0, 3), [], batch.slice(10, 2000)]) {
    assert.equal(sink.write(part), true);
    const expected = new TextEncoder().encode(part.map((e) => `${line(e)}\n`).join(""));
    assert.deepEqual(batches.at(-1), expected);
  }
});
