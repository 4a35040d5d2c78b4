/**
 * e2e (root): a holder that closes a socket while netflow's holders iterator
 * looks at it (bpf/iter.bpf.h, bpf/owners.bpf.h). The iterator holds a
 * reference to each file it looks at; the holder's close then leaves netflow
 * the last one, and the socket's release runs in netflow when its read ends,
 * where the kernel cannot see who closed it. Before, such a socket got no
 * release record and its end no closer: an end waited 200 ms and took its
 * begin's owner, and a begin not yet read when its acceptor closed the socket
 * waited 2 s and got none (issue 24: 1-2 owner waits timed out per storm).
 *
 * One process opens and closes TCP sockets while this process runs the
 * iterator on it back to back, until the kernel has counted such closes (the
 * positive control: the race did happen): every one must have its closer
 * noted. Then rounds of connections to itself closed in a burst (half with
 * the client's FIN first, half with the server's): every server socket's
 * closer must be named by its end or a release record as that process.
 */
import assert from "node:assert/strict";
import { Probe } from "../../src/bpf/loader.ts";
import { RecordDecoder } from "../../src/bpf/records.ts";
import { e2eTest, TestCgroup } from "../helpers/e2e.ts";

const ROUND = 50, ROUNDS = 10, WANTED_CLOSES = 20;

/** A round each time the file GO.N appears: "sockets", "flows" or "stop". */
const WORKLOAD = `
import json, os, socket, sys, time
go = sys.argv[1]
lis = socket.socket()
lis.bind(("127.0.0.1", 0))
lis.listen(128)
port = lis.getsockname()[1]
print(json.dumps({"port": port}), flush=True)
rnd = 0
while True:
    while not os.path.exists(f"{go}.{rnd}"):
        time.sleep(0.002)
    what = open(f"{go}.{rnd}").read()
    if what == "stop":
        break
    if what == "sockets":
        for i in range(20000):
            s = socket.socket()
            s.getsockopt(socket.SOL_SOCKET, 57, 8)  # SO_COOKIE: as a flow's socket has one
            s.close()
        print(rnd, flush=True)
        rnd += 1
        continue
    pairs = []
    for i in range(${ROUND}):
        c = socket.create_connection(("127.0.0.1", port))
        s, _ = lis.accept()
        if i % 2:
            c.sendall(b"c")
            c.shutdown(socket.SHUT_WR)  # the client's FIN first: the server's end waits for a name
            while s.recv(100):
                pass
        pairs.append((c, s))
    for _, s in pairs:
        s.close()  # in a burst, while the iterator walks this process
    for c, _ in pairs:
        c.close()
    print(rnd, flush=True)
    rnd += 1
`;

e2eTest(
  "a socket its holder closes while the holders iterator looks at it still names its closer",
  async () => {
    await using cg = new TestCgroup();
    using probe = Probe.open({ cgroupDir: cg.dir });
    const go = await Deno.makeTempFile({ prefix: "netflow-look-close-" });
    try {
      const proc = cg.spawn("python3", "-c", WORKLOAD, go);
      await proc.line();
      const iter = probe.holdersIterator!;
      const none = new Set<number>();
      if (iter.runIn([proc.pid], none) === null) return; // before 6.1: runs on every process only
      const decoder = new RecordDecoder(0);
      const served = new Set<number>(), named = new Set<number>();
      const drain = () =>
        probe.reader.drain((view, offset, length) => {
          const r = decoder.decode(view, offset, length);
          if (r === undefined || !("cookie" in r)) return;
          if (r.kind === "begin" && !r.outgoing) served.add(r.cookie);
          const closer = r.kind === "release" || (r.kind === "end" && r.ownerAtClose);
          if (closer && r.owner?.pid === proc.pid) named.add(r.cookie);
        });
      let rounds = 0;
      /** One round of the workload, the iterator running on it back to back meanwhile. */
      const round = async (what: "sockets" | "flows") => {
        await Deno.writeTextFile(`${go}.${rounds++}`, what);
        let finished = false;
        const done = proc.line().then(() => finished = true);
        while (!finished) {
          for (let i = 0; i < 20; i++) iter.runIn([proc.pid], none);
          drain();
          await new Promise((r) => setTimeout(r, 0));
        }
        await done;
      };
      for (let i = 0; i < 20 && probe.counters().lookCloses < WANTED_CLOSES; i++) {
        await round("sockets");
      }
      const sockets = probe.counters();
      for (let i = 0; i < ROUNDS; i++) await round("flows");
      await Deno.writeTextFile(`${go}.${rounds}`, "stop");
      await proc.done();
      const unnamed = () => [...served].filter((c) => !named.has(c));
      // Every socket is closed: their records are in the ring.
      for (let i = 0; i < 50 && (served.size < ROUNDS * ROUND || unnamed().length > 0); i++) {
        drain();
        await new Promise((r) => setTimeout(r, 100));
      }
      const { lookCloses, lookClosesUnnamed } = probe.counters();
      const said = `closes during a look: ${sockets.lookCloses} of sockets ` +
        `(${sockets.lookClosesUnnamed} unnamed), ${lookCloses - sockets.lookCloses} of flows ` +
        `(${lookClosesUnnamed - sockets.lookClosesUnnamed} unnamed)`;
      console.log(said);
      assert.ok(sockets.lookCloses >= WANTED_CLOSES, `the race was not met: ${said}`);
      assert.equal(lookClosesUnnamed, 0, said);
      assert.equal(served.size, ROUNDS * ROUND, said);
      assert.deepEqual(unnamed(), [], said);
    } finally {
      for await (const f of Deno.readDir("/tmp")) {
        if (f.name.startsWith(go.slice(5))) await Deno.remove(`/tmp/${f.name}`);
      }
    }
  },
);
