import assert from "node:assert/strict";
import { parseCli } from "../../src/args.ts";
import { UsageError } from "../../src/errors.ts";

Deno.test("parseCli defaults to the table format and begin/end events", () => {
  const o = parseCli([]);
  assert.equal(o.format, "table");
  assert.equal(o.monitor.events, undefined);
  assert.equal(o.monitor.reader, "mmap");
});

Deno.test("parseCli reads every option", () => {
  const o = parseCli([
    "--format",
    "json",
    "--cgroup",
    "/a",
    "--events",
    "net_flow_tcp_end, net_packet_tcp",
    "--max-flows",
    "10",
    "--dns-max-entries",
    "5",
    "--dns-grace",
    "0",
    "--ring-size",
    "64K",
    "--reader",
    "callback",
    "-v",
  ]);
  assert.deepEqual(o.monitor, {
    reader: "callback",
    cgroup: "/a",
    events: ["net_flow_tcp_end", "net_packet_tcp"],
    maxFlows: 10,
    ringBytes: 65536,
    dns: { maxEntries: 5, graceMs: 0 },
  });
  assert.equal(o.verbose, true);
});

Deno.test("parseCli rejects bad values with a UsageError that names them", () => {
  const bad: [string[], RegExp][] = [
    [["--format", "xml"], /Unknown format "xml"/],
    [["--events", "x"], /Unknown event "x"/],
    [["--events", ","], /at least one event/],
    [["--max-flows", "0"], /--max-flows takes a whole number of at least 1, not "0"/],
    [["--max-flows", "1e3"], /not "1e3"/],
    [["--ring-size", "3000"], /power of two/],
    [["--reader", "x"], /Unknown reader/],
    [["--nope"], /nope/],
    [["positional"], /positional/],
  ];
  for (const [args, message] of bad) {
    assert.throws(
      () => parseCli(args),
      (e: unknown) => e instanceof UsageError && message.test(e.message),
      args.join(" "),
    );
  }
});
