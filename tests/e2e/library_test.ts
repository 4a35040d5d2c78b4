/**
 * e2e (root): the library by path, as a user's script uses it: a script in a
 * directory outside the checkout, no deno.json, no import map, no unstable
 * flag, run with plain `deno run -A script.ts`.
 */
import assert from "node:assert/strict";
import type { FlowBeginEvent, FlowEndEvent } from "../../src/events.ts";
import { e2eTest, LOCAL, Proc, ROOT, TestCgroup, workload } from "../helpers/e2e.ts";

const SCRIPT = (modPath: string) =>
  `import { FlowMonitor } from "${modPath}";

using monitor = new FlowMonitor({ cgroup: Deno.args[0] });
console.log("ready");
for await (const event of monitor) {
  console.log(JSON.stringify(event));
  if (event.event === "net_flow_tcp_end") break;
}
console.log("lost", monitor.stats.lost);
`;

e2eTest(
  "a script outside the checkout imports mod.ts by path and sees a real connection",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "netflow-script-" });
    try {
      await Deno.writeTextFile(`${dir}/script.ts`, SCRIPT(`${ROOT}mod.ts`));
      await using cg = new TestCgroup();
      // cwd is the script's directory: no deno.json of ours is found from there.
      await using script = new Proc("sh", [
        "-c",
        `cd "$0" && exec "$1" run -A script.ts "$2"`,
        dir,
        Deno.execPath(),
        cg.dir,
      ]);
      assert.equal(await script.line(60_000), "ready");
      const w = await workload(cg, { where: LOCAL, host: "127.0.0.1" }, {
        where: LOCAL,
        connectTo: "127.0.0.1",
      });
      const port = w.clientPorts[0]!;
      const events: (FlowBeginEvent | FlowEndEvent)[] = [];
      for (;;) {
        const line = await script.line();
        if (line.startsWith("lost ")) {
          assert.equal(line, "lost 0");
          break;
        }
        const event = JSON.parse(line);
        if (event.src_port === port || event.dst_port === port) events.push(event);
      }
      await script.done();
      // The client's outgoing endpoint: its begin, and the end it gives first.
      const outgoing = events.filter((e) => e.conn_direction === "outgoing");
      assert.equal(outgoing[0]?.event, "net_flow_tcp_begin");
      assert.equal(outgoing[0]?.src_port, port);
      assert.equal(outgoing[0]?.dst_port, w.serverPort);
      assert.equal(outgoing[0]?.pid, w.clientPid);
      assert.ok(events.some((e) => e.event === "net_flow_tcp_end"));
      assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name), [
        "script.ts",
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
