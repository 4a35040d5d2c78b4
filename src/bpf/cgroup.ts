/**
 * Finding the cgroup v2 mount and the directory to attach to.
 *
 * @module
 */
import { NetflowError, UsageError } from "../errors.ts";
import { cString, libbpf } from "../ffi/libbpf.ts";

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

const NOT_MOUNTED = "Cgroup v2 is not mounted (mount it: mount -t cgroup2 none /sys/fs/cgroup)";

/** The cgroup v2 mount of this process's mount namespace. */
export function findCgroup2Mount(mountinfoPath = "/proc/self/mountinfo"): string {
  const mount = parseCgroup2Mount(Deno.readTextFileSync(mountinfoPath));
  if (mount === undefined) throw new NetflowError(NOT_MOUNTED);
  return mount;
}

/**
 * The id of a cgroup v2 hierarchy's root: a cgroup's id is the inode number
 * of its directory, and the kernel gives the root id 1. A mount whose root
 * has another id shows a subtree: the root of a cgroup namespace (a container
 * runtime mounts cgroup2 inside the container's), or a bind mount of a child.
 */
export const ROOT_CGROUP_ID = 1;
/** PID_NS_INIT_INO (linux/nsfs.h): the inode of the initial pid namespace, fixed by the kernel. */
export const INIT_PID_NS_INO = 0xeffffffc;

/** Where the host's cgroup v2 root is, and what netflow cannot see from here. */
export interface HostCgroupRoot {
  /**
   * The directory of the host's cgroup v2 root: this mount namespace's cgroup2
   * mount when its root is the hierarchy's; else the host's mount as a host
   * process sees it (`/proc/1/root/sys/fs/cgroup`; through another process
   * when pid 1 cannot be read, kept open as `/proc/self/fd/N` since that
   * process may exit); else, when no host process is visible, the local mount.
   */
  mount: string;
  /** Whether `mount` is the hierarchy's root (false only in the last case above). */
  whole: boolean;
  /** One line (`netflow: ...`) for what netflow cannot see from here, or none. */
  notes: string[];
}

function inodeOf(path: string): number | null {
  try {
    return Deno.statSync(path).ino;
  } catch {
    return null;
  }
}

/** A host process's cgroup2 mount whose root is the hierarchy's, as a path through its root. */
function viaProcess(proc: string, pid: string): string | undefined {
  let mountinfo: string;
  try {
    mountinfo = Deno.readTextFileSync(`${proc}/${pid}/mountinfo`);
  } catch {
    return undefined; // gone, a kernel thread without one, or not ours to read
  }
  for (const m of parseMounts(mountinfo)) {
    if (m.fstype !== "cgroup2") continue;
    const dir = `${proc}/${pid}/root${trimmed(m.point) === "/" ? "" : trimmed(m.point)}`;
    if (inodeOf(dir) === ROOT_CGROUP_ID) return dir;
  }
  return undefined;
}

/** Directory fds opened by findHostCgroupRoot, by path: kept for the life of the process. */
const held = new Map<string, string>();

function holdOpen(dir: string): string {
  const known = held.get(dir);
  if (known !== undefined && inodeOf(known) === ROOT_CGROUP_ID) return known;
  const O_RDONLY = 0, O_DIRECTORY = 0o200000, O_CLOEXEC = 0o2000000;
  const fd = libbpf().open(cString(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return dir; // it went meanwhile: the path is still the best there is
  const path = `/proc/self/fd/${fd}`;
  held.set(dir, path);
  return path;
}

/**
 * The host's cgroup v2 root, also from inside a container. A container with
 * its own cgroup namespace (Docker's and Kubernetes' default on cgroup v2)
 * mounts cgroup2 with its own cgroup as the root: attaching there would watch
 * only the container. So the local mount is taken only when its root is the
 * hierarchy's (id 1: a host, a bind mount of the host's /sys/fs/cgroup).
 * Otherwise the host's is reached through a host process's root directory
 * (`/proc/PID/root` + its cgroup2 mount point, with the host's pid namespace):
 * pid 1 first, then, should pid 1 not be readable, the others in order, one per
 * mount namespace. No mount is made and no namespace entered; the paths under
 * it are the host's, so cgroups are named as the host names them.
 *
 * With a pid namespace of its own netflow sees no host process: it then
 * watches the local mount (the container's cgroups only) and says so in one
 * line, which also says that pids are the host's (the kernel's are the initial
 * pid namespace's), not those of this namespace's /proc. With the host's root
 * found, a pid namespace of its own still takes that line.
 *
 * @param proc where procfs is mounted (tests give a made-up tree).
 * @throws {NetflowError} no cgroup2 mount anywhere netflow can see.
 */
export function findHostCgroupRoot(proc = "/proc"): HostCgroupRoot {
  const local = parseCgroup2Mount(Deno.readTextFileSync(`${proc}/self/mountinfo`));
  const pidNs = inodeOf(`${proc}/self/ns/pid`);
  const ownPids = pidNs !== null && pidNs !== INIT_PID_NS_INO;
  const pidNote = "pids are the host's, not this namespace's; holders of accepted " +
    "connections are found only among the processes visible here, and flows open at start only " +
    "in their network namespaces";
  const notes = ownPids ? [`netflow: in a pid namespace of its own: ${pidNote}`] : [];
  if (local !== undefined && inodeOf(local) === ROOT_CGROUP_ID) {
    return { mount: local, whole: true, notes };
  }
  const dir = viaProcess(proc, "1") ?? otherProcesses(proc);
  if (dir !== undefined) {
    return { mount: dir.startsWith(`${proc}/1/`) ? dir : holdOpen(dir), whole: true, notes };
  }
  if (local === undefined) throw new NetflowError(NOT_MOUNTED);
  const [why, fix] = ownPids
    ? [
      `in a pid namespace of its own, no host process is visible (${pidNote})`,
      "give netflow the host's pid namespace",
    ]
    : [
      "no host process's root can be read (that needs CAP_SYS_PTRACE)",
      "grant CAP_SYS_PTRACE",
    ];
  return {
    mount: local,
    whole: false,
    notes: [
      `netflow: ${local} is cgroup ${inodeOf(local)}, not the host's root, and ${why}: ` +
      `watching only the cgroups under it (${fix}, or mount the host's cgroup2 root, to watch the whole host)`,
    ],
  };
}

/** The first process other than pid 1 that shows the hierarchy's root, one per mount namespace. */
function otherProcesses(proc: string): string | undefined {
  let pids: string[];
  try {
    pids = [...Deno.readDirSync(proc)].map((e) => e.name).filter((n) =>
      /^\d+$/.test(n) && n !== "1"
    );
  } catch {
    return undefined;
  }
  const tried = new Set<number>([inodeOf(`${proc}/self/ns/mnt`) ?? -1]);
  for (const pid of pids.sort((a, b) => Number(a) - Number(b))) {
    const mnt = inodeOf(`${proc}/${pid}/ns/mnt`);
    if (mnt === null || tried.has(mnt)) continue;
    tried.add(mnt);
    const dir = viaProcess(proc, pid);
    if (dir !== undefined) return dir;
  }
  return undefined;
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
    const fstype = fstypeOf(trimmed(arg), mounts);
    throw new UsageError(
      fstype === "cgroup"
        ? `Cgroup "${arg}" is on cgroup v1; netflow watches cgroup v2 only (its mount here is "${root}")`
        : fstype === "cgroup2"
        ? `Cgroup "${arg}" is in this container's cgroup2 mount, not the host's: give the cgroup as the host names it (as events show it), under "${root}"`
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
