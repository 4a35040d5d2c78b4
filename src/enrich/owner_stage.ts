/**
 * The owner stage, assembled over the probe's holders iterators: the index of
 * who holds which socket (runs on every process, or on a few: Linux 6.1+),
 * the resolver that waits for it, and the enricher the monitor puts first.
 *
 * @module
 */
import type { Probe } from "../bpf/loader.ts";
import { SocketHolders } from "./holders.ts";
import { OwnerEnricher } from "./owner.ts";
import { OwnerResolver } from "./owners.ts";

/** `probe` is read at each run (the monitor opens it after making the stage). */
export function ownerStage(
  probe: () => Pick<Probe, "holders" | "holdersIterator">,
  waitMs?: number,
): { owners: OwnerEnricher; holders: SocketHolders } {
  const holders = new SocketHolders(
    (cookies) => probe().holders(cookies),
    {
      runIn: (pids, cookies) => probe().holdersIterator?.runIn(pids, cookies) ?? null,
      keep: (pids) => probe().holdersIterator?.keep(pids),
    },
  );
  const resolver = new OwnerResolver(holders, waitMs === undefined ? {} : { waitMs });
  return { owners: new OwnerEnricher(resolver), holders };
}
