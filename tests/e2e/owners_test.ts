/**
 * e2e (root): the owner of a flow is the process that holds its socket.
 * Real servers whose accepting process is not the listener's creator
 * (prefork, socket activation, handoff), processes that rename themselves or
 * exit at once, listeners on one port in several network namespaces, a
 * cgroup made a moment before, MPTCP. Every flow's pid, comm and uid is
 * checked against what the workload process itself recorded
 * (tests/workloads/owners.py). Each case runs twice: watching the whole host
 * (no --cgroup; only the test's own ports are looked at) and a child cgroup.
 *
 * NETFLOW_OWNERS_TABLE=FILE appends each case's tally (flows, right, wrong,
 * null) to FILE as JSON Lines.
 */
import assert from "node:assert/strict";
import type { FlowEvent } from "../../src/events.ts";
import { e2eTest, Proc, ROOT, TestCgroup, TestNetns } from "../helpers/e2e.ts";
import { atLeast, Netflow, onPort } from "../helpers/netflow.ts";

const OWNERS = `${ROOT}tests/workloads/owners.py`;
const TABLE = Deno.env.get("NETFLOW_OWNERS_TABLE");

/** One line a workload process wrote about itself or a connection. */
interface Said {
  role: string;
  pid: number;
  comm: string;
  uid: number;
  port?: number;
  peer?: number;
  comm_at_begin?: string;
  close_comm?: string;
  mptcp?: boolean;
}

type Mode = "host" | "cgroup";

/** netflow's CLI on the whole host or on `cg`, its events read as they come (JSON Lines). */
async function watch(mode: Mode, cg: TestCgroup, extra: string[] = []): Promise<Netflow> {
  return await Netflow.start([
    "--format",
    "json",
    ...(mode === "cgroup" ? ["--cgroup", cg.dir] : []),
    ...extra,
  ]);
}

/**
 * Stops netflow once every expected flow has its begin and end written (or
 * after the bounded wait: the tally then says what is missing); checks its
 * exit and summary; returns its flow events.
 */
async function stopped(nf: Netflow, expect: Expect[]): Promise<FlowEvent[]> {
  await nf.untilFlows(
    (flows) => expect.every((x) => ofExpected(flows, x).length >= 2),
    `a begin and an end for each of ${expect.length} flows`,
  ).catch(() => {});
  const { code, stderr } = await nf.stop();
  assert.equal(code, 0, stderr);
  assert.match(stderr, /, 0 lost records, 0 evicted flows, 0 malformed records,/);
  return nf.flows();
}

/** Starts workload processes: in the test cgroup, or (whole host) wherever the test runs. */
class Spawner implements AsyncDisposable {
  readonly #mode: Mode;
  readonly #cg: TestCgroup;
  readonly #procs: Proc[] = [];

  constructor(mode: Mode, cg: TestCgroup) {
    this.#mode = mode;
    this.#cg = cg;
  }

  run(args: string[], opts: { ns?: TestNetns; cgroupDir?: string } = {}): Proc {
    const cmd = [
      ...(opts.ns ? ["ip", "netns", "exec", opts.ns.name] : []),
      "python3",
      OWNERS,
      ...args,
    ];
    let proc: Proc;
    if (opts.cgroupDir !== undefined) {
      proc = new Proc("sh", [
        "-c",
        'echo $$ > "$0/cgroup.procs" && exec "$@"',
        opts.cgroupDir,
        ...cmd,
      ]);
      this.#procs.push(proc);
    } else if (this.#mode === "cgroup") {
      proc = this.#cg.spawn(cmd[0]!, ...cmd.slice(1));
    } else {
      proc = new Proc(cmd[0]!, cmd.slice(1));
      this.#procs.push(proc);
    }
    return proc;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const p of this.#procs) await p[Symbol.asyncDispose]();
  }
}

async function said(proc: Proc, role: string): Promise<Said> {
  for (;;) {
    const s = JSON.parse(await proc.line(60_000)) as Said;
    if (s.role === role) return s;
  }
}

async function allSaid(proc: Proc, role: string, n: number): Promise<Said[]> {
  const out: Said[] = [];
  while (out.length < n) out.push(await said(proc, role));
  return out;
}

