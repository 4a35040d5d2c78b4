import assert from "node:assert/strict";
import type { FlowRecord, SocketOwner } from "../../src/bpf/records.ts";
import type { HolderIndex } from "../../src/enrich/holders.ts";
import { OwnerResolver } from "../../src/enrich/owners.ts";
import { EnrichedTable } from "../helpers/enriched.ts";
import type { FlowEvent } from "../../src/events.ts";
import { record } from "../helpers/records.ts";

const master = { pid: 100, uid: 0, comm: "master" };
const worker = { pid: 101, uid: 33, comm: "worker" };
const renamed = { pid: 101, uid: 33, comm: "worker-busy" };
const client = { pid: 200, uid: 1000, comm: "curl" };
const server = { addr: "127.0.0.1", port: 80 }, peer = { addr: "127.0.0.1", port: 40000 };
/** The clock that times iterator runs: a fake run takes no time, however loaded the machine. */
const still = () => 0;

/**
 * Holders that change when the test says; counts iterator runs. A run sees
 * only the sockets it is asked for, as the kernel's filter writes only their
 * rows (bpf/iter.bpf.h): a resolver that forgets to ask for a socket fails.
 */
class FakeHolders implements HolderIndex {
  available = true;
  sockets = new Map<number, SocketOwner[]>();
  listeners: SocketOwner[] = [];
  runs = 0;
  /** The cookies each run asked for (undefined: every socket). */
  asked: (number[] | undefined)[] = [];
  #seen = new Map<number, SocketOwner[]>();
  #seenListeners: SocketOwner[] = [];
  refresh(cookies?: ReadonlySet<number>): void {
    this.runs++;
    this.asked.push(cookies && [...cookies].sort((a, b) => a - b));
    this.#seen = new Map([...this.sockets].filter(([c]) => cookies?.has(c) ?? true));
    this.#seenListeners = [...this.listeners];
  }
  ofSocket(_netns: number, cookie: number): readonly SocketOwner[] {
    return this.#seen.get(cookie) ?? [];
  }
  ofListener(): readonly SocketOwner[] {
    return this.#seenListeners;
  }
}

const incoming = (opts: Parameters<typeof record>[3] = {}) =>
  record("begin", server, peer, { owner: master, ...opts });
const end = (opts: Parameters<typeof record>[3] & { atClose?: boolean } = {}): FlowRecord => ({
  ...record("end", server, peer, { owner: master, ms: 5, end: "remote-fin", ...opts }),
  ownerAtClose: opts.atClose ?? false,
});

Deno.test("OwnerResolver gives an incoming begin to the process holding the accepted socket", () => {
  const holders = new FakeHolders();
  const r = new OwnerResolver(holders, { clock: still });
  assert.deepEqual(r.push(incoming(), 0), []); // the handshake is done; nobody accepted yet
  assert.deepEqual(r.settle(1), []); // too young for a look
  holders.sockets.set(1, [worker]); // the worker accepts
  const out = r.settle(5);
  assert.equal(out.length, 1);
  assert.deepEqual(out[0]!.owner, worker);
  assert.equal(holders.runs, 1);
  assert.equal(r.waiting, 0);
});

Deno.test("OwnerResolver runs the iterator once per retry interval, whatever the number of flows", () => {
  const holders = new FakeHolders();
  const r = new OwnerResolver(holders, { clock: still });
  for (let c = 1; c <= 50; c++) r.push(incoming({ cookie: c }), 0);
  assert.deepEqual(r.settle(5), []); // one run, nobody accepted yet
  assert.deepEqual(r.settle(10), []); // within 20 ms of it: no run
  assert.equal(holders.runs, 1);
  for (let c = 1; c <= 50; c++) holders.sockets.set(c, [worker]);
  assert.equal(r.wakeInMs(10), 15);
  assert.equal(r.settle(25).length, 50);
  assert.equal(holders.runs, 2);
  assert.equal(r.wakeInMs(25), null);
});

