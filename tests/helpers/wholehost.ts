/**
 * Helpers for the whole-host e2e tests (tests/e2e/wholehost*_test.ts): netflow
 * with no --cgroup (attached to the cgroup v2 root for the seconds a test
 * runs), the workload script tests/workloads/wholehost.py on the host or in
 * test namespaces, tcpdump as a witness, and the sweep every window gets.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { FlowEvent } from "../../src/events.ts";
import { Proc, ROOT, sh, type TestNetns, withTimeout } from "./e2e.ts";
import { atLeast, flowEvents, Netflow, type StartOptions } from "./netflow.ts";

export { atLeast };

const SCRIPT = `${ROOT}tests/workloads/wholehost.py`;
export const HOST_NETNS = Deno.statSync("/proc/self/ns/net").ino!;
export const BEGIN = "net_flow_tcp_begin", END = "net_flow_tcp_end";

export function netnsOf(ns: TestNetns): number {
  return Deno.statSync(`/run/netns/${ns.name}`).ino!;
}

/** Processes, files and tcpdumps of one test, all ended and removed on dispose. */
export class Scope implements AsyncDisposable {
  readonly dir = Deno.makeTempDirSync({ prefix: "nf-wholehost-" });
  readonly #procs: Proc[] = [];
  readonly #dumps: Tcpdump[] = [];

  /** The workload script in the host's network namespace. */
  host(...args: string[]): Proc {
    return this.cmd("python3", SCRIPT, ...args);
  }

  /** The workload script inside a test namespace. */
  in(ns: TestNetns, ...args: string[]): Proc {
    return this.cmd("ip", "netns", "exec", ns.name, "python3", SCRIPT, ...args);
  }

  cmd(cmd: string, ...args: string[]): Proc {
    const proc = new Proc(cmd, args);
    this.#procs.push(proc);
    return proc;
  }

  /** tcpdump on every interface of a namespace (the host's without `ns`). */
  async tcpdump(ns: TestNetns | null, filter: string): Promise<Tcpdump> {
    const prefix = ns === null ? [] : ["ip", "netns", "exec", ns.name];
    const dump = await Tcpdump.start(this.cmd(
      "sh",
      "-c",
      'exec "$@" 2>&1',
      "sh",
      ...prefix,
      "tcpdump",
      "-l",
      "-n",
      "-S",
      "--immediate-mode",
      "-i",
      "any",
      filter,
    ));
    this.#dumps.push(dump);
    return dump;
  }

  path(name: string): string {
    return `${this.dir}/${name}`;
  }

  touch(name: string): void {
    Deno.writeTextFileSync(this.path(name), "");
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const proc of this.#procs.reverse()) await proc[Symbol.asyncDispose]();
    for (const dump of this.#dumps) await dump.pumped;
    Deno.removeSync(this.dir, { recursive: true });
  }
}

/** tcpdump's output lines as they come (its ready line read first). */
export class Tcpdump {
  readonly lines: string[] = [];
  readonly pumped: Promise<void>;

  private constructor(readonly proc: Proc) {
    this.pumped = (async () => {
      try {
        for (;;) this.lines.push(await proc.line(600_000));
      } catch { /* it was ended */ }
    })();
  }

  static async start(proc: Proc): Promise<Tcpdump> {
    for (;;) {
      const line = await proc.line();
      if (line.includes("listening on")) return new Tcpdump(proc);
    }
  }