/** What one local endpoint's events must say. */
interface Expect {
  local: number;
  remote: number;
  netns?: number;
  direction: "incoming" | "outgoing";
  pid: number;
  uid: number;
  beginComm: string;
  endComm: string;
}

/** The server side of each served connection, from the server's own lines. */
function served(lines: Said[], port: number, netns?: number): Expect[] {
  return lines.map((s) => ({
    local: port,
    remote: s.peer!,
    ...(netns === undefined ? {} : { netns }),
    direction: "incoming" as const,
    pid: s.pid,
    uid: s.uid,
    beginComm: s.comm_at_begin!,
    endComm: s.close_comm!,
  }));
}

/** The client side, from the client's own lines. */
function clients(lines: Said[], port: number, netns?: number): Expect[] {
  return lines.map((s) => ({
    local: s.port!,
    remote: port,
    ...(netns === undefined ? {} : { netns }),
    direction: "outgoing" as const,
    pid: s.pid,
    uid: s.uid,
    beginComm: s.comm_at_begin!,
    endComm: s.close_comm ?? s.comm_at_begin!,
  }));
}

/** The events of one expected flow. */
function ofExpected(events: FlowEvent[], x: Expect): FlowEvent[] {
  return events.filter((e) =>
    e.conn_direction === x.direction &&
    (x.netns === undefined || e.netns === x.netns) &&
    ((e.src_port === x.local && e.dst_port === x.remote) ||
      (e.src_port === x.remote && e.dst_port === x.local)) &&
    // In a begin, dst is the acceptor; in an end, either side.
    (e.event !== "net_flow_tcp_begin" ||
      (x.direction === "incoming" ? e.dst_port === x.local : e.src_port === x.local))
  );
}

/**
 * Tallies each expected flow: right (begin and end name the process, comm
 * and uid the workload recorded), wrong, or null; asserts all are right.
 */
async function tally(name: string, events: FlowEvent[], expect: Expect[]) {
  const rows = { flows: expect.length, right: 0, wrong: 0, null: 0 };
  const problems: string[] = [];
  for (const x of expect) {
    const mine = ofExpected(events, x);
    const begin = mine.filter((e) => e.event === "net_flow_tcp_begin");
    const end = mine.filter((e) => e.event === "net_flow_tcp_end");
    const got = [...begin, ...end].map((e) => [e.pid, e.comm, e.uid]);
    const want = [[x.pid, x.beginComm, x.uid], [x.pid, x.endComm, x.uid]];
    if (begin.length === 1 && end.length === 1 && JSON.stringify(got) === JSON.stringify(want)) {
      rows.right++;
    } else if (got.some(([pid]) => pid === null)) {
      rows.null++;
      problems.push(`${x.direction} ${x.local}<>${x.remote}: got ${JSON.stringify(got)}`);
    } else {
      rows.wrong++;
      problems.push(
        `${x.direction} ${x.local}<>${x.remote}: got ${JSON.stringify(got)}, want ${
          JSON.stringify(want)
        }`,
      );
    }
  }
  if (TABLE) {
    await Deno.writeTextFile(TABLE, JSON.stringify({ case: name, ...rows }) + "\n", {
      append: true,
    });
  }
  assert.deepEqual(problems, [], name);
  assert.equal(rows.right, expect.length);
}

async function netnsInode(ns: TestNetns): Promise<number> {
  return (await Deno.stat(`/run/netns/${ns.name}`)).ino!;
}

const MPTCP = await Deno.readTextFile("/proc/sys/net/mptcp/enabled").then((s) => s.trim() === "1")
  .catch(() => false);

const whereOf = (mode: Mode) => mode === "host" ? "whole host" : "child cgroup";

/** A server of `cmd`, netflow watching, `count` connections from one client; the tally. */
async function exchange(
  mode: Mode,
  name: string,
  cmd: string[],
  count: number,
  client: string[] = [],
) {
  await using cg = new TestCgroup();
  await using nf = await watch(mode, cg);
  await using run = new Spawner(mode, cg);
  const srv = run.run(cmd);
  const { port } = await said(srv, "listening");
  const cli = run.run(["connect", "--port", String(port!), "--count", String(count), ...client]);
  const cl = await allSaid(cli, "client", count);
  await cli.done();
  const sv = await allSaid(srv, "served", count);
  const expect = [...served(sv, port!), ...clients(cl, port!)];
  await tally(`${name} (${whereOf(mode)})`, await stopped(nf, expect), expect);
  return { sv, cl };
}

