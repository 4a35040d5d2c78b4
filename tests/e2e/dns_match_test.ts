/**
 * e2e (root): names that cannot be planted. Answers count only when they
 * match a query the same network namespace sent; forged ones are dropped in
 * the kernel. dnsmasq is the real resolver; tests/workloads/dns.py plays the
 * forgers, odd servers and floods.
 */
import assert from "node:assert/strict";
import type { FlowEvent, NetflowEvent } from "../../src/events.ts";
import { FlowMonitor } from "../../src/monitor.ts";
import { connect, dig, ofPort, startDnsmasq, ZONE } from "../helpers/dns.ts";
import {
  e2eTest,
  LOCAL,
  type Proc,
  ROOT,
  sh,
  TestCgroup,
  TestNetns,
  withTimeout,
  workload,
} from "../helpers/e2e.ts";
import { atLeast, eachPort, Netflow, until } from "../helpers/netflow.ts";

const DNS_PY = `${ROOT}tests/workloads/dns.py`;
const EVIL = "evil.example.test";

function subnet(ns: TestNetns): string {
  return ns.nsAddr4.replace(/\.2$/, "");
}

async function peerLink(ns: TestNetns): Promise<string> {
  return (await sh("ip", "-n", ns.name, "-o", "link", "show", "type", "veth")).split(":")[1]!
    .trim().split("@")[0]!;
}

async function addAddress(ns: TestNetns, addr: string): Promise<void> {
  await sh("ip", "-n", ns.name, "addr", "add", `${addr}/24`, "dev", await peerLink(ns));
}

function netnsInode(ns: TestNetns): number {
  return Deno.statSync(`/run/netns/${ns.name}`).ino!;
}

/** Every name on every flow, with what the test expected there (printed for the notes). */
function expectNames(flows: FlowEvent[], port: number, names: string[], what: string): void {
  const got = ofPort(flows, port);
  assert.equal(got.length, 2, `begin and end for ${what}`);
  for (const e of got) {
    console.log(
      `${what}: ${e.event} ${e.dst} expected ${JSON.stringify(names)} seen ${
        JSON.stringify(e.dst_dns)
      }`,
    );
    assert.deepEqual([e.src_dns, e.dst_dns], [[], names], `${what}: ${e.event} ${e.dst}`);
  }
}

function noFlowNamed(flows: FlowEvent[], name: string): void {
  for (const e of flows) {
    assert.ok(!e.src_dns.includes(name) && !e.dst_dns.includes(name), JSON.stringify(e));
  }
}

function counted(stderr: string, what: RegExp): number {
  const m = what.exec(stderr);
  assert.ok(m, `${what} in ${stderr}`);
  return Number(m[1]);
}

