import assert from "node:assert/strict";
import { OPTIONS, parseCli, USAGE } from "../../src/args.ts";
import { parseArgv, repeatable, single } from "../../src/argv.ts";
import { UsageError } from "../../src/errors.ts";
import { FlowMonitor } from "../../src/monitor.ts";
import { ringSize } from "../../src/options.ts";
import { checkMonitorOptions } from "../../src/monitor_options.ts";
import { BAD } from "../helpers/bad_args.ts";
import { StdoutSink } from "../../src/output/stdout.ts";
import type { NetflowEvent } from "../../src/events.ts";

Deno.test("parseCli defaults to the table format and begin/end events", () => {
  const o = parseCli([]);
  assert.equal(o.format, "table");
  assert.deepEqual(o.events, ["net_flow_tcp_begin", "net_flow_tcp_end"]);
  assert.deepEqual(o.monitor.events, ["net_flow_tcp_begin", "net_flow_tcp_end"]);
  assert.equal(o.monitor.reader, "mmap");
  assert.equal(o.count, undefined);
  assert.equal(o.durationMs, undefined);
});

Deno.test("parseCli reads every option, in each spelling", () => {
  const o = parseCli([
    "--format",
    "json",
    "-c/a/./b/../c/",
    "--events=end, packet",
    "-e",
    "net_flow_tcp_end,begin",
    "--max-flows",
    "10",
    "--dns-max-entries=5",
    "--dns-grace",
    "0",
    "--ring-size",
    "64KiB",
    "--reader",
    "callback",
    "-n",
    "3",
    "--duration",
    "1.5",
    "-vV",
  ]);
  assert.deepEqual(o.monitor, {
    reader: "callback",
    cgroup: "/a/c",
    events: ["net_flow_tcp_end", "net_packet_tcp", "net_flow_tcp_begin"],
    maxFlows: 10,
    ringBytes: 65536,
    dns: { maxEntries: 5, graceMs: 0 },
  });
  assert.equal(o.format, "json");
  assert.equal(o.count, 3);
  assert.equal(o.durationMs, 1500);
  assert.equal(o.verbose, true);
  assert.equal(o.version, true);
});

Deno.test("ring sizes take K, M and G with or without B or iB", () => {
  for (
    const [text, bytes] of [
      ["4096", 4096],
      ["4K", 4096],
      ["16M", 16 << 20],
      ["16MB", 16 << 20],
      [
        "16MiB",
        16 << 20,
      ],
      ["16m", 16 << 20],
      ["1G", 1 << 30],
      ["1GiB", 1 << 30],
      ["8192B", 8192],
    ] as const
  ) {
    assert.equal(ringSize("--ring-size", text), bytes, text);
  }
});

Deno.test("parseCli refuses each bad argument with one line that names it", () => {
  for (const [args, message] of BAD) {
    assert.throws(
      () => parseCli(args),
      (e: unknown) => e instanceof UsageError && e.message === message,
      `${args.join(" ")}: expected ${message}`,
    );
  }
});

Deno.test("the parser takes negative numbers as values and ends options at --", () => {
  const table = {
    n: single({ metavar: "N", help: "", parse: (t) => Number(t) }),
    list: repeatable({ short: "l", metavar: "X", help: "", parse: (t) => t }),
  };
  assert.deepEqual(parseArgv(["--n", "-3", "-l", "a", "-lb", "--list=-"], table), {
    n: -3,
    list: ["a", "b", "-"],
  });
  assert.deepEqual(parseArgv(["--"], table), { n: undefined, list: [] });
});

Deno.test("usage lists every option of the table", () => {
  for (const name of Object.keys(OPTIONS)) assert.match(USAGE, new RegExp(`--${name}\\b`));
  assert.match(USAGE, /CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON/);
});

