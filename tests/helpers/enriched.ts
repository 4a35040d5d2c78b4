import type { FlowRecord, OpenList, TcpPacket } from "../../src/bpf/records.ts";
import { HolderRows } from "../../src/bpf/holders.ts";
import type { FlowBeginEvent, FlowEvent, FlowFailEvent } from "../../src/events.ts";
import { type Enricher, Enrichers, type Filling } from "../../src/enrich/enricher.ts";
import { SocketHolders } from "../../src/enrich/holders.ts";
import { OwnerEnricher } from "../../src/enrich/owner.ts";
import { OwnerResolver } from "../../src/enrich/owners.ts";
import { FlowTable, type FlowTableOptions } from "../../src/flow/state.ts";

/**
 * A FlowTable whose events go straight through enrichers that do not wait,
 * as the monitor runs them (without the kernel): by default the owner
 * enricher on the kernel's stamps only (no holders iterator, no wait).
 */
export class EnrichedTable extends FlowTable {
  readonly #enrichers: Enrichers;

  constructor(options: FlowTableOptions = {}, enrichers?: (Enricher | Filling)[]) {
    super(options);
    const noHolders = new SocketHolders(() => new HolderRows(new Uint8Array(0)));
    this.#enrichers = new Enrichers(
      enrichers ?? [new OwnerEnricher(new OwnerResolver(noHolders, { waitMs: 0 }))],
    );
  }

  override onRecord(r: FlowRecord): FlowEvent | undefined {
    const e = super.onRecord(r);
    return e && this.#enrich([e])[0];
  }

  override onSnapshot(
    records: readonly FlowRecord[],
    listens?: (r: FlowRecord) => boolean,
  ): FlowBeginEvent[] {
    return this.#enrich(super.onSnapshot(records, listens));
  }

  override onOpenList(
    lists: readonly OpenList[],
    now: { us: number; ns: number },
    updateEveryUs: number | null,
    listedNetns?: ReadonlySet<number>,
  ): FlowEvent[] {
    return this.#enrich(super.onOpenList(lists, now, updateEveryUs, listedNetns));
  }

  override onHandshake(p: TcpPacket): FlowFailEvent | undefined {
    const e = super.onHandshake(p);
    return e && this.#enrich([e])[0];
  }

  #enrich<T extends FlowEvent>(events: readonly T[]): T[] {
    return events.flatMap((event) =>
      this.#enrichers.push({ event, facts: this.factsOf(event) }, 0).map((i) => i.event as T)
    );
  }
}
