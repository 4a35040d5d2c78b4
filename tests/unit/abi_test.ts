import assert from "node:assert/strict";
import { ABI_ENUMS, DNS_KEY_SIZE, NF_SIZE } from "../../src/bpf/abi.ts";
import { KERNEL_NETS, KERNEL_PORTS } from "../../src/bpf/kernel_filter.ts";
import { btfDump, btfEnum, btfStruct } from "../helpers/btf.ts";

/** What abi.ts says an enum holds, named as the kernel names its enumerators. */
function expected(prefix: string, values: Readonly<Record<string, number>>) {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [`${prefix}${k}`, v]));
}

Deno.test("every enum of bpf/netflow.h is in the object's BTF as src/bpf/abi.ts says", async () => {
  const dump = await btfDump();
  for (const [name, { prefix, values }] of Object.entries(ABI_ENUMS)) {
    assert.deepEqual(btfEnum(dump, name), expected(prefix, values), `enum ${name}`);
  }
  // No enum of netflow.h is left out of ABI_ENUMS (nf_abi names them all).
  const named = Object.keys(btfStruct(dump, "nf_abi").fields).length;
  assert.equal(Object.keys(ABI_ENUMS).length, named, "struct nf_abi and ABI_ENUMS");
});

Deno.test("the DNS query key and the kernel filters' sizes match the object", async () => {
  const dump = await btfDump();
  assert.equal(btfStruct(dump, "dns_key").size, DNS_KEY_SIZE, "sizeof(struct dns_key)");
  assert.deepEqual([KERNEL_PORTS, KERNEL_NETS], [NF_SIZE.FILTER_PORTS, NF_SIZE.FILTER_NETS]);
});