/** Each bad library option and the line it throws: the command line's words. */
const BAD_LIBRARY: [Record<string, unknown>, string][] = [
  [{ maxFlows: 0 }, "maxFlows takes a whole number of at least 1, not 0"],
  [{ maxFlows: -1 }, "maxFlows takes a whole number of at least 1, not -1"],
  [{ maxFlows: 1.5 }, "maxFlows takes a whole number of at least 1, not 1.5"],
  [
    { ringBytes: 3000 },
    "ringBytes takes a power of two from 4K to 1G bytes (K, M, G suffixes; B or iB optional), not 3000",
  ],
  [{ dns: { maxEntries: -5 } }, "dns.maxEntries takes a whole number of at least 1, not -5"],
  [{ dns: { graceMs: -1 } }, "dns.graceMs takes a whole number of at least 0, not -1"],
  [{ reader: "bogus" }, 'reader takes mmap or callback, not "bogus"'],
  [{ events: [] }, "events needs at least one event name"],
  [
    { events: ["nope"] },
    'Unknown event "nope" in events (known: begin, end, update, fail, packet, or the full names net_flow_tcp_begin, net_flow_tcp_end, net_flow_tcp_update, net_flow_tcp_fail, net_packet_tcp)',
  ],
  [{ cgroup: "" }, "cgroup needs a non-empty value (omit it to watch the whole host)"],
  [{ cgroup: " " }, "cgroup needs a non-empty value (omit it to watch the whole host)"],
  [{ cgroup: "../x" }, 'cgroup "../x" leads above the cgroup v2 root'],
  [
    { updateIntervalMs: 1000 },
    "updateIntervalMs needs net_flow_tcp_update in events (without it no update is made)",
  ],
  [
    { events: ["begin", "end"], updateIntervalMs: 1000 },
    "updateIntervalMs needs net_flow_tcp_update in events (without it no update is made)",
  ],
  [
    { dnsRingBytes: 1000 },
    "dnsRingBytes takes a power of two from 4K to 1G bytes (K, M, G suffixes; B or iB optional), not 1000",
  ],
];

Deno.test("FlowMonitor refuses bad options with the command line's words, before loading", () => {
  for (const [options, message] of BAD_LIBRARY) {
    assert.throws(
      () => new FlowMonitor(options as never),
      (e: unknown) => e instanceof UsageError && e.message === message,
      `${JSON.stringify(options)}: expected ${message}`,
    );
  }
});

Deno.test("the library normalizes what it accepts like the command line", () => {
  assert.deepEqual(
    checkMonitorOptions({
      cgroup: "a//b/./",
      events: ["end", "net_flow_tcp_end"] as never,
      ringBytes: 4096,
    }),
    { cgroup: "a/b", events: ["net_flow_tcp_end"], ringBytes: 4096 },
  );
});

Deno.test("parseCli takes every output format and repeated --ipfix collectors", () => {
  for (const format of ["table", "json", "ecs", "tracee", "none"]) {
    assert.equal(parseCli(["--format", format]).format, format);
  }
  const o = parseCli([
    "--format",
    "none",
    "--ipfix",
    "udp://127.0.0.1:4739",
    "--ipfix",
    "tcp://[::1]:4739",
  ]);
  assert.deepEqual(o.ipfix.map((u) => [u.scheme, u.host, u.port]), [
    ["udp", "127.0.0.1", 4739],
    ["tcp", "::1", 4739],
  ]);
  assert.deepEqual(parseCli([]).ipfix, []);
  assert.throws(
    () => parseCli(["--ipfix", "sctp://h:1"]),
    (e: unknown) => e instanceof UsageError && /unknown scheme "sctp"/.test(e.message),
  );
});

