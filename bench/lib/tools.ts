/**
 * The two monitors the benchmarks compare: netflow, started by the tests' own
 * launcher (tests/helpers/netflow.ts: the CLI with the runtime's V8 flags),
 * writing JSON Lines straight to a file, and libbpf-tools tcplife, its lines
 * copied to a file. Both are counted from their files.
 *
 * @module
 */
import { Netflow as Launcher } from "../../tests/helpers/netflow.ts";
import { OUT_DIR } from "./env.ts";
import { perfEventFds, sleep, spawn, started } from "./proc.ts";

export interface NetflowOptions {
  /** The cgroup to watch; the whole host (no --cgroup) when null. */
  cgroup: string | null;
  /** More arguments (`--events net_flow_tcp_end`). */
  extra?: string[];
  /** Another checkout's src/cli.ts (bench/bulk.ts's `--before`). */
  cli?: string;
  /** V8 flags in place of the runtime's (`--v8-flags=a,b`; bench/memory_ab.ts). */
  v8Flags?: string;
  /** Added to its environment (bench/memory_ab.ts: stdout line-buffered for V8's traces). */
  env?: Record<string, string>;
}

/**
 * More V8 flags for every netflow a benchmark starts, for an experiment
 * (`--perf-basic-prof`): NETFLOW_BENCH_V8_FLAGS, passed as DENO_V8_FLAGS, so
 * the runtime's own --v8-flags (RUNTIME_V8_FLAGS) still win where they overlap.
 */
export function benchV8Env(): Record<string, string> {
  const more = Deno.env.get("NETFLOW_BENCH_V8_FLAGS");
  return more ? { DENO_V8_FLAGS: more } : {};
}

/** netflow, writing JSON Lines straight to a file (so counts never wait on a pipe). */
export class Netflow {
  readonly file: string;
  readonly #nf: Launcher;

  private constructor(nf: Launcher, file: string) {
    this.#nf = nf;
    this.file = file;
  }

  /** Starts netflow and waits for its ready line. */
  static async start(name: string, o: NetflowOptions): Promise<Netflow> {
    const file = `${OUT_DIR}/${name}.jsonl`;
    const nf = await Launcher.start([
      "--format",
      "json",
      ...(o.cgroup === null ? [] : ["--cgroup", o.cgroup]),
      ...(o.extra ?? []),
    ], {
      stdoutFile: file,
      env: { ...benchV8Env(), ...o.env },
      ...(o.cli === undefined ? {} : { cli: o.cli }),
      ...(o.v8Flags === undefined ? {} : { v8Flags: o.v8Flags }),
    });
    started.push(nf.child); // ended by pid at cleanup whatever happens
    return new Netflow(nf, file);
  }

  get pid(): number {
    return this.#nf.pid;
  }

  /** Stops it; returns its summary line. */
  async stop(): Promise<string> {
    const stopped = await this.#nf.stop("SIGTERM", 120_000);
    return stopped.summary ?? `no summary (exit ${stopped.code})`;
  }

  /** Counts of events to or from `port` in its output so far (read in chunks: it gets large). */
  count(port: number): { begin: number; end: number } {
    let begin = 0, end = 0, rest = "";
    const needle = [`"src_port":${port},`, `"dst_port":${port},`];
    const tally = (line: string) => {
      if (!needle.some((n) => line.includes(n))) return;
      if (line.includes('"event":"net_flow_tcp_begin"')) begin++;
      else if (line.includes('"event":"net_flow_tcp_end"')) end++;
    };
    using file = Deno.openSync(this.file);
    const buf = new Uint8Array(1 << 20);
    const text = new TextDecoder();
    for (let n; (n = file.readSync(buf)) !== null;) {
      const lines = (rest + text.decode(buf.subarray(0, n), { stream: true })).split("\n");
      rest = lines.pop()!;
      for (const line of lines) tally(line);
    }
    tally(rest);
    return { begin, end };
  }
}

/** libbpf-tools tcplife (host-wide: its lines are filtered by port). */
export class Tcplife {
  readonly child: Deno.ChildProcess;
  readonly file: string;
  readonly #copied: Promise<void>;

  private constructor(child: Deno.ChildProcess, file: string) {
    this.child = child;
    this.file = file;
    const out = Deno.openSync(file, { write: true, create: true, truncate: true });
    this.#copied = child.stdout.pipeTo(out.writable);
  }

  /** Starts tcplife and waits until its tracepoint program is attached. */
  static async start(name: string): Promise<Tcplife> {
    const child = spawn("tcplife", [], { stdout: "piped" });
    const t = new Tcplife(child, `${OUT_DIR}/${name}.txt`);
    // Attached once it holds the tracepoint's perf event and its perf buffers (one per CPU).
    for (let i = 0; i < 100; i++) {
      if (perfEventFds(child.pid) > navigator.hardwareConcurrency) return t;
      await sleep(100);
    }
    throw new Error("tcplife did not start");
  }

  get pid(): number {
    return this.child.pid;
  }

  /** Its lines with `port` as local or remote port (read after stop: its stdout is buffered). */
  count(port: number): number {
    const p = String(port);
    return Deno.readTextFileSync(this.file).split("\n").filter((l) => {
      const f = l.trim().split(/\s+/);
      return f[3] === p || f[5] === p; // LPORT or RPORT
    }).length;
  }

  async stop(): Promise<void> {
    this.child.kill("SIGINT");
    await this.child.status;
    await this.#copied;
  }
}
