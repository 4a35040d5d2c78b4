/**
 * Whose names an answer gives (src/dns/names.ts, src/dns/resolvers.ts): a
 * configured server's answer names for the namespace, any other server's for
 * the asking cgroup only; namespaces are told apart by their cookie.
 */
import assert from "node:assert/strict";
import dnsPacket from "npm:dns-packet@5.6.1";
import type { DnsMessage } from "../../src/bpf/records.ts";
import { DnsNames } from "../../src/dns/names.ts";
import { dnsSockets, parseResolvConf, ProcResolvers } from "../../src/dns/resolvers.ts";
import { dnsMessage } from "../helpers/records.ts";

function answer(name: string, address: string): Uint8Array {
  return new Uint8Array(dnsPacket.encode({
    type: "response",
    id: 7,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: "A", name }],
    answers: [{ type: "A", name, data: address, ttl: 60, class: "IN" }],
  }));
}

/** An answer as the decoder gives it, in this file's namespace (cookie 5), asked by cgroup 100. */
function message(payload: Uint8Array, more: Partial<DnsMessage>): DnsMessage {
  return dnsMessage(payload, { netns: 4026532000, netnsCookie: 5, queryCgroup: 100, ...more });
}

const CONFIGURED = "192.0.2.53";
const trust = {
  trusted: (_netns: number, server: string, asker: number) => server === CONFIGURED || asker === 7,
};
const scope = (cgroupId: number, netnsCookie = 5) => ({ netns: 4026532000, netnsCookie, cgroupId });

Deno.test("an answer from another server names the address only for the cgroup that asked", () => {
  const names = new DnsNames({ now: () => 1000 }, trust);
  names.onMessage(message(answer("planted.test", "198.51.100.9"), { src: "203.0.113.66" }));
  assert.deepEqual(names.names(scope(100), "198.51.100.9"), ["planted.test"]);
  assert.deepEqual(names.names(scope(200), "198.51.100.9"), []);
  // The configured server's answer names it for every cgroup; the asker keeps both.
  names.onMessage(message(answer("real.test", "198.51.100.9"), { queryCgroup: 300 }));
  assert.deepEqual(names.names(scope(200), "198.51.100.9"), ["real.test"]);
  assert.deepEqual(names.names(scope(100), "198.51.100.9"), ["real.test", "planted.test"]);
  assert.equal(names.stats.cgroupOnly, 1);
});

Deno.test("an answer to a local resolver's own query (nss-resolve's upstream) names for all", () => {
  const names = new DnsNames({ now: () => 1000 }, trust);
  names.onMessage(
    message(answer("up.test", "198.51.100.7"), { src: "203.0.113.1", queryCgroup: 7 }),
  );
  assert.deepEqual(names.names(scope(200), "198.51.100.7"), ["up.test"]);
});

Deno.test("an answer from another server whose asker was not seen names nothing", () => {
  const names = new DnsNames({ now: () => 1000 }, trust);
  names.onMessage(
    message(answer("x.test", "198.51.100.8"), { src: "203.0.113.66", queryCgroup: 0 }),
  );
  assert.deepEqual(names.names(scope(0), "198.51.100.8"), []);
  assert.deepEqual(names.names(scope(100), "198.51.100.8"), []);
  assert.equal(names.stats.entries, 0);
});

Deno.test("a namespace with a dead one's inode (another cookie) has none of its names, and they go", () => {
  const names = new DnsNames({ now: () => 1000 });
  names.onMessage(message(answer("old.test", "198.51.100.1"), {}));
  assert.deepEqual(names.names(scope(100, 5), "198.51.100.1"), ["old.test"]);
  assert.deepEqual(names.names(scope(100, 6), "198.51.100.1"), []);
  assert.deepEqual([names.stats.entries, names.stats.namespaceGone], [0, 1]);
  // A record without a cookie cannot tell: it takes the namespace known by the inode now.
  names.onMessage(message(answer("new.test", "198.51.100.2"), { netnsCookie: 6 }));
  assert.deepEqual(names.names(scope(100, 0), "198.51.100.2"), ["new.test"]);
  assert.equal(names.forgetNamespaces(new Set([4026532000])), 1);
  assert.deepEqual(names.names(scope(100, 6), "198.51.100.2"), []);
});

