/**
 * e2e (root): a flow's life around begin and end: connections open before
 * netflow starts, interim updates, failed attempts (refused, timed out, reset
 * in the handshake), and connections the kernel gives up on.
 */
import assert from "node:assert/strict";
import type { FlowEndEvent, FlowEvent, FlowFailEvent, FlowUpdateEvent } from "../../src/events.ts";
import { control, e2eTest, ROOT, sh, TestCgroup, TestNetns } from "../helpers/e2e.ts";
import { atLeast, Netflow, onPort } from "../helpers/netflow.ts";
import { sample } from "../helpers/promtool.ts";

const LIFECYCLE = `${ROOT}tests/workloads/lifecycle.py`;

async function watch(cg: TestCgroup | null, extra: string[] = []) {
  const where = cg === null ? [] : ["--cgroup", cg.dir];
  return await Netflow.start(["--format", "json", ...where, ...extra]);
}

/** Stops netflow once `ready` holds for its flow events; checks its exit. */
async function stopped(nf: Netflow, ready: (flows: FlowEvent[]) => boolean): Promise<FlowEvent[]> {
  await nf.untilFlows(ready, "the test's events");
  const { events, stderr, code } = await nf.stop();
  assert.equal(code, 0, stderr);
  return events as FlowEvent[];
}

function ofPort(events: FlowEvent[], port: number): FlowEvent[] {
  return events.filter((e) => e.src_port === port || e.dst_port === port);
}

function kinds(events: FlowEvent[]): string[] {
  return events.map((e) => `${e.event.slice(9)} ${e.conn_direction}`).sort();
}

const json = async (p: { line(ms?: number): Promise<string> }, ms?: number) =>
  JSON.parse(await p.line(ms));

e2eTest(
  "a connection open before netflow: preexisting begins, whole-connection bytes",
  async () => {
    await using cg = new TestCgroup();
    const go = `${Deno.makeTempDirSync()}/go`;
    await using w = cg.spawn("python3", LIFECYCLE, "preexisting", "127.0.0.1", go);
    const { client } = await json(w);
    await using nf = await watch(cg);
    Deno.writeTextFileSync(go, "");
    await w.done();
    const events = ofPort(await stopped(nf, atLeast(4, onPort(client))), client);
    assert.deepEqual(kinds(events), [
      "tcp_begin incoming",
      "tcp_begin outgoing",
      "tcp_end incoming",
      "tcp_end outgoing",
    ]);
    for (const e of events) assert.equal(e.preexisting, true);
    const out = events.find((e): e is FlowEndEvent =>
      e.event === "net_flow_tcp_end" && e.conn_direction === "outgoing"
    )!;
    const inc = events.find((e): e is FlowEndEvent =>
      e.event === "net_flow_tcp_end" && e.conn_direction === "incoming"
    )!;
    // 100 before the start and 200 after; 50 and 30 back.
    assert.deepEqual([out.bytes_sent, out.bytes_received], [300, 80]);
    assert.deepEqual([inc.bytes_sent, inc.bytes_received], [80, 300]);
  },
);

e2eTest("--update-interval 1: updates during a 5 s flow, never decreasing, exact end", async () => {
  await using cg = new TestCgroup();
  await using nf = await watch(cg, ["--events", "begin,end,update", "--update-interval", "1"]);
  await using server = cg.spawn("python3", LIFECYCLE, "serve", "127.0.0.1");
  const { port } = await json(server);
  await using client = cg.spawn("python3", LIFECYCLE, "long", "127.0.0.1", String(port), "5");
  const { client: cport } = await json(client);
  const { sent } = await json(client, 20_000);
  const events = ofPort(
    await stopped(nf, atLeast(2, (e) => onPort(cport)(e) && e.event === "net_flow_tcp_end")),
    cport,
  );
  const out = events.filter((e) => e.conn_direction === "outgoing");
  const updates = out.filter((e): e is FlowUpdateEvent => e.event === "net_flow_tcp_update");
  assert.ok(updates.length >= 3, `${updates.length} updates`);
  const end = out.find((e): e is FlowEndEvent => e.event === "net_flow_tcp_end")!;
  assert.equal(end.bytes_sent, sent);
  let last = 0;
  for (const u of [...updates, end]) {
    assert.equal(u.flow_id, out[0]!.flow_id);
    assert.deepEqual([u.src_port, u.dst_port], [cport, port]); // the begin's orientation
    assert.ok(u.bytes_sent! >= last, `${u.bytes_sent} after ${last}`);
    last = u.bytes_sent!;
  }
  for (const u of updates) assert.ok(u.duration_ms >= 1000);
});

