/**
 * Which events to report: `--pid`, `--comm`, `--port`, `--container`, `--net`,
 * `--direction`, `-4`/`-6`. Values of one kind are alternatives (OR); kinds
 * combine (AND). Each event is judged on its own fields, so an event passes a
 * kind only if it has that field: `net_packet_tcp` has no direction or
 * container. Pure: the monitor applies it before events are emitted.
 *
 * @module
 */
import { cidrValue, inCidr, parseIP } from "../bpf/addr.ts";
import { type FlowFilter, localIsSrc, type NetflowEvent } from "../events.ts";
import { flag, type Parsed, repeatable } from "../argv.ts";
import { refuse } from "../options.ts";

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

/** A repeatable filter option: `rule` checks each value (every filter is repeatable: OR). */
function only<T>(metavar: string, help: string, rule: (name: string, value: unknown) => T) {
  return repeatable({ metavar, help, parse: (text, name) => rule(name, text) });
}

/** The command line's filters: each repeatable (OR); different kinds combine (AND). */
export const FILTER_OPTIONS = {
  pid: only(
    "PID",
    "only flows of this process (repeatable, as every filter:\n" +
      "one kind matches any of its values; kinds combine)",
    pidValue,
  ),
  comm: only("NAME", "only flows of processes named NAME (comm, as ps shows it)", commValue),
  port: only("PORT", "only flows with PORT on either side", portValue),
  container: only("ID", "only flows of the container whose id starts with ID", containerValue),
  net: only(
    "CIDR",
    "only flows whose remote address is in CIDR\n(10.0.0.0/8, fd00::/8, or one address)",
    (name, text) => {
      cidrValue(name, text);
      return text as string;
    },
  ),
  direction: only("DIR", "only incoming or outgoing flows", directionValue),
  ipv4: flag("4", "only IPv4 flows"),
  ipv6: flag("6", "only IPv6 flows"),
};

/** The filter the command line's options ask for, or undefined when they ask for none. */
export function filterOf(o: Parsed<typeof FILTER_OPTIONS>): FlowFilter | undefined {
  const filter: FlowFilter = {
    pid: o.pid,
    comm: o.comm,
    port: o.port,
    container: o.container,
    net: o.net,
    direction: o.direction,
    family: [...(o.ipv4 ? [4 as const] : []), ...(o.ipv6 ? [6 as const] : [])],
  };
  return Object.values(filter).some((v) => v.length > 0) ? filter : undefined;
}
