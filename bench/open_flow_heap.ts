/**
 * Heap bytes one open flow holds in netflow's user-space path (goal 3 of
 * issue 24): the begins of N loopback connections (2N flows) through the
 * monitor's path (bench/lib/pipeline.ts: table, enrichers, the JSON sink's
 * Community IDs), the V8 heap measured after a full collection before and
 * after, all flows still open.
 *
 *   deno run -A --v8-flags=--expose-gc bench/open_flow_heap.ts [N]
 *
 * @module
 */
import { KIND_BEGIN, LAYOUT } from "../src/bpf/layout.ts";
import { loopbackRecords, MonitorPath } from "./lib/pipeline.ts";

const N = Number(Deno.args[0] ?? 50_000);
const gc = (globalThis as unknown as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");
const dir = Deno.makeTempDirSync({ prefix: "netflow-open-heap-" });
try {
  const all = loopbackRecords(N, { cgroupId: Deno.statSync(dir).ino! });
  // Only the begins: every flow stays open.
  const kind = (at: number) => all.view.getUint8(at + LAYOUT.nf_header.fields.kind);
  const begins = { view: all.view, offsets: all.offsets.filter((at) => kind(at) === KIND_BEGIN) };
  let lines = 0;
  const path = new MonitorPath(dir, (bytes) => {
    for (const b of bytes) if (b === 10) lines++;
    return true;
  });
  const used = () => {
    gc();
    gc();
    return Deno.memoryUsage().heapUsed;
  };
  const before = used();
  for (let i = 0; i < begins.offsets.length; i += 2048) {
    path.drain(begins, i, Math.min(i + 2048, begins.offsets.length));
  }
  const after = used();
  const flows = begins.offsets.length;
  if (lines !== flows) throw new Error(`${lines} begins written of ${flows}`);
  console.log(
    `${flows} open flows: ${((after - before) / flows).toFixed(0)} heap bytes per open flow`,
  );
  // Keeps the path (and what it holds) alive until measured.
  if (path === undefined) console.log("");
} finally {
  Deno.removeSync(dir);
}
