/**
 * Which events to report: `--pid`, `--comm`, `--port`, `--container`, `--net`,
 * `--direction`, `-4`/`-6`. Values of one kind are alternatives (OR); kinds
 * combine (AND). Each event is judged on its own fields, so an event passes a
 * kind only if it has that field: `net_packet_tcp` has no direction or
 * container. Pure: the monitor applies it before events are emitted.
 *
 * @module
 */
import { parseIP } from "../bpf/addr.ts";
import { UsageError } from "../errors.ts";
import { shown } from "../options.ts";
import { localIsSrc } from "../output/view.ts";
import type { NetflowEvent } from "./events.ts";

/** What to keep; an absent or empty list does not filter. */
export interface FlowFilter {
  /** The local process's pid. */
  pid?: readonly number[];
  /** The local process's name (comm, at most 15 characters), exactly. */
  comm?: readonly string[];
  /** Either side's TCP port. */
  port?: readonly number[];
  /** A container id or its prefix (docker's 12-character short ids work). */
  container?: readonly string[];
  /** CIDR blocks (or single addresses) the remote address is in. */
  net?: readonly string[];
  /** Who initiated the connection. */
  direction?: readonly ("incoming" | "outgoing")[];
  /** IP version. */
  family?: readonly (4 | 6)[];
}

function refuse(name: string, what: string, value: unknown): never {
  throw new UsageError(`${name} takes ${what}, not ${shown(value)}`);
}

/** A pid: a whole number from 1. */
export function pidValue(name: string, value: unknown): number {
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 1 || n > 0x7fffffff) {
    refuse(name, "a process id (a whole number from 1)", value);
  }
  return n;
}

/** A TCP port, 1 to 65535. */
export function portValue(name: string, value: unknown): number {
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 65535) {
    refuse(name, "a port from 1 to 65535", value);
  }
  return n;
}

/** A process name as the kernel keeps it: 1 to 15 bytes. */
export function commValue(name: string, value: unknown): string {
  if (typeof value !== "string" || value === "" || new TextEncoder().encode(value).length > 15) {
    refuse(name, "a process name of 1 to 15 characters (as ps -o comm shows it)", value);
  }
  return value;
}

/** A container id or prefix: 4 to 64 hexadecimal digits. */
export function containerValue(name: string, value: unknown): string {
  if (typeof value !== "string" || !/^[0-9a-f]{4,64}$/i.test(value)) {
    refuse(name, "a container id or its prefix (4 to 64 hex digits)", value);
  }
  return value.toLowerCase();
}

/** `incoming` or `outgoing`. */
export function directionValue(name: string, value: unknown): "incoming" | "outgoing" {
  if (value !== "incoming" && value !== "outgoing") refuse(name, "incoming or outgoing", value);
  return value;
}

/** A parsed CIDR block. */
export interface Cidr {
  bytes: Uint8Array;
  prefix: number;
}

/** `ADDRESS/PREFIX` or `ADDRESS` (IPv4 or IPv6), with the host bits zero or not. */
export function cidrValue(name: string, value: unknown): Cidr {
  const text = typeof value === "string" ? value : "";
  const [address = "", prefix, extra] = text.split("/");
  const bytes = extra === undefined ? parseIP(address) : undefined;
  const bits = bytes === undefined ? NaN : prefix === undefined ? bytes.length * 8 : Number(prefix);
  if (
    bytes === undefined || (prefix !== undefined && !/^\d{1,3}$/.test(prefix)) ||
    bits > bytes.length * 8
  ) {
    refuse(name, "an address or CIDR block (10.0.0.0/8, fd00::/8)", value);
  }
  // IPv4-mapped IPv6 (::ffff:a.b.c.d) is IPv4, as netflow prints it.
  const mapped = bytes.length === 16 && bits >= 96 && bytes.subarray(0, 10).every((b) => b === 0) &&
    bytes[10] === 0xff && bytes[11] === 0xff;
  if (mapped) return { bytes: bytes.slice(12), prefix: bits - 96 };
  return { bytes, prefix: bits };
}

/** True when `address` (netflow's text form) is in `cidr`. */
export function inCidr(cidr: Cidr, address: Uint8Array): boolean {
  if (address.length !== cidr.bytes.length) return false;
  const whole = cidr.prefix >> 3;
  for (let i = 0; i < whole; i++) if (address[i] !== cidr.bytes[i]) return false;
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (address[whole]! & mask) === (cidr.bytes[whole]! & mask);
}

/** Checks a filter's values (the library's words: `filter.port`); returns it normalized. */
export function checkFilter(filter: FlowFilter): FlowFilter {
  if (typeof filter !== "object" || filter === null) refuse("filter", "an object", filter);
  const list = <T>(key: keyof FlowFilter, check: (name: string, v: unknown) => T): T[] => {
    const values = filter[key] ?? [];
    if (!Array.isArray(values)) refuse(`filter.${key}`, "an array", values);
    return values.map((v) => check(`filter.${key}`, v));
  };
  return {
    pid: list("pid", pidValue),
    comm: list("comm", commValue),
    port: list("port", portValue),
    container: list("container", containerValue),
    net: list("net", (name, v) => {
      cidrValue(name, v);
      return v as string;
    }),
    direction: list("direction", directionValue),
    family: list("family", (name, v) => {
      if (v !== 4 && v !== 6) refuse(name, "4 or 6", v);
      return v;
    }),
  };
}

/** The predicate for a filter, or undefined when it keeps everything. */
export function compileFilter(filter: FlowFilter): ((e: NetflowEvent) => boolean) | undefined {
  const tests: ((e: NetflowEvent) => boolean)[] = [];
  const set = <T>(values: readonly T[] | undefined) =>
    values !== undefined && values.length > 0 ? new Set(values) : undefined;
  const pids = set(filter.pid), comms = set(filter.comm), ports = set(filter.port);
  const directions = set(filter.direction), families = set(filter.family);
  const containers = filter.container?.length ? filter.container : undefined;
  const nets = filter.net?.length ? filter.net.map((n) => cidrValue("net", n)) : undefined;
  if (pids) tests.push((e) => e.pid !== null && pids.has(e.pid));
  if (comms) tests.push((e) => e.comm !== null && comms.has(e.comm));
  if (ports) tests.push((e) => ports.has(e.src_port) || ports.has(e.dst_port));
  if (families) tests.push((e) => families.has(e.src.includes(":") ? 6 : 4));
  if (directions) {
    tests.push((e) => "conn_direction" in e && directions.has(e.conn_direction));
  }
  if (containers) {
    tests.push((e) => {
      const id = "container_id" in e ? e.container_id : null;
      return id !== null && containers.some((c) => id.startsWith(c));
    });
  }
  if (nets) {
    tests.push((e) => {
      const remote = parseIP(localIsSrc(e) ? e.dst : e.src);
      return remote !== undefined && nets.some((n) => inCidr(n, remote));
    });
  }
  if (tests.length === 0) return undefined;
  return (e) => tests.every((t) => t(e));
}

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
export const KERNEL_PORTS = 8, KERNEL_NETS = 8;

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