Deno.test("OwnerResolver takes a worker that accepted and closed at once from its end record", () => {
  const holders = new FakeHolders();
  const r = new OwnerResolver(holders, { clock: still });
  r.push(incoming(), 0);
  // Closed in the worker's context before any iterator run: the end names it.
  const out = r.push(end({ owner: worker, atClose: true, end: "local-fin" }), 1);
  // The begin takes the closer with its cgroup (the record's: the closing process's).
  assert.deepEqual(out.map((x) => [x.kind, x.owner]), [
    ["begin", { ...worker, cgroupId: 42 }],
    ["end", worker],
  ]);
  assert.equal(holders.runs, 0);
});

Deno.test("OwnerResolver keeps a socket's records in order while its begin waits", () => {
  const holders = new FakeHolders();
  const r = new OwnerResolver(holders, { clock: still });
  r.push(incoming(), 0);
  assert.deepEqual(r.push(end(), 1), []); // the peer closed: the end waits behind its begin
  holders.sockets.set(1, [renamed]);
  const out = r.settle(6);
  assert.deepEqual(out.map((x) => [x.kind, x.owner]), [["begin", renamed], ["end", renamed]]);
});

Deno.test("OwnerResolver gives an end written in softirq the name its holder has at close", () => {
  const holders = new FakeHolders();
  const r = new OwnerResolver(holders, { clock: still });
  assert.deepEqual(r.push(end({ owner: master }), 0), []);
  const release: FlowRecord = { ...record("release", server, peer, { owner: renamed }) };
  const out = r.push(release, 2);
  assert.deepEqual(out.map((x) => [x.kind, x.owner]), [["end", { ...renamed, cgroupId: 42 }]]);
  assert.equal(holders.runs, 0);
  // A release for a socket nothing waits for is dropped.
  assert.deepEqual(r.push(release, 3), []);
});

Deno.test("OwnerResolver passes outgoing begins and ends stamped at close straight through", () => {
  const holders = new FakeHolders();
  const r = new OwnerResolver(holders, { clock: still });
  const out = record("begin", peer, server, { outgoing: true, owner: client });
  assert.deepEqual(r.push(out, 0), [out]);
  const closed = {
    ...record("end", peer, server, { outgoing: true, owner: client }),
    ownerAtClose: true,
  };
  assert.deepEqual(r.push(closed, 1), [closed]);
  const pre = record("begin", server, peer, { preexisting: true, owner: null });
  assert.deepEqual(r.push(pre, 2), [pre]);
  assert.equal(r.waiting, 0);
});

Deno.test("OwnerResolver never gives a begin to a process that did not accept it", () => {
  // Issue 22 point 7: the listener's only holder (a supervisor, init) and the
  // kernel's stamp (the listener's creator) did not accept: null, counted.
  const cases: [string, SocketOwner[], number][] = [
    ["the only listener holder", [master], 2000], // it could still accept: waits the accept wait
    ["several holders", [master, worker], 2000],
    ["nobody holds the listener", [], 200], // nobody can accept it: no longer than an end
  ];
  for (const [what, listeners, at] of cases) {
    const holders = new FakeHolders();
    holders.listeners = listeners;
    const r = new OwnerResolver(holders, { clock: still });
    r.push(incoming(), 0);
    assert.deepEqual(r.settle(at - 1), [], what);
    assert.deepEqual(r.settle(at).map((x) => x.owner), [null], what);
    assert.equal(r.stats.byTimeout, 1, what);
  }
});

Deno.test("OwnerResolver waits up to 2 s for a slow acceptor, then names it", () => {
  const holders = new FakeHolders();
  holders.listeners = [master]; // init holds the listener; the service is starting
  const r = new OwnerResolver(holders, { clock: still });
  r.push(incoming(), 0);
  for (let t = 5; t < 1500; t += 20) assert.deepEqual(r.settle(t), [], `at ${t} ms`);
  holders.sockets.set(1, [worker]); // the service accepts at 1.5 s
  assert.deepEqual(r.settle(1505).map((x) => x.owner), [worker]);
  assert.equal(r.stats.byTimeout, 0);
  // An end waits its own 200 ms, not the accept wait.
  r.push(end({ cookie: 2 }), 2000);
  assert.equal(r.wakeInMs(2000), 5);
  assert.deepEqual(r.settle(2199), []);
  assert.deepEqual(r.settle(2200).map((x) => [x.kind, x.owner]), [["end", null]]);
});

