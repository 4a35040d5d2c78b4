/**
 * e2e (root): net_flow_tcp_begin / net_flow_tcp_end on real connections, with
 * exact expectations: counts, orientation, ports, owners, counters.
 */
import assert from "node:assert/strict";
import type { FlowEndEvent, FlowEvent } from "../../src/events.ts";
import {
  control,
  e2eTest,
  LOCAL,
  type Run,
  sh,
  TestCgroup,
  TestNetns,
  type Where,
  WORKLOAD,
  workload,
} from "../helpers/e2e.ts";
import { atLeast, Netflow, onPort } from "../helpers/netflow.ts";

function ofPort(events: FlowEvent[], port: number): FlowEvent[] {
  return events.filter((e) => e.src_port === port || e.dst_port === port);
}

/** "event direction src:port>dst:port closed_by reason" for compact comparisons. */
function describe(e: FlowEvent): string {
  const base = `${
    e.event === "net_flow_tcp_begin" ? "begin" : "end"
  } ${e.conn_direction} ${e.src}:${e.src_port}>${e.dst}:${e.dst_port}`;
  return e.event === "net_flow_tcp_end" ? `${base} ${e.closed_by} ${e.reason}` : base;
}

async function watch(cg: TestCgroup, extra: string[] = []) {
  return await Netflow.start(["--format", "json", "--cgroup", cg.dir, ...extra]);
}

/** Stops netflow once `ready` holds for its flow events; checks its exit and summary. */
async function stopped(nf: Netflow, ready: (flows: FlowEvent[]) => boolean) {
  await nf.untilFlows(ready, "the test's events");
  const { events, stderr, code } = await nf.stop();
  assert.equal(code, 0, stderr);
  assert.match(stderr, /, 0 lost records, 0 evicted flows, 0 malformed records,/);
  return events as FlowEvent[];
}

