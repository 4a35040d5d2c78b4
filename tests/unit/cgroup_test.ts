import assert from "node:assert/strict";
import {
  findCgroup2Mount,
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