Deno.test("OwnerResolver keeps the kernel's stamp only where no holders iterator exists", () => {
  const holders = new FakeHolders();
  holders.available = false; // before 5.11: netflow says so at start
  const r = new OwnerResolver(holders, { clock: still });
  r.push(incoming(), 0);
  assert.deepEqual(r.settle(200).map((x) => x.owner), [master]);
});

Deno.test("OwnerResolver gives an incoming flow its acceptor's cgroup, not its listener's", () => {
  // Issue 22 point 8: the accepted socket is in the listener's cgroup (7).
  const acceptor = { ...worker, cgroupId: 42 };
  const holders = new FakeHolders();
  holders.sockets.set(1, [acceptor]);
  const r = new OwnerResolver(holders, { clock: still });
  r.push({ ...incoming(), cgroupId: 7 }, 0);
  const [begin] = r.settle(5);
  assert.deepEqual([begin!.owner, begin!.cgroupId], [acceptor, 42]);
  // Named by its closer (a release record carries the closing process's cgroup).
  r.push({ ...incoming({ cookie: 2 }), cgroupId: 7 }, 10);
  const release = {
    ...record("release", server, peer, { owner: worker, cookie: 2 }),
    cgroupId: 43,
  };
  const [closed] = r.push(release, 11);
  assert.deepEqual([closed!.owner?.pid, closed!.cgroupId], [worker.pid, 43]);
  // A snapshot's incoming begin too; an outgoing flow keeps its socket's cgroup.
  const [pre] = r.snapshot([{
    ...record("begin", server, peer, { preexisting: true }),
    cgroupId: 7,
  }]);
  assert.equal(pre!.cgroupId, 42);
  const out = { ...record("begin", peer, server, { outgoing: true, owner: client }), cgroupId: 7 };
  assert.equal(r.push(out, 20)[0]!.cgroupId, 7);
  // The flow table keeps the begin's cgroup for the end.
  const table = new EnrichedTable({ idPrefix: "t" });
  const settled = { ...incoming(), owner: begin!.owner, cgroupId: begin!.cgroupId };
  const events = [settled, { ...end({ owner: worker, atClose: true }), cgroupId: 7 }]
    .map((x) => table.onRecord(x));
  assert.deepEqual(events.map((e) => e?.cgroup_id), [42, 42]);
});

Deno.test("OwnerResolver settles everything when netflow stops", () => {
  const holders = new FakeHolders();
  holders.sockets.set(1, [worker]);
  const r = new OwnerResolver(holders, { clock: still });
  r.push(incoming(), 0);
  r.push(end({ cookie: 2 }), 0);
  const out = r.settle(0, true);
  assert.deepEqual(out.map((x) => [x.cookie, x.owner]), [[1, worker], [2, null]]);
});

Deno.test("OwnerResolver gives snapshot begins the process holding the socket", () => {
  const holders = new FakeHolders();
  holders.sockets.set(1, [worker]);
  holders.refresh();
  const r = new OwnerResolver(holders, { clock: still });
  const [a, b] = r.snapshot([
    record("begin", server, peer, { preexisting: true, owner: null }),
    record("begin", server, peer, { preexisting: true, cookie: 9, owner: master }),
  ]);
  assert.deepEqual([a!.owner, b!.owner], [worker, master]);
});

Deno.test("FlowTable: an end carries the holder at close, else the begin's owner", () => {
  const table = new EnrichedTable({ idPrefix: "t" });
  const events: FlowEvent[] = [];
  const feed = (x: FlowRecord) => {
    const e = table.onRecord(x);
    if (e) events.push(e);
  };
  feed(incoming({ owner: worker }));
  feed(end({ owner: renamed }));
  feed(incoming({ owner: worker, cookie: 2 }));
  feed(end({ owner: null, cookie: 2 }));
  assert.deepEqual(events.map((e) => [e.event, e.comm]), [
    ["net_flow_tcp_begin", "worker"],
    ["net_flow_tcp_end", "worker-busy"],
    ["net_flow_tcp_begin", "worker"],
    ["net_flow_tcp_end", "worker"],
  ]);
});

