/**
 * The closer named by a release record or an end stamped at close, with the
 * cgroup that record names (the closing process's), as one object per pair:
 * the decoder's owners are shared per process and carry no cgroup, and a copy
 * per record would be one allocation per flow.
 *
 * @module
 */
import type { FlowRecord, SocketOwner } from "../bpf/records.ts";

export class OwnerCgroups {
  /** The last owner-with-cgroup made for each owner (a process's cgroup seldom changes). */
  readonly #made = new WeakMap<SocketOwner, SocketOwner>();

  /** `r`'s owner (set) with `r`'s cgroup, when the record names one. */
  closer(r: FlowRecord): SocketOwner {
    const owner = r.owner!;
    if (r.cgroupId === 0 || owner.cgroupId === r.cgroupId) return owner;
    const made = this.#made.get(owner);
    if (made?.cgroupId === r.cgroupId) return made;
    const fresh = { ...owner, cgroupId: r.cgroupId };
    this.#made.set(owner, fresh);
    return fresh;
  }
}
