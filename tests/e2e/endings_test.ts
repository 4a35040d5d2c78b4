/**
 * e2e (root): ends the kernel side must read from the socket as it really
 * went (issue 22): data a peer's FIN then RST left undelivered (point 9), a
 * Fast Open server socket that closes before the handshake's last ACK and a
 * socket checkpointed and restored in TCP repair mode (point 12), and another
 * sock_ops program that replaces netflow's callback flags (point 13).
 */
import assert from "node:assert/strict";
import type { FlowBeginEvent, FlowEndEvent, FlowEvent } from "../../src/events.ts";
import { e2eTest, type Proc, ROOT, sh, TestCgroup, TestNetns } from "../helpers/e2e.ts";
import { Netflow } from "../helpers/netflow.ts";

const ENDINGS = `${ROOT}tests/workloads/endings.py`;

async function watch(cg: TestCgroup, extra: string[] = []): Promise<Netflow> {
  return await Netflow.start(["--format", "json", "--cgroup", cg.dir, ...extra]);
}

/** Stops netflow once `ready` holds for its flow events; checks its exit. */
async function stopped(
  nf: Netflow,
  ready: (flows: FlowEvent[]) => boolean,
  timeoutMs = 30_000,
): Promise<FlowEvent[]> {
  await nf.untilFlows(ready, "the test's events", timeoutMs);
  const { events, stderr, code } = await nf.stop();
  assert.equal(code, 0, stderr);
  return events as FlowEvent[];
}

/** The events of the local endpoint on `port` (a server's: incoming). */
function endpoint(events: FlowEvent[], port: number, direction: "incoming" | "outgoing") {
  const mine = events.filter((e) =>
    e.conn_direction === direction && (e.src_port === port || e.dst_port === port)
  );
  return {
    begins: mine.filter((e): e is FlowBeginEvent => e.event === "net_flow_tcp_begin"),
    ends: mine.filter((e): e is FlowEndEvent => e.event === "net_flow_tcp_end"),
  };
}

const said = async (p: Proc, ms = 30_000) => JSON.parse(await p.line(ms));

e2eTest(
  "the peer's FIN, then its RST: bytes_sent is what the peer acknowledged, not the queue",
  async () => {
    await using cg = new TestCgroup();
    await using nf = await watch(cg);
    await using w = cg.spawn("python3", ENDINGS, "late-fin", "127.0.0.1");
    const r = await said(w);
    await w.done();
    const events = await stopped(nf, (f) => endpoint(f, r.server, "incoming").ends.length > 0);
    const server = endpoint(events, r.server, "incoming");
    assert.equal(server.begins.length, 1, "the server's begin");
    assert.equal(server.ends.length, 1, JSON.stringify(events));
    const end = server.ends[0]!;
    assert.deepEqual([end.closed_by, end.reason], ["remote", "fin"]);
    // The server wrote megabytes; the client read 100,000 bytes and its
    // socket had received `received` when it reset the connection. Only what
    // it acknowledged was sent: never more than it received.
    assert.ok(r.written > r.received + 1_000_000, JSON.stringify(r));
    assert.ok(
      end.bytes_sent! >= r.read && end.bytes_sent! <= r.received,
      `bytes_sent ${end.bytes_sent}, the client read ${r.read} and received ${r.received}`,
    );
  },
);

e2eTest(
  "a Fast Open server socket that sends its FIN in SYN_RECV gets its begin and end",
  async () => {
    await using cg = new TestCgroup();
    await using ns = await TestNetns.create(1);
    const inNs = (...a: string[]) => sh("ip", "netns", "exec", ns.name, ...a);
    await inNs("sysctl", "-qw", "net.ipv4.tcp_fastopen=0x207"); // client, server, no cookies
    await using nf = await watch(cg);
    const go = `${Deno.makeTempDirSync()}/go`;
    await using w = cg.spawn(
      "ip",
      "netns",
      "exec",
      ns.name,
      "python3",
      ENDINGS,
      "tfo",
      "127.0.0.1",
      go,
    );
    const { port } = await said(w);
    // Pure ACKs to the server are dropped: its child stays in SYN_RECV until
    // the client's FIN (which carries the ACK) comes.
    await inNs(
      ..."iptables -A OUTPUT -p tcp --tcp-flags ALL ACK -j DROP --dport".split(" "),
      String(port),
    );
    Deno.writeTextFileSync(go, "");
    const r = await said(w);
    await w.done();
    Deno.removeSync(go, { recursive: false });
    assert.deepEqual([r.state_at_close, r.syn_data], [3, true], "the server closed in SYN_RECV");
    // The client's end is the positive control: it did reach ESTABLISHED.
    const events = await stopped(nf, (f) => endpoint(f, r.client, "outgoing").ends.length > 0);
    const server = endpoint(events, r.server, "incoming");
    assert.equal(server.begins.length, 1, JSON.stringify(events));
    assert.equal(server.ends.length, 1, JSON.stringify(events));
    const end = server.ends[0]!;
    assert.deepEqual(
      [end.closed_by, end.reason, end.bytes_received, end.bytes_sent],
      ["local", "fin", r.request, r.reply],
    );
    // The positive control: the client's side, which did reach ESTABLISHED.
    const client = endpoint(events, r.client, "outgoing");
    assert.deepEqual([client.begins.length, client.ends.length], [1, 1]);
  },
  ["iptables"],
);

