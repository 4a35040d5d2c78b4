import assert from "node:assert/strict";
import { registerProcessMetrics } from "../../src/metrics/process.ts";
import { MetricsRegistry } from "../../src/metrics/prometheus.ts";
import { promtoolCheck, sample } from "../helpers/promtool.ts";

Deno.test("netflow's memory gauges: one read per scrape, valid exposition per promtool", async () => {
  const registry = new MetricsRegistry();
  let reads = 0;
  registerProcessMetrics(registry, () => {
    reads++;
    return { rss: 100 * reads, heapTotal: 30 * reads, heapUsed: 20 * reads, external: 5 * reads };
  });
  const first = registry.render();
  assert.deepEqual(await promtoolCheck(first), { code: 0, output: "" });
  assert.equal(reads, 1); // four gauges from one read
  assert.equal(sample(first, "netflow_resident_memory_bytes"), 100);
  assert.equal(sample(first, "netflow_heap_used_bytes"), 20);
  assert.equal(sample(first, "netflow_heap_total_bytes"), 30);
  assert.equal(sample(first, "netflow_external_memory_bytes"), 5);
  const second = registry.render();
  assert.equal(sample(second, "netflow_resident_memory_bytes"), 200); // read again, not cached
});

Deno.test("netflow's memory gauges read this process by default", () => {
  const registry = new MetricsRegistry();
  registerProcessMetrics(registry);
  const rss = sample(registry.render(), "netflow_resident_memory_bytes")!;
  assert.ok(rss > 1_000_000 && rss < 4e9, `rss ${rss}`);
});
