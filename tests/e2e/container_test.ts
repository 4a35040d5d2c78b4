/**
 * netflow run the way eBPF agents are deployed: in a container of its own
 * (a child cgroup, with its own cgroup and mount namespaces and cgroup2
 * mounted afresh, so the mount's root is the container's cgroup, as Docker
 * and Kubernetes do by default on cgroup v2), with the host's network and,
 * first, the host's pids; then with a pid namespace of its own as well.
 * Made with `unshare`; every cgroup, namespace and process is gone at the end.
 *
 * @module
 */
import assert from "node:assert/strict";
import { findCgroup2Mount } from "../../src/bpf/cgroup.ts";
import type { FlowEvent } from "../../src/events.ts";
import { e2eTest, LOCAL, TestCgroup, workload } from "../helpers/e2e.ts";
import { BEGIN, END, ofConns, stopped, watchHost } from "../helpers/wholehost.ts";

/**
 * The command that runs netflow in `container`: moved into it, then in new
 * cgroup and mount namespaces (the cgroup namespace's root is the container's
 * cgroup) where cgroup2 is mounted again at the host's mount point, as a
 * runtime does (`hostCgroup`: the host's mount is left there, as a hostPath
 * of /sys/fs/cgroup gives); with `ownPids`, in a new pid namespace with its
 * own /proc too.
 */
function inContainer(
  container: TestCgroup,
  { ownPids, hostCgroup = false }: { ownPids: boolean; hostCgroup?: boolean },
): string[] {
  return [
    "sh",
    "-c",
    'echo $$ > "$1/cgroup.procs" && shift && exec "$@"',
    "sh",
    container.dir,
    "unshare",
    "--cgroup",
    "--mount",
    ...(ownPids ? ["--pid", "--fork", "--kill-child", "--mount-proc"] : []),
    "sh",
    "-c",
    hostCgroup ? 'exec "$@"' : 'umount "$0" && mount -t cgroup2 none "$0" && exec "$@"',
    findCgroup2Mount(),
  ];
}

/** One client-close connection over loopback between two processes of `cg` (tests/workloads/tcp.py). */
async function connection(cg: TestCgroup) {
  return await workload(
    cg,
    { where: LOCAL, host: "127.0.0.1" },
    { where: LOCAL, connectTo: "127.0.0.1" },
  );
}

type Conn = Awaited<ReturnType<typeof connection>>;

/** Its begin and end on both sides. */
const complete = (c: Conn) => (events: FlowEvent[]) =>
  ofConns(events, c.serverPort, c.clientPorts).length === 4;

/** Each side's events name its process (host pid, comm) and `cgroup`, and nothing else comes. */
function owned(events: FlowEvent[], c: Conn, cgroup: string, cgroupId: number): void {
  const mine = ofConns(events, c.serverPort, c.clientPorts);
  assert.deepEqual(
    mine.map((e) => [e.event, e.conn_direction, e.pid, e.comm, e.cgroup, e.cgroup_id]).sort(),
    [
      [BEGIN, "incoming", c.serverPid, "nf-server", cgroup, cgroupId],
      [BEGIN, "outgoing", c.clientPid, "nf-client", cgroup, cgroupId],
      [END, "incoming", c.serverPid, "nf-server", cgroup, cgroupId],
      [END, "outgoing", c.clientPid, "nf-client", cgroup, cgroupId],
    ].sort(),
  );
}

const NEEDS = ["unshare", "mount", "umount"];

e2eTest("netflow in a container with its own cgroup namespace watches the whole host", async () => {
  const mount = findCgroup2Mount();
  await using container = new TestCgroup();
  await using other = new TestCgroup();
  await using nf = await watchHost({ wrapper: inContainer(container, { ownPids: false }) });
  // The control for what follows: inside, the container's mount is a subtree.
  assert.notEqual(Deno.statSync(container.dir).ino, 1);
  const ready = /^netflow: watching cgroup (.*)$/m.exec(nf.stderr)![1]!;
  assert.match(ready, /^\/proc\/(1\/root\/.*|self\/fd\/\d+)$/, nf.stderr);
  // A connection on the host's loopback by processes of another cgroup, then
  // one by processes of the container's cgroup: host pids, host paths.
  const outside = await connection(other);
  const inside = await connection(container);
  const flows = await stopped(nf, {}, (e) => complete(outside)(e) && complete(inside)(e));
  owned(flows, outside, other.path, other.id);
  owned(flows, inside, container.path, container.id);
  // Nothing to say: the first stderr line is the ready line.
  assert.match(nf.stderr, /^netflow: watching cgroup /, nf.stderr);
  // The container's mount namespace went with it: the host's cgroup2 mount is as it was.
  assert.equal(findCgroup2Mount(), mount);
  assert.equal(Deno.statSync(mount).ino, 1);
}, NEEDS);

e2eTest(
  "netflow in a container with its own pid namespace says in one line what it cannot see",
  async () => {
    await using container = new TestCgroup();
    await using other = new TestCgroup();
    await using nf = await watchHost({
      wrapper: inContainer(container, { ownPids: true }),
      forks: true,
    });
    const lines = nf.stderr.split("\n");
    assert.match(
      lines[0]!,
      new RegExp(
        `^netflow: ${findCgroup2Mount()} is cgroup ${container.id}, not the host's root, and in a ` +
          "pid namespace of its own, no host process is visible \\(pids are the host's, not this " +
          "namespace's; .*\\): watching only the cgroups under it \\(give netflow the host's pid " +
          "namespace, or mount the host's cgroup2 root, to watch the whole host\\)$",
      ),
    );
    assert.equal(lines[1], `netflow: watching cgroup ${findCgroup2Mount()}`);
    // Outside the container first: not watched. Then inside (the positive
    // control): once its events are in, the outside's would have been.
    const outside = await connection(other);
    const inside = await connection(container);
    const flows = await stopped(nf, {
      forbidden: [{
        what: "a connection outside the container",
        match: (e) => ofConns([e], outside.serverPort, outside.clientPorts).length > 0,
      }],
    }, complete(inside));
    // The kernel's pids are the host's, as the line says; the cgroup is named
    // from the container's root, the only one netflow can see.
    owned(flows, inside, "/", container.id);
  },
  NEEDS,
);

e2eTest(
  "netflow with its own pid namespace and the host's cgroup2 mount watches the host, and says what its pids are",
  async () => {
    await using container = new TestCgroup();
    await using other = new TestCgroup();
    await using nf = await watchHost({
      wrapper: inContainer(container, { ownPids: true, hostCgroup: true }),
      forks: true,
    });
    assert.deepEqual(nf.stderr.split("\n").slice(0, 2), [
      "netflow: in a pid namespace of its own: pids are the host's, not this namespace's; holders " +
      "of accepted connections are found only among the processes visible here, and flows open at " +
      "start only in their network namespaces",
      `netflow: watching cgroup ${findCgroup2Mount()}`,
    ]);
    const outside = await connection(other);
    const flows = await stopped(nf, {}, complete(outside));
    owned(flows, outside, other.path, other.id);
  },
  NEEDS,
);
