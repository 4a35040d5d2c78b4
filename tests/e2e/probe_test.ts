/**
 * e2e (root): loading, attaching, the ready line, signals, errors, and the
 * exact control packets of a real loopback connection.
 */
import assert from "node:assert/strict";
import { explainLoadFailure } from "../../src/bpf/loader.ts";
import { BpfObject, LibbpfError } from "../../src/ffi/libbpf.ts";
import type { PacketEvent } from "../../src/flow/events.ts";
import {
  attachedPrograms,
  e2eTest,
  LOCAL,
  Netflow,
  runNetflow,
  sh,
  TestCgroup,
  workload,
} from "../helpers/e2e.ts";

/** One loopback connection (client closes first) between two processes in `cg`. */
async function loopbackConnection(cg: TestCgroup) {
  const lo = "127.0.0.1";
  const w = await workload(cg, { where: LOCAL, host: lo }, { where: LOCAL, connectTo: lo });
  return { serverPort: w.serverPort, clientPort: w.clientPorts[0]! };
}

e2eTest("netflow reports each control packet of a loopback connection once per hook", async () => {
  await using cg = new TestCgroup();
  await using nf = await Netflow.start([
    "--format",
    "json",
    "--cgroup",
    cg.dir,
    "--events",
    "net_packet_tcp",
  ]);
  const { serverPort: s, clientPort: c } = await loopbackConnection(cg);
  const { events, stderr, code } = await nf.stop();
  assert.equal(code, 0, stderr);
  const seen = (events as PacketEvent[])
    .filter((e) => e.src_port === c || e.dst_port === c)
    .map((e) => `${e.direction} ${e.src_port}>${e.dst_port} ${e.flags}`);
  assert.deepEqual(seen, [
    `egress ${c}>${s} SYN`,
    `ingress ${c}>${s} SYN`,
    `egress ${s}>${c} SYN|ACK`,
    `ingress ${s}>${c} SYN|ACK`,
    `egress ${c}>${s} FIN|ACK`,
    `ingress ${c}>${s} FIN|ACK`,
    `egress ${s}>${c} FIN|ACK`,
    `ingress ${s}>${c} FIN|ACK`,
  ]);
  for (const e of events as PacketEvent[]) {
    assert.equal(e.src, "127.0.0.1");
    assert.equal(e.cgroup_id, cg.id);
  }
  assert.match(stderr, /^netflow: \d+ events, 0 lost records/m);
});

e2eTest("two netflow processes on one cgroup both see every packet", async () => {
  await using cg = new TestCgroup();
  const args = ["--format", "json", "--cgroup", cg.dir, "--events", "net_packet_tcp"];
  await using a = await Netflow.start(args);
  await using b = await Netflow.start(args);
  // Each: cgroup_skb ingress and egress, sock_create, connect4, connect6, sockops, sock_release.
  assert.equal((await attachedPrograms(cg.dir)).length, 14);
  const { clientPort } = await loopbackConnection(cg);
  const ofClient = (events: unknown[]) =>
    (events as PacketEvent[]).filter((e) => e.src_port === clientPort || e.dst_port === clientPort);
  const [ra, rb] = [await a.stop(), await b.stop()];
  assert.equal(ofClient(ra.events).length, 8);
  assert.equal(ofClient(rb.events).length, 8);
  assert.deepEqual(await attachedPrograms(cg.dir), []);
});

e2eTest("after SIGKILL no netflow program stays attached", async () => {
  await using cg = new TestCgroup();
  await using nf = await Netflow.start(["--cgroup", cg.dir]);
  assert.equal((await attachedPrograms(cg.dir)).length, 7);
  nf.proc.kill("SIGKILL");
  await nf.proc.status;
  // Links are released with the process's last file descriptor.
  for (let i = 0; i < 50 && (await attachedPrograms(cg.dir)).length > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(await attachedPrograms(cg.dir), []);
});

e2eTest("SIGINT detaches, flushes the table and prints the summary with exit 0", async () => {
  await using cg = new TestCgroup();
  await using nf = await Netflow.start(["--format", "table", "--cgroup", cg.dir]);
  const { clientPort } = await loopbackConnection(cg);
  const { stdout, stderr, code } = await nf.stop("SIGINT");
  assert.equal(code, 0, stderr);
  const lines = stdout.trimEnd().split("\n");
  assert.match(lines[0]!, /^TIME\(\S+\) +EVENT +DIR +LOCAL +REMOTE +PID +COMM/);
  // An outgoing and an incoming endpoint, each with a begin and an end line.
  const ofClient = lines.filter((l) => l.includes(`127.0.0.1:${clientPort}`));
  assert.deepEqual(ofClient.map((l) => l.split(/ +/).slice(1, 3).join(" ")).sort(), [
    "begin in",
    "begin out",
    "end in",
    "end out",
  ]);
  assert.match(stderr, /^netflow: 4 events, 0 lost records, 0 evicted flows/m);
  assert.deepEqual(await attachedPrograms(cg.dir), []);
});

e2eTest("a missing libbpf is one clear line and exit 1", async () => {
  await using cg = new TestCgroup();
  const { code, stderr } = await runNetflow(["--cgroup", cg.dir], {
    NETFLOW_LIBBPF: "/nonexistent/libbpf.so.1",
  });
  assert.equal(code, 1);
  assert.match(
    stderr.trim(),
    /^netflow: Cannot load libbpf "\/nonexistent\/libbpf.so.1": cannot open shared object file: No such file or directory \(NETFLOW_LIBBPF names it: point it at a libbpf.so.1, or unset it for the system's\)$/,
  );
  assert.equal(stderr.trim().split("\n").length, 1);
});

e2eTest("a cgroup that does not exist is one clear line and exit 1", async () => {
  const { code, stderr } = await runNetflow(["--cgroup", "/netflow-no-such-cgroup"]);
  assert.equal(code, 1);
  assert.match(
    stderr.trim(),
    /^netflow: Cannot attach to cgroup ".*\/netflow-no-such-cgroup": no such directory$/,
  );
});

e2eTest(
  "a program the kernel refuses is one line, with the verifier log kept for --verbose",
  async () => {
    const dir = Deno.makeTempDirSync();
    try {
      const source = new URL("../fixtures/refused.bpf.c", import.meta.url).pathname;
      await sh(
        "clang",
        "-target",
        "bpf",
        "-O2",
        "-g",
        "-I/usr/include/x86_64-linux-gnu",
        "-c",
        source,
        "-o",
        `${dir}/refused.o`,
      );
      using obj = new BpfObject(Deno.readFileSync(`${dir}/refused.o`));
      let failure: unknown;
      try {
        obj.load();
      } catch (err) {
        failure = err;
      }
      assert.ok(failure instanceof LibbpfError, `expected a LibbpfError, got ${failure}`);
      const explained = explainLoadFailure(failure);
      assert.match(
        explained.message,
        /^The kernel refused netflow's BPF programs: Permission denied \(errno 13\) \(run with --verbose for the verifier log\)$/,
      );
      assert.equal(explained.message.split("\n").length, 1);
      // The verifier's own words, for --verbose.
      assert.match(explained.detail ?? "", /invalid access to packet|R\d+ invalid mem access/);
      // The whole log, once, with the verifier's last line and no doubled prefix.
      assert.match(explained.detail ?? "", /processed \d+ insns[^\n]*\n-- END PROG LOAD LOG --/);
      assert.doesNotMatch(explained.detail ?? "", /libbpf: libbpf:/);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
);