for (const host of ["127.0.0.1", "::1"]) {
  e2eTest(`net_flow_tcp_fail: a refused connect on ${host}, outgoing`, async () => {
    await using cg = new TestCgroup();
    await using nf = await watch(cg, ["--events", "begin,end,fail"]);
    await using w = cg.spawn("python3", LIFECYCLE, "refused", host);
    const { port, client, error } = await json(w);
    assert.equal(error, "Connection refused");
    const events = ofPort(await stopped(nf, atLeast(1, onPort(client))), client) as FlowFailEvent[];
    assert.deepEqual(events.map((e) => [e.event, e.conn_direction, e.reason, e.dst_port]), [
      ["net_flow_tcp_fail", "outgoing", "refused", port],
    ]);
    assert.deepEqual([events[0]!.src, events[0]!.src_port, events[0]!.pid], [host, client, w.pid]);
  });
}

e2eTest(
  "net_flow_tcp_fail: a closed port in a namespace, and a connect given up after 2 s",
  async () => {
    await using cg = new TestCgroup();
    await using ns = await TestNetns.create();
    // The namespace drops every SYN to port 9 (its "silent" port).
    await sh(
      "ip",
      "netns",
      "exec",
      ns.name,
      "iptables",
      "-A",
      "INPUT",
      "-p",
      "tcp",
      "--dport",
      "9",
      "--syn",
      "-j",
      "DROP",
    );
    await using nf = await watch(cg, ["--events", "begin,end,fail"]);
    await using r = cg.spawn("python3", LIFECYCLE, "refused", ns.nsAddr4, "7");
    // Nothing listens in the namespace: its kernel answers port 7 with a RST.
    const refused = await json(r);
    await using g = cg.spawn("python3", LIFECYCLE, "giveup", ns.nsAddr4, "9", "2");
    const { client } = await json(g, 20_000);
    const events = await stopped(
      nf,
      (flows) => atLeast(1, onPort(refused.client))(flows) && atLeast(1, onPort(client))(flows),
    );
    const fails = [...ofPort(events, refused.client), ...ofPort(events, client)] as FlowFailEvent[];
    assert.deepEqual(fails.map((e) => [e.event, e.conn_direction, e.reason]), [
      ["net_flow_tcp_fail", "outgoing", "refused"],
      ["net_flow_tcp_fail", "outgoing", "timeout"],
    ]);
    // The attempt lasted as long as the client waited: at least its 2 s.
    assert.ok(fails[1]!.duration_ms >= 1900, `${fails[1]!.duration_ms} ms`);
  },
);

e2eTest(
  "net_flow_tcp_fail: an nmap SYN scan of an open port is a reset in the handshake",
  async () => {
    await using cg = new TestCgroup();
    await using nf = await watch(cg, ["--events", "begin,end,fail"]);
    await using server = cg.spawn("python3", LIFECYCLE, "serve", "127.0.0.1");
    const { port } = await json(server);
    // nmap runs outside the watched cgroup; the listener's packets are watched.
    await sh("nmap", "-n", "-Pn", "-sS", "-p", String(port), "127.0.0.1");
    // The positive control for "never a begin or an end": a connection after the scan.
    const made = await control(cg);
    const events = ofPort(
      await stopped(nf, (flows) => atLeast(1, onPort(port))(flows) && made(flows)),
      port,
    ) as FlowFailEvent[];
    assert.ok(events.length >= 1, "no fail event");
    for (const e of events) {
      assert.deepEqual([e.event, e.conn_direction, e.reason, e.dst_port, e.pid], [
        "net_flow_tcp_fail",
        "incoming",
        "reset",
        port,
        server.pid,
      ]);
    }
    // One per probe nmap sent (it may retry), never a begin or an end.
    assert.ok(events.length <= 2);
  },
);

e2eTest(
  "net_flow_tcp_fail: an attempt on a port --port does not name is dropped in the kernel, counted",
  async () => {
    await using cg = new TestCgroup();
    await using wanted = cg.spawn("python3", LIFECYCLE, "serve", "127.0.0.1");
    const { port } = await json(wanted);
    await using other = cg.spawn("python3", LIFECYCLE, "serve", "127.0.0.1");
    const { port: otherPort } = await json(other);
    await using nf = await watch(cg, [
      ...["--events", "begin,end,fail", "--port", String(port), "--metrics", "0"],
    ]);
    const [, url] = /metrics at (\S+)$/.exec(await nf.stderrLine(/^netflow: metrics at /))!;
    const filtered = async () =>
      sample(await (await fetch(url!)).text(), "netflow_attempts_filtered_in_kernel_total") ?? -1;
    assert.equal(await filtered(), 0);
    // A SYN scan of each (nmap outside the cgroup: the listeners' packets are
    // watched): the SYN and the RST reaching the other port's listener are
    // not written; the wanted port's scan is a fail event (the positive control).
    await sh("nmap", "-n", "-Pn", "-sS", "-p", String(otherPort), "127.0.0.1");
    await sh("nmap", "-n", "-Pn", "-sS", "-p", String(port), "127.0.0.1");
    await nf.untilFlows(atLeast(1, onPort(port)), "the wanted port's fail event");
    assert.ok(await filtered() >= 2, `${await filtered()} handshake packets filtered`);
    const events = await stopped(nf, atLeast(1, onPort(port)));
    assert.deepEqual(ofPort(events, otherPort), []);
    assert.ok(ofPort(events, port).every((e) => e.event === "net_flow_tcp_fail"));
  },
);

