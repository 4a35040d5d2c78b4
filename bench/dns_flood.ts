/**
 * A flood of forged DNS answers during a connection storm (issue 13):
 *
 *   sudo deno run -A bench/dns_flood.ts [--datagrams N] [--seconds S] [--root DIR]
 *
 * In a network namespace watched through a child cgroup: wrk storms a local
 * HTTP server with Connection: close, dig resolves a name from a dnsmasq of
 * the namespace every 200 ms, and a socket of the namespace receives N
 * (default 100,000) answer datagrams from port 53 that answer nothing, sent
 * from this host's namespace. Prints what netflow lost (TCP and DNS records
 * separately, against the namespace's own /proc/net/snmp), its peak RSS and
 * CPU, and whether the legitimate lookups kept their names. `--root` runs
 * another checkout's src/cli.ts (to compare with an older netflow).
 *
 * @module
 */
import { startDnsmasq, ZONE } from "../tests/helpers/dns.ts";
import { ROOT as HERE, sh, TestCgroup, TestNetns } from "../tests/helpers/e2e.ts";
import { Netflow } from "../tests/helpers/netflow.ts";

const arg = (name: string, fallback: string) => {
  const at = Deno.args.indexOf(name);
  return at >= 0 ? Deno.args[at + 1]! : fallback;
};
const DATAGRAMS = Number(arg("--datagrams", "100000"));
const SECONDS = Number(arg("--seconds", "10"));
const ROOT = arg("--root", HERE).replace(/\/?$/, "/");
const HTTP_PORT = 8080;
const CLK_TCK = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function cpuTicks(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]!.split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime + stime
}

function peakRssMb(pid: number): number {
  const kb = Number(/VmHWM:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1]);
  return kb / 1024;
}

async function snmpTcp(ns: TestNetns): Promise<Record<string, number>> {
  const lines = (await sh("ip", "netns", "exec", ns.name, "cat", "/proc/net/snmp")).split("\n")
    .filter((l) => l.startsWith("Tcp:"));
  const names = lines[0]!.split(/\s+/).slice(1), values = lines[1]!.split(/\s+/).slice(1);
  return Object.fromEntries(names.map((n, i) => [n, Number(values[i])]));
}

