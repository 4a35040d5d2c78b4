/**
 * Many connections held open (netflow's memory): pairs of bench/hold.py
 * processes open them at a paced rate in the watched cgroup, then close them
 * all at once; peak RSS before, with all open, and after they closed.
 *
 * @module
 */
import { CGROUP, ROOT } from "./lib/env.ts";
import {
  bpfMapMiB,
  CLK_TCK,
  cpuTicks,
  fmt,
  peakRssMiB,
  settled,
  spawn,
  waitForLine,
} from "./lib/proc.ts";
import { Netflow, type NetflowOptions, Tcplife } from "./lib/tools.ts";

/** Pairs of processes holding the open connections (each below a 20,000-fd limit). */
const HOLD_PAIRS = 8;
/** Connections opened per second while building up the held flows. */
const HOLD_RATE = 5000;

export interface HeldResult {
  flows: number;
  rssBefore: number;
  rssOpen: number;
  rssPeak: number;
  /** netflow's CPU seconds until every begin was written, and from then until every end was. */
  cpuOpenS: number;
  cpuCloseS: number;
  begin: number;
  end: number;
  /** Kernel memory of netflow's BPF maps with all open, MiB (not in its RSS). */
  mapsOpen: number;
  /** tcplife beside it on the same connections: its peak RSS at start, with all open, after. */
  tl: { rssBefore: number; rssOpen: number; rssPeak: number; mapsOpen: number; lines: number };
  summary: string;
}

/** `netflow`: which netflow, and its V8 flags (bench/memory_ab.ts; default this checkout's). */
export async function held(
  n: number,
  netflow: Pick<NetflowOptions, "cli" | "v8Flags" | "env"> = {},
): Promise<HeldResult> {
  const ports = Array.from({ length: HOLD_PAIRS }, (_, i) => 9001 + i);
  const servers = ports.map((port) =>
    spawn("python3", [`${ROOT}bench/hold.py`, "serve", String(port)], {
      inNs: true,
      stdout: "piped",
    })
  );
  for (const server of servers) await waitForLine(server.stdout, /^listening/);
  const nf = await Netflow.start("held", { cgroup: CGROUP, ...netflow });
  const tl = await Tcplife.start("held-tcplife");
  const rssBefore = peakRssMiB(nf.pid);
  const tlBefore = peakRssMiB(tl.pid);
  // One client after another, paced: the target is memory with many open flows,
  // not a burst that starves netflow of CPU (that is the storm's business).
  const clients: Deno.ChildProcess[] = [];
  for (const [i, port] of ports.entries()) {
    const args = [
      `${ROOT}bench/hold.py`,
      "connect",
      String(n / HOLD_PAIRS),
      String(port),
      `127.0.1.${i + 1}`,
      String(HOLD_RATE),
    ];
    const client = spawn("python3", args, { watched: true, stdout: "piped", stdin: "piped" });
    clients.push(client);
    await waitForLine(client.stdout, /^open \d+/, 300_000);
  }
  await settled(nf.file, 2000, 120_000); // every begin written
  const rssOpen = peakRssMiB(nf.pid);
  const mapsOpen = bpfMapMiB(nf.pid);
  const tlOpen = peakRssMiB(tl.pid), tlMaps = bpfMapMiB(tl.pid);
  const cpuOpenS = cpuTicks(nf.pid) / CLK_TCK;
  const open = ports.map((p) => nf.count(p).begin).reduce((a, b) => a + b);
  for (const client of clients) await client.stdin.close();
  for (const client of clients) await client.status;
  await settled(nf.file, 2000, 120_000); // every end written
  const rssPeak = peakRssMiB(nf.pid);
  const tlPeak = peakRssMiB(tl.pid);
  await tl.stop();
  const cpuCloseS = cpuTicks(nf.pid) / CLK_TCK - cpuOpenS;
  const summary = await nf.stop();
  const ends = ports.map((p) => nf.count(p).end).reduce((a, b) => a + b);
  for (const server of servers) server.kill("SIGTERM");
  for (const server of servers) await server.status;
  return {
    flows: n,
    rssBefore,
    rssOpen,
    rssPeak,
    cpuOpenS,
    cpuCloseS,
    begin: open,
    end: ends,
    mapsOpen,
    tl: {
      rssBefore: tlBefore,
      rssOpen: tlOpen,
      rssPeak: tlPeak,
      mapsOpen: tlMaps,
      lines: ports.map((p) => tl.count(p)).reduce((a, b) => a + b),
    },
    summary,
  };
}

export function renderHeld(h: HeldResult): string[] {
  const mb = (mib: number) => `${fmt(mib * 1.048576)} MB`;
  const perFlow = (from: number, to: number) =>
    `${fmt((to - from) * 1048576 / Math.max(1, h.begin))} bytes`;
  return [
    `## ${h.flows} connections held open (their ${h.flows} client endpoints watched)`,
    ``,
    `netflow --cgroup on the clients' cgroup, tcplife beside it (host-wide) on the same`,
    `connections; peak RSS (VmHWM) from /proc; BPF maps: the kernel memory charged to the maps each`,
    `holds (fdinfo memlock), which is not in its RSS. tcplife watches both ends of each connection;`,
    `it remembers at most 10,240 open sockets (its maps' max_entries), so with more open at once it`,
    `writes lines only for those it saw born while there was room.`,
    ``,
    `| tool | lines | RSS at start | peak RSS with all open | peak RSS after all closed | RSS per open flow | BPF maps |`,
    `|---|---|---|---|---|---|---|`,
    `| netflow | ${h.begin} begin / ${h.end} end | ${mb(h.rssBefore)} | ${mb(h.rssOpen)} | ${
      mb(h.rssPeak)
    } | ${perFlow(h.rssBefore, h.rssOpen)} | ${mb(h.mapsOpen)} |`,
    `| tcplife | ${h.tl.lines} of ${2 * h.flows} endpoints | ${mb(h.tl.rssBefore)} | ${
      mb(h.tl.rssOpen)
    } | ${mb(h.tl.rssPeak)} | ${perFlow(h.tl.rssBefore, h.tl.rssOpen)} | ${mb(h.tl.mapsOpen)} |`,
    ``,
  ];
}
