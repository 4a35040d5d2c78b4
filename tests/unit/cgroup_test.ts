import assert from "node:assert/strict";
import {
  findCgroup2Mount,
  findHostCgroupRoot,
  parseCgroup2Mount,
  relativeCgroupPath,
  resolveCgroupDir,
} from "../../src/bpf/cgroup.ts";
import { NetflowError, UsageError } from "../../src/errors.ts";

const HYBRID = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;
const UNIFIED = `26 1 0:25 / / rw - ext4 /dev/vda rw
35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
`;

Deno.test("parseCgroup2Mount finds the hybrid and the unified layouts", () => {
  assert.equal(parseCgroup2Mount(HYBRID), "/sys/fs/cgroup/unified");
  // Optional fields (shared:9) stand between the options and the separator.
  assert.equal(parseCgroup2Mount(UNIFIED), "/sys/fs/cgroup");
  assert.equal(
    parseCgroup2Mount("50 1 0:40 / /mnt/my\\040cgroups rw - cgroup2 none rw\n"),
    "/mnt/my cgroups",
  );
});

Deno.test("findCgroup2Mount says how to fix a host without cgroup v2", () => {
  const file = Deno.makeTempFileSync();
  try {
    Deno.writeTextFileSync(file, HYBRID.split("\n").slice(0, 2).join("\n"));
    assert.throws(() => findCgroup2Mount(file), (err: unknown) => {
      assert.ok(err instanceof NetflowError);
      assert.equal(
        err.message,
        "Cgroup v2 is not mounted (mount it: mount -t cgroup2 none /sys/fs/cgroup)",
      );
      return true;
    });
  } finally {
    Deno.removeSync(file);
  }
});

Deno.test("resolveCgroupDir takes absolute paths and paths under the mount", () => {
  const mount = Deno.makeTempDirSync();
  try {
    Deno.mkdirSync(`${mount}/a/b`, { recursive: true });
    assert.equal(resolveCgroupDir(mount), mount);
    assert.equal(resolveCgroupDir(`${mount}/`, "/"), mount);
    assert.equal(resolveCgroupDir(mount, `${mount}/a/b/`), `${mount}/a/b`);
    assert.equal(resolveCgroupDir(mount, "/a"), `${mount}/a`);
    assert.equal(resolveCgroupDir(mount, "a/b"), `${mount}/a/b`);
    assert.throws(
      () => resolveCgroupDir(mount, "/nope"),
      /Cannot attach to cgroup ".*\/nope": no such directory/,
    );
    assert.equal(relativeCgroupPath(mount, `${mount}/a/b`), "/a/b");
    assert.equal(relativeCgroupPath(mount, mount), "/");
  } finally {
    Deno.removeSync(mount, { recursive: true });
  }
});

Deno.test("resolveCgroupDir names cgroup v1 and other directories outside the v2 mount", () => {
  const mount = Deno.makeTempDirSync();
  const v1 = Deno.makeTempDirSync();
  const other = Deno.makeTempDirSync();
  const info = `1 0 0:1 / / rw - ext4 /dev/vda rw
2 1 0:2 / ${v1} rw - cgroup cgroup rw,name=systemd
3 1 0:3 / ${mount} rw - cgroup2 cgroup2 rw
`;
  try {
    assert.throws(
      () => resolveCgroupDir(mount, v1, info),
      (e: unknown) =>
        e instanceof UsageError &&
        e.message ===
          `Cgroup "${v1}" is on cgroup v1; netflow watches cgroup v2 only (its mount here is "${mount}")`,
    );
    assert.throws(
      () => resolveCgroupDir(mount, other, info),
      (e: unknown) =>
        e instanceof UsageError &&
        e.message ===
          `"${other}" is not a cgroup: give a path under the cgroup v2 mount "${mount}", or relative to it`,
    );
  } finally {
    for (const d of [mount, v1, other]) Deno.removeSync(d, { recursive: true });
  }
});

Deno.test("resolveCgroupDir asks for the host's name of a cgroup of the container's own mount", () => {
  const host = Deno.makeTempDirSync(); // the host's root, as /proc/1/root/sys/fs/cgroup
  const local = Deno.makeTempDirSync(); // the container's cgroup2 mount
  Deno.mkdirSync(`${local}/app`);
  const info = `1 0 0:1 / / rw - ext4 /dev/vda rw\n3 1 0:3 / ${local} rw - cgroup2 cgroup2 rw\n`;
  try {
    assert.throws(
      () => resolveCgroupDir(host, `${local}/app`, info),
      (e: unknown) =>
        e instanceof UsageError &&
        e.message ===
          `Cgroup "${local}/app" is in this container's cgroup2 mount, not the host's: give the cgroup as the host names it (as events show it), under "${host}"`,
    );
  } finally {
    for (const d of [host, local]) Deno.removeSync(d, { recursive: true });
  }
});

/**
 * A made-up procfs for findHostCgroupRoot: `self` sees `local` as its cgroup2
 * mount; each listed pid's root is "/" and its cgroup2 mount is the real one
 * (whose root is cgroup 1 on any cgroup v2 host); `ownPids` makes self's pid
 * namespace another than the initial one.
 */