for (const mode of ["host", "cgroup"] as const) {
  const where = whereOf(mode);

  e2eTest(`${where}: a prefork server's incoming flows name the worker that accepted`, async () => {
    const { sv } = await exchange(mode, "prefork, 3 workers", ["prefork", "--workers", "3"], 24);
    // The master only listens: no flow of its.
    assert.ok(sv.every((s) => s.comm.startsWith("nf-pre-w")));
  });

  e2eTest(`${where}: socket activation: the service, not the init that passed fd 3`, async () => {
    const { sv } = await exchange(mode, "socket activation", ["activate"], 10);
    assert.ok(sv.every((s) => s.comm === "nf-activated"));
  });

  e2eTest(
    `${where}: handoff: the forked acceptor (as nobody), its launcher closed its copy`,
    async () => {
      const { sv } = await exchange(mode, "handoff", ["handoff"], 10);
      assert.ok(sv.every((s) => s.comm === "nf-acceptor" && s.uid === 65534));
    },
  );

  e2eTest(`${where}: a client and a server renamed between begin and end`, async () => {
    await using cg = new TestCgroup();
    await using nf = await watch(mode, cg);
    await using run = new Spawner(mode, cg);
    const flag = await Deno.makeTempFile({ prefix: "nf-rename-" });
    await Deno.remove(flag);
    try {
      const srv = run.run(["serve", "--rename-on-byte"]);
      const { port } = await said(srv, "listening");
      const cli = run.run(["connect", "--port", String(port!), "--rename-when", flag]);
      const { port: cport } = await said(cli, "connected");
      // Both begins written (the server's once its owner is settled), then rename.
      await nf.untilFlows(
        (ev) =>
          ev.filter((e) =>
            e.event === "net_flow_tcp_begin" && e.src_port === cport && e.dst_port === port
          ).length === 2,
        "both begins",
      );
      await Deno.writeTextFile(flag, "");
      const cl = await allSaid(cli, "client", 1);
      await cli.done();
      const sv = await allSaid(srv, "served", 1);
      assert.deepEqual([cl[0]!.close_comm, sv[0]!.close_comm], [
        "nf-cli-renamed",
        "nf-srv-renamed",
      ]);
      const expect = [...served(sv, port!), ...clients(cl, port!)];
      await tally(`rename between begin and end (${where})`, await stopped(nf, expect), expect);
    } finally {
      await Deno.remove(flag).catch(() => {});
    }
  });

  e2eTest(`${where}: a client that exits right after connect keeps its own pid`, async () => {
    await using cg = new TestCgroup();
    await using nf = await watch(mode, cg);
    await using run = new Spawner(mode, cg);
    const srv = run.run(["serve"]);
    const { port } = await said(srv, "listening");
    const cl: Said[] = [];
    for (let i = 0; i < 3; i++) {
      const cli = run.run(["connect", "--port", String(port!), "--exit-early"]);
      cl.push(await said(cli, "client"));
      await cli.done();
    }
    const sv = await allSaid(srv, "served", 3);
    const expect = [...served(sv, port!), ...clients(cl, port!)];
    await tally(`client exits after connect (${where})`, await stopped(nf, expect), expect);
  });

  e2eTest(
    `${where}: one port served in two network namespaces by different processes`,
    async () => {
      await using cg = new TestCgroup();
      await using a = await TestNetns.create(1);
      await using b = await TestNetns.create(2);
      await using nf = await watch(mode, cg);
      await using run = new Spawner(mode, cg);
      const sa = run.run(["serve", "--host", "0.0.0.0", "--comm", "nf-server-a"], { ns: a });
      const { port } = await said(sa, "listening");
      // b's is a handoff server: the process that made its listener holds none.
      const sb = run.run(["handoff", "--host", "0.0.0.0", "--port", String(port!)], { ns: b });
      await said(sb, "listening");
      const expect: Expect[] = [];
      for (const [ns, srv] of [[a, sa], [b, sb]] as const) {
        const cli = run.run([
          "connect",
          "--host",
          ns.nsAddr4,
          "--port",
          String(port!),
          "--count",
          "3",
        ]);
        const cl = await allSaid(cli, "client", 3);
        await cli.done();
        const sv = await allSaid(srv, "served", 3);
        expect.push(...served(sv, port!, await netnsInode(ns)), ...clients(cl, port!));
      }
      await tally(`same port in two namespaces (${where})`, await stopped(nf, expect), expect);
    },
  );

  e2eTest(`${where}: a listener on port P in a namespace beside the host's own on P`, async () => {
    await using cg = new TestCgroup();
    await using ns = await TestNetns.create(1);
    await using nf = await watch(mode, cg);
    await using run = new Spawner(mode, cg);
    // The namespace's listener first (it comes first in the process list), then the
    // host's on the same port: a handoff server, whose listener's creator holds none.
    const inNs = run.run(["serve", "--host", "0.0.0.0", "--comm", "nf-server-ns"], { ns });
    const { port } = await said(inNs, "listening");
    const host = run.run(["handoff", "--host", "127.0.0.1", "--port", String(port!)]);
    await said(host, "listening");
    const expect: Expect[] = [];
    // The host's client to the host's listener, the namespace's client to its own.
    for (const [srv, viaNs] of [[host, undefined], [inNs, ns]] as const) {
      const cli = run.run([
        "connect",
        "--host",
        "127.0.0.1",
        "--port",
        String(port!),
        "--count",
        "3",
      ], {
        ...(viaNs ? { ns: viaNs } : {}),
      });
      const cl = await allSaid(cli, "client", 3);
      await cli.done();
      const sv = await allSaid(srv, "served", 3);
      const inode = viaNs ? await netnsInode(viaNs) : (await Deno.stat("/proc/self/ns/net")).ino!;
      expect.push(...served(sv, port!, inode), ...clients(cl, port!, inode));
    }
    await tally(`listener on P beside the host's P (${where})`, await stopped(nf, expect), expect);
  });

  e2eTest(`${where}: a connection from a cgroup created a moment before has its path`, async () => {
    await using cg = new TestCgroup();
    await using nf = await watch(mode, cg);
    await using run = new Spawner(mode, cg);
    const srv = run.run(["serve"]);
    const { port } = await said(srv, "listening");
    // A first connection: netflow has just scanned the cgroups for it.
    const first = run.run(["connect", "--port", String(port!)]);
    await said(first, "client");
    await first.done();
    await nf.untilFlows(
      (ev) => ev.some((e) => e.dst_port === port && e.event === "net_flow_tcp_end"),
      "a flow",
    );
    // Then a cgroup made now, and a client in it at once.
    const fresh = mode === "cgroup" ? `${cg.dir}/fresh` : `${cg.dir}-fresh`;
    Deno.mkdirSync(fresh);
    try {
      const cli = run.run(["connect", "--port", String(port!)], { cgroupDir: fresh });
      const cl = await said(cli, "client");
      await cli.done();
      const id = Deno.statSync(fresh).ino!;
      // Both ports: in whole-host mode another connection on the host may
      // have the client's port number meanwhile (towards another address).
      const thisConnection = (e: FlowEvent) => onPort(cl.port!)(e) && onPort(port!)(e);
      await allSaid(srv, "served", 2);
      await nf.untilFlows(
        atLeast(2, (e) => thisConnection(e) && e.conn_direction === "outgoing"),
        "the fresh cgroup's client's begin and end",
      );
      const { code, stderr } = await nf.stop();
      assert.equal(code, 0, stderr);
      assert.match(stderr, /, 0 lost records, 0 evicted flows, 0 malformed records,/);
      const events = nf.flows();
      const out = events.filter((e) => thisConnection(e) && e.conn_direction === "outgoing");
      assert.equal(out.length, 2);
      const path = fresh.slice(fresh.indexOf(cg.path));
      for (const e of out) assert.deepEqual([e.cgroup_id, e.cgroup, e.pid], [id, path, cl.pid]);
    } finally {
      for (let i = 0; i < 50; i++) {
        try {
          Deno.removeSync(fresh);
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 100)); // its process still exiting
        }
      }
    }
  });

  e2eTest(`${where}: an MPTCP loopback connection names both processes`, async () => {
    if (!MPTCP) {
      // Nothing to check on a kernel without MPTCP; say so where CI would hide it.
      console.error("net.mptcp.enabled is not 1: MPTCP owner test not run");
      return;
    }
    const { sv, cl } = await exchange(mode, "MPTCP loopback", ["serve", "--mptcp"], 3, ["--mptcp"]);
    // Both sides ran MPTCP (no fallback to TCP): the flows are subflows'.
    assert.ok([...sv, ...cl].every((s) => s.mptcp === true));
  });
}