Deno.test("OwnerResolver with no wait passes every record with the kernel's stamp, and runs nothing", () => {
  const holders = new FakeHolders();
  const r = new OwnerResolver(holders, { waitMs: 0, clock: still });
  const begin = incoming();
  assert.deepEqual(r.push(begin, 0), [begin]);
  assert.deepEqual(r.push(record("release", server, peer, { owner: worker }), 1), []);
  assert.deepEqual(r.settle(1000), []);
  assert.equal(holders.runs, 0);
});

Deno.test("OwnerResolver spaces iterator runs so they take at most 5% of a core", () => {
  let clock = 0;
  const holders = new FakeHolders();
  const slow: HolderIndex = {
    refresh: () => {
      holders.refresh();
      clock += 4; // a run takes 4 ms: the next waits 80 ms
    },
    ofSocket: (n, c) => holders.ofSocket(n, c),
    ofListener: () => holders.ofListener(),
  };
  const r = new OwnerResolver(slow, { clock: () => clock });
  r.push(incoming(), 0);
  r.settle(5);
  assert.equal(holders.runs, 1);
  assert.equal(r.wakeInMs(5), 80);
  r.settle(50);
  assert.equal(holders.runs, 1);
  holders.sockets.set(1, [worker]);
  assert.deepEqual(r.settle(85).map((x) => x.owner), [worker]);
  assert.equal(holders.runs, 2);
});

Deno.test("OwnerResolver matches a release record without a namespace by its cookie", () => {
  const holders = new FakeHolders();
  const r = new OwnerResolver(holders, { clock: still });
  r.push(end({ owner: null, cookie: 77 }), 0);
  const release = record("release", server, peer, { owner: worker, cookie: 77, netns: 0 });
  assert.deepEqual(r.push(release, 1).map((x) => [x.cookie, x.owner]), [
    [77, { ...worker, cgroupId: 42 }],
  ]);
});

Deno.test("OwnerResolver: an end behind its waiting begin has no wait of its own", () => {
  // The peer closed before anyone accepted (a server behind on accept()): the end
  // cannot pass its begin, and whatever names the one names both.
  const holders = new FakeHolders();
  holders.listeners = [master]; // someone may still accept: the begin waits up to 2 s
  const r = new OwnerResolver(holders, { clock: still });
  r.push(incoming(), 0);
  r.push(end(), 10);
  assert.deepEqual(r.settle(250), []); // past the end's own 200 ms
  assert.equal(r.stats.byTimeout, 0);
  assert.equal(r.wakeInMs(250), 20); // the next look, not a busy wake for the end
  const release = record("release", server, peer, { owner: worker });
  const closer = { ...worker, cgroupId: 42 };
  assert.deepEqual(r.push(release, 600).map((x) => [x.kind, x.owner]), [
    ["begin", closer],
    ["end", closer],
  ]);
  assert.deepEqual([r.stats.byCloser, r.stats.byTimeout], [2, 0]);
  // Nobody accepts in 2 s: both settle then, each counted.
  r.push(incoming({ cookie: 2 }), 1000);
  r.push(end({ cookie: 2 }), 1010);
  assert.deepEqual(r.settle(2999), []);
  assert.deepEqual(r.settle(3000).map((x) => [x.kind, x.owner]), [["begin", null], ["end", null]]);
  assert.equal(r.stats.byTimeout, 2);
});

Deno.test("OwnerResolver: one iterator run that was stopped for seconds does not space the next by minutes", () => {
  let clock = 0, cost = 4;
  const holders = new FakeHolders();
  const timed: HolderIndex = {
    refresh: () => {
      holders.refresh();
      clock += cost;
    },
    ofSocket: (n, c) => holders.ofSocket(n, c),
    ofListener: () => holders.ofListener(),
  };
  const r = new OwnerResolver(timed, { clock: () => clock });
  holders.sockets.set(1, [worker]);
  r.push(incoming(), 0);
  assert.equal(r.settle(5).length, 1); // a 4 ms run: the next 80 ms later
  r.push(incoming({ cookie: 2 }), 100);
  cost = 6000; // netflow stopped (SIGSTOP) in the middle of this run
  assert.deepEqual(r.settle(105), []);
  cost = 4;
  holders.sockets.set(2, [worker]);
  assert.deepEqual(r.settle(185).map((x) => x.owner), [worker]); // 80 ms later, not 120 s
  assert.equal(holders.runs, 3);
});

