/**
 * e2e (root): src_dns / dst_dns from real DNS answers. dnsmasq serves a zone
 * of ours in a network namespace; dig queries it from the watched cgroup; then
 * real TCP connections go to the answered addresses.
 */
import assert from "node:assert/strict";
import type { FlowEvent } from "../../src/events.ts";
import { connect, dig, ofPort, resolvConf, startDnsmasq, ZONE } from "../helpers/dns.ts";
import { e2eTest, sh, TestCgroup, TestNetns, workload } from "../helpers/e2e.ts";
import { eachPort, Netflow } from "../helpers/netflow.ts";

e2eTest(
  "flows carry the names the host resolved: chains, shared addresses, IPv6, TCP, expiry",
  async () => {
    await using cg = new TestCgroup();
    await using ns = await TestNetns.create(1);
    const { zone: z } = await startDnsmasq(ns, (cmd, ...a) => ns.spawn(cmd, ...a));
    await using nf = await Netflow.start([
      "--format",
      "json",
      "--cgroup",
      cg.dir,
      "--dns-grace",
      "1",
    ]);
    const dns = ns.nsAddr4;

    assert.equal(await dig(cg, dns, `www.${ZONE}`, "A"), `mid.${ZONE}.`); // dig prints the chain first
    await dig(cg, dns, `one.${ZONE}`, "A");
    await dig(cg, dns, `two.${ZONE}`, "A");
    await dig(cg, ns.nsAddr6, `v6.${ZONE}`, "AAAA"); // the answer travels over IPv6
    await dig(cg, dns, `tcp.${ZONE}`, "A", "+tcp");

    const chainPort = await connect(cg, ns, z.chain);
    const sharedPort = await connect(cg, ns, z.shared);
    const v6Port = await connect(cg, ns, z.v6);
    const tcpPort = await connect(cg, ns, z.tcp);
    await dig(cg, dns, `short.${ZONE}`, "A"); // right before its connection: TTL 1 s + grace 1 s
    const shortPort = await connect(cg, ns, z.short);
    await new Promise((r) => setTimeout(r, 3200)); // TTL and grace have passed
    const expiredPort = await connect(cg, ns, z.short);

    const ports = [chainPort, sharedPort, v6Port, tcpPort, shortPort, expiredPort];
    await nf.untilFlows(eachPort(2, ports), "a begin and an end for each connection");
    const { events, stderr, code } = await nf.stop();
    assert.equal(code, 0, stderr);
    const flows = events as FlowEvent[];
    const expect = (port: number, names: string[]) => {
      const got = ofPort(flows, port);
      assert.equal(got.length, 2, `begin and end for port ${port}`);
      for (const e of got) {
        // The client is local: src at begin and at end (it closes first).
        assert.deepEqual([e.src_dns, e.dst_dns], [[], names], `${e.event} ${e.dst}`);
      }
    };
    expect(chainPort, [`www.${ZONE}`, `mid.${ZONE}`, `end.${ZONE}`]);
    expect(sharedPort, [`one.${ZONE}`, `two.${ZONE}`]);
    expect(v6Port, [`v6.${ZONE}`]);
    expect(tcpPort, [`tcp.${ZONE}`]);
    expect(shortPort, [`short.${ZONE}`]);
    expect(expiredPort, []);
    assert.match(stderr, /(\d+) DNS responses \(0 malformed, 0 cut, 0 evicted from the cache\)/);
    assert.ok(Number(/(\d+) DNS responses/.exec(stderr)![1]) >= 6);
  },
);

e2eTest("answers a namespace's configured resolver sends are cached too (egress)", async () => {
  await using cg = new TestCgroup();
  await using ns = await TestNetns.create(1);
  await using _conf = await resolvConf(ns, [ns.nsAddr4]);
  // dnsmasq serves in the namespace, inside the watched cgroup, and is the
  // server the namespace is configured to use; dig asks from this host,
  // outside it. The namespace sees the query arrive and the answer leave, so
  // the names are its own: a client of the watched cgroup there gets them.
  const inNs = (cmd: string, ...a: string[]) => cg.spawn("ip", "netns", "exec", ns.name, cmd, ...a);
  const { zone: z } = await startDnsmasq(ns, inNs, [ns.nsAddr4]);
  await using nf = await Netflow.start(["--format", "json", "--cgroup", cg.dir]);
  const ask = (...a: string[]) => sh("dig", `@${ns.nsAddr4}`, ...a);
  await ask(`www.${ZONE}`, "A", "+short");
  await ask(`tcp.${ZONE}`, "A", "+short", "+tcp"); // over TCP: the query arrives, the answer leaves
  const there = async (addr: string) => {
    const w = await workload(cg, { where: { kind: "netns", ns, watched: false }, host: addr }, {
      where: { kind: "netns", ns, watched: true },
      connectTo: addr,
    });
    return w.clientPorts[0]!;
  };
  const port = await there(z.chain);
  const tcpPort = await there(z.tcp);
  await nf.untilFlows(eachPort(2, [port, tcpPort]), "a begin and an end for each connection");
  const { events, stderr } = await nf.stop();
  const got = ofPort(events as FlowEvent[], port);
  assert.equal(got.length, 2);
  for (const e of got) assert.deepEqual(e.dst_dns, [`www.${ZONE}`, `mid.${ZONE}`, `end.${ZONE}`]);
  const overTcp = ofPort(events as FlowEvent[], tcpPort);
  assert.equal(overTcp.length, 2);
  for (const e of overTcp) assert.deepEqual(e.dst_dns, [`tcp.${ZONE}`]);
  assert.match(stderr, / 2 DNS responses \(0 malformed, 0 cut/);
  assert.match(stderr, / 0 DNS answers for their cgroup only/);
});
