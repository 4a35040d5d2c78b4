/**
 * e2e (root): loading, attaching, the ready line, signals, errors, and the
 * exact control packets of a real loopback connection.
 */
import assert from "node:assert/strict";
import { BPF_NAMES } from "../../src/bpf/loader.ts";
import { explainLoadFailure } from "../../src/bpf/refusals.ts";
import { LibbpfError } from "../../src/ffi/libbpf.ts";
import { BpfObject } from "../../src/ffi/objects.ts";
import type { PacketEvent } from "../../src/events.ts";
import { attachedPrograms, e2eTest, LOCAL, sh, TestCgroup, workload } from "../helpers/e2e.ts";
import { Netflow, runNetflow } from "../helpers/netflow.ts";
import { exitValues } from "../helpers/xlated.ts";

/** The programs attached to a cgroup directory: id and name, per bpftool. */
async function attachedIds(dir: string): Promise<{ id: number; name: string }[]> {
  return JSON.parse(await sh("bpftool", "cgroup", "show", dir, "--json"));
}

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
  await nf.until(
    (events) => events.filter((e) => e.src_port === c || e.dst_port === c).length >= 8,
    "the connection's 8 packets",
  );
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

e2eTest(
  "two netflow processes on one cgroup both see every packet and report the same flows",
  async () => {
    await using cg = new TestCgroup();
    const args = ["--format", "json", "--cgroup", cg.dir, "--events", "packet,begin,end"];
    await using a = await Netflow.start(args);
    await using b = await Netflow.start(args);
    // Each: cgroup_skb ingress and egress, sock_create, connect4, connect6, sockops, sock_release.
    assert.equal((await attachedPrograms(cg.dir)).length, 14);
    const { clientPort } = await loopbackConnection(cg);
    const ofClient = (events: unknown[]) =>
      (events as PacketEvent[]).filter((e) =>
        e.src_port === clientPort || e.dst_port === clientPort
      );
    // Each: the 8 packets, and a begin and an end for each endpoint.
    for (const nf of [a, b]) await nf.until((events) => ofClient(events).length >= 12, "12 events");
    const [ra, rb] = [await a.stop(), await b.stop()];
    const packets = (events: unknown[]) =>
      ofClient(events).filter((e) => e.event === "net_packet_tcp");
    assert.equal(packets(ra.events).length, 8);
    assert.equal(packets(rb.events).length, 8);
    // The connection's flows, as each instance reports them: the same begins and ends, counters and all.
    const flows = (events: unknown[]) =>
      ofClient(events).filter((e) => e.event !== "net_packet_tcp").map((e) => {
        // Each instance times a flow from its own copy of the begin record: microseconds apart.
        const { time: _t, flow_id: _f, duration_ms: _d, ...rest } = e as unknown as Record<
          string,
          unknown
        >;
        return JSON.stringify(rest);
      }).sort();
    assert.equal(flows(ra.events).length, 4); // a begin and an end for each endpoint
    assert.deepEqual(flows(rb.events), flows(ra.events));
    assert.deepEqual(await attachedPrograms(cg.dir), []);
  },
);

e2eTest(
  "every cgroup program netflow loads returns 1 on every exit path (bpftool xlated)",
  async () => {
    await using cg = new TestCgroup();
    await using _nf = await Netflow.start(["--cgroup", cg.dir]);
    const attached = await attachedIds(cg.dir);
    assert.deepEqual(
      attached.map((p) => p.name).sort(),
      Object.values(BPF_NAMES.programs).sort(),
    );
    for (const { id, name } of attached) {
      // The program as loaded: bpftool prog show, then the instructions the kernel runs.
      const show = JSON.parse(await sh("bpftool", "prog", "show", "id", String(id), "--json"));
      assert.equal(show.name, name);
      assert.match(show.type, /^cgroup_|^sock_ops$/, `${name} is a ${show.type} program`);
      const exits = exitValues(await sh("bpftool", "prog", "dump", "xlated", "id", String(id)));
      assert.ok(exits.size > 0, `${name}: no exit found`);
      for (const [at, r0] of exits) {
        assert.equal(r0, 1, `${name} (id ${id}): the exit at ${at} returns ${r0}`);
      }
    }
  },
);

