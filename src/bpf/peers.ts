/**
 * Other sock_ops programs that run on the sockets netflow watches.
 *
 * `bpf_sock_ops_cb_flags_set` replaces a socket's callback flags, so a
 * sock_ops program that runs after netflow's (attached later to the same
 * cgroup, or to an ancestor) can turn netflow's state callbacks off. The
 * kernel side turns them on again whenever netflow's program runs for such a
 * socket (NF_CNT_CALLBACKS_RESTORED), but a program that turns every callback
 * off leaves nothing to run: then only the open-flow sweeps find that the
 * socket is gone. The monitor sweeps while this says another program shares
 * the cgroup's effective sock_ops list (the one query is cheap; sweeps over
 * 100,000 flows are not, so they are not run when no one else is there).
 *
 * @module
 */
import { check, libbpf } from "../ffi/libbpf.ts";
import { CgroupFd } from "../ffi/objects.ts";

/** enum bpf_attach_type BPF_CGROUP_SOCK_OPS, and BPF_F_QUERY_EFFECTIVE. */
const BPF_CGROUP_SOCK_OPS = 3;
const BPF_F_QUERY_EFFECTIVE = 1;

/**
 * Whether a sock_ops program other than netflow's runs for the sockets of the
 * cgroup netflow attached to. When the kernel cannot be asked, the answer is
 * yes (sweeping is the safe side).
 */
export function sharesSockOps(cgroupDir: string): boolean {
  try {
    return effectiveSockOps(cgroupDir) > 1;
  } catch {
    return true;
  }
}

/** How many sock_ops programs run for the sockets of a cgroup (its own and its ancestors'). */
export function effectiveSockOps(cgroupDir: string): number {
  using cgroup = new CgroupFd(cgroupDir);
  const count = new Uint32Array(1);
  check(
    `Query the sock_ops programs of cgroup "${cgroupDir}"`,
    libbpf().bpf_prog_query(
      cgroup.fd,
      BPF_CGROUP_SOCK_OPS,
      BPF_F_QUERY_EFFECTIVE,
      null,
      null,
      count,
    ),
  );
  return count[0]!;
}
