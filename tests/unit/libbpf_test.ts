import assert from "node:assert/strict";
import {
  missingCapabilities,
  missingCapabilitiesMessage,
  REQUIRED_CAPABILITIES,
} from "../../src/caps.ts";
import { check, checkPointer, LibbpfError } from "../../src/ffi/libbpf.ts";
import { BpfObject } from "../../src/ffi/objects.ts";

Deno.test("check passes results through and turns -errno into a LibbpfError", () => {
  assert.equal(check("Anything", 7), 7);
  assert.throws(() => check("Attach netflow_ingress", -13), (err: unknown) => {
    assert.ok(err instanceof LibbpfError);
    assert.equal(err.errno, 13);
    assert.equal(err.op, "Attach netflow_ingress");
    assert.equal(
      err.message,
      "Attach netflow_ingress failed: Permission denied (errno 13) (run as root or grant CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON)",
    );
    return true;
  });
  assert.throws(
    () => check("Resize map", -22),
    /^LibbpfError: Resize map failed: Invalid argument \(errno 22\)$/,
  );
});

Deno.test("checkPointer reads errno for a NULL result", () => {
  // Opening bytes that are not ELF fails with NULL and an errno set by libbpf.
  assert.throws(() => new BpfObject(new Uint8Array(64)), (err: unknown) => {
    assert.ok(err instanceof LibbpfError);
    assert.equal(err.op, "Open BPF object");
    assert.ok(err.errno > 0);
    return true;
  });
  const p = Deno.UnsafePointer.create(1n);
  assert.equal(checkPointer("x", p), p);
});

Deno.test("missingCapabilities names what is missing; CAP_SYS_ADMIN alone does", () => {
  const caps = (bits: number[]) =>
    `Name:\tdeno\nCapEff:\t${
      bits.reduce((a, b) => a | (1n << BigInt(b)), 0n).toString(16).padStart(16, "0")
    }\n`;
  assert.deepEqual(missingCapabilities(caps([21])), []);
  assert.deepEqual(missingCapabilities(caps([39, 12, 38])), []);
  assert.deepEqual(missingCapabilities(caps([39, 12])), ["CAP_PERFMON"]);
  assert.deepEqual(missingCapabilities(caps([])), [...REQUIRED_CAPABILITIES]);
  assert.deepEqual(missingCapabilities("Name:\tx\n"), []); // cannot tell: the kernel decides
  assert.equal(
    missingCapabilitiesMessage(["CAP_PERFMON"]),
    "Cannot load BPF programs: permission denied, CAP_PERFMON missing (run as root or grant CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON)",
  );
});
