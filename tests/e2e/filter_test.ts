/**
 * e2e (root, whole host): each filter with flows that must pass and flows
 * that must not. netflow watches the whole host for the seconds a test runs;
 * only the test's own ports are looked at.
 */
import assert from "node:assert/strict";
import { findCgroup2Mount } from "../../src/bpf/cgroup.ts";
import type { FlowEvent } from "../../src/events.ts";
import { e2eTest, Proc, TestCgroup, TestNetns, withTimeout, WORKLOAD } from "../helpers/e2e.ts";
import { atLeast, Netflow, onPort } from "../helpers/netflow.ts";
import { sample } from "../helpers/promtool.ts";

/** A free TCP port now (the servers must listen where the filter says before netflow starts). */
function freePort(): number {
  using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return (l.addr as Deno.NetAddr).port;
}

interface Server {
  proc: Proc;
  port: number;
}

/**
 * tcp.py's server on `host:port`, started by `spawn` (a cgroup's, a namespace's, or a plain
 * one), named `comm` when given.
 */
async function serve(
  spawn: (...a: string[]) => Proc,
  host: string,
  port = 0,
  comm?: string,
): Promise<Server> {
  const proc = spawn(
    "python3",
    WORKLOAD,
    "serve",
    "--host",
    host,
    "--port",
    String(port),
    "--scenario",
    "client-close",
    ...(comm ? ["--comm", comm] : []),
  );
  const [word, got] = (await proc.line()).split(" ");
  assert.equal(word, "listening");
  return { proc, port: Number(got) };
}

/** One client-close connection to `server` (by a client named `comm`); its local port and pid. */
async function connect(
  spawn: (...a: string[]) => Proc,
  host: string,
  server: Server,
  comm?: string,
) {
  await using cli = spawn(
    "python3",
    WORKLOAD,
    "connect",
    "--host",
    host,
    "--port",
    String(server.port),
    "--scenario",
    "client-close",
    ...(comm ? ["--comm", comm] : []),
  );
  const out = JSON.parse(await cli.line()) as { pid: number; ports: number[] };
  await cli.done();
  await server.proc.done();
  return { port: out.ports[0]!, pid: out.pid };
}

/**
 * netflow (whole host, JSON) with `filter`, stopped once `want` events on the
 * ports `run` returns are written; when `want` is 0, once the two events (a
 * begin and an end) of `control` are: a connection the filter keeps, made
 * after `run`'s (the positive control). Returns the events on `run`'s ports.
 */
/** A connection by its client's and its server's port. */
type Connection = readonly [client: number, server: number];

async function filtered(
  filter: string[],
  run: () => Promise<Connection[]>,
  want: number,
  control?: () => Promise<number>,
) {
  await using nf = await Netflow.start(["--format", "json", ...filter]);
  const conns = await run();
  // Both ports of a connection: on the whole host another connection may use
  // a client's port number meanwhile, towards another address.
  const mine = (flows: FlowEvent[]) =>
    flows.filter((e) => conns.some(([c, s]) => onPort(c)(e) && onPort(s)(e)));
  if (want === 0 && control === undefined) throw new Error("nothing expected: a control is needed");
  const controlPort = want === 0 ? await control!() : undefined;
  await nf.untilFlows(
    (flows) =>
      mine(flows).length >= want &&
      (controlPort === undefined || atLeast(2, onPort(controlPort))(flows)),
    want === 0 ? "the control's begin and end" : `${want} events`,
  );
  const { events, stderr, code } = await nf.stop();
  assert.equal(code, 0, stderr);
  return mine(events as FlowEvent[]);
}

/** "begin outgoing", "end incoming", ... of the events, in order. */
const kinds = (events: FlowEvent[]) =>
  events.map((e) => `${e.event.slice(13)} ${e.conn_direction}`).sort();

e2eTest("--port keeps flows on that port and drops another's (whole host)", async () => {
  await using cg = new TestCgroup();
  const spawn = (...a: string[]) => cg.spawn(a[0]!, ...a.slice(1));
  const wanted = freePort(), other = freePort();
  const a = await serve(spawn, "127.0.0.1", wanted);
  const b = await serve(spawn, "127.0.0.1", other);
  const events = await filtered(["--port", String(wanted)], async () => {
    const ca = await connect(spawn, "127.0.0.1", a);
    const cb = await connect(spawn, "127.0.0.1", b);
    // Client and server ports: another process may use `wanted` as its ephemeral port.
    return [[ca.port, a.port], [cb.port, b.port]];
  }, 4);
  assert.ok(events.every((e) => e.dst_port === wanted || e.src_port === wanted));
  assert.deepEqual(kinds(events), [
    "begin incoming",
    "begin outgoing",
    "end incoming",
    "end outgoing",
  ]);
});

