/**
 * e2e (root): what the kernel side of owner resolution writes, read from
 * netflow's probe directly.
 *
 * - The holders iterator's filter (bpf/iter.bpf.h, src/bpf/wanted.ts): a run
 *   asked for some sockets writes the rows of those and of every listener,
 *   and of no other socket; asked for none (the start snapshot), every
 *   socket's. One process holds a listener, two accepted sockets and two
 *   client sockets, and says their cookies (SO_COOKIE).
 * - Runs on a few processes (src/bpf/holders_run.ts, Linux 6.1+): only
 *   those processes' sockets and listeners.
 * - Release records (bpf/owners.bpf.h): written for a socket whose end went
 *   out before its holder closed it (the peer's FIN first), not for one whose
 *   end already named its closer (its own FIN first).
 */
import assert from "node:assert/strict";
import { decodeHolders, type SocketHolder } from "../../src/bpf/holders.ts";
import { Probe } from "../../src/bpf/loader.ts";
import { RecordDecoder } from "../../src/bpf/records.ts";
import { e2eTest, TestCgroup } from "../helpers/e2e.ts";

/** Both workloads' start: a listener, and each socket's cookie. */
const LISTENER = `
import json, signal, socket
SO_COOKIE = 57
cookie = lambda s: int.from_bytes(s.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8), "little")
lis = socket.socket()
lis.bind(("127.0.0.1", 0))
lis.listen(8)
`;

const HOLDER = LISTENER + `port = lis.getsockname()[1]
a_cli = socket.create_connection(("127.0.0.1", port))
a, _ = lis.accept()
b_cli = socket.create_connection(("127.0.0.1", port))
b, _ = lis.accept()
print(json.dumps({"port": port, "a": cookie(a), "b": cookie(b), "a_cli": cookie(a_cli),
                  "b_cli": cookie(b_cli)}), flush=True)
signal.pause()
`;

interface Said {
  port: number;
  a: number;
  b: number;
  a_cli: number;
  b_cli: number;
}

e2eTest(
  "a holders run writes the rows of the sockets asked for and of every listener, no other",
  async () => {
    await using cg = new TestCgroup();
    const proc = cg.spawn("python3", "-c", HOLDER);
    const said = JSON.parse(await proc.line()) as Said;
    using probe = Probe.open({ cgroupDir: cg.dir });
    const run = (cookies: ReadonlySet<number> | null): SocketHolder[] =>
      decodeHolders(probe.holders(cookies)!.bytes).filter((h) => h.owner.pid === proc.pid);
    const cookiesOf = (rows: SocketHolder[]) =>
      rows.filter((h) => !h.listening).map((h) => h.cookie).sort((x, y) => x - y);
    const listenerOf = (rows: SocketHolder[]) =>
      rows.filter((h) => h.listening).map((h) => h.localPort);
    const sorted = (...xs: number[]) => xs.sort((x, y) => x - y);

    // Positive control: asked for nothing in particular, every socket the process holds.
    const all = run(null);
    assert.deepEqual(cookiesOf(all), sorted(said.a, said.b, said.a_cli, said.b_cli));
    assert.deepEqual(listenerOf(all), [said.port]);

    const onlyA = run(new Set([said.a]));
    assert.deepEqual(cookiesOf(onlyA), [said.a]);
    assert.deepEqual(listenerOf(onlyA), [said.port]); // the owner rules read listeners
    assert.equal(onlyA.find((h) => h.cookie === said.a)!.owner.comm, "python3");

    // The next run's set replaces the last's: a is not written any more.
    assert.deepEqual(cookiesOf(run(new Set([said.b, said.b_cli]))), sorted(said.b, said.b_cli));
    // A cookie of no socket (closed since) writes nothing, and the listener still comes.
    const none = run(new Set([1]));
    assert.deepEqual(cookiesOf(none), []);
    assert.deepEqual(listenerOf(none), [said.port]);

    // And every socket again once asked (the filter is not left on).
    assert.deepEqual(cookiesOf(run(null)), cookiesOf(all));
  },
);