async function main() {
  await using cg = new TestCgroup();
  await using ns = await TestNetns.create(1);
  const { zone: z } = await startDnsmasq(ns, (cmd, ...a) => ns.spawn(cmd, ...a));
  const inNs = (cmd: string, ...a: string[]) => cg.spawn("ip", "netns", "exec", ns.name, cmd, ...a);
  await using server = inNs(
    Deno.execPath(),
    "run",
    "--allow-net",
    `${HERE}bench/http_server.ts`,
    String(HTTP_PORT),
  );
  await server.line();
  await using rx = inNs(
    "python3",
    `${HERE}tests/workloads/dns.py`,
    "listen",
    "--host",
    ns.nsAddr4,
    "--idle",
    "3",
  );
  const rxPort = Number((await rx.line()).split(" ")[1]);

  const out = Deno.makeTempFileSync({ prefix: "netflow-dns-flood-", suffix: ".jsonl" });
  try {
    await using nf = await Netflow.start(["--format", "json", "--cgroup", cg.dir], {
      cli: `${ROOT}src/cli.ts`,
      stdoutFile: out,
    });
    // The kernel's cost of a forged answer, alone: the ingress program's
    // run time per datagram from port 53, against the same datagrams from port 54.
    const cost: Record<string, number> = {};
    const before = (await sh("sysctl", "-n", "kernel.bpf_stats_enabled")).trim();
    await sh("sysctl", "-q", "-w", "kernel.bpf_stats_enabled=1");
    try {
      for (const sport of [54, 53]) {
        const s0 = await ingressStats(cg.dir);
        await floodOnce(ns, rxPort, 20_000, sport);
        const s1 = await ingressStats(cg.dir);
        cost[`ns per datagram from port ${sport}`] = Number(
          ((s1.ns - s0.ns) / Math.max(1, s1.runs - s0.runs)).toFixed(1),
        );
      }
    } finally {
      await sh("sysctl", "-q", "-w", `kernel.bpf_stats_enabled=${before}`);
    }
    await rx.line(30_000); // "got N" for the cost phase
    await using rx2 = inNs(
      "python3",
      `${HERE}tests/workloads/dns.py`,
      "listen",
      "--host",
      ns.nsAddr4,
      "--port",
      String(rxPort),
      "--idle",
      "3",
    );
    await rx2.line();
    const snmp0 = await snmpTcp(ns), cpu0 = cpuTicks(nf.pid);
    const started = performance.now();

    const storm = inNs(
      "wrk",
      "-t2",
      "-c32",
      `-d${SECONDS}s`,
      "-H",
      "Connection: close",
      `http://127.0.0.1:${HTTP_PORT}/`,
    );
    await sleep(1000); // the storm is running
    const flood = new Deno.Command("python3", {
      args: [
        `${HERE}tests/workloads/dns.py`,
        "flood",
        "--src",
        ns.hostAddr4,
        "--dst",
        ns.nsAddr4,
        "--port",
        String(rxPort),
        "--count",
        String(DATAGRAMS),
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    // Legitimate lookups all along, each followed by a connection to the answer.
    let lookups = 0;
    let floodDone = false;
    const floodResult = flood.then((r) => {
      floodDone = true;
      return r;
    });
    const clientPorts: number[] = [];
    while (!floodDone || performance.now() - started < 3000) {
      await using q = inNs("dig", `@${ns.nsAddr4}`, `www.${ZONE}`, "A", "+short", "+time=2");
      const answer = await q.line().catch(() => "");
      await q.done().catch(() => {});
      if (answer === `mid.${ZONE}.`) lookups++;
      await sleep(200);
    }
    const floodOut = await floodResult;
    const floodSeconds = (performance.now() - started) / 1000 - 1;
    if (!floodOut.success) throw new Error(new TextDecoder().decode(floodOut.stderr));
    // One connection to the answered address, with names expected.
    await using conn = inNs(
      "python3",
      "-c",
      `
import socket
srv = socket.socket(); srv.bind(('${z.chain}', 0)); srv.listen(1)
c = socket.create_connection(srv.getsockname()); a, _ = srv.accept()
print(c.getsockname()[1], flush=True); c.close(); a.close()`,
    );
    clientPorts.push(Number(await conn.line()));
    await conn.done();
    await storm.done(120_000);
    const got = Number((await rx2.line(30_000)).split(" ")[1]);
    await sleep(1500);
    const snmp1 = await snmpTcp(ns), cpu1 = cpuTicks(nf.pid), rss = peakRssMb(nf.pid);
    const elapsed = (performance.now() - started) / 1000;
    const summary = (await nf.stop()).summary;

    const events = Deno.readTextFileSync(out).split("\n").filter((l) => l !== "").map((l) =>
      JSON.parse(l)
    );
    const http = events.filter((e) => e.src_port === HTTP_PORT || e.dst_port === HTTP_PORT);
    const reference = (snmp1.ActiveOpens! - snmp0.ActiveOpens!) -
      (snmp1.AttemptFails! - snmp0.AttemptFails!) + (snmp1.PassiveOpens! - snmp0.PassiveOpens!);
    const named = events.filter((e) => clientPorts.includes(e.src_port) && e.dst === z.chain);
    const result = {
      datagrams: DATAGRAMS,
      floodSeconds: Number(floodSeconds.toFixed(1)),
      receivedBySocket: got,
      endpointsEstablished: reference - 1 * 2, // minus the named connection's two endpoints
      begins: http.filter((e) => e.event === "net_flow_tcp_begin").length,
      ends: http.filter((e) => e.event === "net_flow_tcp_end").length,
      summary,
      peakRssMb: Number(rss.toFixed(1)),
      cpuSeconds: (cpu1 - cpu0) / CLK_TCK,
      cpuShare: Number(((cpu1 - cpu0) / CLK_TCK / elapsed).toFixed(3)),
      legitimateLookups: lookups,
      namedFlow: named.map((e) => `${e.event} ${JSON.stringify(e.dst_dns)}`),
      bpfCost: cost,
      forgedNamesOnFlows: events.filter((e) =>
        [...e.src_dns, ...e.dst_dns].some((n: string) =>
          n.endsWith("flood.test")
        )
      ).length,
    };
    console.log(JSON.stringify(result, null, 2));
  } finally {
    Deno.removeSync(out);
  }
}

/** Summed run time and count of the ingress program attached to `dir` (this netflow's only). */
async function ingressStats(dir: string): Promise<{ ns: number; runs: number }> {
  const attached = JSON.parse(await sh("bpftool", "cgroup", "show", dir, "-j")) as {
    id: number;
    attach_type: string;
  }[];
  const id = attached.find((p) => p.attach_type === "cgroup_inet_ingress")!.id;
  const prog = JSON.parse(await sh("bpftool", "prog", "show", "id", String(id), "-j")) as {
    run_time_ns?: number;
    run_cnt?: number;
  };
  return { ns: prog.run_time_ns ?? 0, runs: prog.run_cnt ?? 0 };
}

async function floodOnce(ns: TestNetns, port: number, count: number, sport: number) {
  await sh(
    "python3",
    `${HERE}tests/workloads/dns.py`,
    "flood",
    "--src",
    ns.hostAddr4,
    "--dst",
    ns.nsAddr4,
    "--port",
    String(port),
    "--count",
    String(count),
    "--sport",
    String(sport),
  );
}

await main();
