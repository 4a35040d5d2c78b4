/**
 * A soak (issue 23 point 4), as root: netflow's CLI runs for `--minutes N`
 * (default 30) under a mixed workload, and its RSS, CPU and event counts are
 * sampled each second.
 *
 *   sudo deno run -A bench/soak.ts [--minutes N] [--rate CONNS_PER_S] [--whole-host]
 *                                  [--out DIR] [-- NETFLOW_ARGS...]
 *
 * The workload, all of it the soak's own (a child cgroup, and network
 * namespaces on 198.18.N.0/24 subnets no interface has):
 * - short connections from the host to a server in namespace A (`--rate`
 *   per second, default 10), each sending and receiving a random number of bytes;
 * - long-lived flows (8 at once, 30 to 120 s each, 100 bytes a second),
 *   reported by `--events update --update-interval 5`;
 * - a DNS lookup every 2 s (a random name, answered by a dnsmasq in A),
 *   then a connection to the answered address;
 * - a connect scan of 200 closed ports of A every minute (nmap -sT, 50/s):
 *   refused attempts, reported as fail events;
 * - a network namespace B created every 5 s, a connection into it, and B
 *   deleted.
 * Every connection's client logs its port and the bytes each side sent: at
 * the end each must have, on both endpoints, one begin and one end with
 * exactly those bytes (the markers).
 *
 * netflow watches the soak's cgroup by default; with --whole-host it watches
 * the root cgroup (only flows to the soak's subnets: --net), and must then be
 * run under the suites' lock (flock /tmp/netflow-ok.lock ...).
 *
 * Writes DIR/soak.csv (a row a second), DIR/soak.svg (RSS, CPU and events a
 * second) and DIR/soak.md (the summary, also printed); DIR defaults to
 * bench/soak. Removes everything it created, also on failure or Ctrl-C.
 *
 * @module
 */
import { findCgroup2Mount } from "../src/bpf/cgroup.ts";
import { dnsmasqCommand } from "../tests/helpers/dns.ts";
import { Netflow } from "../tests/helpers/netflow.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const decoder = new TextDecoder();

function usage(msg: string): never {
  console.error(`soak: ${msg}`);
  console.error(
    "usage: deno run -A bench/soak.ts [--minutes N] [--rate N] [--whole-host] [--out DIR] " +
      "[-- NETFLOW_ARGS...]",
  );
  Deno.exit(2);
}

