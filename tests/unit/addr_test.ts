import assert from "node:assert/strict";
import { formatIPv4, formatIPv6 } from "../../src/bpf/addr.ts";

function v6(hex: string): Uint8Array {
  return new Uint8Array(hex.match(/../g)!.map((b) => parseInt(b, 16)));
}

Deno.test("formatIPv6 follows RFC 5952", () => {
  const cases: [string, string][] = [
    ["20010db8000000000000000000000001", "2001:db8::1"],
    ["00000000000000000000000000000001", "::1"],
    ["00000000000000000000000000000000", "::"],
    ["20010db8000000010000000000000001", "2001:db8:0:1::1"], // longest run
    ["20010db8000000000001000000000001", "2001:db8::1:0:0:1"], // first of equal runs
    ["20010db8000100010001000100010001", "2001:db8:1:1:1:1:1:1"], // one zero group is not compressed
    ["20010db8000000010001000100010001", "2001:db8:0:1:1:1:1:1"],
    ["fe80000000000000abcdef0123456789", "fe80::abcd:ef01:2345:6789"],
  ];
  for (const [hex, text] of cases) assert.equal(formatIPv6(v6(hex)), text);
});

Deno.test("formatIPv6 shows IPv4-mapped addresses as IPv4", () => {
  assert.equal(formatIPv6(v6("00000000000000000000ffffc0000201")), "192.0.2.1");
  assert.equal(formatIPv4(new Uint8Array([0, 127, 0, 0, 1]), 1), "127.0.0.1");
});
