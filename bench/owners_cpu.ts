/**
 * CPU of owner resolution in user space, per flow, without the kernel: the
 * records of a storm of short loopback connections (both endpoints watched,
 * as bench/lib/storm.py makes them: the client's end stamped at its
 * shutdown, the server's written in softirq and named by its release) go
 * through the decoder, the flow table and the owner enricher in drains of
 * 10 ms of simulated time; incoming begins wait, the holders index answers
 * from rows made for the server's accepted sockets (and `--host` other
 * sockets, which a tree that asks for some sockets only does not get).
 * Owners on (200 ms wait) minus owners off (no owner enricher at all: its
 * queue and per-flow state cost even with `ownerWaitMs: 0`) is the cost.
 * Two trees side by side (`--base DIR`, another checkout), interleaved:
 *
 *   deno run -A --v8-flags=--max-semi-space-size=4 bench/owners_cpu.ts \
 *     [--base DIR] [--pairs 5] [--rate 4000] [--hold 3] [--host 500]
 *
 * Bytes allocated per flow beside the CPU: the sum of V8's `allocated` over
 * the child's collections (--trace-gc-nvp; the setup and the warm-up round
 * are the same with owners on and off, so the difference is the owners').
 *
 * `--hold` ms between a connection's begin and its close (past the first
 * look at 5 ms, the iterator names the acceptor; before, its release does).
 * No root needed.
 *
 * @module
 */
import { KIND_BEGIN, KIND_END, KIND_RELEASE, LAYOUT } from "../src/bpf/layout.ts";

const arg = (name: string, fallback: string) => {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1]! : fallback;
};
const F = LAYOUT.nf_flow.fields, H = LAYOUT.nf_holder.fields;
const CONNECTIONS = 40_000;
const DRAIN_MS = 10;
const SERVER = 8080, SERVER_PID = 4321, CLIENT_PID = 1234;

interface Rec {
  ms: number;
  /** The connection's begin (part of a flow's identity). */
  beginMs: number;
  kind: number;
  outgoing: boolean;
  cookie: number;
  closer: boolean;
}

/** The storm's records in time order: client cookie 2i+1, server 2i+2. */
function storm(rate: number, holdMs: number, firstCookie: number): Rec[] {
  const out: Rec[] = [];
  for (let i = 0; i < CONNECTIONS; i++) {
    const t = i * 1000 / rate, c = firstCookie + 2 * i, s = c + 1;
    const rec = (ms: number, kind: number, outgoing: boolean, cookie: number, closer: boolean) => ({
      ms,
      beginMs: t,
      kind,
      outgoing,
      cookie,
      closer,
    });
    out.push(
      rec(t, KIND_BEGIN, true, c, false),
      rec(t + 0.05, KIND_BEGIN, false, s, false),
      rec(t + holdMs, KIND_END, true, c, true),
      rec(t + holdMs + 0.05, KIND_END, false, s, false),
      rec(t + holdMs + 0.1, KIND_RELEASE, false, s, true),
      rec(t + holdMs + 0.15, KIND_RELEASE, true, c, true),
    );
  }
  return out.sort((a, b) => a.ms - b.ms);
}

function encode(recs: Rec[]): DataView {
  const size = LAYOUT.nf_flow.size;
  const view = new DataView(new ArrayBuffer(recs.length * size));
  const bytes = new Uint8Array(view.buffer);
  const comm = new TextEncoder().encode("storm");
  recs.forEach((r, i) => {
    const at = i * size, client = 30000 + (r.cookie >> 1) % 30000;
    view.setBigUint64(at, BigInt(Math.round(r.ms * 1e6)), true);
    view.setBigUint64(at + 8, 4242n, true);
    view.setUint8(at + 16, r.kind);
    view.setUint8(at + 18, 4);
    view.setBigUint64(at + F.cookie, BigInt(r.cookie), true);
    view.setBigUint64(at + F.begin_ns, BigInt(Math.round(r.beginMs * 1e6)), true);
    view.setUint32(at + F.netns, 4026531840, true);
    bytes.set([127, 0, 0, 1], at + F.laddr);
    bytes.set([127, 0, 0, 1], at + F.raddr);
    view.setUint16(at + F.lport, r.outgoing ? client : SERVER, true);
    view.setUint16(at + F.rport, r.outgoing ? SERVER : client, true);
    view.setUint8(at + F.flags, (r.outgoing ? 1 | 8 : 0) | 4 | (r.closer ? 16 : 0));
    view.setUint8(at + F.end, r.kind === KIND_END ? (r.outgoing ? 1 : 2) : 0);
    view.setUint32(
      at + F.pid,
      r.outgoing || r.closer ? (r.outgoing ? CLIENT_PID : SERVER_PID) : 1,
      true,
    );
    bytes.set(comm, at + F.comm);
  });
  return view;
}