e2eTest(
  "TCP repair: a checkpoint's close is no reset; the restored socket's begin says preexisting",
  async () => {
    await using cg = new TestCgroup();
    await using nf = await watch(cg);
    await using w = cg.spawn("python3", ENDINGS, "repair", "127.0.0.1");
    const r = await said(w);
    await w.done();
    assert.deepEqual([r.after, r.back], [30, 30], "the connection went on after the restore");
    const events = await stopped(nf, (f) => endpoint(f, r.client, "outgoing").ends.length > 0);
    const server = endpoint(events, r.server, "incoming");
    // The restored socket has the server's port on this side (src of its begin).
    const restored = endpoint(events, r.server, "outgoing");
    restored.begins = restored.begins.filter((e) => e.src_port === r.server);
    const ids = new Set(restored.begins.map((e) => e.flow_id));
    restored.ends = restored.ends.filter((e) => ids.has(e.flow_id));
    // The accepted socket: begun, then closed in repair mode (nothing on the wire).
    assert.equal(server.begins.length, 1, JSON.stringify(events));
    assert.deepEqual(
      server.ends.map((e) => [e.closed_by, e.reason]),
      [["local", "unknown"]],
      JSON.stringify(server.ends),
    );
    // The restored socket: connect() without a handshake, so who opened the
    // connection is not known; it carries on one opened before it.
    assert.equal(restored.begins.length, 1, JSON.stringify(events));
    assert.equal(restored.begins[0]!.preexisting, true);
    assert.equal(restored.ends.length, 1);
    assert.deepEqual(
      [restored.ends[0]!.reason, restored.ends[0]!.bytes_sent, restored.ends[0]!.bytes_received],
      ["fin", 30, 30],
    );
  },
);

/** Another tool's sock_ops program on the cgroup (tests/fixtures/cbflags.bpf.c), removed on dispose. */
class OtherSockOps implements AsyncDisposable {
  static #serial = 0;
  readonly #pin: string;
  readonly #cgroup: string;
  #attached = false;

  private constructor(pin: string, cgroup: string) {
    this.#pin = pin;
    this.#cgroup = cgroup;
  }

  static async attach(cg: TestCgroup, flags: string): Promise<OtherSockOps> {
    const dir = await Deno.makeTempDir();
    const pin = `/sys/fs/bpf/netflow-test-${Deno.pid}-${++OtherSockOps.#serial}`;
    const other = new OtherSockOps(pin, cg.dir);
    try {
      const source = new URL("../fixtures/cbflags.bpf.c", import.meta.url).pathname;
      await sh(
        "clang",
        ..."-target bpf -O2 -g -I/usr/include/x86_64-linux-gnu -c".split(" "),
        `-DCB_FLAGS=${flags}`,
        source,
        "-o",
        `${dir}/cbflags.o`,
      );
      await sh("bpftool", "prog", "load", `${dir}/cbflags.o`, pin, "type", "sockops");
      await sh("bpftool", "cgroup", "attach", cg.dir, "sock_ops", "pinned", pin, "multi");
      other.#attached = true;
    } catch (err) {
      await other[Symbol.asyncDispose]();
      throw err;
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
    return other;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#attached) {
      await sh("bpftool", "cgroup", "detach", this.#cgroup, "sock_ops", "pinned", this.#pin)
        .catch(() => {});
    }
    await Deno.remove(this.#pin).catch(() => {});
  }
}

for (
  const [flags, what, reason] of [
    ["0", "turns every callback off", "unknown"],
    ["BPF_SOCK_OPS_RTT_CB_FLAG", "sets its own callbacks only", "fin"],
  ] as const
) {
  e2eTest(
    `another sock_ops program after netflow's that ${what}: the end comes within 10 s (${reason})`,
    async () => {
      await using cg = new TestCgroup();
      // netflow first, the other program after it: it runs second and its
      // flags replace netflow's.
      await using nf = await watch(cg);
      await using other = await OtherSockOps.attach(cg, flags);
      await using w = cg.spawn("python3", ENDINGS, "pair", "127.0.0.1");
      const r = await said(w);
      await w.done();
      // The contract: no flow stays open more than 10 s after its socket is gone.
      const ended = (f: FlowEvent[]) =>
        endpoint(f, r.server, "incoming").ends.length +
            endpoint(f, r.client, "outgoing").ends.length ===
          2;
      const flows = await stopped(nf, ended, 10_000).catch((err) => {
        throw new Error(`${err}: ${JSON.stringify(nf.flows())}`);
      });
      // The begins are the positive control: netflow saw both sockets open.
      const server = endpoint(flows, r.server, "incoming");
      const client = endpoint(flows, r.client, "outgoing");
      assert.deepEqual([server.begins.length, client.begins.length], [1, 1]);
      assert.deepEqual(
        [...server.ends, ...client.ends].map((e) => e.reason),
        [reason, reason],
        JSON.stringify(flows),
      );
      await other[Symbol.asyncDispose]();
    },
    ["clang"],
  );
}