Deno.test("parseResolvConf reads nameserver lines only, in netflow's address form", () => {
  const text = [
    "# generated",
    "search example.test",
    "nameserver 127.0.0.53",
    "nameserver  fe80::1%eth0 ; link-local",
    "nameserver 2001:DB8:0:0::53",
    "nameserver not-an-address",
    "options edns0 trust-ad",
  ].join("\n");
  assert.deepEqual(parseResolvConf(text), ["127.0.0.53", "fe80::1", "2001:db8::53"]);
});

Deno.test("dnsSockets finds sockets bound to port 53: UDP unconnected, TCP listening", () => {
  const udp = [
    "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops",
    "  1: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   991        0 21001 2 0 0",
    "  2: 0100007F:A000 3500007F:0035 01 00000000:00000000 00:00000000 00000000  1000        0 21002 2 0 0",
    "  3: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 21003 2 0 0",
  ].join("\n");
  assert.deepEqual(dnsSockets(udp), [
    { addr: "127.0.0.53", inode: 21001 },
    { addr: "0.0.0.0", inode: 21003 },
  ]);
  const tcp6 = [
    "  sl  local_address                         remote_address                        st",
    "   0: 00000000000000000000000001000000:0035 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21004 1 0",
  ].join("\n");
  assert.deepEqual(dnsSockets(tcp6), [{ addr: "::1", inode: 21004 }]);
});

Deno.test("ProcResolvers reads the oldest process's resolv.conf and finds the resolver's cgroup", () => {
  const root = Deno.makeTempDirSync({ prefix: "netflow-resolvers-" });
  try {
    const cgroups = `${root}/cgroup`;
    Deno.mkdirSync(`${cgroups}/system.slice/resolved`, { recursive: true });
    const resolvedCgroup = Deno.statSync(`${cgroups}/system.slice/resolved`).ino!;
    const netns = `${root}/netns-a`;
    Deno.writeTextFileSync(netns, "");
    const ino = Deno.statSync(netns).ino!;
    const proc = `${root}/proc`;
    // pid 10: the oldest (start 100), its own resolv.conf; pid 20 (start 900), a planter's.
    const pid = (n: number, start: number, conf: string, cgroup: string, fds: string[]) => {
      Deno.mkdirSync(`${proc}/${n}/ns`, { recursive: true });
      Deno.mkdirSync(`${proc}/${n}/root/etc`, { recursive: true });
      Deno.mkdirSync(`${proc}/${n}/net`, { recursive: true });
      Deno.mkdirSync(`${proc}/${n}/fd`, { recursive: true });
      Deno.linkSync(netns, `${proc}/${n}/ns/net.tmp`);
      Deno.renameSync(`${proc}/${n}/ns/net.tmp`, `${proc}/${n}/ns/net`);
      Deno.writeTextFileSync(`${proc}/${n}/stat`, `${n} (x y) S ${"1 ".repeat(18)}${start} 0`);
      Deno.writeTextFileSync(`${proc}/${n}/root/etc/resolv.conf`, conf);
      Deno.writeTextFileSync(`${proc}/${n}/cgroup`, `0::${cgroup}\n`);
      Deno.writeTextFileSync(
        `${proc}/${n}/net/udp`,
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
          "  1: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   991        0 777 2 0 0\n",
      );
      fds.forEach((target, i) => Deno.symlinkSync(target, `${proc}/${n}/fd/${i}`));
    };
    pid(10, 100, "nameserver 127.0.0.53\n", "/system.slice/resolved", ["socket:[777]"]);
    pid(20, 900, "nameserver 203.0.113.66\n", "/user.slice", ["socket:[1]"]);
    const r = new ProcResolvers(cgroups, proc, () => 0);
    const got = r.of(ino)!;
    assert.deepEqual([...got.servers], ["127.0.0.53"]);
    assert.deepEqual([...got.resolverCgroups], [resolvedCgroup]);
    assert.equal(r.trusted(ino, "127.0.0.53", 0), true);
    assert.equal(r.trusted(ino, "203.0.113.66", 55), false, "a later process's resolv.conf");
    assert.equal(r.trusted(ino, "198.51.100.1", resolvedCgroup), true, "the stub's upstream");
    assert.equal(r.trusted(ino + 1, "127.0.0.53", 0), false, "a namespace with no process");
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
