/**
 * Finding the cgroup v2 mount and the directory to attach to.
 *
 * @module
 */
import { NetflowError } from "../errors.ts";

/**
 * The mount point of the first cgroup2 filesystem in a mountinfo text
 * (proc(5): fields, then " - ", then the filesystem type). Octal escapes in
 * the mount point (\040 for a space) are decoded.
 */
export function parseCgroup2Mount(mountinfo: string): string | undefined {
  for (const line of mountinfo.split("\n")) {
    const [left, right] = line.split(" - ");
    if (left === undefined || right === undefined) continue;
    if (right.split(" ")[0] !== "cgroup2") continue;
    const mountPoint = left.split(" ")[4];
    if (mountPoint !== undefined) {
      return mountPoint.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
    }
  }
  return undefined;
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

/**
 * The absolute directory for `--cgroup`: the mount itself by default; a path
 * inside the mount as given; anything else is taken relative to the mount
 * ("/system.slice" -> "<mount>/system.slice").
 */
export function resolveCgroupDir(mount: string, arg?: string): string {
  const trimmed = (p: string) => p.replace(/\/+$/, "") || "/";
  if (arg === undefined || arg === "" || arg === "/") return trimmed(mount);
  const root = trimmed(mount);
  const path = arg === root || arg.startsWith(`${root}/`)
    ? trimmed(arg)
    : trimmed(`${root}/${arg.replace(/^\/+/, "")}`);
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch {
    throw new NetflowError(`Cannot attach to cgroup "${path}": no such directory`);
  }
  if (!info.isDirectory) {
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
