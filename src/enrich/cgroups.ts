/**
 * Cgroup ids to paths. A cgroup v2 id is the inode number of its directory,
 * so a walk of the watched subtree maps every id there to its path. Ids not
 * yet known trigger a rescan, at most once per second.
 *
 * @module
 */
import { relativeCgroupPath } from "../bpf/cgroup.ts";
import { containerIdFromCgroup } from "./container.ts";

export interface CgroupInfo {
  /** Path under the cgroup v2 root ("/" for the root itself). */
  path: string;
  containerId: string | null;
}

const RESCAN_MS = 1000;
const MAX_ENTRIES = 65_536;

export class CgroupPaths {
  readonly #mount: string;
  readonly #watched: string;
  readonly #byId = new Map<number, CgroupInfo>();
  #lastScan = -Infinity;

  /** `mount`: the cgroup v2 mount; `watched`: the directory netflow attached to. */
  constructor(mount: string, watched: string) {
    this.#mount = mount;
    this.#watched = watched;
  }

  /** The path of a cgroup id, or `{ path: "", containerId: null }` once it has gone. */
  lookup(id: number): CgroupInfo {
    let info = this.#byId.get(id);
    if (info) return info;
    if (performance.now() - this.#lastScan >= RESCAN_MS) {
      this.#scan();
      info = this.#byId.get(id);
    }
    return info ?? { path: "", containerId: null };
  }

  /** Every cgroup id of the watched subtree now (a fresh walk). */
  ids(): number[] {
    this.#scan();
    return [...this.#byId.keys()];
  }

  #scan(): void {
    this.#lastScan = performance.now();
    if (this.#byId.size > MAX_ENTRIES) this.#byId.clear();
    const walk = (dir: string) => {
      let ino: number | null;
      try {
        ino = Deno.statSync(dir).ino;
      } catch {
        return; // removed while we walked
      }
      if (ino !== null) {
        const path = relativeCgroupPath(this.#mount, dir);
        this.#byId.set(ino, { path, containerId: containerIdFromCgroup(path) });
      }
      try {
        for (const entry of Deno.readDirSync(dir)) {
          if (entry.isDirectory) walk(`${dir}/${entry.name}`);
        }
      } catch { /* removed while we walked */ }
    };
    walk(this.#watched);
  }
}