/** A connection from this test process itself (its pid is known before netflow starts). */
async function connectFromHere(server: Server): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  const port = (conn.localAddr as Deno.NetAddr).port;
  await conn.write(new Uint8Array(100)); // what tcp.py's client-close server reads
  const reply = new Uint8Array(50);
  for (let got = 0; got < 50;) got += (await conn.read(reply.subarray(got))) ?? 50;
  conn.close();
  await server.proc.done();
  return port;
}

e2eTest(
  "--pid, --comm and --direction keep one endpoint of a loopback connection (whole host)",
  async () => {
    await using cg = new TestCgroup();
    const spawn = (...a: string[]) => cg.spawn(a[0]!, ...a.slice(1));
    const lo = "127.0.0.1";
    // Positive controls, for the filters that keep nothing of the connection: a
    // connection they keep one endpoint of (its client's port).
    const fromHere = async () => await connectFromHere(await serve(spawn, lo));
    const named = (comm: string) => async () =>
      (await connect(spawn, lo, await serve(spawn, lo), comm)).port;
    const serverNamed = (comm: string) => async () =>
      (await connect(spawn, lo, await serve(spawn, lo, 0, comm))).port;
    const cases: [string[], "outgoing" | "incoming" | "none", boolean, (() => Promise<number>)?][] =
      [
        // [filter, the endpoint kept, whether this process is the client, the control]
        [["--pid", String(Deno.pid)], "outgoing", true],
        [["--pid", String(Deno.pid), "--pid", "1"], "outgoing", true],
        [["--pid", String(Deno.pid)], "none", false, fromHere],
        [["--comm", "nf-client"], "outgoing", false],
        [["--comm", "nf-nobody", "--comm", "nf-client"], "outgoing", false],
        [["--comm", "nf-nobody"], "none", false, named("nf-nobody")],
        [["--direction", "outgoing"], "outgoing", false],
        [["--direction", "incoming"], "incoming", false],
        // AND across kinds: the client's name but incoming flows: nothing.
        [
          ["--comm", "nf-client", "--direction", "incoming"],
          "none",
          false,
          serverNamed("nf-client"),
        ],
      ];
    for (const [filter, kept, here, control] of cases) {
      const server = await serve(spawn, lo);
      const events = await filtered(
        filter,
        async () => {
          const client = here
            ? await connectFromHere(server)
            : (await connect(spawn, lo, server)).port;
          return [[client, server.port]];
        },
        kept === "none" ? 0 : 2,
        control,
      );
      const want = kept === "none" ? [] : [`begin ${kept}`, `end ${kept}`];
      assert.deepEqual(kinds(events), want, filter.join(" "));
    }
  },
);

e2eTest(
  "-4, -6 and --net (the remote address) over loopback and a veth pair (whole host)",
  async () => {
    await using cg = new TestCgroup();
    await using ns = await TestNetns.create();
    const local = (...a: string[]) => cg.spawn(a[0]!, ...a.slice(1));
    const remote = (...a: string[]) => ns.spawn(a[0]!, ...a.slice(1));
    const flows = async () => {
      const s4 = await serve(local, "127.0.0.1");
      const s6 = await serve(local, "::1");
      const sNs = await serve(remote, ns.nsAddr4);
      const c4 = await connect(local, "127.0.0.1", s4);
      const c6 = await connect(local, "::1", s6);
      const cNs = await connect(local, ns.nsAddr4, sNs);
      const ports: Connection[] = [[c4.port, s4.port], [c6.port, s6.port], [cNs.port, sNs.port]];
      return { ports, c4, c6, cNs };
    };
    let run: Awaited<ReturnType<typeof flows>> | undefined;
    const go = async () => (run = await flows()).ports;

    let events = await filtered(["-6"], go, 4);
    assert.ok(events.length === 4 && events.every((e) => e.src === "::1" && e.dst === "::1"));

    events = await filtered(["-4"], go, 8);
    // Loopback v4: both endpoints; veth: the client's and the namespace server's.
    assert.equal(events.length, 8);
    assert.ok(events.every((e) => !e.src.includes(":")));

    events = await filtered(["--net", `${ns.nsAddr4}/32`], go, 2);
    // Only the host's client, whose remote is the namespace; the namespace server's remote is the host.
    assert.deepEqual(kinds(events), ["begin outgoing", "end outgoing"]);
    assert.ok(events.every((e) => e.src_port === run!.cNs.port || e.dst_port === run!.cNs.port));

    events = await filtered(
      ["--net", "127.0.0.0/8", "--net", "::1/128", "--direction", "incoming"],
      go,
      4,
    );
    assert.equal(events.length, 4); // both loopback servers' endpoints
    assert.ok(events.every((e) => e.conn_direction === "incoming" && e.pid !== run!.cNs.pid));
  },
);

