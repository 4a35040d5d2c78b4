/**
 * The cost of one run of a cgroup_skb program on a given packet without
 * bpf_stats' two clock reads per run: BPF_PROG_TEST_RUN (libbpf's
 * bpf_prog_test_run_opts) runs the loaded program `repeat` times on one skb
 * built from the bytes given and reports the mean ns per run (the kernel
 * times the whole loop). The packet stays in cache: a best case, the same for
 * every program measured. Runs with a test skb whose socket is a dummy one,
 * so a handshake packet finds no listener and writes no record.
 *
 * @module
 */
import { sh } from "./proc.ts";
import { heldProgIds } from "./env.ts";

/** The test packets: Ethernet (the kernel pulls it off), IPv4, TCP. */
export const PACKETS = {
  /** An ordinary data segment: ACK+PSH with 100 bytes of payload. */
  data: tcp(0x18, 100),
  /** A FIN+ACK: a control packet that takes the full way and writes nothing. */
  fin: tcp(0x11, 0),
  /** A SYN: on arrival the full way looks for a listener (none in a test run). */
  syn: tcp(0x02, 0),
} as const;
export type PacketClass = keyof typeof PACKETS;

function tcp(flags: number, payload: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(14 + 20 + 20 + payload);
  const v = new DataView(b.buffer);
  v.setUint16(12, 0x0800); // Ethernet type IPv4
  b[14] = 0x45; // version 4, 20-byte header
  v.setUint16(16, 20 + 20 + payload);
  v.setUint16(20, 0x4000); // DF, offset 0
  b[22] = 64; // TTL
  b[23] = 6; // TCP
  b.set([127, 0, 0, 1], 26);
  b.set([127, 0, 0, 1], 30);
  v.setUint16(34, 40000); // source port
  v.setUint16(36, 5201); // destination port
  v.setUint32(38, 1000); // sequence
  v.setUint32(42, 2000); // acknowledgement
  b[46] = 5 << 4; // 20-byte TCP header
  b[47] = flags;
  v.setUint16(48, 65535); // window
  return b;
}

let lib:
  | Deno.DynamicLibrary<{
    bpf_prog_get_fd_by_id: { parameters: ["u32"]; result: "i32" };
    bpf_prog_test_run_opts: { parameters: ["i32", "buffer"]; result: "i32" };
    close: { parameters: ["i32"]; result: "i32" };
  }>
  | undefined;

function bpf() {
  lib ??= Deno.dlopen(
    "libbpf.so.1",
    {
      bpf_prog_get_fd_by_id: { parameters: ["u32"], result: "i32" },
      bpf_prog_test_run_opts: { parameters: ["i32", "buffer"], result: "i32" },
      close: { parameters: ["i32"], result: "i32" },
    } as const,
  );
  return lib.symbols;
}

/** The ids of process `pid`'s programs by name. */
export async function progIds(pid: number): Promise<Map<string, number>> {
  const held = heldProgIds(pid);
  const progs = JSON.parse(await sh("bpftool", "prog", "show", "-j")) as {
    id: number;
    name?: string;
  }[];
  return new Map(
    progs.filter((p) => p.name !== undefined && held.has(p.id)).map((p) => [p.name!, p.id]),
  );
}

/** Mean ns per run of program `id` on `packet`, over `repeat` runs; its return value checked. */
export function testRun(id: number, packet: Uint8Array<ArrayBuffer>, repeat: number): number {
  const fd = bpf().bpf_prog_get_fd_by_id(id);
  if (fd < 0) throw new Error(`bpf_prog_get_fd_by_id(${id}): ${fd}`);
  try {
    // struct bpf_test_run_opts (libbpf 1.x): sz, data_in, data_out, data_size_in,
    // data_size_out, ctx_in, ctx_out, ctx_size_in, ctx_size_out, retval, repeat,
    // duration, flags, cpu, batch_size.
    const opts = new Uint8Array(80);
    const v = new DataView(opts.buffer);
    v.setBigUint64(0, 80n, true);
    v.setBigUint64(8, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(packet))), true);
    v.setUint32(24, packet.byteLength, true);
    v.setInt32(60, repeat, true);
    const rc = bpf().bpf_prog_test_run_opts(fd, opts);
    if (rc !== 0) throw new Error(`bpf_prog_test_run_opts(prog ${id}): ${rc}`);
    const retval = v.getUint32(56, true);
    if (retval !== 1) throw new Error(`prog ${id} returned ${retval}, not 1`);
    return v.getUint32(64, true);
  } finally {
    bpf().close(fd);
  }
}
