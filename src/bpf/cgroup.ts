/**
 * Finding the cgroup v2 mount and the directory to attach to.
 *
 * @module
 */
import { NetflowError, UsageError } from "../errors.ts";

/** One line of mountinfo: the mount point (octal escapes decoded) and the filesystem type. */
export interface MountEntry {
  point: string;
  fstype: string;
}

/** The mounts of a mountinfo text (proc(5): fields, then " - ", then the filesystem type). */
export function parseMounts(mountinfo: string): MountEntry[] {
  const mounts: MountEntry[] = [];
  for (const line of mountinfo.split("\n")) {
    const [left, right] = line.split(" - ");
    if (left === undefined || right === undefined) continue;
    const point = left.split(" ")[4];
    const fstype = right.split(" ")[0];
    if (point === undefined || fstype === undefined) continue;
    mounts.push({
      point: point.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8))),
      fstype,
    });
  }
  return mounts;
}

/**
 * The mount point of the first cgroup2 filesystem in a mountinfo text.
 * Octal escapes in the mount point (\040 for a space) are decoded.
 */
export function parseCgroup2Mount(mountinfo: string): string | undefined {
  return parseMounts(mountinfo).find((m) => m.fstype === "cgroup2")?.point;
}

/** The cgroup v2 mount of this process's mount namespace. */
export function findCgroup2Mount(mountinfoPath = "/proc/self/mountinfo"): string {
  const mount = parseCgroup2Mount(Deno.readTextFileSync(mountinfoPath));
  if (mount === undefined) {
    throw new NetflowError(
      "Cgroup v2 is not mounted (mount it: mount -t cgroup2 none /sys/fs/cgroup)",
    );
  }
  return mount;
}

const trimmed = (p: string) => p.replace(/\/+$/, "") || "/";
const inside = (dir: string, root: string) =>
  dir === root || dir.startsWith(root === "/" ? "/" : `${root}/`);

/** The filesystem type of the mount that holds `path` (the longest mount point above it). */
function fstypeOf(path: string, mounts: MountEntry[]): string | undefined {
  let best: MountEntry | undefined;
  for (const m of mounts) {
    const point = trimmed(m.point);
    if (inside(path, point) && (best === undefined || point.length >= trimmed(best.point).length)) {
      best = m;
    }
  }
  return best?.fstype;
}

function isDirectory(path: string): boolean | undefined {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return undefined;
  }
}

/**
 * The absolute directory to watch for a cgroup path (already normalized by
 * cgroupPath: no `..`): the mount itself by default; a path inside the mount
 * as given; a relative path, or an absolute one that is not a directory
 * outside the mount, under the mount ("/system.slice" ->
 * "<mount>/system.slice"). A directory outside the v2 mount is a usage error
 * that says what it is (cgroup v1, or not a cgroup at all); a cgroup that does
 * not exist is a runtime error.
 */
export function resolveCgroupDir(mount: string, arg?: string, mountinfo?: string): string {
  const root = trimmed(mount);
  if (arg === undefined || arg === "" || arg === "/" || arg === ".") return root;
  let path: string;
  if (!arg.startsWith("/")) {
    path = trimmed(`${root}/${arg}`);
  } else if (inside(trimmed(arg), root)) {
    path = trimmed(arg);
  } else if (isDirectory(`${root}${trimmed(arg)}`) || !isDirectory(arg)) {
    path = `${root}${trimmed(arg)}`; // a cgroup path, as events show it
  } else {
    // A directory of the filesystem, outside the v2 mount.
    const mounts = parseMounts(mountinfo ?? Deno.readTextFileSync("/proc/self/mountinfo"));
    const v1 = fstypeOf(trimmed(arg), mounts) === "cgroup";
    throw new UsageError(
      v1
        ? `Cgroup "${arg}" is on cgroup v1; netflow watches cgroup v2 only (its mount here is "${root}")`
        : `"${arg}" is not a cgroup: give a path under the cgroup v2 mount "${root}", or relative to it`,
    );
  }
  const directory = isDirectory(path);
  if (directory === undefined) {
    throw new NetflowError(`Cannot attach to cgroup "${path}": no such directory`);
  }
  if (!directory) {
    throw new NetflowError(`Cannot attach to cgroup "${path}": not a directory`);
  }
  return path;
}

/** A cgroup directory's path relative to the mount, as the events show it ("/a/b"). */
export function relativeCgroupPath(mount: string, dir: string): string {
  const root = mount.replace(/\/+$/, "");
  if (dir === root) return "/";
  return dir.startsWith(`${root}/`) ? dir.slice(root.length) : dir;
}