for (const wholeHost of [false, true]) {
  const mode = wholeHost ? "whole host" : "--cgroup";
  e2eTest(
    `an unsolicited forged answer in one namespace names nothing, anywhere (${mode})`,
    async () => {
      await using cg = new TestCgroup();
      await using dnsNs = await TestNetns.create(1);
      await using victim = await TestNetns.create(2);
      const { zone: z } = await startDnsmasq(dnsNs, (cmd, ...a) => dnsNs.spawn(cmd, ...a));
      // Whole host: the root cgroup, for the seconds this test runs; only our flows are checked.
      await using nf = await Netflow.start([
        "--format",
        "json",
        ...(wholeHost ? [] : ["--cgroup", cg.dir]),
      ]);

      // A socket in the victim namespace (watched) receives, from port 53, a
      // forged answer naming the address of a real service.
      await using rx = cg.spawn(
        "ip",
        "netns",
        "exec",
        victim.name,
        "python3",
        DNS_PY,
        "listen",
        "--host",
        victim.nsAddr4,
      );
      const rxPort = Number((await rx.line()).split(" ")[1]);
      const forge = sh(
        "python3",
        DNS_PY,
        "forge",
        "--src",
        victim.hostAddr4,
        "--dst",
        victim.nsAddr4,
        "--port",
        String(rxPort),
        "--name",
        EVIL,
        "--address",
        z.chain,
      );
      // Meanwhile this host's namespace really looks the address up.
      const real = dig(cg, dnsNs.nsAddr4, `end.${ZONE}`, "A");
      await forge;
      assert.equal(await real, z.chain);
      assert.equal(await rx.line(), "got 1"); // the forged datagram did reach a watched socket
      const port = await connect(cg, dnsNs, z.chain);

      // Whole host: the server's side too.
      await nf.untilFlows(eachPort(wholeHost ? 4 : 2, [port]), "the connection's events");
      const { events, stderr, code } = await nf.stop();
      assert.equal(code, 0, stderr);
      const flows = events as FlowEvent[];
      const outgoing = flows.filter((e) => e.conn_direction === "outgoing");
      expectNames(outgoing, port, [`end.${ZONE}`], `unsolicited (${mode}): real lookup's flow`);
      // Whole host: the server's side is watched too. Its namespace runs the
      // resolver, seen answering a query from another namespace; the resolver is
      // not a server its own namespace is configured to use, and the asker is
      // not of that namespace: the answer names nothing there.
      const incoming = ofPort(flows, port).filter((e) => e.conn_direction === "incoming");
      assert.equal(incoming.length, wholeHost ? 2 : 0);
      for (const e of incoming) {
        const expected = [[], []];
        console.log(
          `unsolicited (${mode}): server side ${e.event} expected ${
            JSON.stringify(expected)
          } seen ${JSON.stringify([e.src_dns, e.dst_dns])}`,
        );
        assert.deepEqual([e.src_dns, e.dst_dns], expected);
      }
      noFlowNamed(flows, EVIL);
      assert.ok(counted(stderr, /(\d+) unmatched DNS answers/) >= 1, stderr);
      // With --cgroup only dig's side is watched; the whole host also sees the
      // resolver's side (and whatever else this machine resolves meanwhile).
      if (!wholeHost) assert.match(stderr, / 1 DNS responses \(0 malformed/);
    },
  );
}

e2eTest(
  "forged answers from the right server: wrong id, or right id and wrong question",
  async () => {
    await using cg = new TestCgroup();
    await using ns = await TestNetns.create(1);
    await startDnsmasq(ns, (cmd, ...a) => ns.spawn(cmd, ...a));
    const base = subnet(ns);
    const proxyAddr = `${base}.30`, evilAt = `${base}.31`, wrongId = `${base}.32`;
    for (const a of [proxyAddr, evilAt, wrongId]) await addAddress(ns, a);
    // The proxy in front of dnsmasq forges twice before it relays the real answer.
    await using proxy = ns.spawn(
      "python3",
      DNS_PY,
      "proxy",
      "--host",
      proxyAddr,
      "--upstream",
      ns.nsAddr4,
      "--name",
      EVIL,
      "--address",
      evilAt,
      "--wrong-id-address",
      wrongId,
    );
    await proxy.line();
    await using nf = await Netflow.start(["--format", "json", "--cgroup", cg.dir]);
    // dig, like the kernel, waits past both forgeries for the real answer.
    await using q = cg.spawn("dig", `@${proxyAddr}`, `end.${ZONE}`, "A", "+short", "+time=2");
    const said: string[] = [];
    for (;;) {
      const line = await q.line();
      said.push(line);
      if (!line.startsWith(";;")) break;
    }
    await q.done();
    console.log(`dig: ${said.join(" | ")}`);
    assert.equal(said.at(-1), `${base}.11`);
    assert.match(said.join("\n"), /ID mismatch/);
    const port = await connect(cg, ns, `${base}.11`);
    const evilPort = await connect(cg, ns, evilAt);
    const wrongIdPort = await connect(cg, ns, wrongId);

    await nf.untilFlows(
      eachPort(2, [port, evilPort, wrongIdPort]),
      "a begin and an end for each connection",
    );
    const { events, stderr, code } = await nf.stop();
    assert.equal(code, 0, stderr);
    const flows = events as FlowEvent[];
    expectNames(flows, port, [`end.${ZONE}`], "right server: the real answer's address");
    expectNames(flows, evilPort, [], `right id, wrong question (${EVIL} at it)`);
    expectNames(flows, wrongIdPort, [], `wrong id (end.${ZONE} at it)`);
    noFlowNamed(flows, EVIL);
    assert.equal(counted(stderr, /(\d+) unmatched DNS answers/), 2, stderr);
    assert.match(stderr, / 1 DNS responses \(0 malformed/);
  },
);

e2eTest("two namespaces resolve one name to two addresses: each keeps its own", async () => {
  await using cg = new TestCgroup();
  await using a = await TestNetns.create(1);
  await using b = await TestNetns.create(2);
  const addrA = `${subnet(a)}.21`, addrB = `${subnet(b)}.21`;
  await addAddress(a, addrA);
  await addAddress(b, addrB);
  const same = [`--host-record=same.${ZONE},${addrA},300`];
  await startDnsmasq(a, (cmd, ...x) => a.spawn(cmd, ...x), [a.nsAddr4], same);
  await startDnsmasq(b, (cmd, ...x) => b.spawn(cmd, ...x), [b.nsAddr4], [
    `--host-record=same.${ZONE},${addrB},300`,
  ]);
  const monitor = new FlowMonitor({ cgroup: cg.dir });
  const events: NetflowEvent[] = [];
  const loop = (async () => {
    for await (const batch of monitor.batches()) events.push(...batch);
  })();
  try {
    // This host's namespace asks a's resolver; namespace b (a container) asks its own.
    assert.equal(await dig(cg, a.nsAddr4, `same.${ZONE}`, "A"), addrA);
    await using q = cg.spawn(
      "ip",
      "netns",
      "exec",
      b.name,
      "dig",
      `@${b.nsAddr4}`,
      `same.${ZONE}`,
      "A",
      "+short",
    );
    assert.equal(await q.line(), addrB);
    await q.done();
    const hostPort = await connect(cg, a, addrA);
    const inB = { kind: "netns" as const, ns: b, watched: true };
    const w = await workload(cg, { where: { kind: "netns", ns: b, watched: false }, host: addrB }, {
      where: inB,
      connectTo: addrB,
    });
    await until(
      () =>
        [hostPort, w.clientPorts[0]!].every((p) => ofPort(events as FlowEvent[], p).length >= 2),
      "a begin and an end for each connection",
    );
    monitor.close();
    await loop;

    const host = Deno.statSync("/proc/self/ns/net").ino!, nsB = netnsInode(b);
    // Each asked a server its namespace is not configured to use: the names are the cgroup's.
    const caches = {
      [`host ${addrA}`]: monitor.dnsNames(host, addrA, cg.id),
      [`host ${addrB}`]: monitor.dnsNames(host, addrB, cg.id),
      [`b ${addrA}`]: monitor.dnsNames(nsB, addrA, cg.id),
      [`b ${addrB}`]: monitor.dnsNames(nsB, addrB, cg.id),
    };
    console.log("caches:", JSON.stringify(caches));
    assert.deepEqual(caches, {
      [`host ${addrA}`]: [`same.${ZONE}`],
      [`host ${addrB}`]: [],
      [`b ${addrA}`]: [],
      [`b ${addrB}`]: [`same.${ZONE}`],
    });
    const flows = events as FlowEvent[];
    expectNames(flows, hostPort, [`same.${ZONE}`], "host namespace's flow");
    // Until flows carry their namespace, a container's flow is named from the
    // host's cache, which has nothing for addrB: never the other namespace's name.
    for (const e of ofPort(flows, w.clientPorts[0]!)) {
      const expected = "netns" in e ? [`same.${ZONE}`] : [];
      console.log(
        `namespace b's flow: ${e.event} expected ${JSON.stringify(expected)} seen ${
          JSON.stringify(e.dst_dns)
        }`,
      );
      assert.deepEqual(e.dst_dns, expected);
    }
    assert.equal(ofPort(flows, w.clientPorts[0]!).length, 2);
  } finally {
    monitor.close();
    await loop.catch(() => {});
  }
});

e2eTest("an answer over 1,280 bytes keeps the records that fit and counts as cut", async () => {
  await using cg = new TestCgroup();
  await using ns = await TestNetns.create(1);
  const base = subnet(ns);
  const records = Array.from(
    { length: 100 },
    (_, i) => `--host-record=big.${ZONE},${base}.${100 + i},300`,
  );
  await startDnsmasq(ns, (cmd, ...a) => ns.spawn(cmd, ...a), [ns.nsAddr4], [
    "--edns-packet-max=4096",
    ...records,
  ]);
  await using nf = await Netflow.start(["--format", "json", "--cgroup", cg.dir]);
  await using q = cg.spawn(
    "dig",
    `@${ns.nsAddr4}`,
    `big.${ZONE}`,
    "A",
    "+short",
    "+bufsize=4096",
    "+ignore",
  );
  const order: string[] = [];
  for (let i = 0; i < 100; i++) order.push(await q.line());
  await q.done();
  const first = order[0]!, last = order[99]!;
  await addAddress(ns, first);
  await addAddress(ns, last);
  const firstPort = await connect(cg, ns, first);
  const lastPort = await connect(cg, ns, last);
  await nf.untilFlows(eachPort(2, [firstPort, lastPort]), "a begin and an end for each connection");
  const { events, stderr } = await nf.stop();
  const flows = events as FlowEvent[];
  expectNames(flows, firstPort, [`big.${ZONE}`], "1.6 kB answer, first record");
  expectNames(flows, lastPort, [], "1.6 kB answer, last record (past the cut)");
  assert.match(stderr, / 1 DNS responses \(0 malformed, 1 cut/);
});

e2eTest(
  "DNS over TCP: an answer in two segments is reassembled; bulk from port 53 is not DNS",
  async () => {
    await using cg = new TestCgroup();
    await using ns = await TestNetns.create(1);
    const base = subnet(ns);
    const small = `${base}.40`, big = `${base}.41`, bulk = `${base}.42`, first = `${base}.50`;
    for (const a of [small, big, bulk, first]) await addAddress(ns, a);
    const start = async (host: string, ...args: string[]): Promise<Proc> => {
      const p = ns.spawn("python3", DNS_PY, ...args, "--host", host);
      await p.line();
      return p;
    };
    await using _small = await start(
      small,
      "tcp",
      "--name",
      `split.${ZONE}`,
      "--address",
      first,
      "--split",
    );
    // 120 records: about 1.9 kB, in two segments of ~960 bytes; the last records are in the second.
    await using _big = await start(
      big,
      "tcp",
      "--name",
      `many.${ZONE}`,
      "--address",
      `${base}.60`,
      "--count",
      "120",
      "--split",
    );
    await using _bulk = await start(bulk, "bulk", "--bytes", String(4 << 20));
    await using tcpdump = cg.spawn(
      "sh",
      "-c",
      'exec "$@" 2>&1',
      "sh",
      "tcpdump",
      "-i",
      "any",
      "-n",
      "-l",
      "--immediate-mode",
      `tcp and src port 53 and src host ${big}`,
    );
    while (!(await tcpdump.line()).includes("listening on")) { /* its banner first */ }
    await using nf = await Netflow.start(["--format", "json", "--cgroup", cg.dir]);

    assert.equal(await dig(cg, small, `split.${ZONE}`, "A", "+tcp"), first);
    await using q = cg.spawn("dig", `@${big}`, `many.${ZONE}`, "A", "+tcp", "+short");
    const many: string[] = [];
    for (let i = 0; i < 120; i++) many.push(await q.line());
    await q.done();
    const last = many[119]!;
    await addAddress(ns, last);
    // A bulk download from port 53 carries no query: nothing of it is copied.
    await using dl = cg.spawn(
      "python3",
      "-c",
      `
import socket
s = socket.create_connection(("${bulk}", 53))
n = 0
while True:
    b = s.recv(65536)
    if not b: break
    n += len(b)
print(n)`,
    );
    assert.equal(await dl.line(), String(4 << 20));
    const firstPort = await connect(cg, ns, first);
    const lastPort = await connect(cg, ns, last);
    await nf.untilFlows(
      eachPort(2, [firstPort, lastPort]),
      "a begin and an end for each connection",
    );
    const { events, stderr } = await nf.stop();
    // tcpdump's witness: the answer came in two segments with data, or more.
    const segments: string[] = [];
    const withData = () => segments.filter((l) => !/length 0$/.test(l));
    await withTimeout(
      (async () => {
        while (withData().length < 2) segments.push(await tcpdump.line());
      })(),
      20_000,
      "two segments with data",
    ).catch(() => {});
    console.log(`tcpdump: ${withData().length} segments with data from ${big}:53`);
    assert.ok(withData().length >= 2, segments.join("\n"));
    const flows = events as FlowEvent[];
    expectNames(flows, firstPort, [`split.${ZONE}`], "TCP answer in two segments");
    expectNames(
      flows,
      lastPort,
      [`many.${ZONE}`],
      "TCP 1.9 kB answer, last record (second segment)",
    );
    assert.match(stderr, / 2 DNS responses \(0 malformed, 0 cut/);
    assert.match(stderr, / 0 lost records/);
  },
);

e2eTest(
  "a flood of forged port-53 datagrams during a connection storm costs no TCP record",
  async () => {
    await using cg = new TestCgroup();
    await using ns = await TestNetns.create(1);
    const { zone: z } = await startDnsmasq(ns, (cmd, ...a) => ns.spawn(cmd, ...a));
    const forger = `${subnet(ns)}.70`;
    await addAddress(ns, forger);
    await using nf = await Netflow.start(["--format", "json", "--cgroup", cg.dir]);
    await using rx = cg.spawn("python3", DNS_PY, "listen", "--host", ns.hostAddr4, "--idle", "2");
    const rxPort = Number((await rx.line()).split(" ")[1]);
    const flood = sh(
      "ip",
      "netns",
      "exec",
      ns.name,
      "python3",
      DNS_PY,
      "flood",
      "--src",
      forger,
      "--dst",
      ns.hostAddr4,
      "--port",
      String(rxPort),
      "--count",
      "20000",
    );
    const storm = workload(cg, { where: { kind: "netns", ns, watched: false }, host: ns.nsAddr4 }, {
      where: LOCAL,
      connectTo: ns.nsAddr4,
    }, { count: 300 });
    assert.equal(await dig(cg, ns.nsAddr4, `www.${ZONE}`, "A"), `mid.${ZONE}.`);
    const [w] = await Promise.all([storm, flood]);
    const got = Number((await rx.line(30_000)).split(" ")[1]);
    const port = await connect(cg, ns, z.chain);
    await nf.untilFlows(
      (flows) =>
        eachPort(2, [port])(flows) &&
        atLeast(600, (e) => w.clientPorts.includes(e.src_port))(flows),
      "a begin and an end for each connection",
    );
    const { events, stderr, code } = await nf.stop();
    assert.equal(code, 0, stderr);
    const flows = events as FlowEvent[];
    expectNames(
      flows,
      port,
      [`www.${ZONE}`, `mid.${ZONE}`, `end.${ZONE}`],
      "flood: legitimate lookup",
    );
    const storms = flows.filter((e) => w.clientPorts.includes(e.src_port));
    assert.equal(storms.length, 600, "a begin and an end for each of 300 connections");
    noFlowNamed(flows, "flood.test");
    for (const e of flows) assert.ok(e.dst_dns.every((n) => !n.endsWith(".flood.test")));
    assert.match(stderr, /netflow: \d+ events, 0 lost records/);
    assert.match(stderr, / 0 lost DNS records/);
    assert.ok(counted(stderr, /(\d+) unmatched DNS answers/) >= got, `${got} received: ${stderr}`);
    assert.match(stderr, / 1 DNS responses \(0 malformed/);
  },
);

e2eTest("a flood of unanswered queries is bounded in the kernel, and counted", async () => {
  await using cg = new TestCgroup();
  await using ns = await TestNetns.create(1);
  const { zone: z } = await startDnsmasq(ns, (cmd, ...a) => ns.spawn(cmd, ...a));
  const silent = `${subnet(ns)}.71`; // nothing listens on its port 53
  await addAddress(ns, silent);
  await using nf = await Netflow.start(["--format", "json", "--cgroup", cg.dir]);
  await using q = cg.spawn("python3", DNS_PY, "queries", "--dst", silent, "--count", "20000");
  assert.equal(await q.line(30_000), "sent 20000");
  await q.done();
  // Queries after the flood are recorded and answered as ever.
  assert.equal(await dig(cg, ns.nsAddr4, `end.${ZONE}`, "A"), z.chain);
  const port = await connect(cg, ns, z.chain);
  await nf.untilFlows(eachPort(2, [port]), "a begin and an end for each connection");
  const { events, stderr } = await nf.stop();
  expectNames(events as FlowEvent[], port, [`end.${ZONE}`], "after a query flood");
  // 20,001 recorded, 1 answered, at most 16,384 (the map's size) still there.
  const evicted = counted(stderr, /(\d+) evicted DNS queries/);
  console.log(`query flood: ${evicted} evicted DNS queries`);
  assert.ok(evicted >= 20_000 - 16_384 && evicted <= 20_000, stderr);
});

e2eTest("a client and its resolver both watched: one answer read, its copy a repeat", async () => {
  await using cg = new TestCgroup();
  await using ns = await TestNetns.create(1);
  // dnsmasq in this host's namespace and in the cgroup, and dig beside it.
  const { zone: z } = await startDnsmasq(ns, (cmd, ...a) => cg.spawn(cmd, ...a), [ns.hostAddr4]);
  await using nf = await Netflow.start(["--format", "json", "--cgroup", cg.dir]);
  assert.equal(await dig(cg, ns.hostAddr4, `end.${ZONE}`, "A"), z.chain);
  const port = await connect(cg, ns, z.chain);
  await nf.untilFlows(eachPort(2, [port]), "a begin and an end for each connection");
  const { events, stderr } = await nf.stop();
  expectNames(events as FlowEvent[], port, [`end.${ZONE}`], "resolver and client both watched");
  assert.match(stderr, / 1 DNS responses \(0 malformed/);
  assert.match(stderr, / 0 unmatched DNS answers, 1 repeated DNS answers/);
});
