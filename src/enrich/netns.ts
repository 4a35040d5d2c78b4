/**
 * Network namespaces by inode, and a path that enters each: the kernel's tcp
 * iterator lists only the sockets of the namespace it is created in, so the
 * start snapshot and the open-flow sweeps run once per namespace.
 *
 * Paths come from /run/netns (named namespaces, which may hold no process)
 * and from one process of each namespace under /proc.
 *
 * @module
 */

/** Rescans at most this often when a namespace is not known. */
const RESCAN_MS = 1000;

export class NetnsPaths {
  #byInode = new Map<number, string>();
  #scannedMs = -Infinity;

  /** Every namespace now (a fresh scan). */
  all(): Map<number, string> {
    this.#scan();
    return new Map(this.#byInode);
  }

  /** Paths of the namespaces `inodes`; those not found (gone) are left out. */
  of(inodes: Iterable<number>): Map<number, string> {
    const out = new Map<number, string>();
    let missing = false;
    for (const ino of inodes) {
      const path = this.#byInode.get(ino);
      if (path !== undefined && inodeOf(path) === ino) out.set(ino, path);
      else missing = true;
    }
    if (missing && performance.now() - this.#scannedMs >= RESCAN_MS) {
      this.#scan();
      for (const ino of inodes) {
        const path = this.#byInode.get(ino);
        if (path !== undefined) out.set(ino, path);
      }
    }
    return out;
  }

  #scan(): void {
    this.#scannedMs = performance.now();
    const found = new Map<number, string>();
    const add = (path: string) => {
      const ino = inodeOf(path);
      if (ino !== null && !found.has(ino)) found.set(ino, path);
    };
    add("/proc/self/ns/net");
    for (const dir of ["/run/netns", "/var/run/netns"]) {
      try {
        for (const e of Deno.readDirSync(dir)) add(`${dir}/${e.name}`);
      } catch { /* no named namespaces */ }
    }
    try {
      for (const e of Deno.readDirSync("/proc")) {
        if (/^\d+$/.test(e.name)) add(`/proc/${e.name}/ns/net`);
      }
    } catch { /* no /proc: only our own */ }
    this.#byInode = found;
  }
}

/** The namespace inode a path refers to, or null (gone, or not readable). */
function inodeOf(path: string): number | null {
  try {
    return Deno.statSync(path).ino;
  } catch {
    return null;
  }
}
