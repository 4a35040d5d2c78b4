import assert from "node:assert/strict";
import { formatTime } from "../../src/events.ts";
import { endEvent } from "../helpers/events.ts";
import { formatJson } from "../../src/output/json.ts";
import { sanitize } from "../../src/output/sanitize.ts";
import { bytes, duration, TableWriter, zoneOffset } from "../../src/output/table.ts";

const end = endEvent({
  time: "2026-11-23T12:34:56.123456Z",
  flow_id: "a-1",
  dst: "2001:db8::2",
  dst_dns: ["evil\x1b[31m.test\x07", "a\u202eb.test"],
  pid: 12,
  comm: "cu\nrl",
  duration_ms: 12.5,
  bytes_sent: 123456,
  bytes_received: 10,
  packets_sent: 3,
  packets_received: 4,
  rtt_us: 50,
});

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

/** A begin, an end, an update-like and a packet event of one flow, and an IPv6 flow with long names. */
function flows() {
  const {
    closed_by: _c,
    reason: _r,
    duration_ms: _d,
    bytes_sent: _bs,
    bytes_received: _br,
    packets_sent: _ps,
    packets_received: _pr,
    rtt_us: _rt,
    retransmits: _rx,
    ...rest
  } = end;
  const begin = {
    ...rest,
    event: "net_flow_tcp_begin" as const,
    // A begin's src is the side that sent the SYN: here the local side.
    src: "10.0.0.1",
    src_port: 40000,
    dst: "10.0.0.2",
    dst_port: 443,
    src_dns: [],
    dst_dns: ["a-rather-long-service-name.eu-west-1.internal.example.test"],
  };
  // The end's src is the side that closed: the remote side.
  const closed = {
    ...end,
    src: "10.0.0.2",
    src_port: 443,
    dst: "10.0.0.1",
    dst_port: 40000,
    src_dns: begin.dst_dns,
    dst_dns: [],
    closed_by: "remote" as const,
    reason: "rst" as const,
    duration_ms: 3_600_000,
    bytes_sent: 123456,
  };
  const v6 = {
    ...begin,
    conn_direction: "incoming" as const,
    src: "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff",
    src_port: 65535,
    dst: "2001:db8::1",
    dst_port: 22,
    src_dns: ["x".repeat(200)],
    dst_dns: [],
  };
  const packet = {
    time: end.time,
    event: "net_packet_tcp" as const,
    direction: "ingress" as const,
    src: "10.0.0.2",
    dst: "10.0.0.1",
    src_port: 443,
    dst_port: 40000,
    flags: "FIN|ACK",
    cgroup_id: 1,
    pid: 12,
    comm: "curl",
  };
  const future = { ...begin, event: "net_flow_tcp_update", duration_ms: 1.5 };
  return { begin, closed, v6, packet, future };
}

Deno.test("table rows keep LOCAL and REMOTE per flow, whatever the src/dst orientation", () => {
  const t = new TableWriter({ utc: true });
  const { begin, closed, packet, future } = flows();
  for (const e of [begin, closed, packet, future]) {
    const cells = t.row(e).split(/ +/);
    assert.equal(cells[3], "10.0.0.1:40000", e.event);
    assert.equal(cells[4], "10.0.0.2:443", e.event);
  }
  assert.match(
    t.row(closed),
    / end +out +10\.0\.0\.1:40000 +10\.0\.0\.2:443 +12 curl +3600s +121K +10 remote rst +a-rather-long-service-name\.eu-w…$/,
  );
  assert.match(t.row(packet), / packet rx +10\.0\.0\.1:40000 +10\.0\.0\.2:443 +12 curl +FIN\|ACK$/);
  assert.match(t.row(future), / update out .* 1\.50ms /);
  // A failed incoming attempt: the peer sent the SYN (src), this host refused it.
  const fail = {
    ...begin,
    event: "net_flow_tcp_fail",
    conn_direction: "incoming",
    src: "10.0.0.2",
    src_port: 443,
    dst: "10.0.0.1",
    dst_port: 40000,
    reason: "refused",
    duration_ms: 0.05,
    pid: null,
    comm: null,
  };
  assert.match(t.row(fail), / fail +in +10\.0\.0\.1:40000 +10\.0\.0\.2:443 +- - +50µs +refused/);
});

Deno.test("table columns line up for IPv4 and IPv6 rows with long names", () => {
  for (const wide of [false, true]) {
    const t = new TableWriter({ utc: true, wide });
    const { begin, closed, v6, packet } = flows();
    const header = t.header();
    const lines = [begin, closed, v6, packet].map((e) => t.row(e));
    // Every column starts where its title starts (right-aligned ones end where it ends).
    const titles = [...header.matchAll(/\S+/g)];
    for (const line of lines) {
      // deno-lint-ignore no-control-regex -- asserting there are none
      assert.ok(!/[\x00-\x1f\x7f-\x9f\u202e]/.test(line));
      for (const title of titles.slice(0, 5)) {
        const at = title.index!;
        assert.ok((at === 0 || line[at - 1] === " ") && line[at] !== " ", `${title[0]} in ${line}`);
      }
    }
    const names = header.indexOf("REMOTE_NAMES");
    assert.ok(lines.every((l) => l.length <= (wide ? Infinity : names + 32)));
    if (!wide) {
      assert.match(lines[2]!, / \[2001:db8:aaaa:bb…\]:65535 /);
      assert.match(lines[2]!, / x{31}…$/);
    } else {
      assert.ok(lines[2]!.includes("[2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff]:65535"));
      assert.ok(lines[2]!.endsWith("x".repeat(200)));
      assert.match(header, / UID +RTT RETRANS CGROUP +REMOTE_NAMES$/);
      assert.match(lines[1]!, / 0 +50µs +0 \/ +a-rather/);
    }
  }
});

Deno.test("table times are local with the offset in the header, or UTC, with an optional date", () => {
  const { begin } = flows();
  const local = new TableWriter();
  assert.ok(local.header().startsWith(`TIME(${zoneOffset(new Date())})`));
  const d = new Date(Date.parse(begin.time));
  const hh = String(d.getHours()).padStart(2, "0");
  assert.ok(local.row(begin).startsWith(`${hh}:`));
  assert.ok(new TableWriter({ utc: true }).row(begin).startsWith("12:34:56.123456 begin"));
  const dated = new TableWriter({ utc: true, date: true });
  assert.ok(dated.header().startsWith("TIME(UTC)                  EVENT"));
  assert.ok(dated.row(begin).startsWith("2026-11-23 12:34:56.123456 begin"));
  assert.equal(zoneOffset({ getTimezoneOffset: () => -330 } as Date), "+05:30");
  assert.equal(zoneOffset({ getTimezoneOffset: () => 300 } as Date), "-05:00");
});

Deno.test("durations read in µs, ms or s and bytes with K, M, G", () => {
  assert.deepEqual(
    [0.0123, 0.5, 9.876, 12.5, 999.9, 1500, 3_600_000].map(duration),
    ["12µs", "500µs", "9.88ms", "12.5ms", "999.9ms", "1.50s", "3600s"],
  );
  assert.equal(duration(null), "?");
  assert.deepEqual([0, 9999, 10_000, 123456, 5 << 20, 3 * 2 ** 30].map(bytes), [
    "0",
    "9999",
    "9.8K",
    "121K",
    "5.0M",
    "3.0G",
  ]);
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
