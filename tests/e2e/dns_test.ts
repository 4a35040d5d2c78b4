/**
 * e2e (root): src_dns / dst_dns from real DNS answers. dnsmasq serves a zone
 * of ours in a network namespace; dig queries it from the watched cgroup; then
 * real TCP connections go to the answered addresses.
 */
import assert from "node:assert/strict";
import type { FlowEvent } from "../../src/flow/events.ts";
import {
  e2eTest,
  LOCAL,
  Netflow,
  type Proc,
  sh,
  TestCgroup,
  TestNetns,
  workload,
} from "../helpers/e2e.ts";

const ZONE = "netflow.test";

/** The zone: one extra address in the namespace for each case. */
function zone(ns: TestNetns) {
  const base = ns.nsAddr4.replace(/\.2$/, "");
  return {
    chain: `${base}.11`, // www -> mid -> end (two CNAMEs)
    shared: `${base}.12`, // one and two
    short: `${base}.13`, // TTL 1 s
    tcp: `${base}.14`, // asked over TCP
    v6: ns.nsAddr6.replace(/::2$/, "::16"),
  };
}

async function startDnsmasq(ns: TestNetns, where: (cmd: string, ...a: string[]) => Proc) {
  const z = zone(ns);
  const peer = (await sh("ip", "-n", ns.name, "-o", "link", "show", "type", "veth")).split(":")[1]!
    .trim()
    .split("@")[0]!;
  for (const addr of [z.chain, z.shared, z.short, z.tcp]) {
    await sh("ip", "-n", ns.name, "addr", "add", `${addr}/24`, "dev", peer);
  }
  await sh("ip", "-n", ns.name, "-6", "addr", "add", `${z.v6}/64`, "dev", peer, "nodad");
  const proc = where(
    "dnsmasq",
    "--keep-in-foreground",
    "--conf-file=/dev/null",
    "--no-resolv",
    "--no-hosts",
    "--user=root",
    "--bind-interfaces",
    `--listen-address=${ns.nsAddr4}`,
    `--listen-address=${ns.nsAddr6}`,
    "--local-ttl=300",
    `--host-record=end.${ZONE},${z.chain},300`,
    `--cname=mid.${ZONE},end.${ZONE},300`,
    `--cname=www.${ZONE},mid.${ZONE},300`,
    `--host-record=one.${ZONE},two.${ZONE},${z.shared},300`,
    `--host-record=short.${ZONE},${z.short},1`,
    `--host-record=tcp.${ZONE},${z.tcp},300`,
    `--host-record=v6.${ZONE},${z.v6},300`,
    "--log-facility=-",
  );
  // Ready when it answers.
  for (let i = 0; i < 50; i++) {
    const out = await sh(
      "dig",
      `@${ns.nsAddr4}`,
      `one.${ZONE}`,
      "A",
      "+short",
      "+time=1",
      "+tries=1",
    )
      .catch(() => "");
    if (out.trim() !== "") return { proc, zone: z };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("dnsmasq did not answer");
}

/** One TCP connection from the cgroup to `addr` (a server in the namespace); the client's port. */
async function connect(cg: TestCgroup, ns: TestNetns, addr: string): Promise<number> {
  const remote = { kind: "netns" as const, ns, watched: false };
  const w = await workload(cg, { where: remote, host: addr }, { where: LOCAL, connectTo: addr });
  return w.clientPorts[0]!;
}

async function dig(cg: TestCgroup, server: string, name: string, type: string, ...opts: string[]) {
  await using q = cg.spawn("dig", `@${server}`, name, type, "+short", "+time=2", ...opts);
  const answer = await q.line();
  await q.done();
  return answer;
}

function ofPort(events: FlowEvent[], port: number) {
  return events.filter((e) => e.src_port === port || e.dst_port === port);
}

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

e2eTest("answers a watched local resolver sends are cached too (egress)", async () => {
  await using cg = new TestCgroup();
  await using ns = await TestNetns.create(1);
  // dnsmasq runs inside the watched cgroup; dig runs outside it.
  const { zone: z } = await startDnsmasq(
    ns,
    (cmd, ...a) => cg.spawn("ip", "netns", "exec", ns.name, cmd, ...a),
  );
  await using nf = await Netflow.start(["--format", "json", "--cgroup", cg.dir]);
  await sh("dig", `@${ns.nsAddr4}`, `www.${ZONE}`, "A", "+short");
  const port = await connect(cg, ns, z.chain);
  const { events } = await nf.stop();
  const got = ofPort(events as FlowEvent[], port);
  assert.equal(got.length, 2);
  for (const e of got) assert.deepEqual(e.dst_dns, [`www.${ZONE}`, `mid.${ZONE}`, `end.${ZONE}`]);
});