/** nf_holder rows: the server's listener, the accepted sockets of `cookies`, `others` more. */
function rows(cookies: number[], others: number): Uint8Array {
  const size = LAYOUT.nf_holder.size, n = 1 + cookies.length + others;
  const bytes = new Uint8Array(n * size), view = new DataView(bytes.buffer);
  const comm = new TextEncoder().encode("server");
  for (let i = 0; i < n; i++) {
    const at = i * size;
    view.setBigUint64(
      at + H.cookie,
      BigInt(i === 0 ? 7 : i <= cookies.length ? cookies[i - 1]! : 2 ** 40 + i),
      true,
    );
    bytes.set([127, 0, 0, 1], at + H.saddr);
    view.setUint32(at + H.pid, SERVER_PID, true);
    view.setUint32(at + H.netns, 4026531840, true);
    view.setUint16(at + H.sport, SERVER, true);
    view.setUint8(at + H.family, 4);
    view.setUint8(at + H.state, i === 0 ? 10 : 1);
    bytes.set(comm, at + H.comm);
  }
  return bytes;
}

async function child(tree: string, owners: boolean, rate: number, holdMs: number, host: number) {
  const { RecordDecoder } = await import(`${tree}/src/bpf/records.ts`);
  const { HolderRows } = await import(`${tree}/src/bpf/holders.ts`);
  const { FlowTable } = await import(`${tree}/src/flow/state.ts`);
  const { Enrichers } = await import(`${tree}/src/enrich/enricher.ts`);
  const { SocketHolders } = await import(`${tree}/src/enrich/holders.ts`);
  const { OwnerEnricher } = await import(`${tree}/src/enrich/owner.ts`);
  const { OwnerResolver } = await import(`${tree}/src/enrich/owners.ts`);
  const ticks = () => {
    const f = Deno.readTextFileSync("/proc/self/stat").split(") ")[1]!.split(" ");
    return Number(f[11]) + Number(f[12]);
  };
  const round = (r: number) => {
    const first = 1 + r * 2 * CONNECTIONS, recs = storm(rate, holdMs, first);
    return { recs, view: encode(recs), first };
  };
  const rounds = [0, 1, 2, 3].map(round);
  let now = 0, start = 0, events = 0, named = 0, runs = 0;
  let firstCookie = 0;
  // The accepted sockets held now: accepted 0.5 ms after their begin, until their release
  // (connection i began at i / rate: the window is found by arithmetic, not by a walk).
  const heldNow = (cookies: ReadonlySet<number> | null) => {
    const out: number[] = [];
    const from = Math.max(0, Math.floor((now - start - holdMs - 0.1) * rate / 1000));
    const to = Math.min(CONNECTIONS - 1, Math.ceil((now - start - 0.5) * rate / 1000));
    for (let i = from; i <= to; i++) {
      const t = start + i * 1000 / rate, s = firstCookie + 2 * i + 1;
      if (t + 0.5 > now || t + holdMs + 0.1 <= now) continue;
      if (cookies === null || cookies.has(s)) out.push(s);
    }
    return out;
  };
  const holders = new SocketHolders((cookies?: ReadonlySet<number> | null) => {
    runs++;
    return new HolderRows(rows(heldNow(cookies ?? null), cookies ? 0 : host));
  });
  const resolver = new OwnerResolver(holders, owners ? {} : { waitMs: 0 });
  const enrichers = new Enrichers(owners ? [new OwnerEnricher(resolver)] : []);
  const decoder = new RecordDecoder(1_700_000_000_000_000);
  const table = new FlowTable({ idPrefix: "bench" });
  const keep = (items: readonly { event: { comm: string | null } }[]) => {
    events += items.length;
    for (const i of items) if (i.event.comm === "server") named++;
  };
  const run = (r: { recs: Rec[]; view: DataView; first: number }, t0: number) => {
    const recs = r.recs;
    firstCookie = r.first;
    start = t0;
    let i = 0;
    const size = LAYOUT.nf_flow.size;
    for (now = t0; i < recs.length; now += DRAIN_MS) {
      for (; i < recs.length && t0 + recs[i]!.ms < now; i++) {
        const rec = decoder.decode(r.view, i * size, size);
        if (rec.kind === "release") keep(enrichers.observe(rec, now));
        else {
          const e = table.onRecord(rec);
          if (e !== undefined) keep(enrichers.push({ event: e, facts: table.factsOf(e) }, now));
        }
      }
      keep(enrichers.settle(now));
    }
    keep(enrichers.settle(now + 5000, true));
  };
  // Times in each round's records start at 0: the resolver's clock runs on across rounds.
  let clock = 0;
  const go = (k: number) => {
    const before = clock;
    run(rounds[k]!, before);
    clock = now + 10_000;
  };
  go(0); // warm-up
  events = named = runs = 0;
  const t0 = ticks();
  for (let k = 1; k < rounds.length; k++) go(k);
  const cpuUs = (ticks() - t0) * 10_000;
  const flows = (rounds.length - 1) * CONNECTIONS * 2;
  return { usPerFlow: cpuUs / flows, events, named, runs };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

if (Deno.args[0] === "--child") {
  const [, tree, owners, rate, hold, host] = Deno.args;
  console.log(
    JSON.stringify(await child(tree!, owners === "1", Number(rate), Number(hold), Number(host))),
  );
} else {
  const here = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const base = arg("base", here), pairs = Number(arg("pairs", "5"));
  const rate = arg("rate", "4000"), hold = arg("hold", "3"), host = arg("host", "500");
  const out: Record<string, number[]> = {};
  for (let p = 0; p < pairs; p++) {
    for (const [name, tree] of [["base", base], ["this", here]] as const) {
      for (const owners of ["1", "0"]) {
        const r = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            "--v8-flags=--max-semi-space-size=4,--trace-gc-nvp",
            new URL(import.meta.url).pathname,
            "--child",
            tree,
            owners,
            rate,
            hold,
            host,
          ],
          stdout: "piped",
        }).output();
        // The GC trace and the result share stdout (a trace line may end without a newline).
        const text = new TextDecoder().decode(r.stdout);
        const res = JSON.parse(/\{"usPerFlow"[^}]*\}/.exec(text)![0]);
        let bytes = 0;
        for (const m of text.matchAll(/"allocated":(\d+)/g)) bytes += Number(m[1]);
        res.bytesPerFlow = Math.round(bytes / (4 * CONNECTIONS * 2));
        const key = `${name} owners ${owners === "1" ? "on" : "off"}`;
        console.log(JSON.stringify({ pair: p, key, ...res }));
        (out[key] ??= []).push(res.usPerFlow);
        (out[`${key} bytes`] ??= []).push(res.bytesPerFlow);
      }
    }
  }
  for (const name of ["base", "this"]) {
    const on = median(out[`${name} owners on`]!), off = median(out[`${name} owners off`]!);
    const bytes = median(out[`${name} owners on bytes`]!) -
      median(out[`${name} owners off bytes`]!);
    console.log(
      `${name}: ${on.toFixed(2)} µs per flow with owners, ${off.toFixed(2)} without: ${
        (on - off).toFixed(2)
      } µs for owners; ${bytes} bytes allocated per flow for owners (medians of ${pairs})`,
    );
  }
}