/** The count of owner waits that ran out, from netflow's exit summary. */
function ownerTimeouts(stderr: string): number {
  const m = / (\d+) owner waits timed out/.exec(stderr);
  assert.ok(m, stderr);
  return Number(m[1]);
}

// Issue 22 points 6, 7 and 8: the process's name, never a process that did
// not accept, and the acceptor's cgroup.
for (const mode of ["host", "cgroup"] as const) {
  const where = whereOf(mode);

  e2eTest(
    `${where}: a thread's flows carry its process's name, and --comm catches both`,
    async () => {
      await using cg = new TestCgroup();
      await using nf = await watch(mode, cg);
      await using only = await watch(mode, cg, ["--comm", "nf-thr-main"]);
      await using run = new Spawner(mode, cg);
      const srv = run.run(["serve"]);
      const { port } = await said(srv, "listening");
      const thr = run.run(["threads", "--port", String(port!)]);
      const out = await said(thr, "client") as Said & { thread: string };
      const lst = await said(thr, "listening") as Said & { thread: string };
      // The thread really had a name of its own (what bpf_get_current_comm reads).
      assert.deepEqual([out.thread, out.comm, lst.thread], [
        "nf-thr-worker",
        "nf-thr-main",
        "nf-thr-worker",
      ]);
      const cli = run.run(["connect", "--port", String(lst.port!)]);
      const cl = await allSaid(cli, "client", 1);
      await cli.done();
      const sv = await allSaid(thr, "served", 1);
      const expect = [
        ...clients([out], port!),
        ...served(sv, lst.port!),
        ...clients(cl, lst.port!),
      ];
      await tally(`a thread's connect and accept (${where})`, await stopped(nf, expect), expect);
      // Its begins and ends, both ways, pass --comm with the process's name.
      const its = (e: FlowEvent) => e.pid === out.pid;
      await only.untilFlows(atLeast(4, its), "the thread's process's 4 events").catch(() => {});
      assert.equal((await only.stop()).code, 0);
      const kept = only.flows().filter(its);
      assert.deepEqual(
        kept.map((e) => [e.event.slice(13), e.conn_direction, e.comm]).sort(),
        [
          ["begin", "incoming", "nf-thr-main"],
          ["begin", "outgoing", "nf-thr-main"],
          ["end", "incoming", "nf-thr-main"],
          ["end", "outgoing", "nf-thr-main"],
        ],
      );
    },
  );

  for (const shape of ["activate", "prefork"] as const) {
    e2eTest(`${where}: ${shape}, acceptor started 600 ms after the connection: named`, async () => {
      await using cg = new TestCgroup();
      await using nf = await watch(mode, cg);
      await using run = new Spawner(mode, cg);
      const srv = run.run([shape, "--delay-ms", "600", "--workers", "1"]);
      const { port } = await said(srv, "listening");
      const cli = run.run(["connect", "--port", String(port!)]);
      const cl = await allSaid(cli, "client", 1);
      await cli.done();
      const sv = await allSaid(srv, "served", 1);
      assert.match(sv[0]!.comm, shape === "activate" ? /^nf-activated$/ : /^nf-pre-w0$/);
      const expect = [...served(sv, port!), ...clients(cl, port!)];
      await tally(`${shape}, slow acceptor (${where})`, await stopped(nf, expect), expect);
      // Watching the whole host, other processes' connections may time out too.
      if (mode === "cgroup") assert.equal(ownerTimeouts(nf.stderr), 0);
    });
  }

  e2eTest(`${where}: an acceptor slower than the wait: the begin names nobody`, async () => {
    await using cg = new TestCgroup();
    await using nf = await watch(mode, cg);
    await using run = new Spawner(mode, cg);
    const srv = run.run(["activate", "--delay-ms", "3000"]);
    const { port } = await said(srv, "listening");
    const cli = run.run(["connect", "--port", String(port!)]);
    const cl = await allSaid(cli, "client", 1);
    await cli.done();
    const sv = await allSaid(srv, "served", 1);
    const events = await stopped(nf, [...served(sv, port!), ...clients(cl, port!)]);
    // Both ports: on the whole host the client's port alone may also be another
    // connection's (another session's storm, to a server of its own).
    const mine = (dir: string) =>
      events.filter((e) => e.conn_direction === dir && onPort(cl[0]!.port!)(e) && onPort(port!)(e))
        .map((e) => [e.event.slice(13), e.pid, e.comm]);
    // Init held the listener alone for 2 s: not named. The service's close names it.
    assert.deepEqual(mine("incoming"), [
      ["begin", null, null],
      ["end", sv[0]!.pid, "nf-activated"],
    ]);
    // The positive control in the same window: the client side is named.
    assert.deepEqual(mine("outgoing"), [
      ["begin", cl[0]!.pid, "nf-client"],
      ["end", cl[0]!.pid, "nf-client"],
    ]);
    if (mode === "cgroup") assert.equal(ownerTimeouts(nf.stderr), 1);
    else assert.ok(ownerTimeouts(nf.stderr) >= 1);
  });

  e2eTest(`${where}: a listener made in cgroup A, accepted in B: the flow is B's`, async () => {
    await using cg = new TestCgroup();
    // B is a container's cgroup, so --container can pick its flows.
    const id = "c0ffee".padEnd(64, "0");
    const a = mode === "cgroup" ? `${cg.dir}/a` : `${cg.dir}-a`;
    // A container's scope is a path component of its own (docker-ID.scope).
    const bParent = mode === "cgroup" ? cg.dir : `${cg.dir}-b`;
    const b = `${bParent}/docker-${id}.scope`;
    Deno.mkdirSync(a);
    Deno.mkdirSync(b, { recursive: true });
    try {
      await using nf = await watch(mode, cg);
      await using only = await watch(mode, cg, ["--container", id]);
      await using run = new Spawner(mode, cg);
      const srv = run.run(["handoff", "--to-cgroup", b], { cgroupDir: a });
      const { port } = await said(srv, "listening");
      await said(srv, "acceptor"); // in B now
      const cli = run.run(["connect", "--port", String(port!), "--count", "2"]);
      const cl = await allSaid(cli, "client", 2);
      await cli.done();
      const sv = await allSaid(srv, "served", 2);
      const expect = [...served(sv, port!), ...clients(cl, port!)];
      const events = await stopped(nf, expect);
      await tally(`listener in A, acceptor in B (${where})`, events, expect);
      const path = (dir: string) => dir.slice(dir.indexOf(cg.path));
      const ours = (e: FlowEvent) => cl.some((c) => [e.src_port, e.dst_port].includes(c.port!));
      const side = (list: FlowEvent[], dir: string) =>
        list.filter((e) => ours(e) && e.conn_direction === dir)
          .map((e) => [e.event.slice(13), e.cgroup_id, e.cgroup, e.container_id]);
      const inB = ["begin", "end"].map((ev) => [ev, Deno.statSync(b).ino, path(b), id]);
      assert.deepEqual(side(events, "incoming").sort(), [...inB, ...inB].sort());
      // The clients' own flows keep their own cgroup (the positive control).
      const outgoing = side(events, "outgoing");
      assert.equal(outgoing.length, 4);
      for (const [, , p] of outgoing) assert.notEqual(p, path(b));
      // --container B: the incoming flows (all written: nf saw every flow), and only them.
      const incoming = (e: FlowEvent) => ours(e) && e.conn_direction === "incoming";
      await only.untilFlows(atLeast(4, incoming), "B's 4 incoming events").catch(() => {});
      assert.equal((await only.stop()).code, 0);
      const picked = only.flows();
      assert.deepEqual(side(picked, "incoming").sort(), [...inB, ...inB].sort());
      assert.deepEqual(side(picked, "outgoing"), []);
    } finally {
      for (const dir of mode === "cgroup" ? [a, b] : [a, b, bParent]) {
        for (let i = 0; i < 50; i++) {
          try {
            Deno.removeSync(dir);
            break;
          } catch {
            await new Promise((r) => setTimeout(r, 100)); // its processes still exiting
          }
        }
      }
    }
  });
}
