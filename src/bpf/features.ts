/**
 * What the running kernel lets netflow's programs do, asked of the kernel at
 * load and never read from a version number: each program's helpers are
 * probed (libbpf loads a tiny program of the same type that calls the
 * helper), and a program the kernel still refuses is left out by the loader
 * (src/bpf/loader.ts). Only `netflow_sockops` is required: without it there
 * are no flows. Every other program adds a feature, and the user is told in
 * one line what is off when it is left out.
 *
 * @module
 */
import { NetflowError } from "../errors.ts";
import { NF_HAS } from "./abi.ts";
import { probeHelper } from "../ffi/syscalls.ts";

/** enum bpf_prog_type values, with the attach type probes use (include/uapi/linux/bpf.h). */
const PROG_TYPE = {
  cgroup_skb: { type: 8, attach: 0 }, // BPF_CGROUP_INET_INGRESS
  cgroup_sock: { type: 9, attach: 2 }, // BPF_CGROUP_INET_SOCK_CREATE
  sock_ops: { type: 13, attach: 0 },
  cgroup_sock_addr: { type: 18, attach: 10 }, // BPF_CGROUP_INET4_CONNECT
} as const;
type ProgType = keyof typeof PROG_TYPE;

/** Bits of nf_config.kernel_has (enum nf_has in bpf/netflow.h). */
export const NF_HAS_OPS_CURRENT = NF_HAS.OPS_CURRENT;
export const NF_HAS_OPS_MPTCP = NF_HAS.OPS_MPTCP;
export const NF_HAS_SKB_NETNS_COOKIE = NF_HAS.SKB_NETNS_COOKIE;

/** A helper netflow calls: its id (enum bpf_func_id) and the release that added it. */
interface Helper {
  id: number;
  name: string;
  since: string;
}

const HELPERS = {
  currentPidTgid: { id: 14, name: "bpf_get_current_pid_tgid", since: "4.2" },
  currentUidGid: { id: 15, name: "bpf_get_current_uid_gid", since: "4.2" },
  currentComm: { id: 16, name: "bpf_get_current_comm", since: "4.2" },
  currentTask: { id: 35, name: "bpf_get_current_task", since: "4.8" },
  socketCookie: { id: 46, name: "bpf_get_socket_cookie", since: "4.12" },
  cbFlagsSet: { id: 59, name: "bpf_sock_ops_cb_flags_set", since: "4.16" },
  skStorageGet: { id: 107, name: "bpf_sk_storage_get", since: "5.2" },
  probeReadKernel: { id: 113, name: "bpf_probe_read_kernel", since: "5.5" },
  ringbufReserve: { id: 131, name: "bpf_ringbuf_reserve", since: "5.8" },
  skcToTcpSock: { id: 137, name: "bpf_skc_to_tcp_sock", since: "5.9" },
  loop: { id: 181, name: "bpf_loop", since: "5.17" },
  skcToMptcpSock: { id: 196, name: "bpf_skc_to_mptcp_sock", since: "5.19" },
  seqWrite: { id: 127, name: "bpf_seq_write", since: "5.7" },
  sockFromFile: { id: 162, name: "bpf_sock_from_file", since: "5.11" },
  setsockopt: { id: 49, name: "bpf_setsockopt", since: "4.13" },
  netnsCookie: { id: 122, name: "bpf_get_netns_cookie", since: "5.7" },
} as const satisfies Record<string, Helper>;

/** One program: what it needs from the kernel, and what is lost without it. */
interface ProgramNeeds {
  program: string;
  /** Its type, when libbpf can probe its helpers (iterators are only known by loading them). */
  type?: ProgType;
  /** Its section, as the user's line names it. */
  section: string;
  helpers: readonly Helper[];
  /** What is off without it; absent for the one program netflow cannot run without. */
  without?: string;
}

/** What an owner stamp calls (bpf/netflow.bpf.c, stamp_current): the leader's comm and the cgroup come through the task. */
const STAMPS: readonly Helper[] = [
  HELPERS.skStorageGet,
  HELPERS.currentPidTgid,
  HELPERS.currentUidGid,
  HELPERS.currentComm,
  HELPERS.currentTask,
  HELPERS.probeReadKernel,
];

