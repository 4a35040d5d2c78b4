/**
 * netflow: TCP flow events from a cgroup v2 subtree, for Deno scripts.
 *
 * A {@link FlowMonitor} loads netflow's eBPF programs through the system
 * libbpf, attaches them to a cgroup when constructed, and is an async
 * iterable of typed {@link FlowEvent}s: `net_flow_tcp_begin` when a
 * connection is established, `net_flow_tcp_end` when it ends. It detaches
 * when closed, when disposed, or when the loop over it ends. It needs root
 * (or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON), and `deno run --allow-all`.
 * Options are checked with the command line's rules: a bad one throws
 * {@link UsageError}; a failure to load or attach throws {@link NetflowError}.
 * The fields, with units and edge cases, are documented on the event types
 * and in docs/events.md.
 *
 * @example Watch one cgroup for half a second
 * ```ts
 * import { findCgroup2Mount, FlowMonitor } from "./mod.ts";
 *
 * // A cgroup of the example's own; omit `cgroup` to watch the whole host.
 * const cgroup = `${findCgroup2Mount()}/netflow-example-${Deno.pid}`;
 * Deno.mkdirSync(cgroup);
 * try {
 *   using monitor = new FlowMonitor({ cgroup });
 *   setTimeout(() => monitor.close(), 500);
 *   for await (const event of monitor) {
 *     if (event.event === "net_flow_tcp_end") {
 *       console.log(`${event.src} -> ${event.dst}: ${event.bytes_sent} bytes sent`);
 *     }
 *   }
 *   console.log(monitor.stats.lost, "records lost");
 * } finally {
 *   Deno.removeSync(cgroup);
 * }
 * ```
 *
 * @module
 */
export { FlowMonitor } from "./src/monitor.ts";
export type { DefaultEventName, EventOf, MonitorOptions } from "./src/monitor_options.ts";
export type { MonitorStats } from "./src/stats.ts";
export {
  EVENT_BEGIN,
  EVENT_END,
  EVENT_FAIL,
  EVENT_NAMES,
  EVENT_PACKET,
  EVENT_UPDATE,
  type EventName,
  type FlowBeginEvent,
  type FlowCounters,
  type FlowEndEvent,
  type FlowEvent,
  type FlowEventBase,
  type FlowFailEvent,
  type FlowUpdateEvent,
  type NetflowEvent,
  type PacketEvent,
} from "./src/events.ts";
export type { DnsCacheOptions } from "./src/dns/cache.ts";
export type { DnsNamesOptions } from "./src/dns/names.ts";
export type { FlowFilter } from "./src/events.ts";
export type { ReaderKind } from "./src/options.ts";
export { findCgroup2Mount } from "./src/bpf/cgroup.ts";
export { NetflowError, UsageError } from "./src/errors.ts";
