/**
 * Whether the start snapshot's buffers can be collected once handed on
 * (tests/unit/snapshot_test.ts; run with --v8-flags=--expose-gc): two
 * namespaces' buffers through a SnapshotFeed, a full collection midway (one
 * read) and at the end; prints which buffers were collected each time.
 *
 * @module
 */
import { KIND_BEGIN } from "../../src/bpf/layout.ts";
import { RecordDecoder } from "../../src/bpf/records.ts";
import { SnapshotFeed } from "../../src/flow/snapshot.ts";
import { snapshotPart } from "../helpers/records.ts";

const gc = (globalThis as unknown as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");

const decoder = new RecordDecoder(0);
const refs: WeakRef<ArrayBufferLike>[] = [];
// Two namespaces' buffers of two begins each; the feed holds the only references.
const feed = new SnapshotFeed(
  [1n, 3n].map((cookie) => {
    const part = snapshotPart([{ kind: KIND_BEGIN, cookie }, {
      kind: KIND_BEGIN,
      cookie: cookie + 1n,
    }]);
    refs.push(new WeakRef(part.buffer));
    return part;
  }),
  decoder,
);
/** Which buffers were collected, after a full collection in a later task (WeakRefs clear then). */
async function collected(): Promise<boolean[]> {
  await new Promise((r) => setTimeout(r, 0));
  gc!();
  await new Promise((r) => setTimeout(r, 0));
  return refs.map((r) => r.deref() === undefined);
}
const handed = feed.next(2).length;
const midway = await collected();
while (!feed.done) feed.next(2);
const done = await collected();
// The decoder and the feed are still alive: what they hold is what is measured.
console.log(JSON.stringify({ handed, midway, done, alive: decoder !== undefined && feed.done }));
