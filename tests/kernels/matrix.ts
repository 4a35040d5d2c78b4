/**
 * The kernel matrix: boots each Debian kernel under QEMU (tests/kernels/run.sh:
 * fetch.sh, boot.sh, guest_check.py) and reads the flow check's result.
 *
 * By hand, as root (`./task kernels` runs it; kernels: 5.10 6.1 6.12 7.x, all
 * by default, and `host`: this machine's kernel without a VM), one VM at a
 * time, then a table:
 *
 *   deno run -A tests/kernels/matrix.ts [KERNEL...]
 *
 * Results stay in .kernel-results/KERNEL/ of this checkout (result.json, the events,
 * the console). tests/e2e/kernels_test.ts holds what each kernel must pass.
 *
 * @module
 */

const ROOT = new URL("../../", import.meta.url).pathname;

/** The kernels of the matrix (fetch.sh's names) and who runs them. */
export const KERNELS = {
  "5.10": "Debian 11 bullseye",
  "6.1": "Debian 12 bookworm",
  "6.12": "Debian 13 trixie",
  "7.x": "newest: trixie-backports or sid",
} as const;
export type Kernel = keyof typeof KERNELS;

/** What the flow check measures (guest_check.py's FEATURES). */
export const FEATURES = [
  "begin_end",
  "bytes",
  "owners",
  "holders",
  "dns",
  "lifecycle",
  "filters",
  "returns_1",
  "sigkill",
  "two_instances",
] as const;
export type Feature = typeof FEATURES[number];

/** guest_check.py's result, plus what the host saw of the VM. */
export interface KernelResult {
  kernel: Kernel | "host";
  /** The guest's `uname -r`; null when the VM never ran the check. */
  release: string | null;
  started: boolean;
  /** netflow's last stderr line when it did not start. */
  start_error: string | null;
  /** netflow's stderr lines besides the ready line and the summary (features that are off). */
  notes: string[];
  features: Record<Feature, { pass: boolean; reason: string }>;
  /** With a refusal: the last lines of `netflow --verbose` (libbpf's and the verifier's log). */
  verbose_tail?: string[];
  /** With a refusal: the lines of that log that say why (libbpf's failures, the verifier's last words). */
  refused_by?: string[];
  /** Something broke in the harness or the check itself (not a netflow failure). */
  error?: string;
  /** Wall-clock seconds: the whole run (fetch, boot, check) and the check's own phases. */
  seconds: { total: number; ready?: number; flows?: number; check?: number };
  dir: string;
}

/** Why the matrix cannot run here, or undefined when it can. */
export function missingPrerequisite(): string | undefined {
  if (Deno.uid() !== 0) return "the kernel matrix needs root";
  for (const tool of ["qemu-system-x86_64", "busybox", "apt-get", "dpkg-deb", "dnsmasq", "xz"]) {
    const found = new Deno.Command("sh", { args: ["-c", `command -v ${tool}`], stdout: "null" })
      .outputSync().success;
    if (!found) return `the kernel matrix needs ${tool} (scripts/setup.sh installs it)`;
  }
  return undefined;
}

/**
 * Fetches, boots and checks one kernel; never throws for what happens in the VM.
 * "host": the same check on this machine's kernel, without a VM
 * (host_check.sh, under the whole-host tests' lock).
 */