function parseArgs(args: string[]) {
  const o = {
    minutes: 30,
    rate: 10,
    wholeHost: false,
    out: `${ROOT}bench/soak`,
    netflowArgs: [] as string[],
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = () => {
      const v = args[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    const num = (v: string, min: number) => {
      const n = Number(v);
      if (!Number.isFinite(n) || n < min) usage(`${a} must be a number >= ${min}, not "${v}"`);
      return n;
    };
    if (a === "--minutes") o.minutes = num(value(), 0.5);
    else if (a === "--rate") o.rate = num(value(), 0.1);
    else if (a === "--whole-host") o.wholeHost = true;
    else if (a === "--out") o.out = value();
    else if (a === "--") {
      o.netflowArgs = args.slice(i + 1); // e.g. -- --metrics-expiry 60
      break;
    } else usage(`unknown argument "${a}"`);
  }
  return o;
}

async function sh(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${decoder.decode(out.stderr).trim()}`);
  }
  return decoder.decode(out.stdout);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ workload

/** Server: per connection a 8-byte header (n to read, m to reply), n bytes in, m out, wait for EOF. */
const SERVER = `
import socket, struct, sys, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 0)); srv.listen(1024)
print(srv.getsockname()[1], flush=True)
def read(c, n):
    got = 0
    while got < n:
        b = c.recv(min(65536, n - got))
        if not b: return False
        got += len(b)
    return True
def one(c):
    with c:
        h = b""
        while len(h) < 8:
            b = c.recv(8 - len(h))
            if not b: return
            h += b
        n, m = struct.unpack("!II", h)
        if read(c, n):
            c.sendall(b"y" * m)
            while c.recv(4096): pass
while True:
    c, _ = srv.accept()
    threading.Thread(target=one, args=(c,), daemon=True).start()
`;

/**
 * Client: short connections at a rate, long flows, DNS lookups then a
 * connection; one JSON line per finished connection. Commands on stdin:
 * "one ADDR PORT" makes one connection (the churned namespace's).
 */
const CLIENT = `
import json, random, socket, struct, sys, threading, time
addr, port, dns, rate, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
lock = threading.Lock()
def log(d):
    with lock:
        print(json.dumps(d), flush=True)
def conn(kind, to, n, m, pace=0, name=None):
    s = socket.create_connection((to, port), timeout=30)
    try:
        lport = s.getsockname()[1]
        s.sendall(struct.pack("!II", n, m))
        left = n
        while left > 0:
            k = min(left, 100 if pace else 65536)
            s.sendall(b"x" * k); left -= k
            if pace: time.sleep(pace)
        got = 0
        while got < m:
            b = s.recv(65536)
            if not b: break
            got += len(b)
    finally:
        s.close()
    d = {"kind": kind, "to": to, "port": lport, "sent": n + 8, "recv": got, "t": time.time()}
    if name: d["name"] = name
    log(d)
def guard(f, *a):
    try: f(*a)
    except Exception as e: log({"kind": "error", "error": repr(e)})
def short():
    k = 0
    while time.time() < stop:
        t = time.time()
        threading.Thread(target=guard, args=(conn, "short", addr, random.randint(1, 5000), random.randint(1, 5000)), daemon=True).start()
        k += 1
        time.sleep(max(0, 1 / rate - (time.time() - t)))
def long():
    while time.time() + 30 < stop:
        secs = random.randint(30, min(120, int(stop - time.time())))
        guard(conn, "long", addr, 100 * secs, 100, 1.0)
def query(name):
    q = struct.pack("!HHHHHH", random.randint(0, 65535), 0x100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\\0" + struct.pack("!HH", 1, 1)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
    try:
        u.sendto(q, (dns, 53)); r = u.recv(1500)
    finally:
        u.close()
    return socket.inet_ntoa(r[-4:])  # one A record, last
def lookups():
    k = 0
    while time.time() < stop:
        k += 1
        name = "h%d-%d.soak.test" % (k, random.randint(0, 1 << 30))
        try:
            to = query(name)
            guard(conn, "dns", to, random.randint(1, 2000), random.randint(1, 2000), 0, name)
        except Exception as e:
            log({"kind": "error", "error": "dns " + repr(e)})
        time.sleep(2)
def commands():
    for line in sys.stdin:
        _, to, p = line.split()
        def one(to=to, p=int(p)):
            s = socket.create_connection((to, p), timeout=10)
            lport = s.getsockname()[1]
            n, m = random.randint(1, 3000), random.randint(1, 3000)
            s.sendall(struct.pack("!II", n, m) + b"x" * n)
            got = 0
            while got < m:
                b = s.recv(65536)
                if not b: break
                got += len(b)
            s.close()
            log({"kind": "churn", "to": to, "port": lport, "sent": n + 8, "recv": got, "t": time.time()})
        guard(one)
        log({"kind": "churn-done"})
threading.Thread(target=commands, daemon=True).start()
ts = [threading.Thread(target=short)] + [threading.Thread(target=long) for _ in range(8)] + [threading.Thread(target=lookups)]
for t in ts: t.start()
for t in ts: t.join()
time.sleep(1)
log({"kind": "done"})
`;

interface Marker {
  kind: string;
  to: string;
  port: number;
  sent: number;
  recv: number;
  name?: string;
}

/** Everything the soak made, removed in reverse order. */
class Scope {
  readonly #undo: (() => Promise<unknown>)[] = [];
  add(f: () => Promise<unknown>) {
    this.#undo.push(f);
  }
  async close() {
    for (const f of this.#undo.reverse()) await f().catch(() => {});
    this.#undo.length = 0;
  }
}

/** A 198.18.N.0/24 no interface has (as tests/helpers/e2e.ts picks them). */
async function freeSubnet(avoid: Set<number>): Promise<number> {
  const used = new Set(
    [...(await sh("ip", "-4", "-o", "addr", "show")).matchAll(/ 198\.18\.(\d+)\./g)]
      .map((m) => Number(m[1])),
  );
  const start = (Deno.pid * 7) % 250;
  for (let k = 0; k < 250; k++) {
    const n = (start + k) % 250;
    if (!used.has(n) && !avoid.has(n)) return n;
  }
  throw new Error("no free 198.18.N.0/24");
}

/** A namespace joined to the host by a veth pair: host .1, namespace .2. */
async function makeNetns(scope: Scope | null, name: string, link: string, subnet: number) {
  const undo = async () => {
    await sh("ip", "link", "del", link).catch(() => {});
    await sh("ip", "netns", "del", name).catch(() => {});
  };
  scope?.add(undo);
  try {
    await sh("ip", "netns", "add", name);
    await sh("ip", "link", "add", link, "type", "veth", "peer", "name", `${link}p`);
    await sh("ip", "link", "set", `${link}p`, "netns", name);
    await sh("ip", "addr", "add", `198.18.${subnet}.1/24`, "dev", link);
    await sh("ip", "link", "set", link, "up");
    await sh("ip", "-n", name, "addr", "add", `198.18.${subnet}.2/24`, "dev", `${link}p`);
    await sh("ip", "-n", name, "link", "set", `${link}p`, "up");
    await sh("ip", "-n", name, "link", "set", "lo", "up");
  } catch (err) {
    await undo();
    throw err;
  }
  return { host: `198.18.${subnet}.1`, ns: `198.18.${subnet}.2`, undo };
}

/** A process in the soak's cgroup (and, given one, a namespace), its stdout read by lines. */
function spawnIn(cgroup: string, netns: string | null, cmd: string[], stdin = false) {
  const inNs = netns ? ["ip", "netns", "exec", netns] : [];
  const child = new Deno.Command("sh", {
    args: ["-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup, ...inNs, ...cmd],
    stdout: "piped",
    stderr: "inherit",
    stdin: stdin ? "piped" : "null",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const line = async (): Promise<string | null> => {
    for (;;) {
      const nl = buffer.indexOf("\n");
      if (nl >= 0) {
        const l = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        return l;
      }
      const { value, done } = await lines.read();
      if (done) return null;
      buffer += value;
    }
  };
  const kill = async () => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await child.status;
  };
  return { child, line, kill };
}

// ------------------------------------------------------------------ sampling

interface Sample {
  t: number;
  rssMb: number;
  /** RSS that is anonymous memory (heap and allocator; not the mapped binary). */
  anonMb: number;
  /** V8's heap in use, and memory V8 counts outside it (netflow's /metrics). */
  heapMb: number;
  heapTotalMb: number;
  externalMb: number;
  cpuPct: number;
  events: number;
  eventsPerS: number;
  lost: number;
  markers: number;
  /** Flow metrics' series in the scrape (lines of netflow_tcp_*). */
  series: number;
}

function procSample(pid: number): { rssKb: number; anonKb: number; cpuTicks: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const anonKb = Number(/RssAnon:\s+(\d+)/.exec(status)?.[1] ?? 0);
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { rssKb, anonKb, cpuTicks: Number(f[11]) + Number(f[12]) }; // utime, stime
}

interface Scrape {
  events: number;
  lost: number;
  series: number;
  heapBytes: number;
  heapTotalBytes: number;
  externalBytes: number;
}

/** netflow's own counters and memory gauges, from its /metrics. */
async function scrape(port: number): Promise<Scrape> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let events = 0, lost = 0, series = 0, heapBytes = NaN, heapTotalBytes = NaN;
  let externalBytes = NaN;
  for (const line of text.split("\n")) {
    const value = () => Number(line.split(" ").at(-1));
    if (line.startsWith("netflow_tcp_")) series++;
    if (line.startsWith("netflow_events_total")) events += value();
    if (line.startsWith("netflow_records_lost_total")) lost += value();
    if (line.startsWith("netflow_heap_used_bytes ")) heapBytes = value();
    if (line.startsWith("netflow_heap_total_bytes ")) heapTotalBytes = value();
    if (line.startsWith("netflow_external_memory_bytes ")) externalBytes = value();
  }
  return { events, lost, series, heapBytes, heapTotalBytes, externalBytes };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)]!;
}

/**
 * Three panels (memory MB: RSS, its anonymous part, V8's heap in use; CPU %;
 * events/s) over time, as polylines.
 */
function svg(samples: Sample[], warmS: number): string {
  const W = 900, PH = 170, L = 70, R = 20, T = 30, GAP = 40;
  const tMax = Math.max(1, samples.at(-1)?.t ?? 1);
  type Line = [(s: Sample) => number, string];
  const panels: [string, ...Line[]][] = [
    [
      "memory (MB): RSS (blue), anonymous RSS (orange), V8 heap in use (purple)",
      [(s) => s.rssMb, "#1f77b4"],
      [(s) => s.anonMb, "#ff7f0e"],
      [(s) => s.heapMb, "#9467bd"],
    ],
    ["CPU (% of one core)", [(s) => s.cpuPct, "#d62728"]],
    ["events/s", [(s) => s.eventsPerS, "#2ca02c"]],
  ];
  const H = T + panels.length * (PH + GAP) + 10;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="18" font-size="14">netflow soak: ${
      (tMax / 60).toFixed(1)
    } min, a sample a second (dashed: end of warm-up)</text>`,
  ];
  panels.forEach(([title, ...lines], i) => {
    const y0 = T + i * (PH + GAP);
    const values = lines.flatMap(([f]) => samples.map(f)).filter(Number.isFinite);
    const max = Math.max(1e-9, ...values) * 1.1;
    const x = (t: number) => L + (t / tMax) * (W - L - R);
    const y = (v: number) => y0 + PH - (v / max) * PH;
    out.push(
      `<rect x="${L}" y="${y0}" width="${W - L - R}" height="${PH}" fill="none" stroke="#999"/>`,
      `<text x="${L}" y="${y0 - 5}">${title}</text>`,
      `<text x="${L - 5}" y="${y0 + 10}" text-anchor="end">${max.toFixed(1)}</text>`,
      `<text x="${L - 5}" y="${y0 + PH}" text-anchor="end">0</text>`,
      `<line x1="${x(warmS)}" y1="${y0}" x2="${x(warmS)}" y2="${
        y0 + PH
      }" stroke="#999" stroke-dasharray="4 3"/>`,
      ...lines.map(([f, colour]) =>
        `<polyline fill="none" stroke="${colour}" stroke-width="1" points="${
          samples.filter((s) => Number.isFinite(f(s)))
            .map((s) => `${x(s.t).toFixed(1)},${y(f(s)).toFixed(1)}`).join(" ")
        }"/>`
      ),
      `<text x="${W - R}" y="${y0 + PH + 14}" text-anchor="end">${
        (tMax / 60).toFixed(1)
      } min</text>`,
      `<text x="${L}" y="${y0 + PH + 14}">0</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

// ------------------------------------------------------------------ the run

type FlowEvent = Record<string, unknown> & {
  event: string;
  src_port: number;
  dst_port: number;
  src: string;
  dst: string;
  conn_direction: string;
};

/** Each marker's four events (both endpoints' begin and end), exact bytes on both ends. */
function checkMarkers(markers: Marker[], events: FlowEvent[], serverPorts: Set<number>) {
  // By client port, in order: a port can be reused over a long run.
  const byPort = new Map<number, FlowEvent[]>();
  for (const e of events) {
    if (e.event !== "net_flow_tcp_begin" && e.event !== "net_flow_tcp_end") continue;
    const client = serverPorts.has(e.dst_port)
      ? e.src_port
      : serverPorts.has(e.src_port)
      ? e.dst_port
      : undefined;
    if (client === undefined) continue;
    const list = byPort.get(client);
    if (list) list.push(e);
    else byPort.set(client, [e]);
  }
  const problems: string[] = [];
  let exact = 0, named = 0;
  const taken = new Set<FlowEvent>(); // events already matched to an earlier marker
  for (const m of markers) {
    // This connection's events: the first four of its client port, to its address, not yet
    // taken (the port can serve another address at the same time: a looked-up one, or B).
    const mine: FlowEvent[] = [];
    for (const e of byPort.get(m.port) ?? []) {
      if (mine.length === 4) break;
      if (!taken.has(e) && (e.src === m.to || e.dst === m.to)) mine.push(e);
    }
    for (const e of mine) taken.add(e);
    const ends = mine.filter((e) => e.event === "net_flow_tcp_end");
    const begins = mine.filter((e) => e.event === "net_flow_tcp_begin");
    const out = ends.find((e) => e.conn_direction === "outgoing");
    const inc = ends.find((e) => e.conn_direction === "incoming");
    const ok = begins.length === 2 && ends.length === 2 && out !== undefined &&
      inc !== undefined && out.bytes_sent === m.sent && out.bytes_received === m.recv &&
      inc.bytes_received === m.sent && inc.bytes_sent === m.recv;
    if (ok) exact++;
    else if (problems.length < 10) {
      problems.push(
        `${m.kind} port ${m.port}: ${JSON.stringify(mine.map((e) => e.event))} ${
          JSON.stringify(out ?? null)
        }`,
      );
    }
    if (m.name !== undefined && out !== undefined) {
      const names = (out.dst === m.to ? out.dst_dns : out.src_dns) as string[] | undefined;
      if (names?.includes(m.name)) named++;
    }
  }
  return { exact, problems, named };
}

async function main() {
  const o = parseArgs(Deno.args);
  if (Deno.uid() !== 0) usage("run as root (it makes namespaces, a cgroup, and runs netflow)");
  const id = `soak${Deno.pid % 100000}`;
  const scope = new Scope();
  let stopping = false;
  const onSignal = () => {
    if (stopping) return;
    stopping = true;
    console.error("soak: interrupted, cleaning up");
    scope.close().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    await Deno.mkdir(o.out, { recursive: true });
    const cgroup = `${findCgroup2Mount()}/netflow-${id}`;
    await Deno.mkdir(cgroup);
    scope.add(async () => {
      for (let i = 0; i < 50; i++) {
        try {
          return await Deno.remove(cgroup);
        } catch {
          await sleep(100);
        }
      }
    });
    const subA = await freeSubnet(new Set());
    const a = await makeNetns(scope, `${id}-a`, `${id}a`, subA);
    const subB = await freeSubnet(new Set([subA]));
    // dnsmasq in A answers every name under soak.test with one address of A.
    const answer = `198.18.${subA}.3`;
    await sh("ip", "-n", `${id}-a`, "addr", "add", `${answer}/24`, "dev", `${id}ap`);
    const dns = spawnIn(cgroup, `${id}-a`, [
      ...dnsmasqCommand([a.ns]),
      `--address=/soak.test/${answer}`,
      "--local-ttl=30",
      "--cache-size=0",
    ]);
    scope.add(dns.kill);
    const server = spawnIn(cgroup, `${id}-a`, ["python3", "-c", SERVER]);
    scope.add(server.kill);
    const port = Number(await server.line());

    // netflow, with /metrics on a free port.
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const metricsPort = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const eventsFile = `${o.out}/events.jsonl`;
    const scopeArgs = o.wholeHost
      ? ["--net", `198.18.${subA}.0/24`, "--net", `198.18.${subB}.0/24`]
      : ["--cgroup", cgroup];
    // netflow writes its events straight to the file: no pipe between.
    const nf = await Netflow.start([
      "--format",
      "json",
      "--events",
      "begin,end,update,fail",
      "--update-interval",
      "5",
      "--metrics",
      `127.0.0.1:${metricsPort}`,
      ...scopeArgs,
      ...o.netflowArgs,
    ], { stdoutFile: eventsFile });
    scope.add(() => nf[Symbol.asyncDispose]());
    for (let i = 0; i < 300; i++) {
      try {
        await scrape(metricsPort);
        break;
      } catch {
        await sleep(100);
      }
    }
    const started = performance.now();
    const seconds = Math.round(o.minutes * 60);
    const stopAt = Date.now() / 1000 + seconds;
    console.error(
      `soak: ${o.minutes} min, ${o.rate} short connections/s, ${
        o.wholeHost ? "whole host" : `cgroup ${cgroup}`
      }, namespaces 198.18.${subA}.0/24 and (churned) 198.18.${subB}.0/24`,
    );

    const client = spawnIn(
      cgroup,
      null,
      ["python3", "-c", CLIENT, a.ns, String(port), a.ns, String(o.rate), String(stopAt)],
      true,
    );
    scope.add(client.kill);
    const clientIn = client.child.stdin.getWriter();
    const markers: Marker[] = [];
    const errors: string[] = [];
    let churnDone = 0;
    const reading = (async () => {
      for (let l; (l = await client.line()) !== null;) {
        const d = JSON.parse(l);
        if (d.kind === "done") break;
        if (d.kind === "error") errors.push(d.error);
        else if (d.kind === "churn-done") churnDone++;
        else markers.push(d);
      }
    })();

    // Namespace B, every 5 s: made, served, one connection, deleted.
    let churned = 0;
    const churnPorts = new Set<number>();
    const churn = (async () => {
      while (Date.now() / 1000 + 10 < stopAt && !stopping) {
        const b = await makeNetns(null, `${id}-b`, `${id}b`, subB);
        const srv = spawnIn(cgroup, `${id}-b`, ["python3", "-c", SERVER]);
        try {
          const p = Number(await srv.line());
          churnPorts.add(p);
          const before = churnDone;
          await clientIn.write(new TextEncoder().encode(`one ${b.ns} ${p}\n`));
          for (let i = 0; i < 100 && churnDone === before; i++) await sleep(50);
        } finally {
          await srv.kill();
          await b.undo();
        }
        churned++;
        await sleep(5000);
      }
    })();

    // A connect scan of 200 closed ports of A every minute.
    let scans = 0;
    const scan = (async () => {
      while (Date.now() / 1000 + 5 < stopAt && !stopping) {
        const s = spawnIn(cgroup, null, [
          "nmap",
          "-sT",
          "-n",
          "-Pn",
          "--max-rate",
          "50",
          "-p",
          "1-200",
          a.ns,
        ]);
        while ((await s.line()) !== null) { /* its report */ }
        await s.child.status;
        scans++;
        for (let i = 0; i < 60 && Date.now() / 1000 < stopAt; i++) await sleep(1000);
      }
    })();

    // A sample a second.
    const samples: Sample[] = [];
    const clk = 100; // USER_HZ
    let last = procSample(nf.pid), lastEvents = 0, lastT = 0;
    while (Date.now() / 1000 < stopAt && !stopping) {
      await sleep(1000 - ((performance.now() - started) % 1000));
      const t = (performance.now() - started) / 1000;
      const p = procSample(nf.pid);
      const m = await scrape(metricsPort).catch((): Scrape => ({
        events: lastEvents,
        lost: NaN,
        series: NaN,
        heapBytes: NaN,
        heapTotalBytes: NaN,
        externalBytes: NaN,
      }));
      samples.push({
        t,
        rssMb: p.rssKb / 1024,
        anonMb: p.anonKb / 1024,
        heapMb: m.heapBytes / 2 ** 20,
        heapTotalMb: m.heapTotalBytes / 2 ** 20,
        externalMb: m.externalBytes / 2 ** 20,
        cpuPct: ((p.cpuTicks - last.cpuTicks) / clk) / (t - lastT) * 100,
        events: m.events,
        eventsPerS: (m.events - lastEvents) / (t - lastT),
        lost: m.lost,
        markers: markers.length,
        series: m.series,
      });
      last = p, lastEvents = m.events, lastT = t;
    }
    await Promise.all([reading, churn, scan]);
    await sleep(2000); // the last ends reach the ring
    const final = await scrape(metricsPort);
    const { code, stderr } = await nf.stop("SIGTERM");
    await scope.close();

    // Markers.
    const events: FlowEvent[] = (await Deno.readTextFile(eventsFile)).split("\n")
      .filter((l) => l !== "").map((l) => JSON.parse(l));
    const check = checkMarkers(markers, events, new Set([port, ...churnPorts]));
    const count = (kind: string) => markers.filter((m) => m.kind === kind).length;
    const fails = events.filter((e) => e.event === "net_flow_tcp_fail").length;
    const updates = events.filter((e) => e.event === "net_flow_tcp_update").length;

    // RSS after warm-up: the first 10% (at least a minute) is warm-up.
    const warmS = Math.max(60, seconds * 0.1);
    const inWindow = (from: number, to: number) =>
      samples.filter((s) => s.t >= from && s.t < to).map((s) => s.rssMb);
    const rssWarm = median(inWindow(warmS, warmS + 60));
    const rssEnd = median(inWindow(seconds - 60, seconds + 1));
    const rssMax = Math.max(...samples.map((s) => s.rssMb));
    // The second half alone: growth once the tables and flow metrics' label sets filled.
    const rssHalf = median(inWindow(seconds / 2, seconds / 2 + 60));
    // The same windows for the anonymous RSS and V8's heap: which one grew.
    const at = (f: (s: Sample) => number, from: number, to: number) =>
      median(samples.filter((s) => s.t >= from && s.t < to).map(f));
    const grew = (f: (s: Sample) => number) => {
      const a = at(f, warmS, warmS + 60), b = at(f, seconds - 60, seconds + 1);
      return `${a.toFixed(1)} -> ${b.toFixed(1)} MB (${((b / a - 1) * 100).toFixed(1)}%)`;
    };
    const seriesAt = (t: number) => samples.find((s) => s.t >= t)?.series ?? NaN;
    // Flow metrics keep an idle label set until --metrics-expiry (600 s by default): with new
    // names, ports and namespaces coming all the time their state grows until then, by design
    // (and under --metrics-budget). From a minute past it, the state is steady.
    const expiryArg = o.netflowArgs.indexOf("--metrics-expiry");
    const horizonS = (expiryArg >= 0 ? Number(o.netflowArgs[expiryArg + 1]) : 600) + 60;
    const pastHorizon = seconds >= horizonS + 180
      ? (() => {
        const a = median(inWindow(horizonS, horizonS + 60));
        return `; from the flow metrics' expiry horizon on: ${a.toFixed(1)} MB (median of ${
          horizonS.toFixed(0)
        }-${(horizonS + 60).toFixed(0)} s) to ${rssEnd.toFixed(1)} MB, ${
          ((rssEnd / a - 1) * 100).toFixed(1)
        }% (anonymous RSS ${
          (() => {
            const x = at((s) => s.anonMb, horizonS, horizonS + 60);
            const y = at((s) => s.anonMb, seconds - 60, seconds + 1);
            return `${x.toFixed(1)} -> ${y.toFixed(1)} MB, ${((y / x - 1) * 100).toFixed(1)}%`;
          })()
        }; flow metrics' series ${seriesAt(horizonS)} then)`;
      })()
      : "";
    const cpu = samples.filter((s) => s.t >= warmS).map((s) => s.cpuPct);
    const cpuMean = cpu.reduce((x, y) => x + y, 0) / Math.max(1, cpu.length);
    const rate = samples.filter((s) => s.t >= warmS).map((s) => s.eventsPerS);

    const csv = [
      "t_s,rss_mb,anon_mb,heap_used_mb,heap_total_mb,external_mb,cpu_pct,events_total,events_per_s,records_lost,markers,flow_metric_series",
    ]
      .concat(
        samples.map((s) =>
          [
            s.t.toFixed(1),
            s.rssMb.toFixed(2),
            s.anonMb.toFixed(2),
            s.heapMb.toFixed(2),
            s.heapTotalMb.toFixed(2),
            s.externalMb.toFixed(2),
            s.cpuPct.toFixed(2),
            s.events,
            s.eventsPerS.toFixed(1),
            s.lost,
            s.markers,
            s.series,
          ]
            .join(",")
        ),
      );
    await Deno.writeTextFile(`${o.out}/soak.csv`, csv.join("\n") + "\n");
    await Deno.writeTextFile(`${o.out}/soak.svg`, svg(samples, warmS));
    const summary = [
      `netflow soak: ${(samples.at(-1)?.t ?? 0).toFixed(0)} s (${o.minutes} min asked), ${
        o.wholeHost ? "whole host (--net the soak's subnets)" : "the soak's cgroup"
      }, --events begin,end,update,fail --update-interval 5${
        o.netflowArgs.map((a) => ` ${a}`).join("")
      }, /metrics scraped each second`,
      `workload: ${count("short")} short connections (${o.rate}/s), ${
        count("long")
      } long flows (8 at once, 30-120 s), ${
        count("dns")
      } DNS lookups then connections, ${scans} scans of 200 closed ports, ${churned} namespaces made and deleted (${
        count("churn")
      } connections into them); client errors: ${errors.length}${
        errors.length ? ` (${errors.slice(0, 3).join("; ")})` : ""
      }`,
      `RSS: ${rssWarm.toFixed(1)} MB after warm-up (median of ${warmS.toFixed(0)}-${
        (warmS + 60).toFixed(0)
      } s), ${rssEnd.toFixed(1)} MB at the end (median of the last 60 s): ${
        ((rssEnd / rssWarm - 1) * 100).toFixed(1)
      }% growth; peak ${rssMax.toFixed(1)} MB; second half: ${rssHalf.toFixed(1)} MB (median of ${
        (seconds / 2).toFixed(0)
      }-${(seconds / 2 + 60).toFixed(0)} s) to ${rssEnd.toFixed(1)} MB, ${
        ((rssEnd / rssHalf - 1) * 100).toFixed(1)
      }%; flow metrics' series (budget 2000 a metric) ${seriesAt(warmS)} at ${
        warmS.toFixed(0)
      } s, ${seriesAt(seconds / 2)} at ${(seconds / 2).toFixed(0)} s, ${
        samples.at(-1)?.series ?? NaN
      } at the end${pastHorizon}`,
      `the same windows: anonymous RSS ${grew((s) => s.anonMb)}, V8 heap in use ${
        grew((s) => s.heapMb)
      }, V8 heap reserved ${grew((s) => s.heapTotalMb)}, outside V8's heap (ArrayBuffers) ${
        grew((s) => s.externalMb)
      }`,
      `CPU after warm-up: mean ${cpuMean.toFixed(1)}% of one core, median ${
        median(cpu).toFixed(1)
      }%, max ${Math.max(...cpu).toFixed(1)}%`,
      `events: ${final.events} in all (${updates} updates, ${fails} fails), median ${
        median(rate).toFixed(1)
      }/s after warm-up; records lost: ${final.lost}`,
      `markers: ${check.exact} of ${markers.length} connections exact on both endpoints (a begin and an end each, bytes both ways); ${check.named} of ${
        count("dns")
      } looked-up connections carry their name`,
      ...check.problems.map((p) => `  not exact: ${p}`),
      `netflow exit ${code}; its summary: ${
        stderr.split("\n").find((l) => /^netflow: \d+ events/.test(l)) ?? "(none)"
      }`,
    ];
    await Deno.writeTextFile(`${o.out}/soak.md`, summary.join("\n") + "\n");
    console.log(summary.join("\n"));
    // The events stay for a look when a marker was not exact.
    if (check.exact !== markers.length || final.lost !== 0) Deno.exitCode = 1;
    else await Deno.remove(eventsFile).catch(() => {});
  } finally {
    await scope.close();
  }
}

if (import.meta.main) await main();