for (const family of [4, 6] as const) {
  const lo = family === 4 ? "127.0.0.1" : "::1";

  e2eTest(`IPv${family} loopback, client closes: an outgoing and an incoming pair`, async () => {
    await using cg = new TestCgroup();
    await using nf = await watch(cg);
    const w = await workload(cg, { where: LOCAL, host: lo }, { where: LOCAL, connectTo: lo });
    const port = w.clientPorts[0]!;
    const events = ofPort(await stopped(nf, atLeast(4, onPort(port))), port);
    const c = `${lo}:${w.clientPorts[0]}`, s = `${lo}:${w.serverPort}`;
    assert.deepEqual(events.map(describe).sort(), [
      `begin incoming ${c}>${s}`,
      `begin outgoing ${c}>${s}`,
      `end incoming ${c}>${s} remote fin`,
      `end outgoing ${c}>${s} local fin`,
    ]);
    const out = events.filter((e) => e.conn_direction === "outgoing");
    const inc = events.filter((e) => e.conn_direction === "incoming");
    assert.equal(out[0]!.flow_id, out[1]!.flow_id);
    assert.equal(inc[0]!.flow_id, inc[1]!.flow_id);
    assert.notEqual(out[0]!.flow_id, inc[0]!.flow_id);
    for (const e of out) assert.deepEqual([e.pid, e.comm, e.uid], [w.clientPid, "nf-client", 0]);
    for (const e of inc) assert.deepEqual([e.pid, e.comm, e.uid], [w.serverPid, "nf-server", 0]);
    for (const e of events) {
      assert.deepEqual([e.cgroup_id, e.cgroup, e.container_id], [cg.id, cg.path, null]);
    }
    const outEnd = out[1] as FlowEndEvent, inEnd = inc[1] as FlowEndEvent;
    // The client sent 100 bytes and read the 50-byte reply before closing.
    assert.deepEqual([outEnd.bytes_sent, outEnd.bytes_received], [100, 50]);
    assert.deepEqual([inEnd.bytes_sent, inEnd.bytes_received], [50, 100]);
    assert.ok(outEnd.duration_ms! >= 0 && outEnd.rtt_us! > 0 && outEnd.packets_sent! >= 3);
  });

  e2eTest(`IPv${family} loopback, server closes: the server is src of both ends`, async () => {
    await using cg = new TestCgroup();
    await using nf = await watch(cg);
    const w = await workload(cg, { where: LOCAL, host: lo }, { where: LOCAL, connectTo: lo }, {
      scenario: "server-close",
    });
    const c = `${lo}:${w.clientPorts[0]}`, s = `${lo}:${w.serverPort}`;
    const port = w.clientPorts[0]!;
    const ends = ofPort(await stopped(nf, atLeast(4, onPort(port))), port).filter((e) =>
      e.event === "net_flow_tcp_end"
    );
    assert.deepEqual(ends.map(describe).sort(), [
      `end incoming ${s}>${c} local fin`,
      `end outgoing ${s}>${c} remote fin`,
    ]);
  });

  e2eTest(`IPv${family} loopback, RST close (SO_LINGER 0)`, async () => {
    await using cg = new TestCgroup();
    await using nf = await watch(cg);
    const w = await workload(cg, { where: LOCAL, host: lo }, { where: LOCAL, connectTo: lo }, {
      scenario: "rst",
    });
    const c = `${lo}:${w.clientPorts[0]}`, s = `${lo}:${w.serverPort}`;
    const port = w.clientPorts[0]!;
    const events = ofPort(await stopped(nf, atLeast(4, onPort(port))), port);
    assert.deepEqual(events.filter((e) => e.event === "net_flow_tcp_end").map(describe).sort(), [
      `end incoming ${c}>${s} remote rst`,
      `end outgoing ${c}>${s} local rst`,
    ]);
    assert.equal(events.length, 4);
  });

  e2eTest(`IPv${family} loopback, refused connection: no flow events`, async () => {
    await using cg = new TestCgroup();
    await using nf = await watch(cg);
    // A port nobody listens on: bind one, note it, close it.
    const port = Number(
      await sh(
        "python3",
        "-c",
        `import socket;s=socket.socket(socket.AF_INET${
          family === 6 ? "6" : ""
        });s.bind(("${lo}",0));print(s.getsockname()[1])`,
      ),
    );
    await using cli = cg.spawn(
      "python3",
      WORKLOAD,
      "connect",
      "--host",
      lo,
      "--port",
      String(port),
      "--scenario",
      "refused",
    );
    const { ports } = JSON.parse(await cli.line());
    await cli.done();
    // The positive control: a connection after it, whose events must come.
    const events = await stopped(nf, await control(cg));
    assert.deepEqual(ofPort(events, ports[0]), []);
  });

  e2eTest(`IPv${family} loopback, half close: the first FIN ends the flow`, async () => {
    await using cg = new TestCgroup();
    await using nf = await watch(cg);
    const w = await workload(cg, { where: LOCAL, host: lo }, { where: LOCAL, connectTo: lo }, {
      scenario: "halfclose",
    });
    const c = `${lo}:${w.clientPorts[0]}`, s = `${lo}:${w.serverPort}`;
    const port = w.clientPorts[0]!;
    const events = ofPort(await stopped(nf, atLeast(4, onPort(port))), port);
    const ends = events.filter((e): e is FlowEndEvent => e.event === "net_flow_tcp_end");
    assert.deepEqual(ends.map(describe).sort(), [
      `end incoming ${c}>${s} remote fin`,
      `end outgoing ${c}>${s} local fin`,
    ]);
    // At the client's FIN, 100 bytes had gone one way and nothing the other.
    const out = ends.find((e) => e.conn_direction === "outgoing")!;
    const inc = ends.find((e) => e.conn_direction === "incoming")!;
    assert.deepEqual([out.bytes_sent, out.bytes_received, inc.bytes_sent, inc.bytes_received], [
      100,
      0,
      0,
      100,
    ]);
  });

  e2eTest(
    `IPv${family} loopback, 200 concurrent connections: exactly 200 pairs per endpoint`,
    async () => {
      await using cg = new TestCgroup();
      await using nf = await watch(cg);
      const w = await workload(cg, { where: LOCAL, host: lo }, { where: LOCAL, connectTo: lo }, {
        count: 200,
      });
      const events = (await stopped(nf, atLeast(800, onPort(w.serverPort)))).filter((e) =>
        e.dst_port === w.serverPort || e.src_port === w.serverPort
      );
      const count = (event: string, dir: string) =>
        events.filter((e) => e.event === event && e.conn_direction === dir).length;
      assert.deepEqual(
        [
          count("net_flow_tcp_begin", "outgoing"),
          count("net_flow_tcp_end", "outgoing"),
          count("net_flow_tcp_begin", "incoming"),
          count("net_flow_tcp_end", "incoming"),
        ],
        [200, 200, 200, 200],
      );
      assert.equal(new Set(events.map((e) => e.flow_id)).size, 400);
      assert.deepEqual(
        [...new Set(events.map((e) => e.src_port))].sort(),
        [...w.clientPorts].sort(),
      );
    },
  );

  e2eTest(`IPv${family} loopback, a 64 MiB transfer: byte counts match exactly`, async () => {
    await using cg = new TestCgroup();
    await using nf = await watch(cg);
    const bytes = 64 << 20;
    const w = await workload(cg, { where: LOCAL, host: lo }, { where: LOCAL, connectTo: lo }, {
      bytes,
    });
    const port = w.clientPorts[0]!;
    const ends = ofPort(await stopped(nf, atLeast(4, onPort(port))), port)
      .filter((e): e is FlowEndEvent => e.event === "net_flow_tcp_end");
    const out = ends.find((e) => e.conn_direction === "outgoing")!;
    const inc = ends.find((e) => e.conn_direction === "incoming")!;
    assert.deepEqual([out.bytes_sent, out.bytes_received], [bytes, 50]);
    assert.deepEqual([inc.bytes_sent, inc.bytes_received], [50, bytes]);
  });

  // Over veth each connection has one watched endpoint: the local client's
  // (outgoing) or the local server's (incoming).
  for (const direction of ["outgoing", "incoming"] as const) {
    for (const scenario of ["client-close", "server-close", "rst", "halfclose"]) {
      e2eTest(
        `IPv${family} veth, ${direction}, ${scenario}: one begin and one exact end`,
        async () => {
          await using cg = new TestCgroup();
          await using ns = await TestNetns.create(1);
          await using nf = await watch(cg);
          const { w, local, client, server } = await vethWorkload(cg, ns, family, direction, {
            scenario,
          });
          const port = w.clientPorts[0]!;
          const events = ofPort(await stopped(nf, atLeast(2, onPort(port))), port);
          const closer = scenario === "server-close" ? server : client;
          const other = closer === server ? client : server;
          const reason = scenario === "rst" ? "rst" : "fin";
          assert.deepEqual(events.map(describe), [
            `begin ${direction} ${client}>${server}`,
            `end ${direction} ${closer}>${other} ${
              closer === local ? "local" : "remote"
            } ${reason}`,
          ]);
          const end = events[1] as FlowEndEvent;
          // The client sends 100 bytes; the server replies 50 (after the client's FIN in a half close).
          const [sent, received] = direction === "outgoing"
            ? [100, scenario === "halfclose" ? 0 : 50]
            : [scenario === "halfclose" ? 0 : 50, 100];
          assert.deepEqual([end.bytes_sent, end.bytes_received], [sent, received]);
          const [pid, comm] = direction === "outgoing"
            ? [w.clientPid, "nf-client"]
            : [w.serverPid, "nf-server"];
          for (const e of events) assert.deepEqual([e.pid, e.comm], [pid, comm]);
        },
      );
    }

    e2eTest(
      `IPv${family} veth, ${direction}, 200 concurrent connections and a 16 MiB transfer`,
      async () => {
        await using cg = new TestCgroup();
        await using ns = await TestNetns.create(1);
        await using nf = await watch(cg);
        const many = await vethWorkload(cg, ns, family, direction, { count: 200 });
        const bytes = 16 << 20;
        const big = await vethWorkload(cg, ns, family, direction, { bytes });
        const events = await stopped(
          nf,
          (flows) =>
            atLeast(400, onPort(many.w.serverPort))(flows) &&
            atLeast(2, onPort(big.w.serverPort))(flows),
        );
        // The 200 connections: their client ports and their server's port (the big transfer's
        // client may reuse a port of theirs, to another server port).
        const ofMany = events.filter((e) =>
          [e.src_port, e.dst_port].includes(many.w.serverPort) &&
          (many.w.clientPorts.includes(e.src_port) || many.w.clientPorts.includes(e.dst_port))
        );
        const count = (name: string) => ofMany.filter((e) => e.event === name).length;
        assert.deepEqual([count("net_flow_tcp_begin"), count("net_flow_tcp_end")], [200, 200]);
        assert.ok(ofMany.every((e) => e.conn_direction === direction));
        // By both ports: the big transfer's client port may be one of the 200's too.
        const end = ofPort(events, big.w.clientPorts[0]!)
          .filter((e) => [e.src_port, e.dst_port].includes(big.w.serverPort))
          .find((e): e is FlowEndEvent => e.event === "net_flow_tcp_end")!;
        assert.deepEqual(
          [end.bytes_sent, end.bytes_received],
          direction === "outgoing" ? [bytes, 50] : [50, bytes],
        );
      },
    );
  }

  e2eTest(`IPv${family} veth, outgoing, refused: no flow events`, async () => {
    await using cg = new TestCgroup();
    await using ns = await TestNetns.create(1);
    await using nf = await watch(cg);
    const nsAddr = family === 4 ? ns.nsAddr4 : ns.nsAddr6;
    await using cli = cg.spawn(
      "python3",
      WORKLOAD,
      "connect",
      "--host",
      nsAddr,
      "--port",
      "9",
      "--scenario",
      "refused",
    );
    const { ports } = JSON.parse(await cli.line());
    await cli.done();
    // The positive control: a connection after it, whose events must come.
    assert.deepEqual(ofPort(await stopped(nf, await control(cg)), ports[0]), []);
  });

  e2eTest(
    `IPv${family} between two watched network namespaces: both endpoints reported`,
    async () => {
      await using cg = new TestCgroup();
      await using a = await TestNetns.create(2);
      await using b = await TestNetns.create(3);
      await linkNamespaces(a, b, family);
      const [addrA, addrB] = family === 4
        ? ["198.19.7.1", "198.19.7.2"]
        : ["fd00:6e66:77::1", "fd00:6e66:77::2"];
      await using nf = await watch(cg);
      const w = await workload(
        cg,
        { where: { kind: "netns", ns: a, watched: true }, host: addrA },
        { where: { kind: "netns", ns: b, watched: true }, connectTo: addrA },
      );
      const c = `${addrB}:${w.clientPorts[0]}`, s = `${addrA}:${w.serverPort}`;
      const port = w.clientPorts[0]!;
      assert.deepEqual(
        ofPort(await stopped(nf, atLeast(4, onPort(port))), port).map(describe).sort(),
        [
          `begin incoming ${c}>${s}`,
          `begin outgoing ${c}>${s}`,
          `end incoming ${c}>${s} remote fin`,
          `end outgoing ${c}>${s} local fin`,
        ],
      );
    },
  );
}

