import assert from "node:assert/strict";
import {
  NF_HAS_OPS_CURRENT,
  NF_HAS_OPS_MPTCP,
  NF_HAS_SKB_NETNS_COOKIE,
  offLine,
  optional,
  probeKernel,
  PROGRAM_NEEDS,
  refusal,
} from "../../src/bpf/features.ts";
import { BPF_NAMES } from "../../src/bpf/loader.ts";
import { explainLoadFailure } from "../../src/bpf/refusals.ts";
import { LibbpfError } from "../../src/ffi/libbpf.ts";
import { NetflowError } from "../../src/errors.ts";

/** A kernel whose programs of type `progType` lack the helpers in `missing[progType]`. */
function kernel(missing: Record<number, number[]>) {
  const asked: string[] = [];
  const probe = (type: number, _attach: number, helper: number) => {
    asked.push(`${type}:${helper}`);
    return !(missing[type] ?? []).includes(helper);
  };
  return { probe, asked };
}

Deno.test("every program in the object has its needs listed, and only sock_ops is required", () => {
  const names = [...Object.values(BPF_NAMES.programs), ...Object.values(BPF_NAMES.iterators)];
  assert.deepEqual(PROGRAM_NEEDS.map((n) => n.program).sort(), [...names].sort());
  assert.deepEqual(names.filter((n) => !optional(n)), ["netflow_sockops"]);
});

Deno.test("a kernel with every helper leaves nothing out and sets every kernel_has bit", () => {
  const { probe, asked } = kernel({});
  const f = probeKernel(probe);
  assert.deepEqual([...f.skip], []);
  assert.equal(f.kernelHas, NF_HAS_OPS_CURRENT | NF_HAS_OPS_MPTCP | NF_HAS_SKB_NETNS_COOKIE);
  assert.ok(asked.includes("13:15"), "sock_ops' bpf_get_current_uid_gid is asked about");
  assert.ok(asked.includes("8:122"), "cgroup_skb's bpf_get_netns_cookie is asked about");
});

Deno.test("6.12's sock_ops without uid_gid/comm: nothing left out, stamps from connect hooks", () => {
  const f = probeKernel(kernel({ 13: [15, 16], 8: [122] }).probe);
  assert.deepEqual([...f.skip], []);
  assert.equal(f.kernelHas, NF_HAS_OPS_MPTCP);
});

Deno.test("no bpf_loop in cgroup_skb: both skb programs are left out, each with one line", () => {
  const f = probeKernel(kernel({ 8: [181] }).probe);
  assert.deepEqual([...f.skip.keys()], ["netflow_ingress", "netflow_egress"]);
  const line = offLine("netflow_ingress", f.skip.get("netflow_ingress")!);
  assert.match(line, /^netflow: this kernel \(.+\) has no bpf_loop in cgroup_skb programs/);
  assert.match(line, /Linux 5\.17\+/);
  assert.match(line, /: DNS names are off/);
  assert.doesNotMatch(line, /errno|\n/);
});

Deno.test("no ring buffer in sock_ops: a refusal naming the helper and the release that has it", () => {
  assert.throws(
    () => probeKernel(kernel({ 13: [131] }).probe),
    (err: unknown) =>
      err instanceof NetflowError &&
      /^Cannot report flows: this kernel \(.+\) has no bpf_ringbuf_reserve in sock_ops programs \(bpf_ringbuf_reserve is Linux 5\.8\+\)/
        .test(err.message) &&
      !err.message.includes("errno"),
  );
});

Deno.test("refusal() reads the refused program and the verifier's last word from libbpf's log", () => {
  const log = [
    "libbpf: prog 'netflow_holders': BPF program load failed: Permission denied",
    "libbpf: prog 'netflow_holders': -- BEGIN PROG LOAD LOG --",
    "51: (85) call bpf_get_socket_cookie#46",
    "R1 type=untrusted_ptr_ expected=sock_common, sock",
    "processed 144 insns (limit 1000000) max_states_per_insn 1",
    "-- END PROG LOAD LOG --",
    "libbpf: prog 'netflow_holders': failed to load: -13",
    "libbpf: failed to load object 'x'",
  ].join("\n");
  assert.deepEqual(refusal(log), {
    program: "netflow_holders",
    reason: "R1 type=untrusted_ptr_ expected=sock_common, sock",
  });
  assert.equal(refusal("libbpf: failed to load object 'x'"), null);
});

Deno.test("a helper the kernel predates is named, with the release that added it", () => {
  const log =
    "invalid func unknown#162\nprocessed 20 insns\nlibbpf: prog 'netflow_holders': failed to load: -22";
  assert.equal(refusal(log)?.reason, "it has no bpf_sock_from_file, Linux 5.11+");
  const other = "unknown func bpf_get_socket_cookie#46\nprocessed 9 insns\n" +
    "libbpf: prog 'netflow_snapshot': failed to load: -22";
  assert.equal(
    refusal(other)?.reason,
    "bpf_get_socket_cookie is not available to this program type",
  );
});

Deno.test("a probe the kernel does not answer sets no flag and leaves no program out", () => {
  const f = probeKernel(() => null);
  assert.deepEqual([...f.skip], []);
  assert.equal(f.kernelHas, 0);
});

Deno.test("a kernel without BTF is named in one line, never as errno 3", () => {
  const err = new LibbpfError("Load BPF programs", 3, "libbpf: failed to find valid kernel BTF");
  const said = explainLoadFailure(err, () => false).message;
  assert.match(said, /^This kernel \(.+\) has no BTF \(\/sys\/kernel\/btf\/vmlinux is missing\)/);
  assert.doesNotMatch(said, /errno|\n/);
  // With BTF present, errno 3 is something else, and says so as before.
  assert.match(explainLoadFailure(err, () => true).message, /No such process \(errno 3\)/);
});
