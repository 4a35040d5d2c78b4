/**
 * User-space cost per flow, without the kernel: ring records of loopback
 * connections (the control packets both endpoints' hooks see) through the
 * decoder, the flow table and the JSON formatter.
 *
 *   deno bench --allow-all bench/pipeline_bench.ts
 *
 * @module
 */
import { RecordDecoder } from "../src/bpf/records.ts";
import { LAYOUT } from "../src/bpf/layout.ts";
import { FlowTable } from "../src/flow/state.ts";
import { jsonFormatter } from "../src/output/json.ts";
import { loopbackRecords } from "./lib/pipeline.ts";

const CONNECTIONS = 1000;

const { view, offsets } = loopbackRecords(CONNECTIONS);
const decoder = new RecordDecoder(1_700_000_000_000_000);

Deno.bench(`decode ${offsets.length} records (${CONNECTIONS} loopback connections)`, () => {
  for (const at of offsets) decoder.decode(view, at, LAYOUT.nf_flow.size);
});

Deno.bench(`decode + flow table + JSON for ${CONNECTIONS} loopback connections`, () => {
  const table = new FlowTable();
  const json = jsonFormatter(); // with the Community ID, as the CLI writes it
  let out = "";
  for (const at of offsets) {
    const r = decoder.decode(view, at, LAYOUT.nf_flow.size)!;
    const e = r.kind === "begin" || r.kind === "end" ? table.onRecord(r) : undefined;
    if (e) out += json(e) + "\n";
  }
  if (out.length === 0) throw new Error("no events");
});
