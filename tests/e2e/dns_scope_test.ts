/**
 * e2e (root): whose names an answer gives (issue 22 points 1 and 2).
 *
 * - An unprivileged user's `dig @their-server` names the planted address only
 *   on the flows of the user's own cgroup; the same name from the server the
 *   namespace is configured to use (its resolv.conf) names it for everyone.
 * - A local stub resolver's own upstream answers (what it sends for
 *   applications behind nss-resolve) name for the whole namespace.
 * - A namespace that gets a dead namespace's inode number inherits none of
 *   its names (they were keyed by the netns cookie, never reused).
 */
import assert from "node:assert/strict";
import type { FlowEvent } from "../../src/events.ts";
import { FlowMonitor, type NetflowEvent } from "../../mod.ts";
import { dnsmasqCommand, ofPort, resolvConf } from "../helpers/dns.ts";
import { e2eTest, Proc, sh, TestCgroup, TestNetns, withTimeout } from "../helpers/e2e.ts";
import { eachPort, Netflow, until } from "../helpers/netflow.ts";

const NAME = "www.plant.test";
const WORKLOAD = new URL("../workloads/tcp.py", import.meta.url).pathname;
const ONE = ["--scenario", "client-close", "--count", "1", "--bytes", "100"];

/** dnsmasq answering NAME with `address`, listening on `listen`; ready when it answers. */
async function dnsmasq(
  spawn: (cmd: string, ...a: string[]) => Proc,
  listen: string,
  address: string,
  ask: (...a: string[]) => Promise<string>,
): Promise<Proc> {
  const proc = spawn(
    ...dnsmasqCommand([listen]),
    `--host-record=${NAME},${address},300`,
    "--log-facility=-",
  );
  for (let i = 0; i < 50; i++) {
    const out = await ask(
      `@${listen}`,
      NAME,
      "A",
      "+short",
      "+time=1",
      "+tries=1",
    ).catch(() => "");
    if (out.trim() === address) return proc;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`dnsmasq on ${listen} did not answer`);
}

/** A dig run to its end from `where` (a cgroup's spawn), as user nobody. */
async function digAsNobody(
  spawn: (cmd: string, ...a: string[]) => Proc,
  ns: string,
  ...args: string[]
): Promise<string> {
  await using q = spawn(
    "ip",
    "netns",
    "exec",
    ns,
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "dig",
    ...args,
    NAME,
    "A",
    "+short",
    "+time=2",
  );
  const line = await q.line();
  await q.done();
  return line;
}

type Spawn = (cmd: string, ...a: string[]) => Proc;

/**
 * One connection to `addr` in namespace `ns`: the server started by
 * `server` (unwatched), the client by `client` in the namespace; the client's port.
 */
async function connectTo(
  addr: string,
  server: Spawn,
  client: Spawn,
  ns: string,
): Promise<number> {
  await using srv = server(
    "python3",
    WORKLOAD,
    "serve",
    "--host",
    addr,
    ...ONE,
  );
  const port = Number((await srv.line()).split(" ")[1]);
  await using cli = client(
    "ip",
    "netns",
    "exec",
    ns,
    "python3",
    WORKLOAD,
    "connect",
    "--host",
    addr,
    "--port",
    String(port),
    ...ONE,
  );
  const out = JSON.parse(await cli.line(60_000)) as { ports: number[] };
  await cli.done();
  await srv.done();
  return out.ports[0]!;
}

function namesOf(flows: FlowEvent[], port: number): string[][] {
  const got = ofPort(flows, port);
  assert.equal(got.length, 2, `begin and end of port ${port}`);
  return got.map((e) => [...e.dst_dns]);
}