export async function runKernel(kernel: Kernel | "host"): Promise<KernelResult> {
  // In this checkout, not under .tools (worktrees share that): two checkouts running the
  // matrix at once (one VM at a time) must not read each other's results.
  const dir = `${ROOT}.kernel-results/${kernel}`;
  const t0 = performance.now();
  await Deno.mkdir(dir, { recursive: true });
  await Deno.remove(`${dir}/result.json`).catch(() => {});
  const [cmd, args] = kernel === "host"
    ? ["flock", [
      "/tmp/netflow-ok.lock",
      `${ROOT}tests/kernels/host_check.sh`,
      `${dir}/result.json`,
    ]]
    : [`${ROOT}tests/kernels/run.sh`, [kernel, dir]];
  const once = () =>
    new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped", stdin: "null" }).output();
  let run = await once();
  const guestConsole = () => Deno.readTextFile(`${dir}/console.log`).catch(() => "");
  if (run.code === 125 && !(await guestConsole()).includes("init: running the command")) {
    // The guest ended before its init started the check (boot.sh: no status, and the console
    // never got to the command): a boot that failed under TCG (a 7.x guest panicked in an
    // interrupt at 1.9 s, once, 23:25), not netflow, which had not run. A guest that dies
    // while the check runs is not retried. One more boot; the first console is kept.
    await Deno.rename(`${dir}/console.log`, `${dir}/console.first-boot.log`).catch(() => {});
    console.error(`${kernel}: the guest ended before the check ran; booting it once more`);
    run = await once();
  }
  const total = Math.round((performance.now() - t0) / 100) / 10;
  const said = new TextDecoder().decode(run.stderr).trim();
  let parsed: Omit<KernelResult, "kernel" | "dir" | "release"> & { kernel?: string };
  try {
    parsed = JSON.parse(await Deno.readTextFile(`${dir}/result.json`));
  } catch {
    const console = await guestConsole();
    const tail = console.replaceAll("\r", "").trim().split("\n").slice(-8);
    return {
      kernel,
      release: null,
      started: false,
      start_error: null,
      notes: [],
      features: Object.fromEntries(
        FEATURES.map((f) => [f, { pass: false, reason: "the check did not run" }]),
      ) as KernelResult["features"],
      error: `exit ${run.code}: ${said.split("\n").slice(-3).join(" | ")}; console: ${
        tail.join(" | ")
      }`,
      seconds: { total },
      dir,
    };
  }
  return {
    ...parsed,
    kernel,
    release: parsed.kernel ?? null,
    seconds: { ...parsed.seconds, total },
    dir,
  };
}

/** The matrix as a table: one row per kernel, then what netflow said. */
export function table(results: KernelResult[]): string {
  const head = ["kernel", "release", "started", ...FEATURES, "seconds"];
  const rows = results.map((r) => [
    r.kernel,
    r.release ?? "-",
    r.error ? "error" : r.started ? "yes" : "no",
    ...FEATURES.map((f) => r.features[f].pass ? "pass" : "FAIL"),
    String(r.seconds.total),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  const out = [line(head), ...rows.map(line), ""];
  for (const r of results) {
    const said = r.error ? [`harness: ${r.error}`] : [
      ...(r.started ? [] : [r.start_error ?? "no ready line"]),
      ...r.notes.filter((n) => n !== r.start_error),
      ...(r.refused_by ?? []).map((l) => `  --verbose: ${l}`),
    ];
    const failed = FEATURES.filter((f) => !r.features[f].pass && r.started)
      .map((f) => `${f}: ${r.features[f].reason}`);
    if (said.length + failed.length === 0) continue;
    out.push(`${r.kernel} (${r.release ?? "?"}):`, ...[...said, ...failed].map((s) => `  ${s}`));
  }
  return out.join("\n");
}

if (import.meta.main) {
  const asked = Deno.args.length > 0 ? Deno.args : Object.keys(KERNELS);
  const unknown = asked.filter((k) => !(k in KERNELS) && k !== "host");
  if (unknown.length > 0) {
    console.error(
      `kernels: no kernel "${unknown[0]}" (one of ${Object.keys(KERNELS).join(", ")}, host)`,
    );
    Deno.exit(2);
  }
  const missing = missingPrerequisite();
  if (missing) {
    console.error(`kernels: ${missing}`);
    Deno.exit(1);
  }
  const results: KernelResult[] = [];
  for (const kernel of asked as (Kernel | "host")[]) {
    console.error(
      `kernels: ${kernel} (${kernel === "host" ? "this machine" : KERNELS[kernel]}) ...`,
    );
    results.push(await runKernel(kernel));
  }
  console.log(table(results));
  console.log(`\nresults in ${ROOT}.kernel-results/`);
  Deno.exit(results.some((r) => r.error) ? 1 : 0);
}
