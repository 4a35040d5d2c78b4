/**
 * Latency from the kernel's event to the line on netflow's stdout: a paced
 * storm (bench/lib/storm.py at a fixed rate) in the benchmark's cgroup,
 * netflow watching that cgroup with its stdout on a pipe this process reads;
 * each line's arrival time minus the event's own `time` (the kernel's
 * timestamp, as netflow converts it). At several rates; a rate is loss-free
 * when every endpoint's begin and end arrived and netflow lost no record.
 *
 * @module
 */
import { netflowCommand } from "../tests/helpers/netflow.ts";
import { CGROUP, ROOT } from "./lib/env.ts";
import { fmt, sleep, spawn, waitForLine } from "./lib/proc.ts";

const PORT = 18434;

export interface LatencyRow {
  rate: number;
  achieved: number;
  expected: number;
  lines: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  summary: string;
  lossFree: boolean;
}

/** Microseconds since the epoch, now. */
const nowUs = () => (performance.timeOrigin + performance.now()) * 1000;

/** An event's `time` (RFC 3339 with µs) in µs since the epoch. */
function eventUs(line: string): number | undefined {
  const m = /"time":"([^"]{19})\.(\d{6})Z"/.exec(line);
  return m ? Date.parse(`${m[1]}Z`) * 1000 + Number(m[2]) : undefined;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0
    ? NaN
    : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

async function once(rate: number, seconds: number): Promise<LatencyRow> {
  const server = spawn("python3", [`${ROOT}bench/lib/storm.py`, "serve", String(PORT)], {
    inCgroup: true,
    stdout: "piped",
  });
  await waitForLine(server.stdout, /^listening/);
  // The tests' launcher's command line; stdout read here, each chunk timed as it arrives.
  const [cmd, ...args] = netflowCommand([
    "--format",
    "json",
    "--cgroup",
    CGROUP,
    "--port",
    `${PORT}`,
  ]);
  const nf = spawn(cmd!, args, { stdout: "piped" });
  await waitForLine(nf.stderr, /^netflow: watching/);
  const latencies: number[] = [];
  let lines = 0;
  const read = (async () => {
    const decoder = new TextDecoder();
    let rest = "";
    for await (const chunk of nf.stdout) {
      const at = nowUs();
      const parts = (rest + decoder.decode(chunk, { stream: true })).split("\n");
      rest = parts.pop()!;
      for (const line of parts) {
        const t = eventUs(line);
        if (t === undefined) continue;
        lines++;
        latencies.push((at - t) / 1000);
      }
    }
  })();
  const n = Math.max(1, Math.round(rate * seconds));
  const client = spawn("python3", [
    `${ROOT}bench/lib/storm.py`,
    "connect",
    String(PORT),
    String(n),
    "8",
    String(rate),
  ], { inCgroup: true, stdout: "piped" });
  const done = JSON.parse(await waitForLine(client.stdout, /^\{/, 600_000)) as {
    connections: number;
    seconds: number;
  };
  await client.status;
  const expected = 4 * done.connections; // two endpoints, a begin and an end each
  for (let i = 0; i < 300 && lines < expected; i++) await sleep(100);
  nf.kill("SIGTERM");
  const summary = await waitForLine(nf.stderr, /^netflow: \d+ events/).catch((e) => String(e));
  await Promise.all([nf.status, read]);
  server.kill("SIGTERM");
  await server.status;
  latencies.sort((a, b) => a - b);
  return {
    rate,
    achieved: done.connections / done.seconds,
    expected,
    lines,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    maxMs: latencies.at(-1) ?? NaN,
    summary,
    lossFree: lines === expected && / 0 lost records,/.test(summary),
  };
}

/** One paced storm per rate (connections a second), `seconds` long each. */
export async function latency(rates: number[], seconds: number): Promise<LatencyRow[]> {
  const rows: LatencyRow[] = [];
  for (const rate of rates) {
    const row = await once(rate, seconds);
    console.error(`latency ${rate}/s: ${JSON.stringify({ ...row, summary: undefined })}`);
    rows.push(row);
  }
  return rows;
}

export function renderLatency(rows: LatencyRow[], seconds: number): string[] {
  return [
    `## Latency: kernel event to the line on stdout (cgroup mode, stdout a pipe)`,
    ``,
    `A paced storm of ${seconds} s per rate (8 connections at a time) in the benchmark's cgroup,`,
    `\`--port\` keeping netflow's output to it; a line's arrival minus its event's \`time\`. Incoming`,
    `begins wait for the holders iterator (at least 5 ms), ends the peer closed for the release record.`,
    ``,
    `| rate asked (conn/s) | achieved | lines / expected | p50 ms | p99 ms | max ms | loss-free |`,
    `|---|---|---|---|---|---|---|`,
    ...rows.map((r) =>
      `| ${r.rate} | ${fmt(r.achieved)} | ${r.lines} / ${r.expected} | ${fmt(r.p50Ms, 1)} | ` +
      `${fmt(r.p99Ms, 1)} | ${fmt(r.maxMs, 1)} | ${r.lossFree ? "yes" : "no"} |`
    ),
    ``,
  ];
}
