import assert from "node:assert/strict";
import { CgroupPaths } from "../../src/enrich/cgroups.ts";

/** A directory tree standing in for the cgroup v2 mount (ids are inode numbers). */
function tree() {
  const root = Deno.makeTempDirSync({ prefix: "nf-cgroups-" });
  let now = 0;
  const paths = new CgroupPaths(root, root, () => now);
  const mk = (p: string) => {
    Deno.mkdirSync(`${root}${p}`, { recursive: true });
    return Deno.statSync(`${root}${p}`).ino!;
  };
  return {
    paths,
    mk,
    rm: (p: string) => Deno.removeSync(`${root}${p}`),
    tick: (ms: number) => now += ms,
    [Symbol.dispose]: () => Deno.removeSync(root, { recursive: true }),
  };
}

Deno.test("CgroupPaths resolves a cgroup created a moment after the last scan", () => {
  using t = tree();
  const a = t.mk("/a");
  assert.equal(t.paths.lookup(a).path, "/a");
  const b = t.mk("/a/b"); // no time passes
  assert.equal(t.paths.lookup(b).path, "/a/b");
  assert.equal(t.paths.lookup(b).path, "/a/b"); // cached now
  assert.equal(t.paths.scans, 2);
});

Deno.test("CgroupPaths gives a removed cgroup an empty path, and looks for it again only a second later", () => {
  using t = tree();
  const gone = t.mk("/gone");
  t.rm("/gone");
  assert.deepEqual(t.paths.lookup(gone), { path: "", containerId: null });
  assert.equal(t.paths.scans, 1);
  t.tick(500);
  assert.equal(t.paths.lookup(gone).path, "");
  assert.equal(t.paths.scans, 1);
  t.tick(600);
  assert.equal(t.paths.lookup(gone).path, "");
  assert.equal(t.paths.scans, 2);
});

Deno.test("CgroupPaths bounds rescans under churn, and resolves the rest once the budget is back", () => {
  using t = tree();
  const ids = Array.from({ length: 30 }, (_, i) => t.mk(`/c${i}`));
  // Each lookup of an id not yet seen rescans, so make them after a first scan.
  t.paths.lookup(t.mk("/first"));
  const late = Array.from({ length: 30 }, (_, i) => t.mk(`/late${i}`));
  let resolved = 0;
  for (const id of late) if (t.paths.lookup(id).path !== "") resolved++;
  // One rescan found them all: the rest were cached.
  assert.equal(resolved, 30);
  // Ids that no rescan can find (removed cgroups) spend the budget: at most 20 a second.
  const removed = Array.from({ length: 30 }, (_, i) => {
    const id = t.mk(`/gone${i}`);
    t.rm(`/gone${i}`);
    return id;
  });
  const before = t.paths.scans;
  for (const id of removed) t.paths.lookup(id);
  assert.ok(t.paths.scans - before <= 20, `${t.paths.scans - before} rescans`);
  // A live cgroup made now is found as soon as the budget allows.
  const fresh = t.mk("/fresh");
  t.tick(1000);
  assert.equal(t.paths.lookup(fresh).path, "/fresh");
  for (const id of ids) assert.notEqual(t.paths.lookup(id).path, "");
});