e2eTest(
  "an unprivileged dig @other-server names the address only for its own cgroup; the configured resolver's answer for all",
  async () => {
    await using cg = new TestCgroup();
    await using ns = await TestNetns.create(1);
    const base = ns.nsAddr4.replace(/\.2$/, "");
    const other = `${base}.54`, planted = `${base}.66`;
    const peer = (await sh("ip", "-n", ns.name, "-o", "link", "show", "type", "veth"))
      .split(
        ":",
      )[1]!
      .trim().split("@")[0]!;
    for (const a of [other, planted]) {
      await sh("ip", "-n", ns.name, "addr", "add", `${a}/24`, "dev", peer);
    }
    await using _conf = await resolvConf(ns, [ns.nsAddr4]);
    const fromHost = (...a: string[]) => sh("dig", ...a);
    // The namespace's configured resolver first (its oldest process), then the planter's server.
    await dnsmasq(
      (c, ...a) => ns.spawn(c, ...a),
      ns.nsAddr4,
      planted,
      fromHost,
    );
    await dnsmasq((c, ...a) => ns.spawn(c, ...a), other, planted, fromHost);
    await using attacker = new TestCgroup(cg, "attacker");
    await using victim = new TestCgroup(cg, "victim");
    await using nf = await Netflow.start([
      "--format",
      "json",
      "--cgroup",
      cg.dir,
    ]);

    // A connection to the planted address from a cgroup, in the namespace (the server unwatched).
    const connectFrom = (from: TestCgroup) =>
      connectTo(
        planted,
        (c, ...a) => ns.spawn(c, ...a),
        (c, ...a) => from.spawn(c, ...a),
        ns.name,
      );

    // The planter, not root, asks its own server.
    assert.equal(
      await digAsNobody(
        (c, ...a) => attacker.spawn(c, ...a),
        ns.name,
        `@${other}`,
      ),
      planted,
    );
    const victimBefore = await connectFrom(victim);
    const attackerOwn = await connectFrom(attacker); // positive control: the asker's cgroup is named
    // The same name through the namespace's configured resolver (dig's default server).
    assert.equal(
      await digAsNobody((c, ...a) => attacker.spawn(c, ...a), ns.name),
      planted,
    );
    const victimAfter = await connectFrom(victim);
    await nf.untilFlows(
      eachPort(2, [victimBefore, attackerOwn, victimAfter]),
      "a begin and an end for each connection",
    );
    const { events, stderr, code } = await nf.stop();
    assert.equal(code, 0, stderr);
    const flows = events as FlowEvent[];
    const seen = {
      victimBefore: namesOf(flows, victimBefore),
      attackerOwn: namesOf(flows, attackerOwn),
      victimAfter: namesOf(flows, victimAfter),
    };
    console.log(`names (begin, end): ${JSON.stringify(seen)}`);
    assert.deepEqual(seen, {
      victimBefore: [[], []],
      attackerOwn: [[NAME], [NAME]],
      victimAfter: [[NAME], [NAME]],
    });
    assert.match(stderr, / 1 DNS answers for their cgroup only/);
  },
);

/** A named namespace with only loopback up; deleted on dispose. */
async function loopbackNetns(
  name: string,
): Promise<AsyncDisposable & { inode: number }> {
  await sh("ip", "netns", "add", name);
  await sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up");
  return {
    inode: Deno.statSync(`/run/netns/${name}`).ino!,
    [Symbol.asyncDispose]: () => sh("ip", "netns", "del", name).then(() => {}, () => {}),
  };
}

e2eTest(
  "a namespace that gets a dead namespace's inode inherits none of its names",
  async () => {
    await using cg = new TestCgroup();
    const monitor = new FlowMonitor({ cgroup: cg.dir });
    const events: NetflowEvent[] = [];
    const loop = (async () => {
      for await (const batch of monitor.batches()) events.push(...batch);
    })();
    const name = (i: number) => `nf-dns-reuse-${Deno.pid}-${i}`;
    const confDir = (n: string) => `/etc/netns/${n}`;
    /** In namespace `n`: a resolver at 127.0.0.1 (configured), a server at 127.0.0.9; then `f`. */
    const inNamespace = async <T>(
      n: string,
      f: (spawn: (c: string, ...a: string[]) => Proc) => Promise<T>,
    ) => {
      Deno.mkdirSync(confDir(n), { recursive: true });
      Deno.writeTextFileSync(
        `${confDir(n)}/resolv.conf`,
        "nameserver 127.0.0.1\n",
      );
      const procs: Proc[] = [];
      const there = (c: string, ...a: string[]) => {
        const p = new Proc("ip", ["netns", "exec", n, c, ...a]);
        procs.push(p);
        return p;
      };
      try {
        await dnsmasq(
          there,
          "127.0.0.1",
          "127.0.0.9",
          (...a) => sh("ip", "netns", "exec", n, "dig", ...a),
        );
        return await f(there);
      } finally {
        for (const p of procs) await p[Symbol.asyncDispose]();
        Deno.removeSync(confDir(n), { recursive: true });
      }
    };
    const connect = (n: string, there: Spawn) =>
      connectTo("127.0.0.9", there, (c, ...a) => cg.spawn(c, ...a), n);
    try {
      // Namespace A resolves the name (positive control: its flow is named), then goes.
      let deadInode = 0;
      const a = name(0);
      const beforePort = await (async () => {
        await using ns = await loopbackNetns(a);
        deadInode = ns.inode;
        return await inNamespace(a, async (there) => {
          assert.equal(
            (await sh("ip", "netns", "exec", a, "dig", NAME, "A", "+short"))
              .trim(),
            "127.0.0.9",
          );
          await using q = cg.spawn(
            "ip",
            "netns",
            "exec",
            a,
            "dig",
            NAME,
            "A",
            "+short",
          );
          await q.line();
          await q.done();
          return await connect(a, there);
        });
      })();
      // Namespaces are made until one gets A's inode (the kernel reuses it at once).
      let reused: (AsyncDisposable & { inode: number }) | undefined;
      let b = "";
      for (let i = 1; i <= 40 && reused === undefined; i++) {
        b = name(i);
        const ns = await loopbackNetns(b);
        if (ns.inode === deadInode) reused = ns;
        else await ns[Symbol.asyncDispose]();
      }
      assert.ok(
        reused !== undefined,
        `no new namespace got inode ${deadInode} in 40 tries`,
      );
      await using _b = reused;
      const [inheritPort, ownPort] = await inNamespace(b, async (there) => {
        const inherit = await connect(b, there); // nothing asked yet in B
        await using q = cg.spawn(
          "ip",
          "netns",
          "exec",
          b,
          "dig",
          NAME,
          "A",
          "+short",
        );
        assert.equal(await q.line(), "127.0.0.9");
        await q.done();
        return [inherit, await connect(b, there)]; // positive control: B's own answer names it
      });
      const ports = [beforePort, inheritPort, ownPort];
      await until(
        () => eachPort(2, ports)(events as FlowEvent[]),
        "a begin and an end for each connection",
      );
      monitor.close();
      await withTimeout(loop, 10_000, "the monitor to stop");
      const flows = events.filter((e) => e.event !== "net_flow_tcp_fail") as FlowEvent[];
      const outgoing = flows.filter((e) => e.conn_direction === "outgoing");
      const seen = {
        inode: `${deadInode} reused`,
        deadNamespace: namesOf(outgoing, beforePort),
        newNamespaceBeforeAsking: namesOf(outgoing, inheritPort),
        newNamespaceAfterAsking: namesOf(outgoing, ownPort),
      };
      console.log(`names (begin, end): ${JSON.stringify(seen)}`);
      assert.deepEqual(seen, {
        inode: `${deadInode} reused`,
        deadNamespace: [[NAME], [NAME]],
        newNamespaceBeforeAsking: [[], []],
        newNamespaceAfterAsking: [[NAME], [NAME]],
      });
    } finally {
      monitor.close();
      await loop.catch(() => {});
    }
  },
);

