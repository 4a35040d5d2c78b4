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
import { KIND_BEGIN, KIND_END, LAYOUT } from "../src/bpf/layout.ts";
import { FlowTable } from "../src/flow/state.ts";
import { jsonFormatter } from "../src/output/json.ts";

const F = LAYOUT.nf_flow.fields;
const CONNECTIONS = 1000;

/** The records of CONNECTIONS loopback connections (both endpoints' begin and end), as in the ring. */
function records(): { view: DataView; offsets: number[] } {
  const list: [local: number, remote: number, kind: number, outgoing: boolean, cookie: number][] =
    [];
  for (let i = 0; i < CONNECTIONS; i++) {
    const c = 30000 + i, s = 8080;
    list.push([c, s, KIND_BEGIN, true, 2 * i + 1], [s, c, KIND_BEGIN, false, 2 * i + 2]);
    list.push([s, c, KIND_END, false, 2 * i + 2], [c, s, KIND_END, true, 2 * i + 1]);
  }
  const size = LAYOUT.nf_flow.size;
  const view = new DataView(new ArrayBuffer(list.length * size));
  const bytes = new Uint8Array(view.buffer);
  const offsets: number[] = [];
  list.forEach(([local, remote, kind, outgoing, cookie], i) => {
    const at = i * size;
    offsets.push(at);
    view.setBigUint64(at, BigInt(i) * 1000n, true);
    view.setBigUint64(at + 8, 4242n, true);
    view.setUint8(at + 16, kind);
    view.setUint8(at + 18, 4);
    view.setBigUint64(at + F.cookie, BigInt(cookie), true);
    bytes.set([127, 0, 0, 1], at + F.laddr);
    bytes.set([127, 0, 0, 1], at + F.raddr);
    view.setUint16(at + F.lport, local, true);
    view.setUint16(at + F.rport, remote, true);
    view.setUint8(at + F.flags, (outgoing ? 1 | 8 : 0) | 4);
    view.setUint8(at + F.end, kind === KIND_END ? (outgoing ? 2 : 1) : 0);
    view.setBigUint64(at + F.bytes_acked, 101n, true);
    view.setBigUint64(at + F.bytes_received, 51n, true);
    view.setUint32(at + F.pid, 1234, true);
    bytes.set(new TextEncoder().encode("wrk"), at + F.comm);
  });
  return { view, offsets };
}

const { view, offsets } = records();
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
