/**
 * struct nf_config, which the programs read (written before load): the part
 * of a filter the kernel applies where a flow begins (sock_ops, with the
 * filter_* fields): ports, remote address, direction and family; and the
 * settings. The rest of a filter (pid, comm, container) and any kind with more
 * values than the kernel holds stays in TypeScript (src/flow/filter.ts).
 *
 * @module
 */
import type { FlowFilter } from "../events.ts";
import { NF_SIZE } from "./abi.ts";
import { cidrValue } from "./addr.ts";
import { LAYOUT } from "./layout.ts";

/** The kernel's part of a filter (struct nf_config's filter_* fields). */
export interface KernelFilter {
  /** Bit 0 IPv4, bit 1 IPv6; 0: every family. */
  families: number;
  /** Bit 0 outgoing, bit 1 incoming; 0: both. */
  directions: number;
  /** At most {@link KERNEL_PORTS}; empty: no port filter in the kernel. */
  ports: number[];
  /** 16-byte addresses (IPv4 as ::ffff:a.b.c.d), prefixes in 128 bits; at most {@link KERNEL_NETS}. */
  nets: { bytes: Uint8Array; prefix: number }[];
}

/** NF_FILTER_PORTS and NF_FILTER_NETS in bpf/netflow.h. */
export const KERNEL_PORTS = NF_SIZE.FILTER_PORTS, KERNEL_NETS = NF_SIZE.FILTER_NETS;

/**
 * What the kernel can filter where a flow begins: ports, remote address,
 * direction and family (a kind with more values than the kernel holds stays
 * in TypeScript only). pid, comm and container stay in TypeScript: the kernel
 * learns the owner later than the begin.
 */
export function kernelFilter(filter: FlowFilter | undefined): KernelFilter {
  const ports = [...new Set(filter?.port ?? [])];
  const nets = (filter?.net ?? []).map((n) => cidrValue("net", n)).map(({ bytes, prefix }) => {
    if (bytes.length === 16) return { bytes, prefix };
    const mapped = new Uint8Array(16);
    mapped[10] = mapped[11] = 0xff;
    mapped.set(bytes, 12);
    return { bytes: mapped, prefix: prefix + 96 };
  });
  let families = 0, directions = 0;
  for (const f of filter?.family ?? []) families |= f === 4 ? 1 : 2;
  for (const d of filter?.direction ?? []) directions |= d === "outgoing" ? 1 : 2;
  return {
    families,
    directions,
    ports: ports.length <= KERNEL_PORTS ? ports : [],
    nets: nets.length <= KERNEL_NETS ? nets : [],
  };
}

/** struct nf_config, as netflow.h lays it out (LAYOUT.nf_config). */
export function encodeConfig(
  config: {
    forwardAll: boolean;
    snapshotAll: boolean;
    selfPid?: number;
    reportFail?: boolean;
    filter?: KernelFilter;
    /** NF_HAS_* bits (src/bpf/features.ts). */
    kernelHas?: number;
  },
): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(LAYOUT.nf_config.size);
  const f = LAYOUT.nf_config.fields, filter = config.filter;
  if (filter) {
    const view = new DataView(bytes.buffer);
    bytes[f.filter_families] = filter.families;
    bytes[f.filter_directions] = filter.directions;
    bytes[f.filter_ports] = filter.ports.length;
    filter.ports.forEach((port, i) => view.setUint16(f.filter_port + 2 * i, port, true));
    bytes[f.filter_nets] = filter.nets.length;
    filter.nets.forEach((net, i) => {
      bytes.set(net.bytes, f.filter_net + 16 * i);
      bytes[f.filter_net_prefix + i] = net.prefix;
    });
  }
  bytes[LAYOUT.nf_config.fields.report_fail] = config.reportFail ? 1 : 0;
  bytes[LAYOUT.nf_config.fields.kernel_has] = config.kernelHas ?? 0;
  bytes[LAYOUT.nf_config.fields.forward_all] = config.forwardAll ? 1 : 0;
  bytes[LAYOUT.nf_config.fields.snapshot_all] = config.snapshotAll ? 1 : 0;
  new DataView(bytes.buffer).setUint32(LAYOUT.nf_config.fields.self_pid, config.selfPid ?? 0, true);
  return bytes;
}