/** Every bpf filesystem mounted and what is in it: what netflow could have pinned. */
async function pinned(): Promise<string[]> {
  const mounts = (await Deno.readTextFile("/proc/mounts")).split("\n")
    .filter((l) => l.split(" ")[2] === "bpf").map((l) => l.split(" ")[1]!);
  const out = mounts.map((m) => `mount ${m}`);
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      out.push(`${dir}/${e.name}`);
      if (e.isDirectory) await walk(`${dir}/${e.name}`);
    }
  };
  for (const m of mounts) await walk(m);
  return out.sort();
}

/** Waits until nothing is attached to `dir` (links go with the process's last descriptor). */
async function detached(dir: string): Promise<string[]> {
  for (let i = 0; i < 50 && (await attachedPrograms(dir)).length > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  return await attachedPrograms(dir);
}

e2eTest("after SIGKILL no netflow program stays attached", async () => {
  await using cg = new TestCgroup();
  await using nf = await Netflow.start(["--cgroup", cg.dir]);
  assert.equal((await attachedPrograms(cg.dir)).length, 7);
  nf.kill("SIGKILL");
  await nf.child.status;
  assert.deepEqual(await detached(cg.dir), []);
});

e2eTest(
  "SIGKILL at random moments of start leaves nothing attached and nothing pinned",
  async () => {
    await using cg = new TestCgroup();
    const pinsBefore = await pinned();
    const spawn = () => {
      const nf = Netflow.spawn(["--cgroup", cg.dir]);
      return { child: nf.child, ready: nf.started };
    };
    // How long a start takes here: the kill moments are spread over it.
    const t0 = performance.now();
    const first = spawn();
    assert.equal(await first.ready, true);
    const startMs = performance.now() - t0;
    assert.equal((await attachedPrograms(cg.dir)).length, 7); // the positive control
    first.child.kill("SIGKILL");
    await first.child.status;
    assert.deepEqual(await detached(cg.dir), []);
    const seen: string[] = [];
    // Random moments over the start, most near its end (loading and attaching; Deno starts
    // first), and one as soon as the first program is attached.
    const moments: (number | "first-attach")[] = [
      ...[0, 1, 2].map(() => Math.random() * 0.7),
      ...[0, 1, 2, 3, 4, 5, 6, 7].map(() => 0.7 + Math.random() * 0.35),
    ].map((f) => Math.round(startMs * f));
    moments.push("first-attach");
    for (const at of moments) {
      const { child, ready } = spawn();
      if (at === "first-attach") {
        for (let i = 0; i < 600 && (await attachedPrograms(cg.dir)).length === 0; i++) {
          await new Promise((r) => setTimeout(r, 10));
        }
      } else {
        await new Promise((r) => setTimeout(r, at));
      }
      const attached = (await attachedPrograms(cg.dir)).length;
      child.kill("SIGKILL");
      await child.status;
      await ready.catch(() => false);
      const left = await detached(cg.dir);
      seen.push(`${at} ms: ${attached} attached at the kill, ${left.length} after`);
      assert.deepEqual(left, [], seen.join("; "));
    }
    assert.deepEqual(await pinned(), pinsBefore, seen.join("; "));
    console.log(`start ${Math.round(startMs)} ms; ${seen.join("; ")}`);
  },
);

e2eTest("SIGINT detaches, flushes the table and prints the summary with exit 0", async () => {
  await using cg = new TestCgroup();
  await using nf = await Netflow.start(["--format", "table", "--cgroup", cg.dir]);
  const { clientPort } = await loopbackConnection(cg);
  await nf.until(
    (_, stdout) =>
      stdout.split("\n").filter((l) => l.includes(`127.0.0.1:${clientPort}`)).length >= 4,
    "the connection's four lines",
  );
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
    env: { NETFLOW_LIBBPF: "/nonexistent/libbpf.so.1" },
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