e2eTest("a connection whose peer goes silent ends by timeout (TCP_USER_TIMEOUT 2 s)", async () => {
  await using cg = new TestCgroup();
  await using ns = await TestNetns.create();
  await using server = ns.spawn("python3", LIFECYCLE, "serve", ns.nsAddr4);
  const { port } = await json(server);
  await using nf = await watch(cg);
  const go = `${Deno.makeTempDirSync()}/go`;
  await using c = cg.spawn("python3", LIFECYCLE, "usertimeout", ns.nsAddr4, String(port), go);
  const { client } = await json(c);
  // The peer vanishes: its namespace drops everything.
  await sh("ip", "netns", "exec", ns.name, "iptables", "-A", "INPUT", "-j", "DROP");
  Deno.writeTextFileSync(go, "");
  const { error } = await json(c, 30_000);
  assert.equal(error, "Connection timed out");
  const events = ofPort(await stopped(nf, atLeast(2, onPort(client))), client);
  assert.deepEqual(
    events.map((e) =>
      e.event === "net_flow_tcp_end" ? `end ${e.closed_by} ${e.reason}` : e.event.slice(9)
    ),
    ["tcp_begin", "end local timeout"],
  );
  const end = events[1] as FlowEndEvent;
  assert.deepEqual([end.src, end.src_port], [ns.hostAddr4, client]);
  assert.equal(end.bytes_sent, 100); // what the peer acknowledged before it went silent
});

e2eTest("without --events, no update, fail or packet event appears", async () => {
  await using cg = new TestCgroup();
  await using nf = await watch(cg, []);
  await using w = cg.spawn("python3", LIFECYCLE, "refused", "127.0.0.1");
  await json(w);
  await using server = cg.spawn("python3", LIFECYCLE, "serve", "127.0.0.1");
  const { port } = await json(server);
  await using client = cg.spawn("python3", LIFECYCLE, "long", "127.0.0.1", String(port), "2");
  // The positive control: this connection, after the refused one, begins and ends on both sides.
  const { client: cport } = await json(client);
  await json(client, 20_000);
  const events = await stopped(nf, atLeast(4, onPort(cport)));
  assert.ok(events.length >= 4);
  for (const e of events) assert.match(e.event, /^net_flow_tcp_(begin|end)$/);
});

e2eTest(
  "flows whose end records were lost (a 4 KiB ring, a kernel store of 8) end as unknown once their sockets go",
  async () => {
    await using cg = new TestCgroup();
    await using nf = await watch(cg, ["--ring-size", "4K", "--kernel-store", "8"]);
    await using server = cg.spawn("python3", LIFECYCLE, "serve", "127.0.0.1");
    const { port } = await json(server);
    // 300 connections opened, then closed in one burst: far more records than 4 KiB holds.
    await using burst = cg.spawn("python3", LIFECYCLE, "burst", "127.0.0.1", String(port), "300");
    await json(burst, 30_000);
    // Reconcile sweeps run every 3 s once records were lost; two misses end a flow:
    // wait until every flow begun on the port has ended, one of them as unknown.
    await nf.untilFlows(
      (flows) => {
        const mine = flows.filter(onPort(port));
        const ended = new Set(
          mine.filter((e) => e.event === "net_flow_tcp_end").map((e) => e.flow_id),
        );
        return mine.some((e) => e.event === "net_flow_tcp_end" && e.reason === "unknown") &&
          mine.every((e) => e.event !== "net_flow_tcp_begin" || ended.has(e.flow_id));
      },
      "every flow of the burst ended",
      60_000,
    );
    const { events, stderr } = await nf.stop();
    const lost = Number(/(\d+) lost records/.exec(stderr)?.[1]);
    assert.ok(lost > 0, stderr);
    const mine = (events as FlowEvent[]).filter((e) => e.src_port === port || e.dst_port === port);
    const ends = new Map<string, FlowEndEvent[]>();
    for (const e of mine) {
      if (e.event === "net_flow_tcp_end") ends.set(e.flow_id, [...(ends.get(e.flow_id) ?? []), e]);
    }
    const begins = mine.filter((e) => e.event === "net_flow_tcp_begin");
    // Every flow netflow began has ended, exactly once: by its record, or as unknown.
    for (const b of begins) assert.equal(ends.get(b.flow_id)?.length, 1, `${b.flow_id} ended once`);
    const unknown = [...ends.values()].flat().filter((e) => e.reason === "unknown");
    assert.ok(unknown.length > 0, "no unknown end");
    for (const e of unknown) {
      assert.deepEqual([e.closed_by, e.bytes_sent, e.bytes_received], ["local", null, null]);
    }
    assert.match(stderr, / 0 flows still open/);
  },
);