function fakeProc(
  local: string | undefined,
  pids: string[],
  ownPids = false,
): { proc: string; real: string } {
  const proc = Deno.makeTempDirSync({ prefix: "nf-proc-" });
  const real = findCgroup2Mount();
  const line = (point: string) => `41 31 0:38 / ${point} rw,relatime - cgroup2 cgroup2 rw\n`;
  Deno.mkdirSync(`${proc}/self/ns`, { recursive: true });
  Deno.writeTextFileSync(`${proc}/self/mountinfo`, local === undefined ? "" : line(local));
  if (ownPids) Deno.writeTextFileSync(`${proc}/self/ns/pid`, "");
  else Deno.symlinkSync("/proc/self/ns/pid", `${proc}/self/ns/pid`);
  for (const pid of pids) {
    Deno.mkdirSync(`${proc}/${pid}/ns`, { recursive: true });
    Deno.writeTextFileSync(`${proc}/${pid}/mountinfo`, line(real));
    Deno.symlinkSync("/", `${proc}/${pid}/root`);
    Deno.writeTextFileSync(`${proc}/${pid}/ns/mnt`, ""); // a mount namespace of its own
  }
  return { proc, real };
}

const v2Root = (() => {
  try {
    return Deno.statSync(findCgroup2Mount()).ino === 1;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "findHostCgroupRoot takes a local mount only when its root is the hierarchy's (cgroup 1)",
  ignore: !v2Root,
  fn: () => {
    const subtree = Deno.makeTempDirSync(); // a container's own cgroup: any id but 1
    const cases = [
      fakeProc(findCgroup2Mount(), ["1"]), // a host, or the host's /sys/fs/cgroup bind-mounted
      fakeProc(subtree, ["1"]), // a cgroup namespace: pid 1 shows the host's
      fakeProc(subtree, ["57"]), // pid 1 not readable: another process does
      fakeProc(undefined, ["1"]), // no cgroup2 mounted in the container at all
    ];
    try {
      const [host, ns, other, none] = cases.map(({ proc }) => findHostCgroupRoot(proc));
      assert.deepEqual(host, { mount: findCgroup2Mount(), whole: true, notes: [] });
      assert.deepEqual(ns, {
        mount: `${cases[1]!.proc}/1/root${cases[1]!.real}`,
        whole: true,
        notes: [],
      });
      // Held open: the process it was found through may exit.
      assert.match(other!.mount, /^\/proc\/self\/fd\/\d+$/);
      assert.equal(Deno.statSync(other!.mount).ino, 1);
      assert.deepEqual(other!.notes, []);
      assert.equal(none!.mount, `${cases[3]!.proc}/1/root${cases[3]!.real}`);
    } finally {
      for (const { proc } of cases) Deno.removeSync(proc, { recursive: true });
      Deno.removeSync(subtree);
    }
  },
});

Deno.test({
  name:
    "findHostCgroupRoot says in one line what a container with its own pid namespace cannot see",
  ignore: !v2Root,
  fn: () => {
    const subtree = Deno.makeTempDirSync();
    const cases = [
      fakeProc(subtree, [], true), // nothing of the host visible
      fakeProc(findCgroup2Mount(), [], true), // the host's cgroups mounted, its pids not visible
      fakeProc(subtree, []), // the host's pid namespace, but no process readable
      fakeProc(undefined, []),
    ];
    try {
      const [alone, mounted, unreadable] = cases.slice(0, 3).map(({ proc }) =>
        findHostCgroupRoot(proc)
      );
      const id = Deno.statSync(subtree).ino;
      assert.equal(alone!.mount, subtree);
      assert.equal(alone!.whole, false);
      assert.deepEqual(alone!.notes, [
        `netflow: ${subtree} is cgroup ${id}, not the host's root, and in a pid namespace of its ` +
        "own, no host process is visible (pids are the host's, not this namespace's; holders of " +
        "accepted connections are found only among the processes visible here, and flows open " +
        "at start only in their network namespaces): watching only the cgroups under it (give " +
        "netflow the host's pid namespace, or mount the host's cgroup2 root, to watch the whole host)",
      ]);
      assert.deepEqual(mounted, {
        mount: findCgroup2Mount(),
        whole: true,
        notes: [
          "netflow: in a pid namespace of its own: pids are the host's, not this namespace's; " +
          "holders of accepted connections are found only among the processes visible here, and " +
          "flows open at start only in their network namespaces",
        ],
      });
      assert.equal(unreadable!.whole, false);
      assert.match(
        unreadable!.notes[0]!,
        /no host process's root can be read \(that needs CAP_SYS_PTRACE\): watching only the cgroups under it \(grant CAP_SYS_PTRACE, or mount the host's cgroup2 root, to watch the whole host\)$/,
      );
      assert.equal(unreadable!.notes.length, 1);
      assert.throws(
        () => findHostCgroupRoot(cases[3]!.proc),
        /^NetflowError: Cgroup v2 is not mounted/,
      );
    } finally {
      for (const { proc } of cases) Deno.removeSync(proc, { recursive: true });
      Deno.removeSync(subtree);
    }
  },
});
