import assert from "node:assert/strict";
import { makeFlow } from "../../src/flow/flow.ts";
import { OpenFlows } from "../../src/flow/open_flows.ts";

const side = { addr: "10.0.0.1", port: 1 };
function flow(netns: number, cookie: number, keyNs: number) {
  const key = `${netns}|${cookie}|${keyNs}`;
  const r = { cgroupId: 1, netns, cookie, preexisting: false, beginNs: null, keyNs };
  return makeFlow(key, "outgoing", side, side, r);
}

Deno.test("OpenFlows finds each flow by its whole identity, flows sharing a cookie too", () => {
  const open = new OpenFlows();
  // One cookie in two namespaces, and a socket that connected again (another begin time).
  const flows = [flow(1, 7, 100), flow(2, 7, 100), flow(1, 7, 200), flow(1, 8, 100)];
  for (const f of flows) open.add(f);
  assert.equal(open.size, 4);
  for (const f of flows) assert.equal(open.get(f.netns, f.cookie, f.keyNs), f);
  assert.equal(open.get(3, 7, 100), undefined);
  assert.equal(open.get(1, 7, 300), undefined);
  // The cookie's first flow goes: the others of that cookie are still found, and in order.
  open.delete(flows[0]!);
  assert.equal(open.get(1, 7, 100), undefined);
  assert.deepEqual([...open].map((f) => f.flowId), ["2|7|100", "1|7|200", "1|8|100"]);
  assert.equal(open.oldest(), flows[1]);
  open.delete(flows[2]!); // one behind the first
  assert.deepEqual([...open].map((f) => f.flowId), ["2|7|100", "1|8|100"]);
  open.delete(flows[2]!); // not open any more: nothing changes
  assert.equal(open.size, 2);
});

Deno.test("OpenFlows gives every flow once while the loop deletes the one it was given", () => {
  const open = new OpenFlows();
  const flows = [flow(1, 7, 1), flow(2, 7, 1), flow(3, 7, 1), flow(1, 9, 1), flow(2, 9, 1)];
  for (const f of flows) open.add(f);
  const seen: string[] = [];
  for (const f of open) {
    seen.push(f.flowId);
    if (f.netns !== 3) open.delete(f);
  }
  assert.deepEqual(seen, flows.map((f) => f.flowId));
  assert.deepEqual([...open].map((f) => f.flowId), ["3|7|1"]);
  assert.equal(open.size, 1);
});