Deno.test("options that would do nothing are refused or made to work: --update-interval, --events with --ipfix, --dns-ring-size", () => {
  // --update-interval with neither update on stdout nor a collector: refused, one line.
  assert.throws(
    () => parseCli(["--update-interval", "5"]),
    (e: unknown) =>
      e instanceof UsageError &&
      e.message ===
        "--update-interval needs update in --events or an --ipfix collector (it would do nothing)",
  );
  assert.throws(() => parseCli(["--events", "begin,end", "--update-interval", "5"]), UsageError);
  // With update in --events: updates on stdout, at that interval.
  const shown = parseCli(["--events", "begin,update", "--update-interval", "5"]);
  assert.deepEqual(shown.events, ["net_flow_tcp_begin", "net_flow_tcp_update"]);
  assert.deepEqual(shown.monitor.events, ["net_flow_tcp_begin", "net_flow_tcp_update"]);
  assert.equal(shown.monitor.updateIntervalMs, 5000);
  // With --ipfix: the monitor makes updates for the collector, stdout shows what --events says.
  const exported = parseCli(["--ipfix", "udp://127.0.0.1:4739", "--update-interval", "5"]);
  assert.deepEqual(exported.events, ["net_flow_tcp_begin", "net_flow_tcp_end"]);
  assert.deepEqual(exported.monitor.events, [
    "net_flow_tcp_begin",
    "net_flow_tcp_end",
    "net_flow_tcp_update",
  ]);
  assert.equal(exported.monitor.updateIntervalMs, 5000);
  // --events begin --ipfix: the collector still gets every end.
  const begins = parseCli(["--events", "begin", "--ipfix", "udp://127.0.0.1:4739"]);
  assert.deepEqual(begins.events, ["net_flow_tcp_begin"]);
  assert.deepEqual(begins.monitor.events, ["net_flow_tcp_begin", "net_flow_tcp_end"]);
  // Without --ipfix, nothing more than asked is made.
  assert.deepEqual(parseCli(["--events", "begin"]).monitor.events, ["net_flow_tcp_begin"]);
  // What the exporters take: ends, and updates only when asked for (not flow metrics' own).
  assert.deepEqual(exported.exported, ["net_flow_tcp_end", "net_flow_tcp_update"]);
  assert.deepEqual(begins.exported, ["net_flow_tcp_end"]);
  const withMetrics = parseCli(["--metrics", "0", "--ipfix", "udp://127.0.0.1:4739"]);
  assert.ok(withMetrics.monitor.events?.includes("net_flow_tcp_update"));
  assert.deepEqual(withMetrics.exported, ["net_flow_tcp_end"]);
  // DNS's ring has its own size.
  const rings = parseCli(["--ring-size", "64K", "--dns-ring-size", "8K"]).monitor;
  assert.deepEqual([rings.ringBytes, rings.dnsRingBytes], [65536, 8192]);
  assert.throws(
    () => parseCli(["--dns-ring-size", "3000"]),
    (e: unknown) =>
      e instanceof UsageError && /^--dns-ring-size takes a power of two/.test(e.message),
  );
  // The DNS cache's byte budget.
  assert.equal(parseCli(["--dns-cache-bytes", "1M"]).monitor.dns?.maxBytes, 1 << 20);
  assert.throws(
    () => parseCli(["--dns-cache-bytes", "1K"]),
    (e: unknown) =>
      e instanceof UsageError &&
      e.message ===
        '--dns-cache-bytes takes a number of bytes of at least 65536 (K, M, G suffixes; B or iB optional), not "1K"',
  );
  // The library: updateIntervalMs with update in events is taken.
  assert.deepEqual(
    checkMonitorOptions({ events: ["update"] as never, updateIntervalMs: 500 }),
    { events: ["net_flow_tcp_update"], updateIntervalMs: 500 },
  );
});

Deno.test("stdout shows only the events asked for; the rest of the batch is for the exporters", () => {
  let written = "";
  const sink = new StdoutSink(
    { line: (e) => e.event },
    (bytes) => {
      written += new TextDecoder().decode(bytes);
      return true;
    },
    new Set(["net_flow_tcp_begin"]),
  );
  const batch = ["net_flow_tcp_begin", "net_flow_tcp_end", "net_flow_tcp_update"].map((event) =>
    ({ event }) as unknown as NetflowEvent
  );
  assert.equal(sink.write(batch), true);
  assert.equal(written, "net_flow_tcp_begin\n");
});
