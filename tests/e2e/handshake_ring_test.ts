/**
 * e2e (root): with --events fail, every SYN reaching a listener is a record;
 * they have their own ring (issue 22 point 16), so a spoofed SYN flood from a
 * namespace loses handshake records (counted), never a begin or an end.
 */
import assert from "node:assert/strict";
import type { FlowEvent } from "../../src/events.ts";
import { e2eTest, LOCAL, ROOT, TestCgroup, TestNetns, workload } from "../helpers/e2e.ts";
import { eachPort, Netflow } from "../helpers/netflow.ts";

const SYNFLOOD = `${ROOT}tests/workloads/synflood.py`;
const CONNECTIONS = 300;

function counted(stderr: string, re: RegExp): number {
  const m = re.exec(stderr);
  assert.ok(m, `${re} in ${stderr}`);
  return Number(m[1]);
}

e2eTest(
  "a SYN flood at a watched listener costs handshake records only: every real connection is reported",
  async () => {
    await using cg = new TestCgroup();
    await using ns = await TestNetns.create(1);
    // The flood's target: a listener in the watched cgroup that accepts nothing.
    await using listener = cg.spawn(
      "python3",
      "-c",
      "import socket,sys,time\n" +
        `s=socket.socket(); s.bind(("${ns.hostAddr4}",0)); s.listen(16)\n` +
        "print(s.getsockname()[1], flush=True); time.sleep(120)",
    );
    const port = Number(await listener.line());
    // The flow ring holds ~6,000 records: room for the real ones, not for a flood's handshakes.
    await using nf = await Netflow.start([
      "--format",
      "json",
      "--cgroup",
      cg.dir,
      "--events",
      "begin,end,fail",
      "--ring-size",
      "1048576",
    ]);
    await using flood = ns.spawn(
      "python3",
      SYNFLOOD,
      "--src",
      ns.nsAddr4,
      "--dst",
      ns.hostAddr4,
      "--port",
      String(port),
      "--count",
      "60000",
    );
    // Meanwhile real connections from the watched cgroup to a server in the namespace.
    const real = workload(
      cg,
      { where: { kind: "netns", ns, watched: false }, host: ns.nsAddr4 },
      { where: LOCAL, connectTo: ns.nsAddr4 },
      { count: CONNECTIONS },
    );
    const { sent } = JSON.parse(await flood.line(120_000)) as { sent: number };
    const w = await real;
    await nf.untilFlows(eachPort(2, w.clientPorts), "a begin and an end for each connection");
    const { events, stderr, code } = await nf.stop();
    assert.equal(code, 0, stderr);
    const flows = events as FlowEvent[];
    const ports = new Set(w.clientPorts);
    const begins = flows.filter((e) => e.event === "net_flow_tcp_begin" && ports.has(e.src_port));
    const ends = flows.filter((e) =>
      e.event === "net_flow_tcp_end" && (ports.has(e.src_port) || ports.has(e.dst_port))
    );
    const fails = flows.filter((e) => e.event === "net_flow_tcp_fail" && e.dst_port === port);
    const seen = {
      sent,
      begins: begins.length,
      ends: ends.length,
      lostRecords: counted(stderr, / (\d+) lost records/),
      recovered: counted(stderr, /(\d+) flows recovered from the kernel's store/),
      handshakeLost: counted(stderr, /(\d+) lost handshake records/),
      fails: fails.length,
    };
    console.log(`SYN flood: ${JSON.stringify(seen)}`);
    // The flood reached the watched listener: its handshakes were recorded or lost, counted.
    assert.ok(seen.handshakeLost + seen.fails > 0, JSON.stringify(seen));
    assert.deepEqual(
      [seen.begins, seen.ends, seen.lostRecords, seen.recovered],
      [CONNECTIONS, CONNECTIONS, 0, 0],
      JSON.stringify(seen),
    );
  },
);
