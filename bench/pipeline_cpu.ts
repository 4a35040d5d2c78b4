/**
 * CPU of netflow's user-space path per flow, whole process (V8's GC threads
 * included), without the kernel: ROUNDS rounds of CONNECTIONS loopback
 * connections' records (bench/lib/pipeline.ts) through the monitor's path in
 * drains of 2,048 records, JSON lines encoded as the stdout sink writes them.
 * Run as netflow runs (a 4 MB young generation):
 *
 *   deno run -A --v8-flags=--max-semi-space-size=4 bench/pipeline_cpu.ts [ROUNDS] [end] [OUT]
 *
 * Prints µs of CPU per flow (each connection has two watched endpoints) and
 * bytes written; `end` writes only ends (`--events net_flow_tcp_end`), `all`
 * begins and ends; with OUT the lines are also appended to that file (to
 * compare two trees' output byte for byte).
 *
 * @module
 */
import { loopbackRecords, MonitorPath } from "./lib/pipeline.ts";

const ROUNDS = Number(Deno.args[0] ?? 20);
const CONNECTIONS = 10_000;
const DRAIN = 2048;
const OUT = Deno.args[2];
const want = Deno.args[1] === "end"
  ? ["net_flow_tcp_end" as const]
  : ["net_flow_tcp_begin" as const, "net_flow_tcp_end" as const];

const ticks = () => {
  const f = Deno.readTextFileSync("/proc/self/stat").split(") ")[1]!.split(" ");
  return Number(f[11]) + Number(f[12]);
};
const dir = Deno.makeTempDirSync({ prefix: "netflow-pipeline-cpu-" });
try {
  let bytes = 0;
  const path = new MonitorPath(dir, (encoded) => {
    bytes += encoded.length;
    if (OUT !== undefined) Deno.writeFileSync(OUT, encoded, { append: true });
    return true;
  }, want);
  const cgroupId = Deno.statSync(dir).ino!;
  // Made before the clock starts: each round's sockets are new ones.
  const rounds = Array.from(
    { length: ROUNDS + 1 },
    (_, r) =>
      loopbackRecords(CONNECTIONS, {
        releases: true,
        cgroupId,
        firstCookie: 1 + r * 2 * CONNECTIONS,
      }),
  );
  const run = (round: number) => {
    const records = rounds[round]!;
    for (let i = 0; i < records.offsets.length; i += DRAIN) {
      path.drain(records, i, Math.min(i + DRAIN, records.offsets.length));
    }
  };
  run(0); // warm-up: compiled code
  const t0 = ticks(), w0 = performance.now();
  for (let r = 1; r <= ROUNDS; r++) run(r);
  const cpu = (ticks() - t0) * 10_000; // µs (100 ticks a second)
  const flows = ROUNDS * CONNECTIONS * 2;
  console.log(
    `${(cpu / flows).toFixed(2)} µs CPU per flow (wall ${
      ((performance.now() - w0) * 1000 / flows).toFixed(2)
    } µs), ${bytes} bytes`,
  );
} finally {
  Deno.removeSync(dir);
}