/** A connection over veth: the local side in the cgroup, the other in the namespace. */
async function vethWorkload(
  cg: TestCgroup,
  ns: TestNetns,
  family: 4 | 6,
  direction: "outgoing" | "incoming",
  run: Run,
) {
  const [hostAddr, nsAddr] = family === 4 ? [ns.hostAddr4, ns.nsAddr4] : [ns.hostAddr6, ns.nsAddr6];
  const remote: Where = { kind: "netns", ns, watched: false };
  const w = direction === "outgoing"
    ? await workload(cg, { where: remote, host: nsAddr }, { where: LOCAL, connectTo: nsAddr }, run)
    : await workload(
      cg,
      { where: LOCAL, host: hostAddr },
      { where: remote, connectTo: hostAddr },
      run,
    );
  const [clientAddr, serverAddr] = direction === "outgoing"
    ? [hostAddr, nsAddr]
    : [nsAddr, hostAddr];
  const client = `${clientAddr}:${w.clientPorts[0]}`, server = `${serverAddr}:${w.serverPort}`;
  return { w, client, server, local: direction === "outgoing" ? client : server };
}

/** A veth pair straight between two test namespaces (198.19.7.0/24, fd00:6e66:77::/64). */
async function linkNamespaces(a: TestNetns, b: TestNetns, family: 4 | 6) {
  const ea = `nfa${Deno.pid % 100000}`, eb = `nfb${Deno.pid % 100000}`;
  await sh(
    "ip",
    "link",
    "add",
    ea,
    "netns",
    a.name,
    "type",
    "veth",
    "peer",
    "name",
    eb,
    "netns",
    b.name,
  );
  for (
    const [ns, dev, v4, v6] of [[a, ea, "198.19.7.1", "fd00:6e66:77::1"], [
      b,
      eb,
      "198.19.7.2",
      "fd00:6e66:77::2",
    ]] as const
  ) {
    if (family === 4) await sh("ip", "-n", ns.name, "addr", "add", `${v4}/24`, "dev", dev);
    else await sh("ip", "-n", ns.name, "-6", "addr", "add", `${v6}/64`, "dev", dev, "nodad");
    await sh("ip", "-n", ns.name, "link", "set", dev, "up");
  }
}