Deno.test("OwnerResolver asks each run for exactly the sockets with a record still unsettled", () => {
  const holders = new FakeHolders();
  const r = new OwnerResolver(holders, { clock: still });
  r.push(incoming({ cookie: 1 }), 0); // waits for its acceptor
  r.push(incoming({ cookie: 2 }), 0);
  r.push(end({ cookie: 3 }), 0); // the peer closed first: waits for its holder
  r.push(record("begin", peer, server, { outgoing: true, owner: client, cookie: 4 }), 0);
  holders.sockets.set(1, [worker]);
  holders.sockets.set(4, [client]); // held, but nothing of it waits: not asked for
  assert.equal(r.settle(5).length, 1); // 1 named; the outgoing begin passed at once
  assert.deepEqual(holders.asked, [[1, 2, 3]]);
  holders.sockets.set(2, [worker]);
  holders.sockets.set(3, [renamed]);
  assert.deepEqual(r.settle(25).map((x) => [x.cookie, x.owner]), [[2, worker], [3, renamed]]);
  assert.deepEqual(holders.asked, [[1, 2, 3], [2, 3]]);
});

/**
 * Holders whose kernel runs the iterator on a few processes (Linux 6.1+): a
 * run on `pids` sees only the sockets those processes hold; listeners are
 * seen by runs on every process only. `few: false`: a kernel that cannot.
 */
class FewHolders extends FakeHolders {
  few = true;
  /** The pids each run on a few processes asked for. */
  askedPids: number[][] = [];
  fewRuns = 0;
  #seenFew = new Map<number, SocketOwner[]>();
  #full = true;
  override refresh(cookies?: ReadonlySet<number>): void {
    this.#full = true;
    super.refresh(cookies);
  }
  refreshIn(pids: ReadonlySet<number>, cookies: ReadonlySet<number>): boolean {
    if (!this.few) return false;
    this.#full = false;
    this.fewRuns++;
    this.askedPids.push([...pids].sort((a, b) => a - b));
    this.#seenFew = new Map(
      [...this.sockets].filter(([c, hs]) => cookies.has(c) && hs.some((h) => pids.has(h.pid))),
    );
    return true;
  }
  override ofSocket(netns: number, cookie: number): readonly SocketOwner[] {
    return this.#full ? super.ofSocket(netns, cookie) : this.#seenFew.get(cookie) ?? [];
  }
}

Deno.test("OwnerResolver looks first on the processes holding the listener, every 5 ms", () => {
  const holders = new FewHolders();
  holders.listeners = [master, worker];
  holders.refresh(); // netflow's start: the listeners' holders known
  const r = new OwnerResolver(holders, { clock: still });
  r.push(incoming({ cookie: 1 }), 0);
  r.push(incoming({ cookie: 2 }), 3);
  assert.deepEqual(r.settle(5), []); // a look on the master and the worker: nobody accepted
  assert.deepEqual(holders.askedPids, [[100, 101]]);
  assert.equal(r.wakeInMs(5), 5);
  holders.sockets.set(1, [worker]);
  holders.sockets.set(2, [worker]);
  assert.deepEqual(r.settle(10).map((x) => [x.cookie, x.owner]), [[1, worker], [2, worker]]);
  assert.deepEqual([holders.fewRuns, holders.runs], [2, 1]); // no run on every process
});

Deno.test("OwnerResolver runs on every process for what the listener's holders do not have", () => {
  const holders = new FewHolders();
  holders.listeners = [master];
  holders.refresh();
  const r = new OwnerResolver(holders, { clock: still });
  r.push(incoming(), 0);
  holders.sockets.set(1, [client]); // handed to a process that holds no listener
  for (const t of [5, 10, 15, 20]) assert.deepEqual(r.settle(t), []);
  assert.deepEqual([holders.fewRuns, holders.runs], [4, 1]);
  assert.deepEqual(r.settle(25).map((x) => x.owner), [client]); // firstLookMs + retryMs
  assert.deepEqual([holders.fewRuns, holders.runs], [4, 2]);
  assert.equal(r.stats.everyProcessRuns, 0); // by design, not a fallback
});

