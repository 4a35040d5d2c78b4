import assert from "node:assert/strict";
import type { SocketOwner } from "../../src/bpf/records.ts";
import type { FlowEvent } from "../../src/events.ts";
import { Enrichers } from "../../src/enrich/enricher.ts";
import type { HolderIndex } from "../../src/enrich/holders.ts";
import { OwnerEnricher } from "../../src/enrich/owner.ts";
import { OwnerResolver } from "../../src/enrich/owners.ts";
import { FlowTable } from "../../src/flow/state.ts";
import { record } from "../helpers/records.ts";

const master = { pid: 100, uid: 0, comm: "master" };
const worker = { pid: 101, uid: 33, comm: "worker" };
const server = { addr: "10.0.0.2", port: 80 }, peer = { addr: "10.0.0.1", port: 40000 };

/** The acceptor, in its own cgroup (42), holds every socket asked for. */
class Acceptor implements HolderIndex {
  refresh(): void {}
  ofSocket(): readonly SocketOwner[] {
    return [{ ...worker, cgroupId: 42 }];
  }
  ofListener(): readonly SocketOwner[] {
    return [master];
  }
}

Deno.test("OwnerEnricher gives an incoming flow its acceptor's cgroup on every event, an outgoing one its own", () => {
  const table = new FlowTable({ idPrefix: "t" });
  const enrichers = new Enrichers([
    new OwnerEnricher(new OwnerResolver(new Acceptor(), { clock: () => 0 })),
  ]);
  const out: FlowEvent[] = [];
  const push = (e: FlowEvent | undefined, nowMs: number) => {
    for (const i of enrichers.push({ event: e!, facts: table.factsOf(e!) }, nowMs)) {
      out.push(i.event);
    }
  };
  // The accepted socket is in its listener's cgroup (7): the kernel's cgroup on the records.
  push(table.onRecord({ ...record("begin", server, peer, { owner: master }), cgroupId: 7 }), 0);
  out.push(...enrichers.settle(5).map((i) => i.event)); // a look finds the worker
  const end = record("end", server, peer, { owner: worker, ms: 5, end: "local-fin" });
  push(table.onRecord({ ...end, cgroupId: 7, ownerAtClose: true }), 6);
  // An outgoing flow whose owner names a cgroup keeps its socket's.
  const client = { ...master, cgroupId: 99 };
  push(
    table.onRecord({
      ...record("begin", peer, server, { owner: client, outgoing: true, cookie: 2 }),
      cgroupId: 7,
    }),
    7,
  );
  assert.deepEqual(out.map((e) => [e.event, e.pid, e.cgroup_id]), [
    ["net_flow_tcp_begin", 101, 42],
    ["net_flow_tcp_end", 101, 42],
    ["net_flow_tcp_begin", 100, 7],
  ]);
});
