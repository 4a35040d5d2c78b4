/**
 * The one netflow launcher of the tests and benchmarks: it starts the CLI
 * (src/cli.ts with the runtime's V8 flags, optionally under a wrapper such as
 * `setpriv` or `unshare`), waits for its ready line, reads every event as it
 * is written, waits for a condition on them with a bounded timeout, stops it
 * with a signal (SIGINT unless told) and reads its summary, and ends it with
 * SIGKILL on dispose, whatever happened.
 *
 * No fixed sleeps: a test waits (`until`) for the events it asserts before it
 * stops netflow, so what it asserts does not depend on how busy netflow was
 * when the signal came; a test that asserts something is absent waits for a
 * positive control that comes after it.
 *
 * @module
 */
import { RUNTIME_V8_FLAGS } from "../../build.ts";
import type { FlowEvent, NetflowEvent } from "../../src/events.ts";

export const ROOT = new URL("../../", import.meta.url).pathname;
export const CLI = `${ROOT}src/cli.ts`;
/** Plain stderr (no colour, no Rust backtraces from Deno's own panics). */
export const ENV = { NO_COLOR: "1", RUST_BACKTRACE: "0" };
/** The stderr line netflow writes once its programs are attached. */
export const READY = "netflow: watching cgroup ";
/** netflow's summary line on stderr, written when it stops. */
export const SUMMARY = /^netflow: \d+ events, .*$/m;

const decoder = new TextDecoder();

/** How to start netflow, besides its arguments. */
export interface StartOptions {
  /** A command that ends by running its arguments: `setpriv ...`, `unshare ...`. */
  wrapper?: string[];
  /**
   * The wrapper runs netflow as its only child and ignores the stop signals
   * itself (`unshare --fork`): signals go to that child.
   */
  forks?: boolean;
  /**
   * A file (or fifo) netflow writes its stdout to directly, with no pipe
   * between (a benchmark's output never waits on a reader); then `events` and
   * `stdout` stay empty.
   */
  stdoutFile?: string;
  /**
   * stdout is not read until `stop` or `finish` (a reader that is busy, as a
   * slow `| jq`: netflow blocks writing once the pipe is full).
   */
  holdStdout?: boolean;
  /** Added to the environment (NO_COLOR=1 and RUST_BACKTRACE=0 always). */
  env?: Record<string, string>;
  /** Another checkout's src/cli.ts (a benchmark comparing with an older netflow). */
  cli?: string;
  /** V8 flags in place of the runtime's (`--v8-flags=a,b`: a benchmark's A/B of GC settings). */
  v8Flags?: string;
  /** How long the ready line may take (default 60 s: a busy host makes the start snapshot long). */
  readyTimeoutMs?: number;
}

/** What a stopped netflow wrote, and how it ended. */
export interface Stopped {
  code: number;
  /** Its JSON Lines (any --format whose lines are JSON objects), parsed. */
  events: NetflowEvent[];
  stdout: string;
  stderr: string;
  /** The summary line, when it wrote one. */
  summary: string | undefined;
}

/** The command line of netflow with `args`, under `opts.wrapper` and writing to `opts.stdoutFile`. */
export function netflowCommand(args: string[], opts: StartOptions = {}): string[] {
  const cli = opts.cli ?? CLI;
  const v8 = opts.v8Flags ?? RUNTIME_V8_FLAGS;
  const netflow = [Deno.execPath(), "run", "--allow-all", v8, cli, ...args];
  const cmd = [...(opts.wrapper ?? []), ...netflow];
  if (opts.stdoutFile === undefined) return cmd;
  // sh opens the file and execs: the pid stays netflow's (or the wrapper's).
  return ["sh", "-c", 'out=$1; shift; exec "$@" > "$out"', "sh", opts.stdoutFile, ...cmd];
}

