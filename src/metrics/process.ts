/**
 * netflow's own memory in /metrics, read at each scrape: the resident set
 * (what the kernel charges the process) beside V8's heap and the memory V8
 * counts outside it (ArrayBuffers: ring reads, output text). A resident set
 * that grows while the heap does not is native memory (Deno's runtime, the
 * allocator), not netflow's tables.
 *
 * @module
 */
import type { MetricsRegistry } from "./prometheus.ts";

/** What Deno.memoryUsage() gives, in bytes. */
export interface MemoryUsage {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
}

/** Registers netflow's memory gauges; `read` is one Deno.memoryUsage() call per scrape. */
export function registerProcessMetrics(
  registry: MetricsRegistry,
  read: () => MemoryUsage = () => Deno.memoryUsage(),
): void {
  let m: MemoryUsage | undefined;
  registry.beforeCollect(() => m = read());
  const gauges: [string, string, (m: MemoryUsage) => number][] = [
    ["resident_memory_bytes", "netflow's resident set size (RSS)", (m) => m.rss],
    [
      "heap_used_bytes",
      "V8 heap in use (live objects and garbage not yet collected)",
      (m) => m.heapUsed,
    ],
    ["heap_total_bytes", "V8 heap reserved from the system", (m) => m.heapTotal],
    [
      "external_memory_bytes",
      "Memory V8 counts outside its heap (ArrayBuffers)",
      (m) => m.external,
    ],
  ];
  for (const [name, help, get] of gauges) {
    registry.register({
      name: `netflow_${name}`,
      help,
      type: "gauge",
      collect: () => get(m ?? read()),
    });
  }
}
