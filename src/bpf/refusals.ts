/**
 * Why netflow cannot load or attach, in one line each: capabilities missing,
 * a load the kernel refused (the verifier log in `detail`), a kernel without
 * BTF, a cgroup that cannot be opened or attached to.
 *
 * @module
 */
import { missingCapabilities, missingCapabilitiesMessage } from "../caps.ts";
import { NetflowError, PRIVILEGE_HINT } from "../errors.ts";
import { LibbpfError, strerror, verboseLogOn } from "../ffi/libbpf.ts";
import { type BpfLink, type BpfObject, CgroupFd } from "../ffi/objects.ts";
import { kernelRelease, optional, PROGRAM_NEEDS, refusal, sectionOf } from "./features.ts";

/** The user's one line for a refused load; the verifier log goes in `detail` (--verbose). */
export function explainLoadFailure(
  err: LibbpfError,
  hasBtf: () => boolean = kernelHasBtf,
): NetflowError {
  // libbpf finds no kernel BTF to relocate against: ESRCH, before any program.
  if (err.errno === 3 && !hasBtf()) {
    return new NetflowError(
      `This kernel (${kernelRelease()}) has no BTF (${KERNEL_BTF} is missing), which ` +
        `netflow's programs are relocated against: a kernel built with ` +
        `CONFIG_DEBUG_INFO_BTF=y, or in a container that path mounted from the host`,
      { cause: err, ...(err.detail ? { detail: err.detail } : {}) },
    );
  }
  // The verifier refuses with EACCES (or EINVAL) and writes a load log; a
  // missing capability is EPERM with no log.
  const verifier = /BEGIN PROG LOAD LOG|processed \d+ insns/.test(err.detail ?? "");
  const denied = !verifier && (err.errno === 1 || err.errno === 13);
  const refused = refusal(err.detail ?? "");
  const what = refused === null || optional(refused.program) ||
      !PROGRAM_NEEDS.some((n) => n.program === refused.program)
    ? `The kernel refused netflow's BPF programs: ${strerror(err.errno)} (errno ${err.errno})`
    : `This kernel (${kernelRelease()}) refused netflow's ${sectionOf(refused.program)} ` +
      `program, without which it cannot report flows` +
      (refused.reason ? `: ${refused.reason}` : "");
  return new NetflowError(
    denied ? `Cannot load BPF programs: permission denied (${PRIVILEGE_HINT})` : `${what} ` +
      (verboseLogOn()
        ? "(the verifier log is above)"
        : "(run with --verbose for the verifier log)"),
    { cause: err, ...(err.detail ? { detail: err.detail } : {}) },
  );
}

const KERNEL_BTF = "/sys/kernel/btf/vmlinux";

function kernelHasBtf(): boolean {
  try {
    Deno.statSync(KERNEL_BTF);
    return true;
  } catch {
    return false;
  }
}

export function openCgroup(dir: string): CgroupFd {
  try {
    return new CgroupFd(dir);
  } catch (err) {
    const reason = err instanceof LibbpfError ? err.message.replace(/^.*failed: /, "") : err;
    throw new NetflowError(`Cannot open cgroup "${dir}": ${reason}`, { cause: err });
  }
}

export function attachOrExplain(
  obj: BpfObject,
  program: string,
  cgroup: CgroupFd,
  dir: string,
): BpfLink {
  try {
    return obj.attachCgroup(program, cgroup);
  } catch (err) {
    if (!(err instanceof LibbpfError)) throw err;
    const why = err.errno === 1 || err.errno === 13
      ? `permission denied (${PRIVILEGE_HINT}; an exclusive legacy attachment also refuses links)`
      : err.message.replace(/^.*failed: /, "");
    throw new NetflowError(`Cannot attach to cgroup "${dir}": ${why}`, { cause: err });
  }
}

export function checkPrivileges(): void {
  let status = "";
  try {
    status = Deno.readTextFileSync("/proc/self/status");
  } catch { /* not Linux /proc: the kernel will say */ }
  const missing = missingCapabilities(status);
  if (missing.length > 0) throw new NetflowError(missingCapabilitiesMessage(missing));
}