/** Runs netflow's CLI to completion (argument and error cases, --version, --duration). */
export async function runNetflow(args: string[], opts: StartOptions = {}) {
  const [cmd, ...rest] = netflowCommand(args, opts);
  const out = await new Deno.Command(cmd!, {
    args: rest,
    stdout: opts.stdoutFile === undefined ? "piped" : "null",
    stderr: "piped",
    stdin: "null",
    env: { ...ENV, ...opts.env },
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** A running netflow CLI, its stdout and stderr read as they come. */
export class Netflow implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  /** Every JSON line written so far, parsed (empty for the table format). */
  readonly events: NetflowEvent[] = [];
  /** stderr's lines so far. */
  readonly stderrLines: string[] = [];
  /** Resolves true at the ready line, false if stderr ends without it. */
  readonly started: Promise<boolean>;
  readonly #forks: boolean;
  readonly #read: Promise<void>;
  #stdout = "";
  #stderr = "";
  #cursor = 0;
  #ended = false;
  #parseError: Error | undefined;
  #readStdout!: () => void;

  private constructor(args: string[], opts: StartOptions) {
    this.#forks = opts.forks ?? false;
    const [cmd, ...rest] = netflowCommand(args, opts);
    this.child = new Deno.Command(cmd!, {
      args: rest,
      stdin: "null",
      stdout: opts.stdoutFile === undefined ? "piped" : "null",
      stderr: "piped",
      env: { ...ENV, ...opts.env },
    }).spawn();
    let ready!: (ok: boolean) => void;
    this.started = new Promise((r) => ready = r);
    let read!: () => void;
    const reading = new Promise<void>((r) => this.#readStdout = read = r);
    const out = opts.stdoutFile === undefined
      ? reading.then(() =>
        eachLine(this.child.stdout, (s) => this.#stdout += s, (line) => this.#parse(line))
      )
      : Promise.resolve();
    if (!opts.holdStdout) read();
    const err = eachLine(this.child.stderr, (s) => this.#stderr += s, (line) => {
      this.stderrLines.push(line);
      if (line.startsWith(READY)) {
        this.#cursor = this.stderrLines.length;
        ready(true);
      }
    });
    const errEnded = err.finally(() => {
      this.#ended = true;
      ready(false);
    });
    this.#read = Promise.allSettled([out, errEnded]).then(() => {});
  }

  /** Spawns netflow without waiting for its ready line (see `started`). */
  static spawn(args: string[], opts: StartOptions = {}): Netflow {
    return new Netflow(args, opts);
  }

  /** Starts netflow and waits for its ready line; on failure ends it and throws with its stderr. */
  static async start(args: string[], opts: StartOptions = {}): Promise<Netflow> {
    const nf = new Netflow(args, opts);
    try {
      const ok = await withTimeout(
        nf.started,
        opts.readyTimeoutMs ?? 60_000,
        "netflow's ready line",
      );
      if (!ok) throw new Error("it ended");
    } catch (err) {
      await nf[Symbol.asyncDispose]();
      throw new Error(`netflow did not start (${(err as Error).message}): ${nf.#stderr}`);
    }
    return nf;
  }

  #parse(line: string): void {
    if (line === "" || (this.events.length === 0 && !this.#stdout.startsWith("{"))) return;
    try {
      this.events.push(JSON.parse(line));
    } catch (err) {
      this.#parseError ??= new Error(`netflow wrote a line that is not JSON: ${line} (${err})`);
    }
  }

  /** The pid of netflow itself (the wrapper's only child when it forks). */
  get pid(): number {
    if (!this.#forks) return this.child.pid;
    const pid = this.child.pid;
    const child = Deno.readTextFileSync(`/proc/${pid}/task/${pid}/children`).trim();
    if (!/^\d+$/.test(child)) throw new Error(`${pid} has not one child: "${child}"`);
    return Number(child);
  }

  get stdout(): string {
    return this.#stdout;
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** The flow events (begin, end, update, fail) written so far. */
  flows(): FlowEvent[] {
    return flowEvents(this.events);
  }

  /**
   * Waits until `pred` holds for the events (and stdout) written so far;
   * throws after `timeoutMs`, or at once if netflow ends first.
   */
  async until(
    pred: (events: NetflowEvent[], stdout: string) => boolean,
    what: string,
    timeoutMs = 30_000,
  ): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (this.#parseError) throw this.#parseError;
      if (pred(this.events, this.#stdout)) return;
      if (this.#ended) {
        await this.finish(); // its last lines read
        if (pred(this.events, this.#stdout)) return;
        throw new Error(`netflow ended before ${what}: ${this.#stderr}`);
      }
      if (performance.now() > deadline) {
        throw new Error(`timed out waiting for ${what} (${this.events.length} events so far)`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Waits until `pred` holds for the flow events (begin, end, update, fail) written so far. */
  async untilFlows(pred: (flows: FlowEvent[]) => boolean, what: string, timeoutMs = 30_000) {
    await this.until((events) => pred(flowEvents(events)), what, timeoutMs);
  }

  /** Waits for the next stderr line (after the ready line and the last one returned) matching `pattern`. */
  async stderrLine(pattern: RegExp, timeoutMs = 20_000): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      while (this.#cursor < this.stderrLines.length) {
        const line = this.stderrLines[this.#cursor++]!;
        if (pattern.test(line)) return line;
      }
      if (this.#ended) throw new Error(`netflow ended first: ${this.#stderr}`);
      if (performance.now() > deadline) {
        throw new Error(`timed out waiting for a stderr line matching ${pattern}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Sends `signal` to netflow (ignored when it has already exited). */
  kill(signal: Deno.Signal): void {
    try {
      if (this.#forks) Deno.kill(this.pid, signal);
      else this.child.kill(signal);
    } catch { /* it exited by itself: its code and stderr say why */ }
  }

  /** Signals netflow (SIGINT unless told), then what it wrote and how it ended. */
  async stop(signal: "SIGINT" | "SIGTERM" | "SIGHUP" = "SIGINT", timeoutMs = 60_000) {
    this.kill(signal);
    return await this.finish(timeoutMs);
  }

  /** Waits for netflow to end by itself; what it wrote and how it ended. */
  async finish(timeoutMs = 30_000): Promise<Stopped> {
    this.#readStdout();
    const [status] = await withTimeout(
      Promise.all([this.child.status, this.#read]),
      timeoutMs,
      "netflow to stop",
    );
    if (this.#parseError) throw this.#parseError;
    return {
      code: status.code,
      events: this.events,
      stdout: this.#stdout,
      stderr: this.#stderr,
      summary: this.#stderr.match(SUMMARY)?.[0],
    };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#forks) {
      // The wrapper's child would outlive a SIGKILLed wrapper: end it first.
      try {
        Deno.kill(this.pid, "SIGKILL");
      } catch { /* already gone */ }
    }
    try {
      this.child.kill("SIGKILL");
    } catch { /* already gone */ }
    await this.child.status;
    this.#readStdout();
    await this.#read;
  }
}

/** A condition for `untilFlows`: at least `n` flow events satisfy `of`. */
export function atLeast(
  n: number,
  of: (e: FlowEvent) => boolean,
): (flows: FlowEvent[]) => boolean {
  return (flows) => flows.filter(of).length >= n;
}

/** A condition for `untilFlows`: each of `ports` has at least `n` flow events. */
export function eachPort(n: number, ports: number[]): (flows: FlowEvent[]) => boolean {
  return (flows) => ports.every((p) => flows.filter(onPort(p)).length >= n);
}

/** A flow event with an endpoint on `port` (a client's port: one connection). */
export function onPort(port: number): (e: FlowEvent) => boolean {
  return (e) => e.src_port === port || e.dst_port === port;
}

/** The flow events (begin, end, update, fail: not packets) among `events`. */
export function flowEvents(events: NetflowEvent[]): FlowEvent[] {
  return events.filter((e): e is FlowEvent => e.event.startsWith("net_flow_tcp_"));
}

/** Calls `line` for each line of `stream` (and `raw` for its text as it comes). */
async function eachLine(
  stream: ReadableStream<Uint8Array>,
  raw: (s: string) => void,
  line: (l: string) => void,
): Promise<void> {
  let buffer = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    raw(text);
    buffer += text;
    let nl;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      line(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
    }
  }
  if (buffer) line(buffer);
}

/** Polls `cond` every 20 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function until(cond: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `p`, or an error naming `what` after `ms`. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
