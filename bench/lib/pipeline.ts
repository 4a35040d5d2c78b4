/**
 * netflow's user-space path without the kernel, for bench/pipeline_bench.ts
 * and bench/pipeline_cpu.ts: the ring records of loopback connections (both
 * endpoints' begin, end and release, as the ring holds them) and the
 * monitor's path over them (src/monitor.ts #dispatch, #push, #enriched: the
 * decoder, the flow table, the enrichers, the stdout sink's JSON lines).
 *
 * @module
 */
import { HolderRows } from "../../src/bpf/holders.ts";
import { type FlowRecord, RecordDecoder } from "../../src/bpf/records.ts";
import { KIND_BEGIN, KIND_END, KIND_RELEASE, LAYOUT } from "../../src/bpf/layout.ts";
import { DnsNames } from "../../src/dns/names.ts";
import { CgroupPaths } from "../../src/enrich/cgroups.ts";
import { DnsEnricher } from "../../src/enrich/dns.ts";
import { Enrichers } from "../../src/enrich/enricher.ts";
import { SocketHolders } from "../../src/enrich/holders.ts";
import { OwnerEnricher } from "../../src/enrich/owner.ts";
import { OwnerResolver } from "../../src/enrich/owners.ts";
import { EVENT_BEGIN, type EventName, type NetflowEvent } from "../../src/events.ts";
import { FlowTable } from "../../src/flow/state.ts";
import { lineFormat, StdoutSink } from "../../src/output/stdout.ts";

const F = LAYOUT.nf_flow.fields;

export interface Records {
  view: DataView;
  offsets: number[];
}

/**
 * The records of `connections` loopback connections (both endpoints' begin
 * and end; with `releases` their sockets' release records too), as in the
 * ring, with cookies from `firstCookie`.
 */
export function loopbackRecords(
  connections: number,
  options: { releases?: boolean; cgroupId?: number; firstCookie?: number } = {},
): Records {
  const list: [local: number, remote: number, kind: number, outgoing: boolean, cookie: number][] =
    [];
  const first = options.firstCookie ?? 1;
  for (let i = 0; i < connections; i++) {
    const c = 30000 + i % 30000, s = 8080, a = first + 2 * i, b = a + 1;
    list.push([c, s, KIND_BEGIN, true, a], [s, c, KIND_BEGIN, false, b]);
    list.push([s, c, KIND_END, false, b], [c, s, KIND_END, true, a]);
    if (options.releases) list.push([s, c, KIND_RELEASE, false, b], [c, s, KIND_RELEASE, true, a]);
  }
  const size = LAYOUT.nf_flow.size;
  const view = new DataView(new ArrayBuffer(list.length * size));
  const bytes = new Uint8Array(view.buffer);
  const offsets: number[] = [];
  const comm = new TextEncoder().encode("wrk");
  list.forEach(([local, remote, kind, outgoing, cookie], i) => {
    const at = i * size;
    offsets.push(at);
    view.setBigUint64(at, BigInt(i) * 1000n, true);
    view.setBigUint64(at + 8, BigInt(options.cgroupId ?? 4242), true);
    view.setUint8(at + 16, kind);
    view.setUint8(at + 18, 4);
    view.setBigUint64(at + F.cookie, BigInt(cookie), true);
    bytes.set([127, 0, 0, 1], at + F.laddr);
    bytes.set([127, 0, 0, 1], at + F.raddr);
    view.setUint16(at + F.lport, local, true);
    view.setUint16(at + F.rport, remote, true);
    view.setUint8(at + F.flags, (outgoing ? 1 | 8 : 0) | 4);
    view.setUint8(at + F.end, kind === KIND_END ? (outgoing ? 2 : 1) : 0);
    view.setBigUint64(at + F.bytes_acked, 101n, true);
    view.setBigUint64(at + F.bytes_received, 51n, true);
    view.setUint32(at + F.pid, 1234, true);
    bytes.set(comm, at + F.comm);
  });
  return { view, offsets };
}

/** One monitor's path: decoder, table, enrichers and a stdout sink, fed a batch at a time. */
export class MonitorPath {
  readonly #decoder = new RecordDecoder(1_700_000_000_000_000);
  readonly #table: FlowTable;
  readonly #enrichers: Enrichers;
  readonly #sink: StdoutSink;
  readonly #want: ReadonlySet<EventName>;
  #batch: NetflowEvent[] = [];

  /** `cgroupDir`: a directory whose inode is the records' cgroup id; `write`: the sink's output. */
  constructor(
    cgroupDir: string,
    write: (bytes: Uint8Array) => boolean,
    want: readonly EventName[] = ["net_flow_tcp_begin", "net_flow_tcp_end"],
  ) {
    const noHolders = new SocketHolders(() => new HolderRows(new Uint8Array(0)));
    this.#enrichers = new Enrichers([
      new OwnerEnricher(new OwnerResolver(noHolders, { waitMs: 0 })),
      new CgroupPaths(cgroupDir, cgroupDir),
      new DnsEnricher(new DnsNames(), {}),
    ]);
    this.#want = new Set(want);
    // As the monitor makes it: begins not asked for carry no time.
    this.#table = new FlowTable({ idPrefix: "bench", untimedBegins: !this.#want.has(EVENT_BEGIN) });
    this.#sink = new StdoutSink(lineFormat("json"), write);
  }

  /** The records at `offsets[from, to)` as one drain, then its batch written. */
  drain(records: Records, from: number, to: number, final = false): void {
    for (let i = from; i < to; i++) {
      const r = this.#decoder.decode(records.view, records.offsets[i]!, LAYOUT.nf_flow.size);
      if (r === undefined || r.kind === "dns" || !("beginNs" in r)) continue;
      if (r.kind === "release") this.#keep(this.#enrichers.observe(r, 0));
      else this.#push(r);
    }
    this.#keep(this.#enrichers.settle(1e9, final));
    this.#sink.write(this.#batch);
    this.#batch = [];
  }

  #push(r: FlowRecord): void {
    const e = this.#table.onRecord(r);
    if (e !== undefined) {
      this.#keep(this.#enrichers.push({ event: e, facts: this.#table.factsOf(e) }, 0));
    }
  }

  #keep(items: readonly { event: NetflowEvent }[]): void {
    // Indexed, as the monitor's #enriched: no iterator per call.
    for (let i = 0; i < items.length; i++) {
      const event = items[i]!.event;
      if (this.#want.has(event.event)) this.#batch.push(event);
    }
  }
}
