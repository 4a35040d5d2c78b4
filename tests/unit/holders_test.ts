import assert from "node:assert/strict";
import type { SocketOwner } from "../../src/bpf/records.ts";
import type { SocketHolder } from "../../src/bpf/holders.ts";
import { holderRows } from "../helpers/records.ts";
import { SocketHolders } from "../../src/enrich/holders.ts";

const master = { pid: 100, uid: 0, comm: "master", cgroupId: 0 };
const worker = { pid: 101, uid: 33, comm: "worker", cgroupId: 7 };
const other = { pid: 300, uid: 0, comm: "other-ns", cgroupId: 0 };
const HOST = 4026531840, NS = 4026532000;

function holder(
  owner: SocketOwner,
  o: { cookie?: number; netns?: number; addr?: string; port?: number; listening?: boolean },
): SocketHolder {
  const addr = o.addr ?? "0.0.0.0";
  return {
    cookie: o.cookie ?? 1,
    netns: o.netns ?? HOST,
    family: addr.includes(":") ? 6 : 4,
    localAddr: addr,
    localPort: o.port ?? 80,
    listening: o.listening ?? false,
    owner,
  };
}

Deno.test("SocketHolders keys sockets by network namespace and cookie", () => {
  const h = new SocketHolders(() =>
    holderRows([
      holder(worker, { cookie: 7 }),
      holder(other, { cookie: 7, netns: NS }),
    ])
  );
  h.refresh();
  assert.deepEqual(h.ofSocket(HOST, 7), [worker]);
  assert.deepEqual(h.ofSocket(NS, 7), [other]);
  assert.deepEqual(h.ofSocket(HOST, 8), []);
  assert.equal(h.runs, 1);
});

Deno.test("SocketHolders lists each process holding a socket once", () => {
  const h = new SocketHolders(() =>
    holderRows([
      holder(master, { cookie: 7 }),
      holder(master, { cookie: 7 }), // two fds of one process
      holder(worker, { cookie: 7 }),
    ])
  );
  h.refresh();
  assert.deepEqual(h.ofSocket(HOST, 7), [master, worker]);
});

Deno.test("SocketHolders finds a listener by namespace, address and port, never by port alone", () => {
  const h = new SocketHolders(() =>
    holderRows([
      holder(master, { listening: true, addr: "127.0.0.1", port: 8080 }),
      holder(other, { listening: true, netns: NS, addr: "0.0.0.0", port: 8080 }),
      holder(worker, { listening: true, addr: "::", port: 9090 }),
    ])
  );
  h.refresh();
  assert.deepEqual(h.ofListener(HOST, 4, "127.0.0.1", 8080), [master]);
  assert.deepEqual(h.ofListener(HOST, 4, "10.0.0.1", 8080), []); // bound to 127.0.0.1 only
  assert.deepEqual(h.ofListener(NS, 4, "10.0.0.1", 8080), [other]); // the namespace's wildcard
  assert.deepEqual(h.ofListener(HOST, 4, "10.0.0.1", 9090), [worker]); // dual-stack ::
  assert.deepEqual(h.ofListener(HOST, 6, "fd00::1", 9090), [worker]);
  assert.deepEqual(h.ofListener(NS, 4, "10.0.0.1", 9090), []);
});

Deno.test("SocketHolders forgets what the last run no longer shows", () => {
  let runs = 0;
  const h = new SocketHolders(() =>
    holderRows(runs++ === 0 ? [holder(worker, { cookie: 7 })] : [])
  );
  h.refresh();
  assert.deepEqual(h.ofSocket(HOST, 7), [worker]);
  h.refresh();
  assert.deepEqual(h.ofSocket(HOST, 7), []);
});