e2eTest("--container keeps the flows of a container's cgroup (whole host)", async () => {
  const id = Array.from({ length: 64 }, (_, i) => "0123456789abcdef"[(Deno.pid + i * 7) % 16]).join(
    "",
  );
  const dir = `${findCgroup2Mount()}/docker-${id}.scope`;
  Deno.mkdirSync(dir);
  const procs: Proc[] = [];
  try {
    const inside = (...a: string[]) => {
      const p = new Proc("sh", ["-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', dir, ...a]);
      procs.push(p);
      return p;
    };
    await using cg = new TestCgroup();
    const outside = (...a: string[]) => cg.spawn(a[0]!, ...a.slice(1));
    const events = await filtered(["--container", id.slice(0, 12)], async () => {
      const s = await serve(inside, "127.0.0.1");
      const c = await connect(outside, "127.0.0.1", s);
      return [[c.port, s.port]];
    }, 2);
    // The container's server endpoint only; the client outside is not in it.
    assert.deepEqual(kinds(events), ["begin incoming", "end incoming"]);
    assert.ok(events.every((e) => e.container_id === id));
  } finally {
    for (const p of procs) await p[Symbol.asyncDispose]();
    for (let i = 0; i < 50; i++) {
      try {
        Deno.removeSync(dir);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100)); // its processes still exiting
      }
    }
  }
});

/**
 * netflow on the test's cgroup (exact counts) with `filter` and --metrics;
 * after `run`, waits until /metrics shows `events` events written, then
 * returns what it says the kernel dropped.
 */
async function kernelCounts(
  cg: TestCgroup,
  filter: string[],
  run: () => Promise<void>,
  events: number,
) {
  await using nf = await Netflow.start([
    "--format",
    "json",
    "--cgroup",
    cg.dir,
    "--metrics",
    "0",
    ...filter,
  ]);
  const url = (await nf.stderrLine(/^netflow: metrics at /)).split(" ").pop()!;
  await run();
  let text = "";
  const written = () =>
    sample(text, 'netflow_events_total{event="net_flow_tcp_begin"}')! +
    sample(text, 'netflow_events_total{event="net_flow_tcp_end"}')!;
  await withTimeout(
    (async () => {
      // Polls the condition (the kernel counter is final once the clients are done).
      for (text = await (await fetch(url)).text(); written() < events;) {
        await new Promise((r) => setTimeout(r, 50));
        text = await (await fetch(url)).text();
      }
    })(),
    30_000,
    `${events} events in /metrics with ${filter.join(" ")}`,
  );
  const out = await nf.stop();
  assert.equal(out.code, 0, out.stderr);
  assert.equal(out.events.length, events, filter.join(" "));
  return { filtered: sample(text, "netflow_flows_filtered_in_kernel_total"), events: out.events };
}

e2eTest(
  "--port, --net, --direction and -4/-6 drop flows in the kernel; --comm in netflow",
  async () => {
    await using cg = new TestCgroup();
    const spawn = (...a: string[]) => cg.spawn(a[0]!, ...a.slice(1));
    const wanted = freePort(), other = freePort();
    const twoPorts = async () => {
      const a = await serve(spawn, "127.0.0.1", wanted);
      const b = await serve(spawn, "127.0.0.1", other);
      await connect(spawn, "127.0.0.1", a);
      await connect(spawn, "127.0.0.1", b);
    };
    const v4AndV6 = async () => {
      await connect(spawn, "127.0.0.1", await serve(spawn, "127.0.0.1"));
      await connect(spawn, "::1", await serve(spawn, "::1"));
    };
    const one = async () => void await connect(spawn, "127.0.0.1", await serve(spawn, "127.0.0.1"));
    // The positive control for a filter that keeps nothing of `one`: a connection to 127.0.0.2,
    // whose client's endpoint it keeps (the server's remote is 127.0.0.1).
    const oneThenControl = async () => {
      await one();
      await connect(spawn, "127.0.0.2", await serve(spawn, "127.0.0.2"));
    };
    // [filter, workload, events written, endpoints the kernel dropped]
    const cases: [string[], () => Promise<void>, number, number][] = [
      [["--port", String(wanted)], twoPorts, 4, 2],
      [["--port", String(wanted), "--port", String(other)], twoPorts, 8, 0],
      [["-6"], v4AndV6, 4, 2],
      [["-4"], v4AndV6, 4, 2],
      [["--direction", "incoming"], one, 2, 1],
      [["--net", "127.0.0.2/32"], oneThenControl, 2, 3], // the control's client only
      [["--net", "127.0.0.0/8", "--net", "::1"], v4AndV6, 8, 0],
      [["--net", "::ffff:127.0.0.0/104"], one, 4, 0], // IPv4 written as mapped IPv6
      [["--comm", "nf-client"], one, 2, 0], // the owner is known later: filtered in netflow
    ];
    for (const [filter, run, events, filtered] of cases) {
      const got = await kernelCounts(cg, filter, run, events);
      assert.equal(got.filtered, filtered, filter.join(" "));
      if (run === oneThenControl) {
        const to2 = (e: FlowEvent) => e.dst === "127.0.0.2" || e.src === "127.0.0.2";
        assert.ok((got.events as FlowEvent[]).every(to2), JSON.stringify(got.events));
      }
    }
  },
);
