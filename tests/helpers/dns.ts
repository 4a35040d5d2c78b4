/**
 * DNS helpers for e2e tests: dnsmasq as the real resolver in a network
 * namespace, dig as the client, and TCP connections to the answered addresses.
 *
 * @module
 */
import type { FlowEvent } from "../../src/events.ts";
import { LOCAL, type Proc, sh, type TestCgroup, type TestNetns, workload } from "./e2e.ts";

export const ZONE = "netflow.test";

/** The zone: one extra address in the namespace for each case. */
export function zone(ns: TestNetns) {
  const base = ns.nsAddr4.replace(/\.2$/, "");
  return {
    chain: `${base}.11`, // www -> mid -> end (two CNAMEs)
    shared: `${base}.12`, // one and two
    short: `${base}.13`, // TTL 1 s
    tcp: `${base}.14`, // asked over TCP
    v6: ns.nsAddr6.replace(/::2$/, "::16"),
  };
}

/**
 * dnsmasq in the foreground answering only from its command line (no
 * resolv.conf, no hosts file, no upstream), bound to `listen`: add its records.
 */
export function dnsmasqCommand(listen: string[]): [string, ...string[]] {
  return [
    "dnsmasq",
    "--keep-in-foreground",
    "--conf-file=/dev/null",
    "--no-resolv",
    "--no-hosts",
    "--user=root",
    "--bind-interfaces",
    ...listen.map((a) => `--listen-address=${a}`),
  ];
}

export async function startDnsmasq(
  ns: TestNetns,
  where: (cmd: string, ...a: string[]) => Proc,
  listen: string[] = [ns.nsAddr4, ns.nsAddr6],
  extra: string[] = [],
) {
  const z = zone(ns);
  const peer = (await sh("ip", "-n", ns.name, "-o", "link", "show", "type", "veth")).split(":")[1]!
    .trim()
    .split("@")[0]!;
  for (const addr of [z.chain, z.shared, z.short, z.tcp]) {
    await sh("ip", "-n", ns.name, "addr", "add", `${addr}/24`, "dev", peer);
  }
  await sh("ip", "-n", ns.name, "-6", "addr", "add", `${z.v6}/64`, "dev", peer, "nodad");
  const proc = where(
    ...dnsmasqCommand(listen),
    ...extra,
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
      `@${listen[0]}`,
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
export async function connect(cg: TestCgroup, ns: TestNetns, addr: string): Promise<number> {
  const remote = { kind: "netns" as const, ns, watched: false };
  const w = await workload(cg, { where: remote, host: addr }, { where: LOCAL, connectTo: addr });
  return w.clientPorts[0]!;
}

export async function dig(
  cg: TestCgroup,
  server: string,
  name: string,
  type: string,
  ...opts: string[]
) {
  await using q = cg.spawn("dig", `@${server}`, name, type, "+short", "+time=2", ...opts);
  const answer = await q.line();
  await q.done();
  return answer;
}

export function ofPort(events: FlowEvent[], port: number) {
  return events.filter((e) => e.src_port === port || e.dst_port === port);
}

/**
 * The namespace's resolv.conf, as `ip netns exec` shows it to the processes it
 * starts from now on (it bind-mounts /etc/netns/NAME/resolv.conf over
 * /etc/resolv.conf): netflow reads a namespace's configured nameservers from
 * its oldest process. Removed when disposed.
 */
export async function resolvConf(ns: TestNetns, servers: string[]): Promise<AsyncDisposable> {
  const dir = `/etc/netns/${ns.name}`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/resolv.conf`, servers.map((s) => `nameserver ${s}\n`).join(""));
  return { [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }).catch(() => {}) };
}
