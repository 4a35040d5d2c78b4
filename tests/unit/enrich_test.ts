import assert from "node:assert/strict";
import type { SocketOwner } from "../../src/bpf/records.ts";
import type { FlowEvent } from "../../src/events.ts";
import { CgroupPaths } from "../../src/enrich/cgroups.ts";
import { DnsEnricher } from "../../src/enrich/dns.ts";
import { Enrichers } from "../../src/enrich/enricher.ts";
import type { HolderIndex } from "../../src/enrich/holders.ts";
import { OwnerEnricher } from "../../src/enrich/owner.ts";
import { OwnerResolver } from "../../src/enrich/owners.ts";
import { FlowTable } from "../../src/flow/state.ts";
import { atMs, openList, record } from "../helpers/records.ts";

const master = { pid: 100, uid: 0, comm: "master" };
const worker = { pid: 101, uid: 33, comm: "worker" };
const server = { addr: "10.0.0.2", port: 80 }, peer = { addr: "10.0.0.1", port: 40000 };

/** One holder appears when the test says. */
class Holders implements HolderIndex {
  now: SocketOwner[] = [];
  #seen: SocketOwner[] = [];
  refresh(): void {
    this.#seen = [...this.now];
  }
  ofSocket(): readonly SocketOwner[] {
    return this.#seen;
  }
  ofListener(): readonly SocketOwner[] {
    return [];
  }
}

/** Names that change when the test says, as the DNS cache's would. */
class Names {
  byAddr = new Map<string, string[]>();
  forgotten: number[] = [];
  names(_netns: number, address: string): readonly string[] {
    return this.byAddr.get(address) ?? [];
  }
  forgetNamespaces(gone: ReadonlySet<number>): number {
    this.forgotten.push(...gone);
    return gone.size;
  }
}

function stage(holders: Holders, names: Names) {
  const table = new FlowTable({ idPrefix: "t" });
  const owners = new OwnerEnricher(new OwnerResolver(holders));
  const enrichers = new Enrichers([owners, new DnsEnricher(names, {})]);
  const out: FlowEvent[] = [];
  const push = (events: readonly (FlowEvent | undefined)[], nowMs: number) => {
    for (const event of events) {
      if (event === undefined) continue;
      for (const i of enrichers.push({ event, facts: table.factsOf(event) }, nowMs)) {
        out.push(i.event);
      }
    }
  };
  const settle = (nowMs: number) => out.push(...enrichers.settle(nowMs).map((i) => i.event));
  return { table, enrichers, out, push, settle };
}

/** The event, its owner, and the names of the remote side (src of an incoming begin). */
const describe = (e: FlowEvent) => `${e.event.slice(13)} ${e.comm} ${e.src_dns.join(",")}`;

Deno.test("the table's events are bare: no owner, names or cgroup path until enriched", () => {
  const table = new FlowTable();
  const e = table.onRecord(record("begin", server, peer, { owner: master }))!;
  assert.deepEqual(
    [e.pid, e.comm, e.uid, e.src_dns, e.dst_dns, e.cgroup, e.container_id],
    [null, null, null, [], [], "", null],
  );
  assert.deepEqual([e.cgroup_id, e.netns, table.factsOf(e).stamp], [42, 4026531840, master]);
});

Deno.test("an incoming begin waits for its acceptor; its update and end queue behind it", () => {
  const holders = new Holders(), names = new Names();
  names.byAddr.set(peer.addr, ["client.test"]);
  const s = stage(holders, names);
  const begin = record("begin", server, peer, { owner: master });
  s.push([s.table.onRecord(begin)], 0);
  // An update and the end come while the begin waits: none may pass it.
  s.push(s.table.onOpenList(openList([{ ...begin, kind: "update" }]), atMs(1), 0), 1);
  s.push([s.table.onRecord(record("end", server, peer, { ms: 2, end: "remote-fin" }))], 2);
  assert.equal(s.out.length, 0);
  assert.equal(s.enrichers.wakeInMs(2), 3); // the first look, 5 ms after the begin came
  holders.now = [worker]; // the worker accepts
  s.settle(5);
  assert.deepEqual(s.out.map(describe), [
    "begin worker client.test",
    "update worker client.test",
    // The end waited for its holder at close too: the same worker.
    "end worker client.test",
  ]);
  assert.equal(new Set(s.out.map((e) => e.flow_id)).size, 1);
  assert.equal(s.enrichers.wakeInMs(5), null);
});

Deno.test("an end that names who closed the socket takes that owner; one that does not, the begin's", () => {
  const names = new Names();
  const s = stage(new Holders(), names);
  names.byAddr.set(peer.addr, ["client.test"]);
  const out = (r: Parameters<typeof record>) => s.push([s.table.onRecord(record(...r))], 0);
  out(["begin", server, peer, { outgoing: true, owner: master }]);
  // The names change before the end: a flow keeps those of its first event.
  names.byAddr.set(peer.addr, ["other.test"]);
  out(["end", server, peer, { outgoing: true, owner: worker, ms: 1 }]);
  out(["begin", server, peer, { outgoing: true, owner: master, cookie: 2 }]);
  out(["end", server, peer, { outgoing: true, owner: null, cookie: 2, ms: 1 }]);
  s.settle(1000); // the ends the kernel wrote outside their holder's context wait, then run out
  assert.deepEqual(s.out.map((e) => `${e.event.slice(13)} ${e.comm} ${e.dst_dns.join(",")}`), [
    "begin master client.test",
    "begin master other.test",
    "end worker client.test",
    "end master other.test",
  ]);
});

Deno.test("the cgroup enricher names the event's cgroup id, '' once it is gone", () => {
  const root = Deno.makeTempDirSync();
  try {
    Deno.mkdirSync(`${root}/docker-${"ab".repeat(32)}.scope`);
    const ino = Deno.statSync(`${root}/docker-${"ab".repeat(32)}.scope`).ino!;
    const table = new FlowTable();
    const cgroups = new CgroupPaths(root, root);
    const enrich = (cgroupId: number) => {
      const event = table.onRecord(record("begin", server, peer, { cookie: cgroupId }))!;
      event.cgroup_id = cgroupId;
      cgroups.fill({ event, facts: table.factsOf(event) });
      return event;
    };
    const e = enrich(ino);
    assert.deepEqual([e.cgroup, e.container_id], [
      `/docker-${"ab".repeat(32)}.scope`,
      "ab".repeat(32),
    ]);
    const gone = enrich(ino + 1_000_000);
    assert.deepEqual([gone.cgroup, gone.container_id], ["", null]);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
