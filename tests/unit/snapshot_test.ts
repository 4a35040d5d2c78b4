import assert from "node:assert/strict";
import { KIND_BEGIN, KIND_END, KIND_LISTEN, LAYOUT } from "../../src/bpf/layout.ts";
import { RecordDecoder } from "../../src/bpf/records.ts";
import { SnapshotFeed } from "../../src/flow/snapshot.ts";
import { FlowTable } from "../../src/flow/state.ts";
import { snapshotPart as part } from "../helpers/records.ts";
import { heapWorkload } from "../helpers/workload.ts";

const SIZE = LAYOUT.nf_flow.size;

const server: [string, number] = ["10.0.0.2", 80];
const client: [string, number] = ["10.0.0.1", 40000];

/** Two namespaces' buffers; the listener of port 80 in the second, after a batch's worth. */
function parts(): Uint8Array[] {
  return [
    part([
      { kind: KIND_BEGIN, cookie: 1n, outgoing: false, local: server, remote: client },
      { kind: KIND_END, cookie: 2n },
      { kind: KIND_BEGIN, cookie: 3n, outgoing: false, local: client, remote: server },
    ], 10),
    part([
      { kind: KIND_BEGIN, cookie: 4n, outgoing: true, local: client, remote: server },
      { kind: KIND_LISTEN, cookie: 5n, local: ["0.0.0.0", 80], remote: ["0.0.0.0", 0] },
      { kind: KIND_BEGIN, cookie: 6n, outgoing: false, local: server, remote: client },
    ]),
  ];
}

Deno.test("SnapshotFeed hands on the begins in bounded batches, lets each buffer go once read", () => {
  const bytes = parts();
  const feed = new SnapshotFeed(bytes, new RecordDecoder(0));
  assert.equal(feed.done, false);
  const first = feed.next(2);
  assert.deepEqual(first.map((r) => [r.kind, r.cookie]), [["begin", 1], ["begin", 3]]);
  // The first namespace's buffer is read (its torn tail ignored): let go.
  assert.deepEqual([bytes[0]!.length, bytes[1]!.length], [0, 3 * SIZE]);
  assert.deepEqual(feed.next(2).map((r) => r.cookie), [4, 6]);
  assert.equal(feed.done, true);
  assert.deepEqual(feed.next(2), []);
});

Deno.test("SnapshotFeed orients a batch by listeners that come in a later batch", () => {
  const feed = new SnapshotFeed(parts(), new RecordDecoder(0));
  const table = new FlowTable();
  const directions: string[] = [];
  while (!feed.done) {
    for (const e of table.onSnapshot(feed.next(1), feed.listens)) {
      directions.push(`${e.conn_direction} ${e.src_port}>${e.dst_port}`);
    }
  }
  assert.deepEqual(directions, [
    // Port 80 has a listener (read after it in the iterator's order): accepted.
    "incoming 40000>80",
    "outgoing 40000>80",
    "outgoing 40000>80",
    "incoming 40000>80",
  ]);
});

Deno.test("SnapshotFeed: once handed on, no buffer of the snapshot stays reachable (heap)", async () => {
  const r = await heapWorkload("snapshot_heap.ts") as { midway: boolean[]; done: boolean[] };
  // Positive control: midway, the namespace not yet read is still held (and the one read is not).
  assert.deepEqual(r.midway, [true, false]);
  assert.deepEqual(r.done, [true, true]);
});
