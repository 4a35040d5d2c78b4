import assert from "node:assert/strict";
import { BPF_NAMES, encodeConfig } from "../../src/bpf/loader.ts";
import { KIND_DNS, KIND_TCP, LAYOUT, RecordDecoder } from "../../src/bpf/records.ts";

const OBJECT = new URL("../../bpf/netflow.bpf.o", import.meta.url).pathname;

/** The object's BTF as bpftool prints it. */
async function btfDump(): Promise<string> {
  const out = await new Deno.Command("bpftool", { args: ["btf", "dump", "file", OBJECT] }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
}

/** A struct's size and member byte offsets, from the BTF dump. */
function btfStruct(dump: string, name: string): { size: number; fields: Record<string, number> } {
  const lines = dump.split("\n");
  const at = lines.findIndex((l) => l.includes(`STRUCT '${name}' size=`));
  assert.ok(at >= 0, `struct ${name} is not in the object's BTF`);
  const [, size, vlen] = /size=(\d+) vlen=(\d+)/.exec(lines[at]!)!;
  const fields: Record<string, number> = {};
  for (const line of lines.slice(at + 1, at + 1 + Number(vlen))) {
    const [, field, bits] = /'(\w+)' type_id=\d+ bits_offset=(\d+)/.exec(line)!;
    fields[field!] = Number(bits) / 8;
  }
  return { size: Number(size), fields };
}

Deno.test("records.ts offsets match the BTF of the built object", async () => {
  const dump = await btfDump();
  for (const [name, layout] of Object.entries(LAYOUT)) {
    assert.deepEqual(
      btfStruct(dump, name),
      { size: layout.size, fields: { ...layout.fields } },
      name,
    );
  }
});

Deno.test("every program and map name TypeScript uses is in the object", async () => {
  const dump = await btfDump();
  for (const program of Object.values(BPF_NAMES.programs)) {
    assert.match(dump, new RegExp(`FUNC '${program}' type_id=\\d+ linkage=global`), program);
  }
  const maps = dump.slice(dump.indexOf("DATASEC '.maps'"));
  for (const map of Object.values(BPF_NAMES.maps)) {
    assert.match(maps, new RegExp(`VAR '${map}'`), map);
  }
});

Deno.test("nf_config is the only .rodata variable, at offset 0, as encodeConfig writes it", async () => {
  const dump = await btfDump();
  const section = dump.slice(dump.indexOf("DATASEC '.rodata'")).split("\n").slice(0, 3);
  assert.match(section[0]!, /DATASEC '\.rodata' size=\d+ vlen=1$/);
  assert.match(
    section[1]!,
    new RegExp(`offset=0 size=${LAYOUT.nf_config.size} \\(VAR 'nf_config'\\)`),
  );
  assert.deepEqual([...encodeConfig({ forwardAll: true })], [1, 0, 0, 0, 0, 0, 0, 0]);
});

const T = LAYOUT.nf_tcp.fields;

function tcpRecord(): DataView {
  const view = new DataView(new ArrayBuffer(LAYOUT.nf_tcp.size + 8));
  const at = 8; // records need not start at offset 0
  view.setBigUint64(at + 0, 5_000n, true); // ts_ns: 5 µs
  view.setBigUint64(at + 8, 99n, true); // cgroup_id
  view.setUint8(at + 16, KIND_TCP);
  view.setUint8(at + 17, 1); // egress
  view.setUint8(at + 18, 6);
  const bytes = new Uint8Array(view.buffer);
  bytes.set([0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 1], at + T.saddr);
  bytes.set([...Array(10).fill(0), 0xff, 0xff, 192, 0, 2, 7], at + T.daddr);
  view.setUint32(at + T.seq, 0xfffffff0, true);
  view.setUint16(at + T.sport, 40000, true);
  view.setUint16(at + T.dport, 443, true);
  view.setUint16(at + T.payload_len, 12, true);
  view.setUint8(at + T.tcp_flags, 0x11);
  view.setUint8(at + T.sock_flags, 1 | 2 | 8);
  view.setUint8(at + T.sock_state, 1);
  view.setBigUint64(at + T.bytes_acked, 5n << 32n, true);
  view.setUint32(at + T.snd_nxt, 77, true);
  view.setUint32(at + T.pid, 1234, true);
  view.setUint32(at + T.uid, 1000, true);
  bytes.set(new TextEncoder().encode("curl"), at + T.comm);
  return view;
}

Deno.test("RecordDecoder decodes a TCP record field by field", () => {
  const p = new RecordDecoder(1).decode(tcpRecord(), 8, LAYOUT.nf_tcp.size);
  assert.ok(p?.kind === "tcp");
  assert.deepEqual(
    [
      p.timeUs,
      p.cgroupId,
      p.direction,
      p.family,
      p.src,
      p.dst,
      p.srcPort,
      p.dstPort,
      p.seq,
      p.flags,
    ],
    [6, 99, "egress", 6, "2001:db8::1", "192.0.2.7", 40000, 443, 0xfffffff0, 0x11],
  );
  assert.deepEqual([p.payloadLength, p.sockState, p.localPortListens, p.listener], [
    12,
    1,
    true,
    false,
  ]);
  assert.deepEqual(p.owner, { pid: 1234, uid: 1000, comm: "curl" });
  assert.equal(p.counters?.bytesAcked, 5 * 2 ** 32);
  assert.equal(p.counters?.sndNxt, 77);
});

Deno.test("RecordDecoder rejects records shorter than their layout or of unknown kind", () => {
  const decoder = new RecordDecoder(0);
  const view = tcpRecord();
  assert.equal(decoder.decode(view, 8, LAYOUT.nf_tcp.size - 1), undefined);
  assert.equal(decoder.decode(view, 8, 10), undefined);
  view.setUint8(8 + 16, 9);
  assert.equal(decoder.decode(view, 8, LAYOUT.nf_tcp.size), undefined);
});

Deno.test("RecordDecoder copies a DNS payload and never reads past the record", () => {
  const D = LAYOUT.nf_dns.fields;
  const view = new DataView(new ArrayBuffer(LAYOUT.nf_dns.size));
  view.setUint8(16, KIND_DNS);
  view.setUint16(D.payload_len, 3000, true);
  view.setUint16(D.captured_len, 1280, true);
  view.setUint8(D.transport, 17);
  new Uint8Array(view.buffer).fill(7, D.payload);
  const m = new RecordDecoder(0).decode(view, 0, LAYOUT.nf_dns.size);
  assert.ok(m?.kind === "dns");
  assert.deepEqual([m.length, m.payload.length, m.transport, m.payload[0]], [3000, 1280, "udp", 7]);
  // A record cut short: the captured length claims more than there is.
  const short = new RecordDecoder(0).decode(view, 0, D.payload + 10);
  assert.equal(short?.kind === "dns" && short.payload.length, 10);
});
