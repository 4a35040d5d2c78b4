import assert from "node:assert/strict";
import { BPF_NAMES } from "../../src/bpf/loader.ts";
import { encodeConfig } from "../../src/bpf/kernel_filter.ts";
import { RecordDecoder } from "../../src/bpf/records.ts";
import { KIND_DNS, KIND_END, KIND_PACKET, LAYOUT } from "../../src/bpf/layout.ts";
import { btfDump, btfStruct } from "../helpers/btf.ts";

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
  for (
    const program of [...Object.values(BPF_NAMES.programs), ...Object.values(BPF_NAMES.iterators)]
  ) {
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
  assert.deepEqual([...encodeConfig({ forwardAll: true, snapshotAll: false }).slice(0, 8)], [
    1,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
  ]);
  assert.deepEqual([...encodeConfig({ forwardAll: false, snapshotAll: true })].slice(0, 2), [
    0,
    1,
  ]);
  const withPid = encodeConfig({ forwardAll: false, snapshotAll: false, selfPid: 0x01020304 });
  assert.deepEqual([
    ...withPid.slice(LAYOUT.nf_config.fields.self_pid, LAYOUT.nf_config.fields.self_pid + 4),
  ], [4, 3, 2, 1]);
});

const F = LAYOUT.nf_flow.fields;

function flowRecord(): DataView {
  const view = new DataView(new ArrayBuffer(LAYOUT.nf_flow.size + 8));
  const at = 8; // records need not start at offset 0
  view.setBigUint64(at + 0, 5_000n, true); // ts_ns: 5 µs
  view.setBigUint64(at + 8, 99n, true); // cgroup_id
  view.setUint8(at + 16, KIND_END);
  view.setUint8(at + 18, 6);
  const bytes = new Uint8Array(view.buffer);
  bytes.set([0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 1], at + F.laddr);
  bytes.set([...Array(10).fill(0), 0xff, 0xff, 192, 0, 2, 7], at + F.raddr);
  view.setBigUint64(at + F.cookie, 12345n, true);
  view.setBigUint64(at + F.begin_ns, 2_000n, true);
  view.setBigUint64(at + F.bytes_acked, 5n << 32n, true);
  view.setBigUint64(at + F.bytes_received, 51n, true);
  view.setUint32(at + F.netns, 4026531840, true);
  view.setUint32(at + F.snd_una, 0xfffffff0, true);
  view.setUint32(at + F.write_seq, 0x10, true);
  view.setUint32(at + F.srtt_us, 52, true);
  view.setUint32(at + F.segs_in, 3, true);
  view.setUint32(at + F.segs_out, 7, true);
  view.setUint32(at + F.total_retrans, 1, true);
  view.setUint32(at + F.sk_err, 104, true);
  view.setUint16(at + F.lport, 40000, true);
  view.setUint16(at + F.rport, 443, true);
  view.setUint8(at + F.flags, 1 | 4 | 8); // outgoing, owner, SYN acked
  view.setUint8(at + F.end, 2); // remote FIN
  view.setUint8(at + F.old_state, 1);
  view.setUint8(at + F.new_state, 8);
  view.setUint32(at + F.pid, 1234, true);
  view.setUint32(at + F.uid, 1000, true);
  bytes.set(new TextEncoder().encode("curl"), at + F.comm);
  return view;
}

