import assert from "node:assert/strict";
import { type FlowEndEvent, formatTime } from "../../src/flow/events.ts";
import { formatJson } from "../../src/output/json.ts";
import { sanitize } from "../../src/output/sanitize.ts";
import { formatTable, tableHeader } from "../../src/output/table.ts";

const end: FlowEndEvent = {
  time: "2026-11-23T12:34:56.123456Z",
  event: "net_flow_tcp_end",
  flow_id: "a-1",
  conn_direction: "outgoing",
  src: "10.0.0.1",
  dst: "2001:db8::2",
  src_port: 40000,
  dst_port: 443,
  src_dns: [],
  dst_dns: ["evil\x1b[31m.test\x07", "a\u202eb.test"],
  pid: 12,
  comm: "cu\nrl",
  uid: 0,
  cgroup_id: 1,
  cgroup: "/",
  container_id: null,
  netns: 4026531840,
  preexisting: false,
  closed_by: "local",
  reason: "fin",
  duration_ms: 12.5,
  bytes_sent: 123456,
  bytes_received: 10,
  packets_sent: 3,
  packets_received: 4,
  rtt_us: 50,
  retransmits: 0,
};

Deno.test("formatTime gives RFC 3339 UTC with microseconds", () => {
  assert.equal(formatTime(1_700_000_000_123_456), "2023-11-14T22:13:20.123456Z");
  assert.equal(formatTime(1_700_000_000_000_009), "2023-11-14T22:13:20.000009Z");
  assert.equal(formatTime(1_700_000_001_999_999), "2023-11-14T22:13:21.999999Z");
  assert.equal(formatTime(1_700_000_000_123_456), "2023-11-14T22:13:20.123456Z"); // back again
});

Deno.test("sanitize strips escape sequences, control and bidi characters", () => {
  assert.equal(sanitize("a\x1b[2J\x1b]0;title\x07b\x00c\x7f\x9b\u202ed"), "abcd");
  assert.equal(sanitize("www.example.test"), "www.example.test");
});

Deno.test("formatTable writes one aligned, sanitized line per event", () => {
  const line = formatTable(end);
  // deno-lint-ignore no-control-regex -- asserting there are none
  assert.ok(!/[\x00-\x1f\x7f-\x9f\u202e]/.test(line));
  assert.equal(line.split("\n").length, 1);
  assert.match(
    line,
    /^12:34:56.123456 end +out +10\.0\.0\.1:40000 +\[2001:db8::2\]:443 +12 +curl +12\.5ms +120\.6K +10 +L:fin +- > evil\.test,ab\.test$/,
  );
  assert.equal(tableHeader().indexOf("EVENT"), line.indexOf("end"));
});

Deno.test("formatJson writes exactly what JSON.stringify writes", () => {
  const {
    closed_by: _c,
    reason: _r,
    duration_ms: _d,
    bytes_sent: _bs,
    bytes_received: _br,
    ...rest
  } = end;
  const { packets_sent: _ps, packets_received: _pr, rtt_us: _rt, retransmits: _rx, ...common } =
    rest;
  const begin = { ...common, event: "net_flow_tcp_begin" as const };
  const odd = {
    ...end,
    comm: null,
    pid: null,
    uid: null,
    duration_ms: null,
    container_id: "f".repeat(64),
  };
  for (
    const e of [end, begin, odd, { ...end, src_dns: ["a.test", "\u2028\x00"], cgroup: '/we"ird\\' }]
  ) {
    assert.equal(formatJson(e), JSON.stringify(e));
    const id = "1:LQU9qZlK+B5F3KDmev6m5PMibrg=";
    assert.equal(formatJson(e, id), JSON.stringify({ ...e, community_id: id }));
  }
});

Deno.test("formatJson keeps any name valid JSON on one line", () => {
  const text = formatJson({ ...end, dst_dns: ['\ud800x\n"\\'] });
  assert.equal(text.split("\n").length, 1);
  assert.deepEqual(JSON.parse(text).dst_dns, ['\ud800x\n"\\']);
  assert.match(text, /\\ud800x\\n/);
});
