/**
 * User-space cost per flow, without the kernel: ring records of loopback
 * connections (the control packets both endpoints' hooks see) through the
 * decoder, the flow table and the JSON formatter.
 *
 *   deno bench --allow-all bench/pipeline_bench.ts
 *
 * @module
 */
import { LAYOUT, RecordDecoder, TcpFlags } from "../src/bpf/records.ts";
import { FlowTable } from "../src/flow/state.ts";
import { formatJson } from "../src/output/json.ts";

const T = LAYOUT.nf_tcp.fields;
const { SYN, ACK, FIN } = TcpFlags;
const CONNECTIONS = 1000;

/** The records of CONNECTIONS loopback connections, back to back as in the ring. */
function records(): { view: DataView; offsets: number[] } {
  const packets: [from: number, to: number, flags: number, egress: boolean][] = [];
  for (let i = 0; i < CONNECTIONS; i++) {
    const c = 30000 + i, s = 8080;
    for (const egress of [true, false]) packets.push([c, s, SYN, egress]);
    for (const egress of [true, false]) packets.push([s, c, SYN | ACK, egress]);
    for (const egress of [true, false]) packets.push([s, c, FIN | ACK, egress]);
    for (const egress of [true, false]) packets.push([c, s, FIN | ACK, egress]);
  }
  const size = LAYOUT.nf_tcp.size;
  const view = new DataView(new ArrayBuffer(packets.length * size));
  const bytes = new Uint8Array(view.buffer);
  const offsets: number[] = [];
  packets.forEach(([from, to, flags, egress], i) => {
    const at = i * size;
    offsets.push(at);
    view.setBigUint64(at, BigInt(i) * 1000n, true);
    view.setBigUint64(at + 8, 4242n, true);
    view.setUint8(at + 16, 1);
    view.setUint8(at + 17, egress ? 1 : 0);
    view.setUint8(at + 18, 4);
    bytes.set([127, 0, 0, 1], at + T.saddr);
    bytes.set([127, 0, 0, 1], at + T.daddr);
    view.setUint16(at + T.sport, from, true);
    view.setUint16(at + T.dport, to, true);
    view.setUint8(at + T.tcp_flags, flags);
    view.setUint8(at + T.sock_flags, flags & FIN ? 1 | 2 : 2);
    view.setUint8(at + T.sock_state, 1);
    view.setUint32(at + T.pid, 1234, true);
    bytes.set(new TextEncoder().encode("wrk"), at + T.comm);
  });
  return { view, offsets };
}

const { view, offsets } = records();
const decoder = new RecordDecoder(1_700_000_000_000_000);

Deno.bench(`decode ${offsets.length} records (${CONNECTIONS} loopback connections)`, () => {
  for (const at of offsets) decoder.decode(view, at, LAYOUT.nf_tcp.size);
});

Deno.bench(`decode + flow table + JSON for ${CONNECTIONS} loopback connections`, () => {
  const table = new FlowTable();
  let out = "";
  for (const at of offsets) {
    const p = decoder.decode(view, at, LAYOUT.nf_tcp.size)!;
    const e = p.kind === "tcp" ? table.onPacket(p) : undefined;
    if (e) out += formatJson(e) + "\n";
  }
  if (out.length === 0) throw new Error("no events");
});