e2eTest("IPv4 on a dual-stack IPv6 socket is reported as IPv4", async () => {
  await using cg = new TestCgroup();
  await using nf = await watch(cg);
  // The server listens on "::" (dual stack); the client connects over IPv4.
  const w = await workload(cg, { where: LOCAL, host: "::" }, {
    where: LOCAL,
    connectTo: "127.0.0.1",
  });
  const port = w.clientPorts[0]!;
  const events = ofPort(await stopped(nf, atLeast(4, onPort(port))), port);
  assert.equal(events.length, 4);
  for (const e of events) assert.deepEqual([e.src, e.dst], ["127.0.0.1", "127.0.0.1"]);
});

e2eTest("a worker forked after listen owns its incoming flows", async () => {
  await using cg = new TestCgroup();
  await using nf = await watch(cg);
  const lo = "127.0.0.1";
  const exit = `${Deno.makeTempDirSync()}/exit`;
  // The parent creates the listener, forks a worker, and closes its own copy.
  await using server = cg.spawn(
    "python3",
    WORKLOAD,
    "serve",
    "--host",
    lo,
    "--fork",
    "--wait",
    exit,
  );
  const port = Number((await server.line()).split(" ")[1]);
  const workerPid = Number((await server.line()).split(" ")[1]);
  await using client = cg.spawn(
    "python3",
    WORKLOAD,
    "connect",
    "--host",
    lo,
    "--port",
    String(port),
  );
  const { ports } = JSON.parse(await client.line());
  await client.done();
  // Stop netflow while the worker is up, as a real worker would be.
  const events = await stopped(nf, atLeast(4, onPort(ports[0])));
  Deno.writeTextFileSync(exit, "");
  await server.done();
  const inc = ofPort(events, ports[0]).filter((e) => e.conn_direction === "incoming");
  assert.equal(inc.length, 2);
  assert.notEqual(workerPid, server.pid);
  for (const e of inc) assert.deepEqual([e.pid, e.comm, e.uid], [workerPid, "nf-worker", 0]);
});