/** Every program in bpf/netflow.bpf.c (a test checks the list against the object). */
export const PROGRAM_NEEDS: readonly ProgramNeeds[] = [
  {
    program: "netflow_sockops",
    type: "sock_ops",
    section: "sockops",
    helpers: [
      HELPERS.skStorageGet,
      HELPERS.ringbufReserve,
      HELPERS.skcToTcpSock,
      HELPERS.cbFlagsSet,
      HELPERS.socketCookie,
    ],
  },
  {
    program: "netflow_ingress",
    type: "cgroup_skb",
    section: "cgroup_skb/ingress",
    helpers: [HELPERS.loop, HELPERS.probeReadKernel, HELPERS.ringbufReserve],
    without: "DNS names are off, and failed attempts are seen only from the socket's state",
  },
  {
    program: "netflow_egress",
    type: "cgroup_skb",
    section: "cgroup_skb/egress",
    helpers: [HELPERS.loop, HELPERS.probeReadKernel, HELPERS.ringbufReserve],
    without: "DNS names are off, and failed attempts are seen only from the socket's state",
  },
  {
    program: "netflow_sock_create",
    type: "cgroup_sock",
    section: "cgroup/sock_create",
    helpers: STAMPS,
    without: "a socket's creator is not recorded (owners come from connect and the iterator)",
  },
  {
    program: "netflow_connect4",
    type: "cgroup_sock_addr",
    section: "cgroup/connect4",
    helpers: STAMPS,
    without: "outgoing IPv4 flows name the socket's creator, not the process that connected",
  },
  {
    program: "netflow_connect6",
    type: "cgroup_sock_addr",
    section: "cgroup/connect6",
    helpers: STAMPS,
    without: "outgoing IPv6 flows name the socket's creator, not the process that connected",
  },
  {
    program: "netflow_sock_release",
    type: "cgroup_sock",
    section: "cgroup/sock_release",
    helpers: [...STAMPS, HELPERS.ringbufReserve],
    without: "an end is not named by the process that closed the socket",
  },
  {
    program: "netflow_holders",
    section: "iter/task_file",
    helpers: [],
    without: "accepted sockets are named by their listener's creator, not the process that " +
      "accepted them",
  },
  {
    program: "netflow_snapshot",
    section: "iter/tcp",
    helpers: [],
    without: "connections open before netflow started are not reported",
  },
  {
    program: "netflow_open",
    section: "iter/tcp",
    helpers: [],
    without: "no net_flow_tcp_update, and a flow whose end record was lost is never ended",
  },
];

/** What the probe found: programs to leave out (with why), and settings for the rest. */
export interface KernelFeatures {
  /** Program name -> why it is left out. */
  skip: Map<string, string>;
  /** NF_HAS_* bits for nf_config.kernel_has. */
  kernelHas: number;
}

/**
 * Asks whether programs of a type may call a helper (src/ffi/libbpf.ts's
 * probeHelper): null when the kernel did not say.
 */
export type HelperProbe = (
  progType: number,
  attachType: number,
  helperId: number,
) => boolean | null;

/** The kernel's release, as `uname -r` prints it. */
export function kernelRelease(): string {
  try {
    return Deno.osRelease();
  } catch {
    return "unknown";
  }
}

/**
 * Probes every program's helpers. Throws a NetflowError naming the missing
 * helper and the release that added it when sock_ops (flows) cannot load.
 */
