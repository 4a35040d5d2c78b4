/**
 * The highest connection rate each monitor follows without loss (issue 24,
 * goal 5): whole host, netflow and tcplife side by side on the same paced
 * storm of short loopback connections (bench/lib/storm.py), at rising
 * rates. Each level starts both monitors afresh, so a loss belongs to it.
 * The generator is one asyncio client process per 1,500 connections a
 * second asked (one tops out near 3,000 here) and as many servers sharing
 * the port, so no one generator process is what limits the rate; a level
 * the machine could not reach (its two cores are) is marked so.
 *
 * netflow is loss-free at a level when it wrote a begin and an end for
 * every endpoint the storm made and its summary says 0 records lost;
 * tcplife when it wrote a line for every endpoint.
 *
 * @module
 */
import { fmt, settled, sleep } from "./lib/proc.ts";
import { runStorm } from "./lib/storm_run.ts";
import { Netflow, Tcplife } from "./lib/tools.ts";

const PORT = 18424;
/** Connections a second one generator process is asked for, at most. */
const PER_CLIENT = 1_500;
const CONCURRENCY = 32;
/** A level counts as reached when the storm ran at this share of its rate or more. */
const REACHED = 0.9;

export interface RateRow {
  asked: number;
  achieved: number;
  clients: number;
  endpoints: number;
  nfBegin: number;
  nfEnd: number;
  nfLostRecords: number | null;
  tlLines: number;
  nfLossFree: boolean;
  tlLossFree: boolean;
  summary: string;
}

export interface RatesResult {
  rows: RateRow[];
  /** The highest reached level each monitor followed without loss (0: none). */
  nfMax: number;
  tlMax: number;
}

/** One paced storm of `rate` connections a second for `seconds`: a client and a server per 1,500/s asked. */
function paced(rate: number, seconds: number) {
  const clients = Math.ceil(rate / PER_CLIENT);
  return runStorm({
    port: PORT,
    connections: Math.round(rate * seconds),
    clients,
    servers: clients,
    concurrency: CONCURRENCY,
    rate,
  });
}

/** "N records lost" from netflow's exit summary (null when the summary does not say). */
function lostRecords(summary: string): number | null {
  const m = /(\d+) lost records/.exec(summary) ?? /(\d+) records lost/.exec(summary);
  return m ? Number(m[1]) : null;
}

export async function rates(levels: readonly number[], seconds: number): Promise<RatesResult> {
  const rows: RateRow[] = [];
  for (const asked of levels) {
    const nf = await Netflow.start(`rates-${asked}`, { cgroup: null });
    const tl = await Tcplife.start(`rates-tcplife-${asked}`);
    await sleep(500);
    const storm = await paced(asked, seconds);
    await settled(nf.file);
    await sleep(500);
    await tl.stop();
    const summary = await nf.stop();
    const counts = nf.count(PORT);
    const endpoints = 2 * storm.done;
    const lost = lostRecords(summary);
    const row: RateRow = {
      asked,
      achieved: storm.done / storm.seconds,
      clients: Math.ceil(asked / PER_CLIENT),
      endpoints,
      nfBegin: counts.begin,
      nfEnd: counts.end,
      nfLostRecords: lost,
      tlLines: tl.count(PORT),
      nfLossFree: counts.begin === endpoints && counts.end === endpoints && lost === 0,
      tlLossFree: false,
      summary,
    };
    row.tlLossFree = row.tlLines === endpoints;
    console.error(`rates ${asked}/s: ${JSON.stringify({ ...row, summary: undefined })}`);
    rows.push(row);
  }
  const reached = (r: RateRow) => r.achieved >= REACHED * r.asked;
  const best = (ok: (r: RateRow) => boolean) =>
    Math.max(0, ...rows.filter((r) => reached(r) && ok(r)).map((r) => r.achieved));
  return { rows, nfMax: best((r) => r.nfLossFree), tlMax: best((r) => r.tlLossFree) };
}

export function renderRates(r: RatesResult, seconds: number): string[] {
  const lines = [
    `## Highest loss-free connection rate (whole host, paced storm, netflow and tcplife side by side)`,
    ``,
    `Each level: both monitors started afresh, then ${seconds} s of short loopback connections at`,
    `the rate asked, from one asyncio client process per ${PER_CLIENT} a second (${CONCURRENCY}`,
    `connections at a time each) and one server process each (SO_REUSEPORT). netflow is loss-free when it wrote a begin and an end for every`,
    `endpoint and its summary says 0 records lost; tcplife when it wrote a line for every endpoint.`,
    `A level is reached when the storm ran at ${REACHED * 100}% of the rate asked or more.`,
    ``,
    `| asked conn/s | generators | achieved conn/s | endpoints | netflow begin / end | netflow lost records | tcplife lines | netflow loss-free | tcplife loss-free |`,
    `|---|---|---|---|---|---|---|---|---|`,
  ];
  for (const x of r.rows) {
    const reached = x.achieved >= REACHED * x.asked ? "" : " (not reached)";
    lines.push(
      `| ${x.asked} | ${x.clients} | ${fmt(x.achieved)}${reached} | ${x.endpoints} | ` +
        `${x.nfBegin} / ${x.nfEnd} | ${x.nfLostRecords ?? "?"} | ${x.tlLines} | ` +
        `${x.nfLossFree ? "yes" : "no"} | ${x.tlLossFree ? "yes" : "no"} |`,
    );
  }
  lines.push(
    ``,
    `Highest reached rate without loss: netflow ${fmt(r.nfMax)}/s, tcplife ${fmt(r.tlMax)}/s.`,
    ``,
  );
  return lines;
}
