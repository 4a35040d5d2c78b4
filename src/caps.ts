/**
 * The capabilities netflow needs, measured by running it under
 * `setpriv --inh-caps --ambient-caps --bounding-set` with exactly this set (an
 * e2e test does so, and with each one left out): CAP_BPF to load programs
 * and make maps, CAP_NET_ADMIN for cgroup_skb programs and their attachment,
 * CAP_PERFMON because the verifier allows pointer arithmetic on packet data
 * only with it (without it: EACCES, "pointer arithmetic with it prohibited
 * for !root"). CAP_SYS_ADMIN alone also does. Add any new need here: the
 * hint, `--help` and the README say this list (a test holds them to it).
 *
 * @module
 */

/** What netflow needs, in the order the hint names them. */
export const REQUIRED_CAPABILITIES = ["CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON"] as const;

/** capability(7) numbers. */
const BITS: Record<string, bigint> = {
  CAP_NET_ADMIN: 12n,
  CAP_SYS_ADMIN: 21n,
  CAP_PERFMON: 38n,
  CAP_BPF: 39n,
};

function list(names: readonly string[]): string {
  return names.length <= 1
    ? names.join("")
    : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

/** "run as root or grant CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON" */
export const PRIVILEGE_HINT = `run as root or grant ${list(REQUIRED_CAPABILITIES)}`;

/**
 * The required capabilities missing from the effective set of a
 * /proc/PID/status text; none when CAP_SYS_ADMIN is there, or when the text
 * has no CapEff line (then the kernel decides).
 */
export function missingCapabilities(status: string): string[] {
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (hex === undefined) return [];
  const caps = BigInt(`0x${hex}`);
  const has = (name: string) => (caps >> BITS[name]! & 1n) === 1n;
  if (has("CAP_SYS_ADMIN")) return [];
  return REQUIRED_CAPABILITIES.filter((c) => !has(c));
}

/** The one line for missing capabilities, naming them. */
export function missingCapabilitiesMessage(missing: readonly string[]): string {
  return `Cannot load BPF programs: permission denied, ${
    list(missing)
  } missing (${PRIVILEGE_HINT})`;
}