  /** Waits until at least `n` lines match. */
  async waitFor(re: RegExp, n: number, what: string): Promise<string[]> {
    return await withTimeout(
      (async () => {
        for (;;) {
          const seen = this.lines.filter((l) => re.test(l));
          if (seen.length >= n) return seen;
          await new Promise((r) => setTimeout(r, 20));
        }
      })(),
      20_000,
      `tcpdump to see ${what} (saw:\n${this.lines.join("\n")})`,
    );
  }
}

/** What must never appear in a window, whatever the traffic. */
export interface Rules {
  /** Processes holding raw sockets: no event may name them. */
  rawPids?: number[];
  rawComms?: string[];
  /** Endpoints of refused, half-open or forged traffic: no flow event may touch them. */
  forbidden?: { what: string; match: (e: FlowEvent) => boolean }[];
}

/**
 * The properties every event of a window has (ARCHITECTURE.md, "What counts
 * as a flow"): numbers exact in JSON (non-negative, below 2^53), at most one
 * begin and one end per flow_id, an end with a duration has its begin earlier
 * in the window, no event names a raw socket's holder, none touches a refused
 * or half-open endpoint.
 */
export function sweep(events: FlowEvent[], rules: Rules): void {
  const begun = new Set<string>(), ended = new Set<string>();
  const show = (e: FlowEvent) => JSON.stringify(e);
  for (const e of events) {
    for (const [k, v] of Object.entries(e)) {
      if (typeof v === "number") {
        assert.ok(v >= 0 && v < 2 ** 53, `${k}=${v} is not exact in JSON: ${show(e)}`);
      }
    }
    if (e.event === BEGIN) {
      assert.ok(!begun.has(e.flow_id), `a second begin: ${show(e)}`);
      begun.add(e.flow_id);
    } else {
      assert.ok(!ended.has(e.flow_id), `a second end: ${show(e)}`);
      ended.add(e.flow_id);
      if (e.duration_ms !== null) {
        assert.ok(begun.has(e.flow_id), `an end with a duration and no begin: ${show(e)}`);
      }
    }
    assert.ok(
      e.pid === null || !(rules.rawPids ?? []).includes(e.pid),
      `an event names a raw socket's holder: ${show(e)}`,
    );
    assert.ok(
      e.comm === null || !(rules.rawComms ?? []).includes(e.comm),
      `an event names a raw socket's holder: ${show(e)}`,
    );
    for (const f of rules.forbidden ?? []) {
      assert.ok(!f.match(e), `an event for ${f.what}: ${show(e)}`);
    }
  }
}

/** Starts netflow on the whole host (no --cgroup), its JSON Lines read as they come. */
export async function watchHost(opts: StartOptions = {}): Promise<Netflow> {
  return await Netflow.start(["--format", "json"], opts);
}

/**
 * A positive control: one loopback connection made now, after the traffic a
 * test expects nothing of. A `stopped` condition that holds once its four
 * events (two endpoints, begin and end) are written: anything the earlier
 * traffic made would have been written before them.
 */
export async function control(scope: Scope, lo = "127.0.0.1"): Promise<Ready> {
  const server = scope.host("serve", "--host", lo, "--steps", "recv:1;eof");
  const port = await listening(server);
  const c = await result<Client>(
    scope.host("connect", "--host", lo, "--port", String(port), "--steps", "send:1"),
  );
  await result<Served>(server);
  const mine = (events: FlowEvent[]) =>
    ofConns(events, port, c.ports).filter((e) => e.netns === HOST_NETNS);
  return {
    what: `the control connection ${hostPort(lo, c.ports[0]!)}>${hostPort(lo, port)}`,
    holds: (events) => mine(events).length >= 4,
  };
}

/**
 * Waits until no TCP socket of the host's network namespace has `port` as an
 * end, but in TIME-WAIT: every endpoint of it has closed, and the kernel has
 * written its end.
 */
export async function closed(port: number): Promise<void> {
  const open = async () =>
    (await sh("ss", "-Htan", "state", "all", `( sport = :${port} or dport = :${port} )`))
      .split("\n").filter((l) => l.trim() !== "" && !l.startsWith("TIME-WAIT"));
  await withTimeout(
    (async () => {
      while ((await open()).length > 0) await new Promise((r) => setTimeout(r, 20));
    })(),
    20_000,
    `the sockets of port ${port} to close`,
  );
}

/** What a test waits for before it stops netflow: its own events, or a control's. */
export interface Ready {
  what: string;
  holds: (events: FlowEvent[]) => boolean;
}

/**
 * Stops netflow once `ready` holds for its events (the test's own events, or
 * a positive control's written after the window's traffic: what it asserts
 * does not depend on how busy netflow was when the signal came), checks its
 * exit and summary, sweeps the window; returns its flow events.
 */
export async function stopped(
  nf: Netflow,
  rules: Rules,
  ready: Ready | ((events: FlowEvent[]) => boolean),
): Promise<FlowEvent[]> {
  const r = typeof ready === "function" ? { what: "the test's own events", holds: ready } : ready;
  await nf.untilFlows(r.holds, r.what);
  const { code, events, stderr } = await nf.stop();
  assert.equal(code, 0, stderr);
  assert.match(stderr, /^netflow: watching cgroup /m);
  const summary = stderr.match(
    /netflow: \d+ events, (\d+) lost records, \d+ evicted flows, 0 malformed records,/,
  );
  assert.ok(summary, stderr);
  // Other traffic on the host (a DNS flood, say) can cost records: the exact
  // expectations below then show whether ours were among them.
  if (summary[1] !== "0") console.warn(`whole-host window: ${summary[0]}`);
  // NETFLOW_WH_DUMP=DIR keeps each window's stdout and stderr, for a failure's post-mortem.
  const dump = Deno.env.get("NETFLOW_WH_DUMP");
  if (dump) {
    const base = `${dump}/window-${Date.now()}`;
    Deno.writeTextFileSync(`${base}.jsonl`, events.map((e) => JSON.stringify(e)).join("\n"));
    Deno.writeTextFileSync(`${base}.stderr`, stderr);
  }
  const flows = flowEvents(events).filter((e) => e.event === BEGIN || e.event === END);
  sweep(flows, rules);
  return flows;
}

export function hostPort(addr: string, port: number): string {
  return addr.includes(":") ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** "begin|end direction src>dst [closed_by reason sent/received]": one line per event. */
export function describe(e: FlowEvent): string {
  const base = `${e.event === BEGIN ? "begin" : "end"} ${e.conn_direction} ${
    hostPort(e.src, e.src_port)
  }>${hostPort(e.dst, e.dst_port)}`;
  return e.event === END
    ? `${base} ${e.closed_by} ${e.reason} ${e.bytes_sent}/${e.bytes_received}`
    : base;
}

/** The events of connections between `server` (port) and any of `clients` (ports). */
export function ofConns(events: FlowEvent[], serverPort: number, clients: number[]): FlowEvent[] {
  return events.filter((e) =>
    (e.src_port === serverPort && clients.includes(e.dst_port)) ||
    (e.dst_port === serverPort && clients.includes(e.src_port))
  );
}

/** Any flow event with an endpoint at addr:port. */
export function touches(addr: string, port: number): (e: FlowEvent) => boolean {
  return (e) => (e.src === addr && e.src_port === port) || (e.dst === addr && e.dst_port === port);
}

export function sorted(lines: string[]): string[] {
  return [...lines].sort();
}

/** `n` copies of each line. */
export function times(n: number, ...lines: string[]): string[] {
  return lines.flatMap((l) => Array(n).fill(l));
}

/** A process's single JSON result line, after which it exits successfully. */
export async function result<T>(p: Proc, timeoutMs = 60_000): Promise<T> {
  const out = JSON.parse(await p.line(timeoutMs)) as T;
  await p.done(timeoutMs);
  return out;
}

export async function listening(p: Proc): Promise<number> {
  const line = await p.line();
  assert.match(line, /^listening \d+$/);
  return Number(line.split(" ")[1]);
}

export async function expectLine(p: Proc, want: string): Promise<void> {
  assert.equal(await p.line(30_000), want);
}

export type Client = { pid: number; ports: number[] };
export type Served = { accepted: number; peers: number[] };

/** Microseconds since the epoch of an event's RFC 3339 time (microsecond precision). */
export function micros(time: string): number {
  const [whole, frac] = time.replace("Z", "").split(".");
  return Date.parse(`${whole}Z`) * 1000 + Number((frac ?? "").padEnd(6, "0"));
}

/** iptables or ip6tables in a namespace. */
export function nsTables(ns: TestNetns, family: 4 | 6, ...args: string[]): Promise<string> {
  return sh("ip", "netns", "exec", ns.name, family === 4 ? "iptables" : "ip6tables", ...args);
}

export function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The next `n` lines of a process, each `want`. */
export async function expectLines(p: Proc, want: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await expectLine(p, want);
}

/** "host" or "ns" (or the inode) in front of describe(e). */
export function where(nets: Record<string, number>): (e: FlowEvent) => string {
  return (e) => {
    const name = Object.entries(nets).find(([, n]) => n === e.netns)?.[0] ?? String(e.netns);
    return `${name} ${describe(e)}`;
  };
}

/** The namespace's SYN cookie counters (nstat, absolute, without touching its history). */
export async function cookies(ns: TestNetns): Promise<{ sent: number; recv: number }> {
  const out = await sh(
    "ip",
    "netns",
    "exec",
    ns.name,
    "nstat",
    "-asz",
    "TcpExtSyncookiesSent",
    "TcpExtSyncookiesRecv",
  );
  const value = (name: string) => Number(out.match(new RegExp(`${name}\\s+(\\d+)`))?.[1] ?? NaN);
  return { sent: value("TcpExtSyncookiesSent"), recv: value("TcpExtSyncookiesRecv") };
}

/** Per client port, the four lines a connection's two endpoints must give; the runs that differ. */
export function badRuns(
  events: FlowEvent[],
  label: (e: FlowEvent) => string,
  port: number,
  ports: number[],
  expect: (clientPort: number) => string[],
): string[] {
  const bad: string[] = [];
  for (const c of ports) {
    const seen = sorted(ofConns(events, port, [c]).map(label));
    const want = sorted(expect(c));
    if (JSON.stringify(seen) !== JSON.stringify(want)) {
      bad.push(`port ${c}: saw [${seen.join("; ")}], expected [${want.join("; ")}]`);
    }
  }
  return bad;
}