e2eTest(
  "a local stub resolver's own upstream answers name for the whole namespace (nss-resolve's path)",
  async () => {
    await using cg = new TestCgroup();
    await using ns = await TestNetns.create(1);
    const base = ns.nsAddr4.replace(/\.2$/, "");
    const upstream = `${base}.54`, planted = `${base}.66`;
    const peer = (await sh("ip", "-n", ns.name, "-o", "link", "show", "type", "veth"))
      .split(":")[1]!
      .trim().split("@")[0]!;
    for (const a of [upstream, planted]) {
      await sh("ip", "-n", ns.name, "addr", "add", `${a}/24`, "dev", peer);
    }
    // The namespace is configured to use a stub at 127.0.0.53 (as systemd-resolved's), which
    // forwards to an upstream the namespace's resolv.conf does not name.
    await using _conf = await resolvConf(ns, ["127.0.0.53"]);
    await using resolver = new TestCgroup(cg, "resolver");
    await using other = new TestCgroup(cg, "other");
    await using victim = new TestCgroup(cg, "victim");
    const inNs = (c: TestCgroup): Spawn => (cmd, ...a) =>
      c.spawn("ip", "netns", "exec", ns.name, cmd, ...a);
    await dnsmasq(
      inNs(resolver),
      "127.0.0.53",
      "127.0.0.99",
      (...a) => sh("ip", "netns", "exec", ns.name, "dig", ...a),
    );
    await dnsmasq(
      (c, ...a) => ns.spawn(c, ...a),
      upstream,
      planted,
      (...a) => sh("dig", ...a),
    );
    await using nf = await Netflow.start([
      "--format",
      "json",
      "--cgroup",
      cg.dir,
    ]);
    const askUpstream = async (from: TestCgroup) => {
      await using q = inNs(from)(
        "dig",
        `@${upstream}`,
        NAME,
        "A",
        "+short",
        "+time=2",
      );
      assert.equal(await q.line(), planted);
      await q.done();
    };
    const connectFrom = (from: TestCgroup) =>
      connectTo(
        planted,
        (c, ...a) => ns.spawn(c, ...a),
        (c, ...a) => from.spawn(c, ...a),
        ns.name,
      );
    await askUpstream(other); // another cgroup asks the upstream: its own names only
    const victimBefore = await connectFrom(victim);
    // The stub's cgroup asks the upstream, as the stub does for an application behind
    // nss-resolve (which sends no DNS packet of its own).
    await askUpstream(resolver);
    const victimAfter = await connectFrom(victim);
    await nf.untilFlows(
      eachPort(2, [victimBefore, victimAfter]),
      "a begin and an end for each connection",
    );
    const { events, stderr, code } = await nf.stop();
    assert.equal(code, 0, stderr);
    const flows = events as FlowEvent[];
    const seen = {
      victimBefore: namesOf(flows, victimBefore),
      victimAfter: namesOf(flows, victimAfter),
    };
    console.log(`names (begin, end): ${JSON.stringify(seen)}`);
    assert.deepEqual(seen, {
      victimBefore: [[], []],
      victimAfter: [[NAME], [NAME]],
    });
  },
);
