/**
 * Helpers for e2e tests: they run as root on real traffic, in a child cgroup
 * and network namespaces each test creates and removes, even when it fails.
 *
 * Without root, e2e tests are skipped, unless NETFLOW_E2E=1 (CI), which turns
 * any missing prerequisite into a failure.
 *
 * @module
 */
import { findCgroup2Mount } from "../../src/bpf/cgroup.ts";
import type { FlowEvent } from "../../src/events.ts";
import { atLeast, onPort, ROOT, withTimeout } from "./netflow.ts";

export { ROOT, withTimeout };
export const WORKLOAD = `${ROOT}tests/workloads/tcp.py`;
const REQUIRED = Deno.env.get("NETFLOW_E2E") === "1";
const TOOLS = [
  "python3",
  "ip",
  "dnsmasq",
  "tcpdump",
  "bpftool",
  "setpriv",
  "nfcapd",
  "nfdump",
  "ipfixDump",
  "tshark",
  "stdbuf",
  "ss",
];

function which(tool: string): boolean {
  try {
    return new Deno.Command("sh", { args: ["-c", `command -v ${tool}`], stdout: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/** Why e2e tests cannot run here, or undefined when they can. */
function missing(): string | undefined {
  if (Deno.uid() !== 0) return "e2e tests need root";
  const absent = TOOLS.filter((t) => !which(t));
  if (absent.length > 0) return `e2e tests need ${absent.join(", ")}`;
  return undefined;
}

const common = missing();

/**
 * Registers an e2e test: skipped without prerequisites (root, the common tools
 * and the test's own `needs`), failed for that under NETFLOW_E2E=1.
 */
export function e2eTest(name: string, fn: () => Promise<void>, needs: string[] = []): void {
  const absent = needs.filter((t) => !which(t));
  const reason = common ??
    (absent.length > 0 ? `this test needs ${absent.join(", ")}` : undefined);
  Deno.test({
    name,
    ignore: reason !== undefined && !REQUIRED,
    // Subprocesses and signal listeners are the test's business; it ends them itself.
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      if (reason !== undefined) throw new Error(`${reason} (NETFLOW_E2E=1 requires them)`);
      await fn();
    },
  });
}

const decoder = new TextDecoder();
let serial = 0;

/** A child process with line-by-line access to its stdout. */
export class Proc implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly #lines: AsyncIterator<string>;
  #stdout = "";
  readonly stderr: Promise<string>;

  constructor(cmd: string, args: string[]) {
    this.child = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped", stdin: "null" })
      .spawn();
    this.#lines = lines(this.child.stdout, (s) => this.#stdout += s);
    this.stderr = new Response(this.child.stderr).text();
  }

  get pid(): number {
    return this.child.pid;
  }

  /** The next stdout line; throws if the process ends or `timeoutMs` passes first. */
  async line(timeoutMs = 15_000): Promise<string> {
    const next = await withTimeout(this.#lines.next(), timeoutMs, "a line of output");
    if (next.done) throw new Error(`process ended early: ${await this.stderr}`);
    return next.value;
  }

  /** Waits for a successful exit. */
  async done(timeoutMs = 60_000): Promise<void> {
    const status = await withTimeout(this.child.status, timeoutMs, "the process to end");
    if (!status.success) throw new Error(`exit ${status.code}: ${await this.stderr}`);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch { /* already gone */ }
    await this.child.status;
    await this.stderr.catch(() => "");
  }
}

async function* lines(stream: ReadableStream<Uint8Array>, raw: (s: string) => void) {
  let buffer = "";
  for await (const chunk of stream) {
    const text = decoder.decode(chunk, { stream: true });
    raw(text);
    buffer += text;
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
    }
  }
  if (buffer) yield buffer;
}

export async function sh(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${decoder.decode(out.stderr).trim()}`);
  }
  return decoder.decode(out.stdout);
}

/**
 * A child cgroup of the v2 root (or, given `parent`, a cgroup `name` inside
 * that test cgroup: netflow --cgroup on the parent sees it), removed with its
 * processes ended on dispose (a child before its parent: declare it after).
 */
export class TestCgroup implements AsyncDisposable {
  readonly dir: string;
  readonly path: string;
  readonly #procs: Proc[] = [];

  constructor(parent?: TestCgroup, name?: string) {
    this.path = parent === undefined
      ? `/netflow-test-${Deno.pid}-${++serial}`
      : `${parent.path}/${name ?? `child-${++serial}`}`;
    this.dir = `${findCgroup2Mount()}${this.path}`;
    Deno.mkdirSync(this.dir);
  }

  /** The cgroup id: the inode number of its directory. */
  get id(): number {
    return Deno.statSync(this.dir).ino!;
  }

  /** Runs a command inside this cgroup (it moves itself in, then execs). */
  spawn(cmd: string, ...args: string[]): Proc {
    const proc = new Proc("sh", [
      "-c",
      'echo $$ > "$0/cgroup.procs" && exec "$@"',
      this.dir,
      cmd,
      ...args,
    ]);
    this.#procs.push(proc);
    return proc;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const proc of this.#procs) await proc[Symbol.asyncDispose]();
    for (let i = 0; i < 50; i++) {
      try {
        Deno.removeSync(this.dir);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100)); // processes still exiting
      }
    }
    Deno.removeSync(this.dir);
  }
}

/** A network namespace joined to this host by a veth pair, with IPv4 and IPv6. */
export class TestNetns implements AsyncDisposable {
  readonly name: string;
  readonly hostAddr4: string;
  readonly nsAddr4: string;
  readonly hostAddr6: string;
  readonly nsAddr6: string;
  readonly #procs: Proc[] = [];
  readonly #hostLink: string;

  private constructor(index: number, subnet: number) {
    // 198.18.0.0/15 is reserved for benchmarking (RFC 2544); fd00::/8 is local.
    this.name = `nf-test-${Deno.pid}-${index}`;
    this.hostAddr4 = `198.18.${subnet}.1`;
    this.nsAddr4 = `198.18.${subnet}.2`;
    this.hostAddr6 = `fd00:6e67:${subnet.toString(16)}::1`;
    this.nsAddr6 = `fd00:6e67:${subnet.toString(16)}::2`;
    this.#hostLink = `nfh${Deno.pid % 100000}x${index}`;
  }

  /**
   * A 198.18.N.0/24 no interface of this host has yet, starting from one
   * derived from the pid and index: test processes running at once (several
   * checkouts on one machine) would otherwise share a subnet, and their
   * packets would reach each other's namespaces.
   */
  static async #freeSubnet(index: number): Promise<number> {
    const used = new Set(
      [...(await sh("ip", "-4", "-o", "addr", "show")).matchAll(/ 198\.18\.(\d+)\./g)]
        .map((m) => Number(m[1])),
    );
    const start = ((Deno.pid % 200) * 4 + index) % 250;
    for (let k = 0; k < 250; k++) {
      const n = (start + k) % 250;
      if (!used.has(n)) return n;
    }
    return start;
  }

  static async create(index = 1): Promise<TestNetns> {
    const ns = new TestNetns(index, await TestNetns.#freeSubnet(index));
    const host = ns.#hostLink, peer = `nfp${Deno.pid % 100000}x${index}`;
    try {
      await sh("ip", "netns", "add", ns.name);
      await sh("ip", "link", "add", host, "type", "veth", "peer", "name", peer);
      await sh("ip", "link", "set", peer, "netns", ns.name);
      await sh("ip", "addr", "add", `${ns.hostAddr4}/24`, "dev", host);
      await sh("ip", "-6", "addr", "add", `${ns.hostAddr6}/64`, "dev", host, "nodad");
      await sh("ip", "link", "set", host, "up");
      const inNs = (...a: string[]) => sh("ip", "netns", "exec", ns.name, ...a);
      await inNs("ip", "addr", "add", `${ns.nsAddr4}/24`, "dev", peer);
      await inNs("ip", "-6", "addr", "add", `${ns.nsAddr6}/64`, "dev", peer, "nodad");
      await inNs("ip", "link", "set", peer, "up");
      await inNs("ip", "link", "set", "lo", "up");
    } catch (err) {
      await ns[Symbol.asyncDispose]();
      throw err;
    }
    return ns;
  }

  /** Runs a command inside the namespace (outside any test cgroup). */
  spawn(cmd: string, ...args: string[]): Proc {
    const proc = new Proc("ip", ["netns", "exec", this.name, cmd, ...args]);
    this.#procs.push(proc);
    return proc;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const proc of this.#procs) await proc[Symbol.asyncDispose]();
    // The namespace's own teardown of the pair is asynchronous: delete it now.
    await sh("ip", "link", "del", this.#hostLink).catch(() => {});
    await sh("ip", "netns", "del", this.name).catch(() => {});
  }
}

/** BPF programs attached to a cgroup directory, per bpftool. */
export async function attachedPrograms(dir: string): Promise<string[]> {
  const out = await sh("bpftool", "cgroup", "show", dir);
  return out.split("\n").slice(1).filter((l) => l.trim() !== "");
}

/** Where a workload process runs: in the test cgroup, or in a namespace (watched or not). */
export type Where = { kind: "cgroup" } | { kind: "netns"; ns: TestNetns; watched: boolean };

/** The scenario tests/workloads/tcp.py plays. */
export interface Run {
  scenario?: string;
  count?: number;
  bytes?: number;
  fork?: boolean;
}

/** Runs a server and a client of tests/workloads/tcp.py where told; returns ports and pids. */
export async function workload(
  cg: TestCgroup,
  server: { where: Where; host: string },
  client: { where: Where; connectTo: string },
  run: Run = {},
) {
  const args = [
    "--scenario",
    run.scenario ?? "client-close",
    "--count",
    String(run.count ?? 1),
    "--bytes",
    String(run.bytes ?? 100),
  ];
  const start = (where: Where, ...a: string[]): Proc => {
    if (where.kind === "cgroup") return cg.spawn("python3", WORKLOAD, ...a);
    if (where.watched) {
      return cg.spawn("ip", "netns", "exec", where.ns.name, "python3", WORKLOAD, ...a);
    }
    return where.ns.spawn("python3", WORKLOAD, ...a);
  };
  const serverArgs = ["serve", "--host", server.host, ...args, ...(run.fork ? ["--fork"] : [])];
  await using srv = start(server.where, ...serverArgs);
  const port = Number((await srv.line()).split(" ")[1]);
  const workerPid = run.fork ? Number((await srv.line()).split(" ")[1]) : undefined;
  await using cli = start(
    client.where,
    "connect",
    "--host",
    client.connectTo,
    "--port",
    String(port),
    ...args,
  );
  const out = JSON.parse(await cli.line(120_000)) as { pid: number; ports: number[] };
  await cli.done(120_000);
  await srv.done(120_000);
  return {
    serverPort: port,
    clientPorts: out.ports,
    serverPid: srv.pid,
    clientPid: cli.pid,
    workerPid,
  };
}

export const LOCAL: Where = { kind: "cgroup" };

/**
 * A positive control: one loopback connection between two processes of `cg`,
 * made now, after the traffic a test expects nothing of. A condition for
 * `Netflow.untilFlows` that holds once its four events (two endpoints, begin
 * and end) are written: anything the earlier traffic made would have been
 * written before them.
 */
export async function control(cg: TestCgroup): Promise<(flows: FlowEvent[]) => boolean> {
  const w = await workload(cg, { where: LOCAL, host: "127.0.0.1" }, {
    where: LOCAL,
    connectTo: "127.0.0.1",
  });
  return atLeast(4, onPort(w.clientPorts[0]!));
}
