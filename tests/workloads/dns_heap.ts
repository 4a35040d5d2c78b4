/**
 * Measures the heap a flood of hostile DNS answers leaves in netflow's DNS
 * cache (run with --v8-flags=--expose-gc): ANSWERS answers of about 600
 * bytes, each a chain of 15 CNAMEs of distinct long names to one address of
 * its own, fed as the kernel hands them over. Prints one JSON line: the heap
 * growth after a full GC, and the cache's own count of entries and bytes.
 *
 *   deno run -A --v8-flags=--expose-gc tests/workloads/dns_heap.ts ANSWERS MAX_BYTES
 */
import dnsPacket from "npm:dns-packet@5.6.1";
import { DnsNames } from "../../src/dns/names.ts";
import { dnsMessage } from "../helpers/records.ts";

const [answers = "20000", maxBytes = String(8 << 20)] = Deno.args;
const gc = (globalThis as unknown as { gc?: () => void }).gc;
if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");

function answer(i: number): Uint8Array {
  // 16 distinct names per answer (nothing to share), short enough for ~600 bytes uncompressed.
  const name = (k: number) => `${k.toString(16)}-${String(i).padStart(7, "0")}.t`;
  const records = [];
  for (let k = 0; k < 15; k++) {
    records.push({ type: "CNAME", name: name(k), data: name(k + 1), ttl: 3600, class: "IN" });
  }
  records.push({
    type: "A",
    name: name(15),
    data: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    ttl: 3600,
    class: "IN",
  });
  return new Uint8Array(dnsPacket.encode({
    type: "response",
    id: 7,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: "A", name: name(0) }],
    answers: records,
  } as never));
}

const names = new DnsNames({ maxBytes: Number(maxBytes), now: () => 1_000_000 });
gc();
const before = Deno.memoryUsage().heapUsed;
let size = 0;
for (let i = 0; i < Number(answers); i++) {
  const payload = answer(i);
  size = payload.length;
  names.onMessage(dnsMessage(payload));
}
gc();
gc();
const growth = Deno.memoryUsage().heapUsed - before;
const last = Number(answers) - 1;
const lastAddress = `10.${(last >> 16) & 255}.${(last >> 8) & 255}.${last & 255}`;
const stats = names.stats;
console.log(JSON.stringify({
  answerBytes: size,
  growth,
  entries: stats.entries,
  bytes: stats.bytes,
  evicted: stats.evicted,
  lastNames: names.names(4026531840, lastAddress).length,
}));