export function probeKernel(probe: HelperProbe = probeHelper): KernelFeatures {
  const release = kernelRelease();
  const has = (type: ProgType, helper: Helper) =>
    probe(PROG_TYPE[type].type, PROG_TYPE[type].attach, helper.id);
  const skip = new Map<string, string>();
  for (const needs of PROGRAM_NEEDS) {
    if (needs.type === undefined) continue;
    // Only a clear no leaves a program out: if the probe could not tell,
    // loading it tells (the loader leaves out what the verifier refuses).
    const missing = needs.helpers.find((h) => has(needs.type!, h) === false);
    if (missing === undefined) continue;
    const why = `this kernel (${release}) has no ${missing.name} in ${needs.type} programs ` +
      `(${missing.name} is Linux ${missing.since}+)`;
    if (needs.without === undefined) {
      throw new NetflowError(
        `Cannot report flows: ${why}; netflow needs it in its ${needs.section} program`,
      );
    }
    skip.set(needs.program, why);
  }
  // A flag is set only on a clear yes: a helper call it guards that the
  // kernel refuses would refuse sock_ops itself.
  const current = STAMPS.every((h) => has("sock_ops", h) === true);
  // Without the helper, cgroup_skb reads the same net_cookie field through CO-RE.
  const kernelHas = (current ? NF_HAS_OPS_CURRENT : 0) |
    (has("sock_ops", HELPERS.skcToMptcpSock) === true ? NF_HAS_OPS_MPTCP : 0) |
    (has("cgroup_skb", HELPERS.netnsCookie) === true ? NF_HAS_SKB_NETNS_COOKIE : 0);
  return { skip, kernelHas };
}

/** The one line a user reads for a program left out: `netflow: <why>: <what is off>`. */
export function offLine(program: string, why: string): string {
  const needs = PROGRAM_NEEDS.find((n) => n.program === program);
  return `netflow: ${why}: ${needs?.without ?? "netflow cannot report flows"}`;
}

/** Whether netflow runs without this program. */
export function optional(program: string): boolean {
  return PROGRAM_NEEDS.some((n) => n.program === program && n.without !== undefined);
}

/** The section name of a program, for the user's line. */
export function sectionOf(program: string): string {
  return PROGRAM_NEEDS.find((n) => n.program === program)?.section ?? program;
}

/**
 * Which program the kernel refused, from libbpf's log
 * (`libbpf: prog 'NAME': failed to load: -13`), and the verifier's reason (its
 * last line before the instruction count), if any.
 */
export function refusal(log: string): { program: string; reason: string } | null {
  const m = /prog '([A-Za-z0-9_]+)': failed to load/.exec(log);
  if (!m) return null;
  const lines = log.split("\n");
  const end = lines.findIndex((l) => /^processed \d+ insns/.test(l));
  let reason = "";
  for (let i = (end < 0 ? lines.length : end) - 1; i >= 0; i--) {
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("libbpf:") || /^-- (BEGIN|END) PROG LOAD LOG/.test(line)) {
      continue;
    }
    reason = line;
    break;
  }
  return { program: m[1]!, reason: helperReason(reason) };
}

/**
 * A verifier line about a helper the program may not call, in words:
 * "invalid func unknown#162" (a kernel that predates the helper) and
 * "unknown func bpf_get_socket_cookie#46" (not for this program type) both
 * become "it has no bpf_...", with the release that added the helper.
 */
function helperReason(line: string): string {
  // libbpf's mark on an instruction whose CO-RE relocation failed (0xbad2310).
  if (/unknown#195896080\b/.test(line)) {
    return "a kernel type or field its program reads is not in this kernel's BTF (CO-RE)";
  }
  const m = /(?:invalid func|unknown func|cannot use helper) (?:unknown|(\w+))#(\d+)/.exec(line);
  if (!m) return line;
  const known = Object.values(HELPERS).find((h) => h.id === Number(m[2]));
  const name = m[1] ?? known?.name ?? `helper #${m[2]}`;
  const since = known && !m[1] ? `, Linux ${known.since}+` : "";
  return m[1] ? `${name} is not available to this program type` : `it has no ${name}${since}`;
}

/** featuresOff's line (none or one) when the start snapshot could not turn on sockets' callbacks. */
export function noCallbacksNote(noCallbacks: number): string[] {
  if (noCallbacks === 0) return [];
  return [
    `netflow: this kernel (${kernelRelease()}) cannot turn on a socket's state callbacks ` +
    `from an iterator (Linux 6.12+): ${noCallbacks} connection(s) open before netflow ` +
    `started will end as unknown, within 10 s of their socket going`,
  ];
}
