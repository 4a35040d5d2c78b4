/**
 * e2e (root): netflow's outputs read by tools that are not netflow's. IPFIX
 * over UDP to nfcapd (decoded by nfdump), IPFIX over TCP decoded by
 * libfixbuf's ipfixDump, with the collector down at start and killed
 * mid-run; Community IDs against tshark's; ECS and Tracee events field by
 * field.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import net from "node:net";
import type { FlowEndEvent, FlowEvent, FlowUpdateEvent } from "../../src/events.ts";
import { formatIPv6, parseIP } from "../../src/bpf/addr.ts";
import { timeUs } from "../../src/events.ts";
import {
  e2eTest,
  LOCAL,
  Proc,
  ROOT,
  sh,
  TestCgroup,
  TestNetns,
  withTimeout,
  workload,
} from "../helpers/e2e.ts";
import { atLeast, eachPort, Netflow, onPort } from "../helpers/netflow.ts";

const END = "net_flow_tcp_end";
const COLLECTOR = `${ROOT}tests/workloads/collector.py`;
const LIFECYCLE = `${ROOT}tests/workloads/lifecycle.py`;

async function freePort(kind: "tcp" | "udp"): Promise<number> {
  if (kind === "tcp") {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    const port = (s.address() as net.AddressInfo).port;
    await new Promise((r) => s.close(r));
    return port;
  }
  const s = dgram.createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Polls until something listens on the UDP port (nfcapd says nothing on stdout when ready). */
