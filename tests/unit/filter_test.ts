import assert from "node:assert/strict";
import { parseCli } from "../../src/args.ts";
import { UsageError } from "../../src/errors.ts";
import type { FlowBeginEvent, FlowEndEvent, FlowFilter } from "../../src/events.ts";
import { checkFilter, compileFilter } from "../../src/flow/filter.ts";
import { kernelFilter } from "../../src/bpf/kernel_filter.ts";
import { cidrValue, inCidr, parseIP } from "../../src/bpf/addr.ts";
import { beginEvent, endEvent, packetEvent } from "../helpers/events.ts";

const SIDES = { src: "10.1.2.3", dst: "192.0.2.10" };

function begin(over: Partial<FlowBeginEvent> = {}): FlowBeginEvent {
  return beginEvent({ ...SIDES, pid: 100, ...over });
}

function end(over: Partial<FlowEndEvent> = {}): FlowEndEvent {
  const ones = {
    bytes_sent: 1,
    bytes_received: 1,
    packets_sent: 1,
    packets_received: 1,
    rtt_us: 1,
  };
  return endEvent({ ...SIDES, pid: 100, ...ones, ...over });
}

const packet = packetEvent(SIDES);

const pass = (filter: FlowFilter) => compileFilter(checkFilter(filter))!;

Deno.test("an empty filter keeps everything (no predicate at all)", () => {
  assert.equal(compileFilter({}), undefined);
  assert.equal(compileFilter(checkFilter({ port: [], pid: [] })), undefined);
});

Deno.test("--port matches either side's port, and values of one kind are ORed", () => {
  assert.ok(pass({ port: [443] })(begin()));
  assert.ok(pass({ port: [40000] })(begin()));
  assert.ok(!pass({ port: [80] })(begin()));
  assert.ok(pass({ port: [80, 443] })(begin()));
  assert.ok(pass({ port: [443] })(packet));
});

Deno.test("kinds are ANDed: port and pid must both match", () => {
  const f = pass({ port: [443], pid: [100, 200] });
  assert.ok(f(begin()));
  assert.ok(!f(begin({ pid: 300 })));
  assert.ok(!f(begin({ dst_port: 80 })));
});

Deno.test("--pid and --comm never match an unknown owner", () => {
  assert.ok(!pass({ pid: [100] })(begin({ pid: null })));
  assert.ok(!pass({ comm: ["curl"] })(begin({ comm: null })));
  assert.ok(pass({ comm: ["curl", "wget"] })(begin()));
  assert.ok(!pass({ comm: ["cur"] })(begin()));
});

Deno.test("--net is the remote address, whichever side it is on", () => {
  const f = pass({ net: ["192.0.2.0/24"] });
  assert.ok(f(begin())); // outgoing: dst is remote
  assert.ok(!f(begin({ conn_direction: "incoming" }))); // src 10.1.2.3 is remote
  assert.ok(pass({ net: ["10.0.0.0/8"] })(begin({ conn_direction: "incoming" })));
  // An end closed by the remote side has the remote as src.
  assert.ok(f(end({ closed_by: "remote", src: "192.0.2.10", dst: "10.1.2.3" })));
  assert.ok(!f(end({ closed_by: "local", src: "192.0.2.10", dst: "10.1.2.3" })));
  assert.ok(pass({ net: ["192.0.2.10"] })(begin()));
  assert.ok(!pass({ net: ["192.0.2.11"] })(begin()));
  assert.ok(!pass({ net: ["::/0"] })(begin()));
  assert.ok(pass({ net: ["0.0.0.0/0"] })(begin()));
});

Deno.test("CIDR prefixes that do not end on a byte boundary", () => {
  const addr = (t: string) => parseIP(t)!;
  assert.ok(inCidr(cidrValue("n", "198.18.0.0/15"), addr("198.19.255.1")));
  assert.ok(!inCidr(cidrValue("n", "198.18.0.0/15"), addr("198.20.0.1")));
  assert.ok(inCidr(cidrValue("n", "fd00:6e66::/33"), addr("fd00:6e66:7fff::2")));
  assert.ok(!inCidr(cidrValue("n", "fd00:6e66::/33"), addr("fd00:6e66:8000::2")));
  assert.ok(inCidr(cidrValue("n", "10.0.0.1/31"), addr("10.0.0.0")));
  // IPv4-mapped IPv6 blocks are IPv4 blocks.
  assert.deepEqual(cidrValue("n", "::ffff:10.0.0.0/104"), cidrValue("n", "10.0.0.0/8"));
  assert.ok(inCidr(cidrValue("n", "::ffff:10.0.0.0/104"), addr("10.9.9.9")));
});