Deno.test("RecordDecoder decodes a flow record field by field", () => {
  const r = new RecordDecoder(1).decode(flowRecord(), 8, LAYOUT.nf_flow.size);
  assert.ok(r?.kind === "end");
  assert.deepEqual(
    [r.timeUs, r.beginUs, r.cgroupId, r.netns, r.cookie, r.family],
    [6, 3, 99, 4026531840, 12345, 6],
  );
  assert.deepEqual(
    [r.localAddr, r.localPort, r.remoteAddr, r.remotePort],
    ["2001:db8::1", 40000, "192.0.2.7", 443],
  );
  assert.deepEqual(
    [r.outgoing, r.preexisting, r.synAcked, r.end, r.oldState, r.newState, r.skErr],
    [true, false, true, "remote-fin", 1, 8, 104],
  );
  assert.deepEqual(r.owner, { pid: 1234, uid: 1000, comm: "curl" });
  assert.deepEqual(r.counters, {
    bytesAcked: 5 * 2 ** 32,
    bytesReceived: 51,
    sndUna: 0xfffffff0,
    writeSeq: 0x10,
    srttUs: 52,
    segsIn: 3,
    segsOut: 7,
    totalRetrans: 1,
  });
});

Deno.test("RecordDecoder shares owners and IPv4 strings, and sees a new comm, uid or address", () => {
  const decoder = new RecordDecoder(1);
  const view = flowRecord();
  const bytes = new Uint8Array(view.buffer);
  view.setUint8(8 + 18, 4); // IPv4 from here on
  bytes.set([10, 0, 0, 1], 8 + F.laddr);
  bytes.set([10, 0, 0, 2], 8 + F.raddr);
  const decode = () => {
    const r = decoder.decode(view, 8, LAYOUT.nf_flow.size);
    assert.ok(r?.kind === "end");
    return r;
  };
  const first = decode(), again = decode();
  assert.equal(again.owner, first.owner, "one owner object per process");
  assert.deepEqual([again.localAddr, again.remoteAddr], ["10.0.0.1", "10.0.0.2"]);
  bytes.set(new TextEncoder().encode("wget"), 8 + F.comm); // the process exec'd
  assert.deepEqual(decode().owner, { pid: 1234, uid: 1000, comm: "wget" });
  view.setUint32(8 + F.uid, 0, true); // setuid
  assert.deepEqual(decode().owner, { pid: 1234, uid: 0, comm: "wget" });
  bytes.set([10, 0, 0, 3], 8 + F.raddr);
  assert.equal(decode().remoteAddr, "10.0.0.3");
  // Another buffer (an iterator's output) with other bytes at the same offsets.
  const other = decoder.flow(flowRecord(), 8);
  assert.equal(other?.localAddr, "2001:db8::1");
  assert.deepEqual(other?.owner, { pid: 1234, uid: 1000, comm: "curl" });
});

Deno.test("RecordDecoder decodes a packet record, with no socket when it had none", () => {
  const P = LAYOUT.nf_packet.fields;
  const view = new DataView(new ArrayBuffer(LAYOUT.nf_packet.size));
  view.setUint8(16, KIND_PACKET);
  view.setUint8(17, 1); // egress
  view.setUint8(18, 4);
  new Uint8Array(view.buffer).set([10, 0, 0, 1], P.saddr);
  new Uint8Array(view.buffer).set([10, 0, 0, 2], P.daddr);
  view.setUint16(P.sport, 80, true);
  view.setUint16(P.dport, 40000, true);
  view.setUint8(P.tcp_flags, 0x14);
  const p = new RecordDecoder(0).decode(view, 0, LAYOUT.nf_packet.size);
  assert.ok(p?.kind === "packet");
  assert.deepEqual(
    [p.direction, p.src, p.srcPort, p.dst, p.dstPort, p.flags, p.cookie, p.sockState, p.owner],
    ["egress", "10.0.0.1", 80, "10.0.0.2", 40000, 0x14, 0, 0, null],
  );
});

Deno.test("RecordDecoder rejects records shorter than their layout or of unknown kind", () => {
  const decoder = new RecordDecoder(0);
  const view = flowRecord();
  assert.equal(decoder.decode(view, 8, LAYOUT.nf_flow.size - 1), undefined);
  assert.equal(decoder.decode(view, 8, 10), undefined);
  view.setUint8(8 + 16, 42); // no such kind
  assert.equal(decoder.decode(view, 8, LAYOUT.nf_flow.size), undefined);
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