async function untilUdpListening(port: number): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await sh("ss", "-Hlun", `sport = :${port}`)).trim()) {
    if (Date.now() > deadline) throw new Error(`nothing listens on udp port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** "YYYY-MM-DD HH:MM:SS.mmm" in UTC, as nfdump prints times under TZ=UTC. */
function nfdumpTime(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").slice(0, 23);
}

/** An end event as an initiator->responder biflow, the way the IPFIX record must carry it. */
function expectedRecord(e: FlowEndEvent) {
  const localIsSrc = e.closed_by === "local";
  const local = localIsSrc ? [e.src, e.src_port] : [e.dst, e.dst_port];
  const remote = localIsSrc ? [e.dst, e.dst_port] : [e.src, e.src_port];
  const outgoing = e.conn_direction === "outgoing";
  const [src, dst] = outgoing ? [local, remote] : [remote, local];
  const endUs = timeUs(e.time);
  return {
    src: src[0] as string,
    srcPort: src[1] as number,
    dst: dst[0] as string,
    dstPort: dst[1] as number,
    startMs: Math.floor((endUs - Math.round(e.duration_ms! * 1000)) / 1000),
    endMs: Math.floor(endUs / 1000),
    octets: outgoing ? e.bytes_sent! : e.bytes_received!,
    packets: outgoing ? e.packets_sent! : e.packets_received!,
    reverseOctets: outgoing ? e.bytes_received! : e.bytes_sent!,
    reversePackets: outgoing ? e.packets_received! : e.packets_sent!,
    direction: outgoing ? 1 : 0,
  };
}

const NFDUMP_FORMAT = "fmt:%ts|%te|%pr|%sa|%sp|%da|%dp|%ipkt|%ibyt|%opkt|%obyt|%dir|%bfd";

for (const family of [4, 6] as const) {
  e2eTest(`IPFIX over UDP: nfdump reads netflow's IPv${family} ends, both directions`, async () => {
    await using cg = new TestCgroup();
    await using ns = await TestNetns.create();
    const dir = await Deno.makeTempDir({ prefix: "netflow-nfcapd-" });
    try {
      const port = await freePort("udp");
      // -E: nfcapd prints every record it decodes, so the test knows when it has them all.
      // stdbuf: line-buffered, so each record shows as it is decoded.
      await using nfcapd = new Proc("stdbuf", [
        "-oL",
        "nfcapd",
        "-E",
        "-b",
        "127.0.0.1",
        "-p",
        String(port),
        "-w",
        dir,
        "-t",
        "3600",
      ]);
      await untilUdpListening(port);
      await using nf = await Netflow.start([
        "--format",
        "json",
        "--cgroup",
        cg.dir,
        "--ipfix",
        `udp://127.0.0.1:${port}`,
      ]);
      const server = family === 4 ? ns.nsAddr4 : ns.nsAddr6;
      // Three uploads of 30,000 bytes each to a server in the namespace (not watched).
      const w = await workload(
        cg,
        { where: { kind: "netns", ns, watched: false }, host: server },
        { where: LOCAL, connectTo: server },
        { count: 3, bytes: 30_000, scenario: "server-close" },
      );
      await nf.untilFlows(eachPort(2, w.clientPorts), "a begin and an end for each connection");
      const { events, stderr, code } = await nf.stop();
      assert.equal(code, 0, stderr);
      const ends = (events as FlowEvent[]).filter((e): e is FlowEndEvent =>
        e.event === "net_flow_tcp_end" && e.dst_port !== port
      );
      assert.equal(ends.length, 3);
      assert.match(
        stderr,
        new RegExp(`udp://127\\.0\\.0\\.1:${port}: 3 IPFIX records sent, 0 dropped`),
      );
      let decoded = 0;
      while (decoded < 3) {
        if ((await nfcapd.line(20_000)).startsWith("Flow Record")) decoded++;
      }
      nfcapd.child.kill("SIGTERM"); // it writes its file as it ends
      await withTimeout(nfcapd.child.status, 20_000, "nfcapd to end");
      // nfcapd saw no gap in the sequence numbers (the RFC 5610 records count) and nothing bad.
      assert.match(await nfcapd.stderr, /Flows: 3, .*Sequence Errors: 0, Bad Packets: 0/);
      const out = await sh(
        "env",
        "TZ=UTC",
        "nfdump",
        "-q",
        "-N",
        "-6",
        "-R",
        dir,
        "-o",
        NFDUMP_FORMAT,
      );
      const got = out.trim().split("\n").map((l) => l.split("|").map((f) => f.trim())).sort();
      const want = ends.map((e) => {
        const r = expectedRecord(e);
        return [
          nfdumpTime(r.startMs),
          nfdumpTime(r.endMs),
          "6",
          r.src,
          String(r.srcPort),
          r.dst,
          String(r.dstPort),
          String(r.packets),
          String(r.octets),
          String(r.reversePackets),
          String(r.reverseOctets),
          "E",
          "1",
        ];
      }).sort();
      assert.deepEqual(got, want);
      // The client sent 30,000 bytes and got the 50-byte reply.
      for (const row of got) {
        assert.deepEqual([row[3], row[5], row[6], row[8], row[10]], [
          family === 4 ? ns.hostAddr4 : ns.hostAddr6,
          server,
          String(w.serverPort),
          "30000",
          "50",
        ]);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

const ELEMENTS = `${ROOT}src/export/ipfix-elements.xml`;

type Fields = Record<string, string>;

/**
 * netflow on `cg` (JSON on stdout, `args` added) exporting IPFIX over TCP to
 * a collector writing `out`.1; ready once the collector has its session.
 */
async function exportingNetflow(cg: TestCgroup, out: string, args: string[]) {
  const port = await freePort("tcp");
  const collector = await startCollector(port, out);
  try {
    const nf = await Netflow.start([
      ...["--format", "json", "--cgroup", cg.dir, ...args],
      ...["--ipfix", `tcp://127.0.0.1:${port}`],
    ]);
    assert.equal(await collector.line(20_000), "connected 1");
    // Disposing netflow also ends the collector.
    const dispose = nf[Symbol.asyncDispose].bind(nf);
    return Object.assign(nf, {
      async [Symbol.asyncDispose]() {
        await dispose();
        await collector[Symbol.asyncDispose]();
      },
    });
  } catch (e) {
    await collector[Symbol.asyncDispose]();
    throw e;
  }
}

/**
 * One loopback connection in `cg`, 1000 bytes every 0.5 s for 4 s (updates
 * on both endpoints), returned once netflow has written both its ends.
 */
async function longConnection(cg: TestCgroup, nf: Netflow) {
  await using server = cg.spawn("python3", LIFECYCLE, "serve", "127.0.0.1");
  const { port: sport } = JSON.parse(await server.line());
  await using client = cg.spawn("python3", LIFECYCLE, "long", "127.0.0.1", String(sport), "4");
  const { client: cport } = JSON.parse(await client.line());
  await client.line(20_000); // done
  await nf.untilFlows(atLeast(2, (e) => onPort(cport)(e) && e.event === END), "both ends");
  return { sport: sport as number, cport: cport as number };
}

/** tests/fixtures' IPFIX collector on TCP `port`, writing each session to `out`.N; ready once it listens. */
async function startCollector(port: number, out: string): Promise<Proc> {
  const collector = new Proc("python3", [COLLECTOR, "--port", String(port), "--out", out]);
  try {
    assert.equal(await collector.line(), `listening ${port}`);
  } catch (e) {
    await collector[Symbol.asyncDispose]();
    throw e;
  }
  return collector;
}

/** The data records ipfixDump (libfixbuf) decodes from a file of IPFIX messages. */
async function ipfixDump(file: string): Promise<Fields[]> {
  const out = await sh("ipfixDump", "-e", ELEMENTS, "-d", "--in", file);
  return out.split("--- data record").slice(1).map((block) => {
    const fields: Fields = {};
    for (const m of block.matchAll(/^\s*\(([\d/]+)\)\s+(\w+) : (.*)$/gm)) {
      fields[m[2]!] = m[3]!.replace(/^\(len: \d+\) ?/, "").trim();
    }
    return fields;
  }).filter((f) => f.flowEndMilliseconds !== undefined); // not the RFC 5610 element records
}

/** Waits until the collector's file holds `n` whole data records, and returns them. */
async function recordsIn(file: string, n: number): Promise<Fields[]> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const records = await ipfixDump(file).catch(() => []);
    if (records.length >= n) return records;
    if (Date.now() > deadline) throw new Error(`${file}: ${records.length} of ${n} records`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** ipfixDump's IPv6 ("::0001") in netflow's RFC 5952 form. */
function canonical(addr: string): string {
  return addr.includes(":") ? formatIPv6(parseIP(addr)!) : addr;
}

/** What a loopback connection's two endpoints must give, as ipfixDump prints it. */
function loopbackRecords(
  lo: string,
  w: { serverPort: number; clientPorts: number[]; clientPid: number; serverPid: number },
) {
  return w.clientPorts.flatMap((port) =>
    [[1, w.clientPid, "nf-client"], [0, w.serverPid, "nf-server"]].map(([dir, pid, comm]) =>
      [
        canonical(lo),
        String(port),
        canonical(lo),
        String(w.serverPort),
        "6",
        "3",
        String(dir),
        "1",
        "100",
        "50",
        String(pid),
        "0",
        comm,
        "",
      ].join(" ")
    )
  ).sort();
}

function describeRecords(records: Fields[]): string[] {
  return records.map((f) =>
    [
      canonical(f.sourceIPv4Address ?? f.sourceIPv6Address!),
      f.sourceTransportPort,
      canonical(f.destinationIPv4Address ?? f.destinationIPv6Address!),
      f.destinationTransportPort,
      f.protocolIdentifier,
      f.flowEndReason,
      f.flowDirection,
      f.biflowDirection,
      f.octetDeltaCount,
      f.reverseOctetDeltaCount,
      f.netflowProcessId,
      f.netflowUserId,
      f.netflowProcessName,
      f.netflowContainerId,
    ].join(" ")
  ).sort();
}

e2eTest(
  "IPFIX over TCP: collector down at start, then up, killed and back: ipfixDump decodes every record",
  async () => {
    await using cg = new TestCgroup();
    const dir = await Deno.makeTempDir({ prefix: "netflow-collector-" });
    try {
      const port = await freePort("tcp"), never = await freePort("tcp");
      const url = `tcp://127.0.0.1:${port}`, neverUrl = `tcp://127.0.0.1:${never}`;
      await using nf = await Netflow.start([
        "--format",
        "none",
        "--cgroup",
        cg.dir,
        "--ipfix",
        url,
        "--ipfix",
        neverUrl,
      ]);
      await nf.stderrLine(new RegExp(`${url}: unreachable \\(ECONNREFUSED\\)`));
      // While nobody listens: two IPv4 loopback connections, four local endpoints.
      const lo4 = "127.0.0.1", lo6 = "::1";
      const a = await workload(cg, { where: LOCAL, host: lo4 }, { where: LOCAL, connectTo: lo4 }, {
        count: 2,
      });
      await using first = await startCollector(port, `${dir}/first`);
      assert.equal(await first.line(20_000), "connected 1");
      await nf.stderrLine(new RegExp(`${url}: connected again`));
      const queued = await recordsIn(`${dir}/first.1`, 4);
      assert.deepEqual(describeRecords(queued), loopbackRecords(lo4, a));
      // The collector dies: netflow keeps running and queues again.
      first.child.kill("SIGKILL");
      await first.child.status;
      await nf.stderrLine(new RegExp(`${url}: connection lost`));
      const b = await workload(cg, { where: LOCAL, host: lo6 }, { where: LOCAL, connectTo: lo6 });
      await using second = await startCollector(port, `${dir}/second`);
      assert.equal(await second.line(20_000), "connected 1");
      const resumed = await recordsIn(`${dir}/second.1`, 2);
      assert.deepEqual(describeRecords(resumed), loopbackRecords(lo6, b));
      const { stdout, stderr, code } = await nf.stop();
      assert.equal(code, 0, stderr);
      assert.equal(stdout, "", "--format none writes nothing on stdout");
      assert.match(
        stderr,
        new RegExp(
          `, ${url}: 6 IPFIX records sent, 0 dropped, ${neverUrl}: 0 IPFIX records sent, 6 dropped\\n`,
        ),
      );
      // Each connection to the collector was a session of its own: templates, then sequence 0;
      // from the RFC 5610 records in the stream alone, ipfixDump names netflow's elements.
      for (const file of [`${dir}/first.1`, `${dir}/second.1`]) {
        const all = await sh("ipfixDump", "--rfc5610", "--in", file);
        for (const name of ["ProcessId", "UserId", "ProcessName", "ContainerId"]) {
          assert.match(all, new RegExp(`\\(32473/\\d\\)\\s+netflow${name} :`), name);
        }
        assert.match(
          all,
          /^--- Message Header ---\n.*\n.*sequence number: 0 \(0\)\n\n--- template record/,
        );
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/** tcpdump writing a capture file; ready once it says it listens. */
async function capture(file: string, filter: string): Promise<Deno.ChildProcess> {
  const child = new Deno.Command("tcpdump", {
    // --immediate-mode: packets reach the file as they come, not a buffer at a time.
    args: ["-i", "any", "--immediate-mode", "-U", "-w", file, filter],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes("listening on")) {
    const { value, done } = await withTimeout(reader.read(), 15_000, "tcpdump to listen");
    if (done) throw new Error(`tcpdump: ${seen}`);
    seen += value;
  }
  // Keep reading, so that its last words at exit do not meet a closed pipe.
  (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })().catch(() => {});
  return child;
}

/** The Community ID tshark computes for each connection in a capture, by client port. */
async function tsharkCommunityIds(file: string): Promise<Map<number, string>> {
  const out = await sh(
    "tshark",
    "-r",
    file,
    "--enable-protocol",
    "communityid",
    "-Y",
    "tcp.flags.syn == 1 && tcp.flags.ack == 0",
    "-T",
    "fields",
    "-e",
    "tcp.srcport",
    "-e",
    "communityid",
  );
  return new Map(
    out.trim().split("\n").map((l) => l.split("\t")).map(([port, id]) => [Number(port), id!]),
  );
}

for (const family of [4, 6] as const) {
  e2eTest(`ECS for IPv${family} flows, with the Community ID tshark computes`, async () => {
    await using cg = new TestCgroup();
    await using ns = await TestNetns.create();
    const pcap = await Deno.makeTempFile({ prefix: "netflow-ecs-", suffix: ".pcap" });
    const server = family === 4 ? ns.nsAddr4 : ns.nsAddr6;
    const host = family === 4 ? ns.hostAddr4 : ns.hostAddr6;
    const tcpdump = await capture(pcap, `tcp and host ${server}`);
    try {
      await using nf = await Netflow.start(["--format", "ecs", "--cgroup", cg.dir]);
      const w = await workload(
        cg,
        { where: { kind: "netns", ns, watched: false }, host: server },
        { where: LOCAL, connectTo: server },
        { count: 2 },
      );
      await nf.until((docs) => docs.length >= 4, "a begin and an end for each connection");
      const { events, stderr, code } = await nf.stop();
      assert.equal(code, 0, stderr);
      tcpdump.kill("SIGINT");
      await tcpdump.status;
      const tshark = await tsharkCommunityIds(pcap);
      const docs = events as unknown as Record<string, Record<string, unknown>>[];
      assert.equal(docs.length, 4);
      for (const port of w.clientPorts) {
        const flow = docs.filter((d) => d.source!.port === port || d.destination!.port === port);
        assert.deepEqual(flow.map((d) => d.event!.action), [
          "net_flow_tcp_begin",
          "net_flow_tcp_end",
        ]);
        const [begin, end] = flow as [
          Record<string, Record<string, unknown>>,
          Record<string, Record<string, unknown>>,
        ];
        for (const d of flow) {
          assert.equal(d.network!.community_id, tshark.get(port), `client port ${port}`);
          assert.deepEqual(
            [d.network!.transport, d.network!.type, d.network!.iana_number, d.network!.direction],
            ["tcp", `ipv${family}`, "6", "egress"],
          );
          assert.deepEqual(d.process, { pid: w.clientPid, name: "nf-client" });
          assert.deepEqual(d.user, { id: "0" });
          assert.deepEqual(d.event!.kind, "event");
          assert.deepEqual(d.event!.category, ["network"]);
          assert.equal(d.ecs!.version, "8.11.0");
          assert.equal(d.container, undefined);
        }
        assert.deepEqual(begin.event!.type, ["connection", "start"]);
        assert.deepEqual([begin.source, begin.destination], [
          { ip: host, port },
          { ip: server, port: w.serverPort },
        ]);
        assert.equal(begin["@timestamp"], begin.event!.start);
        // The client closed: it is the end's source; it sent 100 bytes and got 50.
        assert.deepEqual(end.event!.type, ["connection", "end"]);
        assert.equal(end.event!.reason, "fin");
        assert.deepEqual(
          [end.source!.ip, end.source!.port, end.source!.bytes, end.destination!.bytes],
          [host, port, 100, 50],
        );
        assert.equal(end.network!.bytes, 150);
        const duration = end.event!.duration as number;
        assert.ok(Number.isInteger(duration) && duration > 0, `duration ${duration} ns`);
        const startUs = timeUs(end.event!.start as string),
          endUs = timeUs(end.event!.end as string);
        assert.equal(endUs - startUs, Math.round(duration / 1000));
        // The start is the end's time minus the kernel's monotonic duration: the begin's
        // time, unless the wall clock moved in between (netflow takes a move over 0.2 ms).
        const beginUs = timeUs(begin["@timestamp"] as unknown as string);
        assert.ok(Math.abs(startUs - beginUs) <= 1000, `start ${startUs}, begin ${beginUs}`);
      }
    } finally {
      try {
        tcpdump.kill("SIGKILL");
      } catch { /* already gone */ }
      await tcpdump.status;
      await Deno.remove(pcap);
    }
  });
}

e2eTest(
  "ECS on loopback: source is the initiator and destination the responder on every document, ends closed by the client and by the server",
  async () => {
    await using cg = new TestCgroup();
    await using nf = await Netflow.start(["--format", "ecs", "--cgroup", cg.dir]);
    const lo = "127.0.0.1";
    const runs = [];
    for (const scenario of ["client-close", "server-close"]) {
      const w = await workload(cg, { where: LOCAL, host: lo }, { where: LOCAL, connectTo: lo }, {
        scenario,
      });
      runs.push({ scenario, w });
    }
    await nf.until((docs) => docs.length >= 8, "both endpoints' begins and ends");
    const { events, stderr, code } = await nf.stop();
    assert.equal(code, 0, stderr);
    type Doc = Record<string, Record<string, unknown>>;
    const docs = events as unknown as Doc[];
    assert.equal(docs.length, 8, JSON.stringify(docs));
    for (const { scenario, w } of runs) {
      const port = w.clientPorts[0]!;
      const flow = docs.filter((d) => d.source!.port === port || d.destination!.port === port);
      assert.equal(flow.length, 4, `${scenario}: ${JSON.stringify(docs)}`);
      for (const d of flow) {
        const what = `${scenario}: ${JSON.stringify(d)}`;
        // The client (its ephemeral port) is the source, the server the destination, always.
        assert.deepEqual(
          [d.source!.ip, d.source!.port, d.destination!.ip, d.destination!.port],
          [lo, port, lo, w.serverPort],
          what,
        );
        const outgoing = d.netflow!.conn_direction === "outgoing";
        assert.equal(d.network!.direction, outgoing ? "egress" : "ingress", what);
        assert.equal(d.netflow!.local, outgoing ? "source" : "destination", what);
        if (d.event!.action !== "net_flow_tcp_end") continue;
        // Who closed stays in netflow's own fields.
        const clientClosed = scenario === "client-close";
        assert.equal(d.netflow!.closed_by, outgoing === clientClosed ? "local" : "remote", what);
        // The client sent 100 bytes, the server replied 50: on both endpoints' documents.
        assert.deepEqual([d.source!.bytes, d.destination!.bytes], [100, 50], what);
      }
    }
  },
);

e2eTest("Tracee format: a loopback connection's four events, field by field", async () => {
  await using cg = new TestCgroup();
  await using nf = await Netflow.start(["--format", "tracee", "--cgroup", cg.dir]);
  const lo = "127.0.0.1";
  const w = await workload(cg, { where: LOCAL, host: lo }, { where: LOCAL, connectTo: lo });
  await nf.until((events) => events.length >= 4, "the connection's four events");
  const { stdout, stderr, code } = await nf.stop();
  assert.equal(code, 0, stderr);
  const lines = stdout.trim().split("\n");
  assert.equal(lines.length, 4);
  const port = w.clientPorts[0]!;
  const ids = new Set<string>();
  const flows = new Map<string, string[]>();
  for (const line of lines) {
    // Nanoseconds, exact: microseconds then 000 (JSON.parse would round them).
    assert.match(line, /^\{"timestamp":\d{16}000,"threadStartTime":0,/);
    const e = JSON.parse(line);
    const outgoing = e.args[0].value === "outgoing";
    const pid = outgoing ? w.clientPid : w.serverPid;
    const isEnd = e.eventName === "net_flow_tcp_end";
    const { args, timestamp: _, ...head } = e;
    assert.deepEqual(head, {
      threadStartTime: 0,
      processorId: 0,
      processId: pid,
      cgroupId: cg.id,
      threadId: pid,
      parentProcessId: 0,
      hostProcessId: pid,
      hostThreadId: pid,
      hostParentProcessId: 0,
      userId: 0,
      mountNamespace: 0,
      pidNamespace: 0,
      processName: outgoing ? "nf-client" : "nf-server",
      executable: { path: "" },
      hostName: Deno.hostname(),
      containerId: "",
      container: {},
      kubernetes: {},
      eventId: isEnd ? "2014" : "2013",
      eventName: isEnd ? "net_flow_tcp_end" : "net_flow_tcp_begin",
      argsNum: isEnd ? 21 : 12,
      returnValue: 0,
      syscall: "",
      stackAddresses: [],
      contextFlags: { containerStarted: false, isCompat: false },
      threadEntityId: 0,
      processEntityId: 0,
      parentEntityId: 0,
    });
    // The client closed, so in every event here src is the client.
    assert.deepEqual(args.slice(0, 7), [
      { name: "conn_direction", type: "const char*", value: outgoing ? "outgoing" : "incoming" },
      { name: "src", type: "const char*", value: lo },
      { name: "dst", type: "const char*", value: lo },
      { name: "src_port", type: "u16", value: port },
      { name: "dst_port", type: "u16", value: w.serverPort },
      { name: "src_dns", type: "const char **", value: [] },
      { name: "dst_dns", type: "const char **", value: [] },
    ]);
    assert.deepEqual(args.slice(7).map((a: { name: string }) => a.name), [
      "flow_id",
      "community_id",
      "cgroup",
      "netns",
      "preexisting",
      ...(isEnd
        ? [
          "closed_by",
          "reason",
          "duration_ms",
          "bytes_sent",
          "bytes_received",
          "packets_sent",
          "packets_received",
          "rtt_us",
          "retransmits",
        ]
        : []),
    ]);
    const flowId = args[7].value as string;
    flows.set(flowId, [...(flows.get(flowId) ?? []), e.eventName]);
    ids.add(args[8].value);
    assert.equal(args[9].value, cg.path);
    if (isEnd) {
      const value = (name: string) => args.find((a: { name: string }) => a.name === name).value;
      assert.deepEqual(
        [value("closed_by"), value("reason"), value("bytes_sent"), value("bytes_received")],
        outgoing ? ["local", "fin", 100, 50] : ["remote", "fin", 50, 100],
      );
    }
  }
  // One Community ID for the connection (both endpoints), one begin and one end per flow_id.
  assert.equal(ids.size, 1);
  assert.deepEqual([...flows.values()], [
    ["net_flow_tcp_begin", "net_flow_tcp_end"],
    ["net_flow_tcp_begin", "net_flow_tcp_end"],
  ]);
});

e2eTest(
  "IPFIX updates: active-timeout records carry deltas that add up to the end's totals",
  async () => {
    await using cg = new TestCgroup();
    const dir = await Deno.makeTempDir({ prefix: "netflow-collector-" });
    try {
      await using nf = await exportingNetflow(cg, `${dir}/c`, [
        "--events",
        "begin,end,update",
        "--update-interval",
        "1",
      ]);
      const { sport, cport } = await longConnection(cg, nf);
      const { events, stderr, code } = await nf.stop();
      assert.equal(code, 0, stderr);
      const flows = (events as FlowEvent[]).filter((e) =>
        e.src_port === cport || e.dst_port === cport
      );
      const exported = flows.filter((e) => e.event !== "net_flow_tcp_begin");
      assert.match(stderr, new RegExp(`: ${exported.length} IPFIX records sent, 0 dropped`));
      const records = await recordsIn(`${dir}/c.1`, exported.length);
      assert.equal(records.length, exported.length);
      for (const direction of ["outgoing", "incoming"] as const) {
        const mine = exported.filter((e) => e.conn_direction === direction);
        const got = records.filter((r) =>
          r.flowDirection === (direction === "outgoing" ? "1" : "0")
        );
        // At least one update (how many depends on timing; each one is checked).
        assert.ok(mine.length >= 2, `${mine.length - 1} updates for ${direction}`);
        // In order: every update (flowEndReason 2, active timeout), then the end (3).
        assert.deepEqual(
          got.map((r) => r.flowEndReason),
          mine.map((e) => (e.event === "net_flow_tcp_end" ? "3" : "2")),
        );
        let octets = 0, reverse = 0;
        got.forEach((r, i) => {
          const e = mine[i] as FlowUpdateEvent | FlowEndEvent;
          // The client initiated: forward is what it sent.
          const sent = direction === "outgoing" ? e.bytes_sent! : e.bytes_received!;
          const back = direction === "outgoing" ? e.bytes_received! : e.bytes_sent!;
          octets += Number(r.octetDeltaCount);
          reverse += Number(r.reverseOctetDeltaCount);
          assert.deepEqual([octets, reverse], [sent, back], `record ${i} of ${direction}`);
          assert.deepEqual([r.sourceTransportPort, r.destinationTransportPort], [
            String(cport),
            String(sport),
          ]);
          assert.equal(r.flowStartMilliseconds, got[0]!.flowStartMilliseconds);
        });
        assert.ok(octets >= 8000, `${octets} bytes from the client`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

e2eTest(
  "IPFIX: --update-interval without update in --events still exports updates (stdout shows begins and ends only)",
  async () => {
    await using cg = new TestCgroup();
    const dir = await Deno.makeTempDir({ prefix: "netflow-collector-" });
    try {
      await using nf = await exportingNetflow(cg, `${dir}/c`, ["--update-interval", "1"]);
      const { cport } = await longConnection(cg, nf);
      const { events, stderr, code } = await nf.stop();
      assert.equal(code, 0, stderr);
      const flows = (events as FlowEvent[]).filter((e) =>
        e.src_port === cport || e.dst_port === cport
      );
      // stdout: what --events asked for (the default), no update.
      assert.deepEqual(flows.map((e) => e.event).sort(), [
        "net_flow_tcp_begin",
        "net_flow_tcp_begin",
        "net_flow_tcp_end",
        "net_flow_tcp_end",
      ]);
      const sent = Number(/: (\d+) IPFIX records sent, 0 dropped/.exec(stderr)?.[1]);
      const records = await recordsIn(`${dir}/c.1`, sent);
      for (const direction of ["outgoing", "incoming"] as const) {
        const end = flows.find((e): e is FlowEndEvent =>
          e.event === "net_flow_tcp_end" && e.conn_direction === direction
        )!;
        const got = records.filter((r) =>
          r.flowDirection === (direction === "outgoing" ? "1" : "0") &&
          r.sourceTransportPort === String(cport)
        );
        // Updates (flowEndReason 2, active timeout), at least one, then the end (3).
        const reasons = got.map((r) => r.flowEndReason);
        assert.ok(reasons.length >= 2, `${direction}: ${reasons}`);
        assert.deepEqual(reasons, [...reasons.slice(0, -1).map(() => "2"), "3"], direction);
        // The deltas add up to the end's totals.
        const sum = (k: string) => got.reduce((n, r) => n + Number(r[k]), 0);
        const fwd = direction === "outgoing" ? end.bytes_sent! : end.bytes_received!;
        const back = direction === "outgoing" ? end.bytes_received! : end.bytes_sent!;
        assert.deepEqual([sum("octetDeltaCount"), sum("reverseOctetDeltaCount")], [fwd, back]);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

e2eTest(
  "IPFIX: --events begin still exports every ended flow (stdout shows only the begins)",
  async () => {
    await using cg = new TestCgroup();
    const dir = await Deno.makeTempDir({ prefix: "netflow-collector-" });
    try {
      await using nf = await exportingNetflow(cg, `${dir}/c`, ["--events", "begin"]);
      const lo = "127.0.0.1";
      const w = await workload(cg, { where: LOCAL, host: lo }, { where: LOCAL, connectTo: lo }, {
        count: 2,
      });
      const records = await recordsIn(`${dir}/c.1`, 4);
      await nf.until((events) => events.length >= 4, "the four begins");
      const { events, stderr, code } = await nf.stop();
      assert.equal(code, 0, stderr);
      assert.deepEqual(
        (events as FlowEvent[]).map((e) => e.event),
        Array(4).fill("net_flow_tcp_begin"),
      );
      // The summary counts what stdout showed; the exporter what it sent.
      assert.match(stderr, /netflow: 4 events, /);
      assert.match(stderr, /: 4 IPFIX records sent, 0 dropped/);
      assert.deepEqual(describeRecords(records), loopbackRecords(lo, w));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

/** The size of each BPF ring buffer map process `pid` holds, by map name. */
async function ringSizes(pid: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const fd of Deno.readDir(`/proc/${pid}/fdinfo`)) {
    const info = await Deno.readTextFile(`/proc/${pid}/fdinfo/${fd.name}`).catch(() => "");
    const id = /^map_id:\s+(\d+)$/m.exec(info)?.[1];
    if (id === undefined || !/^map_type:\s+27$/m.test(info)) continue; // BPF_MAP_TYPE_RINGBUF
    const map = JSON.parse(await sh("bpftool", "-j", "map", "show", "id", id));
    out.set(map.name, map.max_entries);
  }
  return out;
}

e2eTest(
  "--ring-size sizes the flows' ring and --dns-ring-size DNS's own; handshakes have 1 MiB",
  async () => {
    await using cg = new TestCgroup();
    for (
      const [args, flows, dns] of [
        [[], 16 << 20, 4 << 20],
        [["--ring-size", "64K", "--dns-ring-size", "8K"], 65536, 8192],
      ] as const
    ) {
      await using nf = await Netflow.start(["--format", "json", "--cgroup", cg.dir, ...args]);
      const sizes = await ringSizes(nf.pid);
      assert.deepEqual(
        Object.fromEntries(sizes),
        { events: flows, dns_events: dns, packets: 1 << 20 },
        args.join(" "),
      );
      const { code, stderr } = await nf.stop();
      assert.equal(code, 0, stderr);
    }
  },
);