Deno.test("OwnerResolver runs on every process for a flow whose listener it does not know", () => {
  const holders = new FewHolders();
  holders.refresh(); // no listener yet: made since
  const r = new OwnerResolver(holders, { clock: still });
  r.push(incoming(), 0);
  holders.sockets.set(1, [worker]);
  holders.listeners = [worker];
  assert.deepEqual(r.settle(5).map((x) => x.owner), [worker]);
  assert.deepEqual([holders.fewRuns, holders.runs], [0, 2]);
  r.push(incoming({ cookie: 2 }), 10); // its listener is known now
  holders.sockets.set(2, [worker]);
  assert.deepEqual(r.settle(15).map((x) => x.owner), [worker]);
  assert.deepEqual([holders.fewRuns, holders.runs], [1, 2]);
});

Deno.test("OwnerResolver on a kernel that cannot run on a few processes runs on every one", () => {
  const holders = new FewHolders();
  holders.few = false;
  holders.listeners = [worker];
  holders.refresh();
  const r = new OwnerResolver(holders, { clock: still });
  r.push(incoming(), 0);
  holders.sockets.set(1, [worker]);
  assert.deepEqual(r.settle(5).map((x) => x.owner), [worker]); // tried, refused, then all
  r.push(incoming({ cookie: 2 }), 30);
  assert.equal(r.wakeInMs(30), 5);
  r.settle(35);
  assert.deepEqual([holders.fewRuns, holders.runs], [0, 3]); // never tried again
  assert.equal(r.stats.everyProcessRuns, 2); // both runs for waiting flows: the fallback counted
});

Deno.test("OwnerResolver looks on the listener's holders while a costly run on every process is spaced", () => {
  let now = 0;
  const holders = new FewHolders();
  holders.listeners = [worker];
  holders.refresh();
  const full = holders.refresh.bind(holders);
  holders.refresh = (cookies) => {
    full(cookies);
    now += 20; // each run on every process costs 20 ms: the next waits 400
  };
  const r = new OwnerResolver(holders, { clock: () => now });
  r.push(incoming(), 0); // handed to a process without the listener: only a full run finds it
  for (const t of [5, 10, 15, 20]) r.settle(t);
  assert.deepEqual(r.settle(25), []); // the run on every process, spaced 400 ms from here
  assert.equal(holders.runs, 2);
  r.push(incoming({ cookie: 2 }), 30); // accepted by the worker, which holds the listener
  holders.sockets.set(2, [worker]);
  assert.deepEqual(r.settle(35).map((x) => [x.cookie, x.owner]), [[2, worker]]);
  assert.equal(holders.runs, 2); // found by a look on the worker, not after 400 ms
  assert.equal(r.wakeInMs(35), 5); // the first one still waits: looks go on every 5 ms
});

Deno.test("OwnerResolver: a socket closed during a look settles at once, with nobody", () => {
  const r = new OwnerResolver(new FakeHolders(), { clock: still });
  // Its acceptor closed it while a holders look held it: no run can find it, and the kernel
  // writes "closed by nobody known" (owner null, at close) on the release or the end.
  r.push(incoming(), 0);
  r.push(end(), 1); // the peer closed first: it waits behind its begin
  const release = { ...record("release", server, peer, { owner: null }), ownerAtClose: true };
  assert.deepEqual(r.push(release, 2).map((x) => [x.kind, x.owner]), [
    ["begin", null],
    ["end", null],
  ]);
  r.push(incoming({ cookie: 2 }), 10);
  const closed = end({ cookie: 2, owner: null, atClose: true });
  assert.deepEqual(r.push(closed, 11).map((x) => [x.kind, x.owner]), [
    ["begin", null],
    ["end", null],
  ]);
  const alone = end({ cookie: 3, owner: null, atClose: true }); // nothing of it waits
  assert.deepEqual(r.push(alone, 12), [alone]);
  assert.deepEqual([r.stats.byLook, r.stats.byTimeout, r.waiting], [3, 0, 0]);
});