Deno.test("-4/-6 and --direction; a packet event has no direction to match", () => {
  assert.ok(pass({ family: [4] })(begin()));
  assert.ok(!pass({ family: [6] })(begin()));
  assert.ok(pass({ family: [6] })(begin({ src: "fd00::1", dst: "fd00::2" })));
  assert.ok(pass({ family: [4, 6] })(begin({ src: "fd00::1", dst: "fd00::2" })));
  assert.ok(pass({ direction: ["outgoing"] })(begin()));
  assert.ok(!pass({ direction: ["incoming"] })(begin()));
  assert.ok(!pass({ direction: ["outgoing"] })(packet));
});

Deno.test("--container matches an id or its prefix", () => {
  const id = "4f1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9";
  assert.ok(pass({ container: ["4f1b2c3d4e5f"] })(begin({ container_id: id })));
  assert.ok(pass({ container: [id.toUpperCase()] })(begin({ container_id: id })));
  assert.ok(!pass({ container: ["aaaa"] })(begin({ container_id: id })));
  assert.ok(!pass({ container: ["4f1b"] })(begin()));
  assert.ok(!pass({ container: ["4f1b"] })(packet));
});

Deno.test("malformed filter values are one line each, from the library and the command line", () => {
  const cases: [FlowFilter, string][] = [
    [{ port: [0] }, "filter.port takes a port from 1 to 65535, not 0"],
    [{ pid: [-1] }, "filter.pid takes a process id (a whole number from 1), not -1"],
    [
      { net: ["10.0.0.0/40"] },
      'filter.net takes an address or CIDR block (10.0.0.0/8, fd00::/8), not "10.0.0.0/40"',
    ],
    [{ family: [5 as 4] }, "filter.family takes 4 or 6, not 5"],
  ];
  for (const [filter, message] of cases) {
    assert.throws(
      () => checkFilter(filter),
      (e: unknown) => e instanceof UsageError && e.message === message,
    );
  }
  const cli: [string[], string][] = [
    [["--port", "http"], '--port takes a port from 1 to 65535, not "http"'],
    [
      ["--net", "10.0.0.0/8/1"],
      '--net takes an address or CIDR block (10.0.0.0/8, fd00::/8), not "10.0.0.0/8/1"',
    ],
    [
      ["--net", "300.0.0.1"],
      '--net takes an address or CIDR block (10.0.0.0/8, fd00::/8), not "300.0.0.1"',
    ],
    [["--direction", "in"], '--direction takes incoming or outgoing, not "in"'],
    [
      ["--comm", "a-name-of-16-chr"],
      '--comm takes a process name of 1 to 15 characters (as ps -o comm shows it), not "a-name-of-16-chr"',
    ],
    [
      ["--container", "xyz"],
      '--container takes a container id or its prefix (4 to 64 hex digits), not "xyz"',
    ],
  ];
  for (const [argv, message] of cli) {
    assert.throws(
      () => parseCli(argv),
      (e: unknown) => e instanceof UsageError && e.message === message,
      argv.join(" "),
    );
  }
});

Deno.test("the command line builds one filter from repeated options", () => {
  const o = parseCli([
    "--port",
    "443",
    "--port",
    "80",
    "-4",
    "--net",
    "10.0.0.0/8",
    "--comm",
    "curl",
  ]);
  assert.deepEqual(o.monitor.filter, {
    pid: [],
    comm: ["curl"],
    port: [443, 80],
    container: [],
    net: ["10.0.0.0/8"],
    direction: [],
    family: [4],
  });
  assert.equal(parseCli([]).monitor.filter, undefined);
});

Deno.test("the kernel's part: ports, nets as 16 bytes, family and direction bits; too many values stay in TypeScript", () => {
  assert.deepEqual(kernelFilter(undefined), { families: 0, directions: 0, ports: [], nets: [] });
  const k = kernelFilter(checkFilter({
    port: [443, 443, 80],
    net: ["10.0.0.0/8", "fd00::/8"],
    family: [6],
    direction: ["incoming"],
    pid: [1],
    comm: ["x"],
  }));
  assert.deepEqual(k.ports, [443, 80]);
  assert.equal(k.families, 2);
  assert.equal(k.directions, 2);
  assert.deepEqual(k.nets.map((n) => [[...n.bytes], n.prefix]), [
    [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 10, 0, 0, 0], 104],
    [[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8],
  ]);
  const many = Array.from({ length: 9 }, (_, i) => 1000 + i);
  assert.deepEqual(kernelFilter({ port: many }).ports, []);
  assert.equal(kernelFilter({ net: many.map((p) => `10.0.0.${p % 250}`) }).nets.length, 0);
  assert.equal(kernelFilter({ family: [4, 6], direction: ["incoming", "outgoing"] }).families, 3);
});
