import assert from "node:assert/strict";
import type { SocketHolder } from "../../src/bpf/records.ts";
import { SocketHolders } from "../../src/enrich/holders.ts";

const parent = { pid: 100, uid: 0, comm: "server" };
const worker = { pid: 101, uid: 33, comm: "worker" };
const client = { pid: 200, uid: 1000, comm: "curl" };

function holders(list: SocketHolder[][]) {
  let now = 0, reads = 0;
  const h = new SocketHolders(() => list[Math.min(reads++, list.length - 1)]!, () => now);
  return { h, tick: (ms: number) => now += ms, reads: () => reads };
}

const listen = (port: number, owner: typeof parent): SocketHolder => ({
  cookie: 1000 + owner.pid,
  localPort: port,
  listening: true,
  owner,
});

Deno.test("SocketHolders gives an incoming flow to the worker holding a listener its creator closed", () => {
  const { h } = holders([[listen(80, worker)]]);
  h.refresh();
  assert.deepEqual(
    h.owner({ cookie: 1, netns: 1, direction: "incoming", localPort: 80, creator: parent }),
    worker,
  );
});

Deno.test("SocketHolders keeps the creator while it still holds the listener", () => {
  const { h } = holders([[listen(80, parent), listen(80, worker)]]);
  h.refresh();
  assert.deepEqual(
    h.owner({ cookie: 1, netns: 1, direction: "incoming", localPort: 80, creator: parent }),
    parent,
  );
  assert.deepEqual(
    h.owner({ cookie: 1, netns: 1, direction: "outgoing", localPort: 5000, creator: client }),
    client,
  );
});

Deno.test("SocketHolders finds the holder of a socket older than netflow by its cookie", () => {
  const { h } = holders([[{ cookie: 42, localPort: 5000, listening: false, owner: client }]]);
  h.refresh();
  assert.deepEqual(
    h.owner({ cookie: 42, netns: 1, direction: "outgoing", localPort: 5000, creator: null }),
    client,
  );
  assert.equal(
    h.owner({ cookie: 43, netns: 1, direction: "outgoing", localPort: 5001, creator: null }),
    null,
  );
});

Deno.test("SocketHolders refreshes once for a port it does not know, then once a second", () => {
  const { h, tick, reads } = holders([[], [], [listen(8080, worker)]]);
  h.refresh();
  tick(10);
  // A port the snapshot does not know: look again at once.
  assert.deepEqual(
    h.owner({ cookie: 1, netns: 1, direction: "incoming", localPort: 8080, creator: parent }),
    parent,
  );
  assert.equal(reads(), 2);
  tick(500);
  // Still unknown, but that port was looked for half a second ago: no read.
  assert.deepEqual(
    h.owner({ cookie: 1, netns: 1, direction: "incoming", localPort: 8080, creator: parent }),
    parent,
  );
  assert.equal(reads(), 2);
  tick(600);
  assert.deepEqual(
    h.owner({ cookie: 1, netns: 1, direction: "incoming", localPort: 8080, creator: parent }),
    worker,
  );
  assert.equal(reads(), 3);
});
