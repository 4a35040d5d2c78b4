/**
 * The cgroup and container enricher: `cgroup` (the path under the v2 root)
 * and `container_id` from the event's `cgroup_id`. A cgroup v2 id is the inode number of its directory,
 * so a walk of the watched subtree maps every id there to its path. An id not
 * yet known triggers a rescan at once (a cgroup made a moment ago is found);
 * under churn the rescans are bounded (at most 20 a second, and an id a
 * rescan did not find is not looked for again for a second: its cgroup is
 * gone, since cgroup ids are never reused). Only then is the path "".
 *
 * @module
 */
import { relativeCgroupPath } from "../bpf/cgroup.ts";
import { containerIdFromCgroup } from "./container.ts";
import type { Enriching, Filling } from "./enricher.ts";

export interface CgroupInfo {
  /** Path under the cgroup v2 root ("/" for the root itself). */
  path: string;
  containerId: string | null;
}

/** Rescans allowed per second. */
const MAX_RESCANS = 20;
/** How long an id a rescan did not find is taken as gone before it is looked for again. */
const GONE_MS = 1000;
const MAX_ENTRIES = 65_536;
const GONE: CgroupInfo = Object.freeze({ path: "", containerId: null });

export class CgroupPaths implements Filling {
  readonly #mount: string;
  readonly #watched: string;
  readonly #now: () => number;
  readonly #byId = new Map<number, CgroupInfo>();
  /** Ids a rescan did not find: when they may be looked for again. */
  readonly #gone = new Map<number, number>();
  /** When the recent rescans were made (at most MAX_RESCANS, oldest first). */
  readonly #scans: number[] = [];
  /** Directory walks so far. */
  scans = 0;

  /**
   * `mount`: the cgroup v2 mount; `watched`: the directory netflow attached
   * to; `now`: a clock in ms (injectable for tests).
   */
  constructor(mount: string, watched: string, now: () => number = () => performance.now()) {
    this.#mount = mount;
    this.#watched = watched;
    this.#now = now;
  }

  /** The path of a cgroup id, or `{ path: "", containerId: null }` once it has gone. */
  lookup(id: number): CgroupInfo {
    const info = this.#byId.get(id);
    if (info) return info;
    const now = this.#now();
    if ((this.#gone.get(id) ?? -Infinity) > now) return GONE;
    const recent = this.#scans.length < MAX_RESCANS ? undefined : this.#scans[0]!;
    if (recent !== undefined && now - recent < 1000) return GONE; // over budget: retried next time
    this.#scan();
    const found = this.#byId.get(id);
    if (found) return found;
    if (this.#gone.size > MAX_ENTRIES) this.#gone.clear();
    this.#gone.set(id, now + GONE_MS);
    return GONE;
  }

  /** Fills the event's cgroup path and container id. */
  fill(item: Enriching): void {
    const info = this.lookup(item.event.cgroup_id);
    item.event.cgroup = info.path;
    item.event.container_id = info.containerId;
  }

  /** Every cgroup id of the watched subtree now (a fresh walk). */
  ids(): number[] {
    this.#scan();
    return [...this.#byId.keys()];
  }

  #scan(): void {
    this.scans++;
    this.#scans.push(this.#now());
    if (this.#scans.length > MAX_RESCANS) this.#scans.shift();
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