e2eTest("a connection older than netflow: a preexisting begin at start, then its end", async () => {
  await using cg = new TestCgroup();
  const lo = "127.0.0.1";
  const go = `${Deno.makeTempDirSync()}/close-now`;
  await using server = cg.spawn("python3", WORKLOAD, "serve", "--host", lo);
  const port = Number((await server.line()).split(" ")[1]);
  await using client = cg.spawn(
    "python3",
    WORKLOAD,
    "connect",
    "--host",
    lo,
    "--port",
    String(port),
    "--wait",
    go,
  );
  const { ports } = JSON.parse(await client.line());
  // Both sockets exist before netflow: no socket storage, no handshake seen.
  await using nf = await watch(cg);
  Deno.writeTextFileSync(go, "");
  await client.done();
  await server.done();
  const c = `${lo}:${ports[0]}`, s = `${lo}:${port}`;
  const events = ofPort(await stopped(nf, atLeast(4, onPort(ports[0]))), ports[0]) as FlowEvent[];
  // The snapshot orients them: the server's socket shares its port with a listener.
  assert.deepEqual(events.map(describe).sort(), [
    `begin incoming ${c}>${s}`,
    `begin outgoing ${c}>${s}`,
    `end incoming ${c}>${s} remote fin`,
    `end outgoing ${c}>${s} local fin`,
  ]);
  for (const e of events) {
    assert.equal(e.preexisting, true);
    const [pid, comm] = e.conn_direction === "outgoing"
      ? [client.pid, "nf-client"]
      : [server.pid, "nf-server"];
    assert.deepEqual([e.pid, e.comm, e.uid], [pid, comm, 0]);
  }
  const ends = events.filter((e): e is FlowEndEvent => e.event === "net_flow_tcp_end");
  for (const e of ends) assert.equal(typeof e.duration_ms, "number");
  // Bytes from the socket's own counters cover the whole connection: 100 out, 50 back.
  const out = ends.find((e) => e.conn_direction === "outgoing")!;
  assert.deepEqual([out.bytes_sent, out.bytes_received], [100, 50]);
});

