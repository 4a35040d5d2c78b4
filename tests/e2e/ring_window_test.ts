/**
 * e2e (root): netflow maps a window of each ring's data area, not the whole
 * ring (src/ffi/ringbuf.ts, WINDOW_BYTES): records are read whole while the
 * window moves through a ring several times its size, and the ring pages
 * netflow has mapped (its resident set) stay at the windows' size.
 */
import assert from "node:assert/strict";
import type { FlowEvent } from "../../mod.ts";
import { WINDOW_BYTES, WRAP_BYTES } from "../../src/ffi/ringbuf.ts";
import { e2eTest, ROOT, TestCgroup } from "../helpers/e2e.ts";
import { atLeast, Netflow } from "../helpers/netflow.ts";
import { assertEveryEndpoint } from "../helpers/storm_check.ts";

const LIFECYCLE = `${ROOT}tests/workloads/lifecycle.py`;
const STORM = `${ROOT}tests/workloads/storm.py`;
const CONNECTIONS = 1000;
const MiB = 1 << 20;

/** Resident bytes of netflow's mappings of BPF maps (the rings' pages), from /proc/PID/smaps. */
function ringResident(pid: number): { resident: number; mappings: number } {
  let resident = 0, mappings = 0, ring = false;
  for (const line of Deno.readTextFileSync(`/proc/${pid}/smaps`).split("\n")) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) {
      ring = line.endsWith("anon_inode:bpf-map");
      if (ring) mappings++;
    } else if (ring && line.startsWith("Rss:")) resident += Number(line.split(/\s+/)[1]) * 1024;
  }
  return { resident, mappings };
}

e2eTest(
  "the rings are read through a moving window: every record whole, and only the windows resident",
  async () => {
    await using cg = new TestCgroup();
    await using server = cg.spawn("python3", LIFECYCLE, "serve", "127.0.0.1");
    const { port } = JSON.parse(await server.line(60_000));
    // A 512 KiB flow ring (its window a quarter of it, 128 KiB) and 1 MiB DNS and packet rings:
    // the storm's 4,000+ flow records (176 bytes each with their header) move the window 5+ times.
    await using nf = await Netflow.start([
      "--format",
      "json",
      "--cgroup",
      cg.dir,
      "--ring-size",
      "512K",
      "--dns-ring-size",
      "1M",
      "--port",
      String(port),
    ]);
    await using s = cg.spawn("python3", STORM, "127.0.0.1", String(port), String(CONNECTIONS));
    assert.equal(JSON.parse(await s.line(120_000)).ports.length, CONNECTIONS);
    const want = 2 * CONNECTIONS;
    const ends = (e: FlowEvent) => e.event === "net_flow_tcp_end";
    await nf.untilFlows(atLeast(want, ends), `${want} ends`, 120_000);
    const { resident, mappings } = ringResident(nf.pid);
    const { events, stderr, code } = await nf.stop();
    assert.equal(code, 0, stderr);
    // Positive control: more than the ring went through (it wrapped; the window moved 4+ times).
    const lost = Number(/(\d+) lost records/.exec(stderr)?.[1]);
    assert.ok((2 * want - lost) * 176 > MiB / 2, `too few records through the ring: ${stderr}`);
    // Every endpoint once, with exact bytes (a record read across the window's edge would not be).
    assertEveryEndpoint(events as FlowEvent[], port, want);
    // Three rings, a consumer page, a producer page and a data window each: the three mapped
    // whole were 2.5 MiB here.
    const windows = 3 * (WINDOW_BYTES + WRAP_BYTES + 2 * 4096);
    assert.ok(resident <= windows, `ring pages resident: ${resident} bytes, windows ${windows}`);
    assert.equal(mappings, 9, "three mappings a ring");
  },
);