const CLOSES = LISTENER + `cli = socket.create_connection(lis.getsockname())
srv, _ = lis.accept()
said = {"client": cookie(cli), "server": cookie(srv)}
cli.sendall(b"x")
cli.shutdown(socket.SHUT_WR)  # the client's FIN first: its end names it
while srv.recv(100):
    pass
srv.close()  # the server's end went out at the client's FIN: its release names the closer
while cli.recv(100):
    pass
cli.close()
print(json.dumps(said), flush=True)
`;

e2eTest(
  "a release record comes for an end the peer's FIN wrote, not for one that named its closer",
  async () => {
    await using cg = new TestCgroup();
    using probe = Probe.open({ cgroupDir: cg.dir });
    const proc = cg.spawn("python3", "-c", CLOSES);
    const said = JSON.parse(await proc.line()) as { client: number; server: number };
    await proc.done();
    const decoder = new RecordDecoder(0);
    const seen: string[] = [];
    let clientEndNamed: boolean | undefined;
    // Both sockets are closed (the line comes after): their records are in the ring.
    for (let i = 0; i < 50 && !seen.includes(`release ${said.server}`); i++) {
      probe.reader.drain((view, offset, length) => {
        const r = decoder.decode(view, offset, length);
        if (
          r !== undefined && "cookie" in r && (r.cookie === said.client || r.cookie === said.server)
        ) {
          seen.push(`${r.kind} ${r.cookie}`);
          if (r.kind === "end" && r.cookie === said.client) clientEndNamed = r.ownerAtClose;
        }
      });
      await new Promise((r) => setTimeout(r, 100));
    }
    const { client, server } = said;
    // A kernel whose sock_ops cannot name the current process (before 6.x, and 6.12) names the
    // client at its last close instead: a release record for it too.
    assert.deepEqual(
      seen.sort(),
      [
        `begin ${client}`,
        `begin ${server}`,
        `end ${client}`,
        `end ${server}`,
        ...(clientEndNamed ? [] : [`release ${client}`]),
        `release ${server}`,
      ].sort(),
    );
  },
);

e2eTest("a holders run on one process writes only that process's rows", async () => {
  await using cg = new TestCgroup();
  const one = cg.spawn("python3", "-c", HOLDER), other = cg.spawn("python3", "-c", HOLDER);
  const [a, b] = [JSON.parse(await one.line()) as Said, JSON.parse(await other.line()) as Said];
  using probe = Probe.open({ cgroupDir: cg.dir });
  const iter = probe.holdersIterator!;
  const rowsOf = (rows: SocketHolder[]) =>
    rows.map((h) => `${h.owner.pid} ${h.listening ? `listen ${h.localPort}` : h.cookie}`).sort();
  const wanted = new Set([a.a, b.a]);
  // Positive control: the same cookies on every process: both processes' rows.
  const everywhere = decodeHolders(iter.run(wanted).bytes)
    .filter((h) => h.owner.pid === one.pid || h.owner.pid === other.pid);
  assert.deepEqual(
    rowsOf(everywhere),
    [
      `${one.pid} ${a.a}`,
      `${one.pid} listen ${a.port}`,
      `${other.pid} ${b.a}`,
      `${other.pid} listen ${b.port}`,
    ].sort(),
  );
  const rows = iter.runIn([one.pid, 2 ** 22 + 1], wanted); // the second: no such process
  if (rows === null) {
    // A kernel before 6.1: runs on every process only (the resolver's fallback).
    const [major, minor] = Deno.osRelease().split(".").map(Number);
    assert.ok(major! < 6 || (major === 6 && minor! < 1), `${Deno.osRelease()} refused`);
    return;
  }
  assert.deepEqual(rowsOf(decodeHolders(rows.bytes)), [
    `${one.pid} ${a.a}`,
    `${one.pid} listen ${a.port}`,
  ]);
  // The link is kept while the process may be asked for, then let go.
  assert.deepEqual(rowsOf(decodeHolders(iter.runIn([other.pid], wanted)!.bytes)), [
    `${other.pid} ${b.a}`,
    `${other.pid} listen ${b.port}`,
  ]);
  iter.keep(new Set());
});