e2eTest("a client running as another user carries its uid", async () => {
  await using cg = new TestCgroup();
  await using nf = await watch(cg);
  const lo = "127.0.0.1";
  await using server = cg.spawn("python3", WORKLOAD, "serve", "--host", lo);
  const port = Number((await server.line()).split(" ")[1]);
  // nobody may not read the checkout (CI clones anywhere): a readable copy.
  const dir = Deno.makeTempDirSync();
  Deno.chmodSync(dir, 0o755);
  const script = `${dir}/tcp.py`;
  Deno.copyFileSync(WORKLOAD, script);
  Deno.chmodSync(script, 0o644);
  // setpriv drops to nobody after the wrapper has moved into the cgroup.
  await using client = cg.spawn(
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "/usr/bin/python3",
    script,
    "connect",
    "--host",
    lo,
    "--port",
    String(port),
  );
  const { ports, pid } = JSON.parse(await client.line());
  await client.done();
  await server.done();
  const events = ofPort(await stopped(nf, atLeast(4, onPort(ports[0]))), ports[0]);
  const out = events.filter((e) => e.conn_direction === "outgoing");
  const inc = events.filter((e) => e.conn_direction === "incoming");
  assert.deepEqual([out.length, inc.length], [2, 2]);
  for (const e of out) {
    assert.deepEqual([e.pid, e.comm, e.uid, e.cgroup], [pid, "nf-client", 65534, cg.path]);
  }
  for (const e of inc) assert.deepEqual([e.pid, e.comm, e.uid], [server.pid, "nf-server", 0]);
  Deno.removeSync(dir, { recursive: true });
});
