/**
 * The DNS names enricher: `src_dns` and `dst_dns`, the names the socket's
 * network namespace resolved to each address (src/dns/names.ts), taken at
 * the flow's first event and kept to its last (on the table's flow), so a
 * flow's begin, updates and end name the same. It also lets the cache forget the names of namespaces
 * that are gone: those a scan of /proc and /run/netns found before and finds
 * no more (one netflow cannot see, e.g. from its own pid namespace, keeps its
 * names: they are still bounded).
 *
 * @module
 */
import { localIsSrc } from "../events.ts";
import type { DnsNames } from "../dns/names.ts";
import type { Enriching, Filling } from "./enricher.ts";
import type { FlowNames } from "../flow/flow.ts";
import type { NetnsPaths } from "./netns.ts";

/** How often the names of network namespaces that are gone are let go. */
const NETNS_GONE_MS = 30_000;

const NO_NAMES: readonly string[] = Object.freeze([]);
const NONE: FlowNames = Object.freeze({ local: NO_NAMES, remote: NO_NAMES });

export interface DnsEnricherOptions {
  /** The namespaces to watch for going, and those that exist now. */
  netns?: { paths: NetnsPaths; live: Iterable<number> };
  /** A clock in ms (injectable for tests). */
  now?: () => number;
}

export class DnsEnricher implements Filling {
  readonly #dns: Pick<DnsNames, "names" | "forgetNamespaces">;
  readonly #paths: NetnsPaths | undefined;
  #live: Set<number>;
  #nextScanMs: number;

  constructor(dns: Pick<DnsNames, "names" | "forgetNamespaces">, options: DnsEnricherOptions) {
    this.#dns = dns;
    this.#paths = options.netns?.paths;
    this.#live = new Set(options.netns?.live ?? []);
    this.#nextScanMs = (options.now ?? (() => performance.now()))() + NETNS_GONE_MS;
  }

  /** Fills the names the flow took at its first event (taking them now if this is it). */
  fill(item: Enriching): void {
    const e = item.event, flow = item.facts.flow;
    const local = localIsSrc(e);
    // Kept on the table's flow (its begin, updates and end share it), not in a map of our own.
    let names = flow.names;
    if (names === undefined) {
      // Whose names: the namespace's (by its cookie, never reused, where the
      // kernel gives it) and those the flow's own cgroup asked for.
      const scope = {
        netns: e.netns,
        netnsCookie: item.facts.record?.netnsCookie ?? 0,
        cgroupId: e.cgroup_id,
      };
      const near = this.#dns.names(scope, local ? e.src : e.dst);
      const remote = this.#dns.names(scope, local ? e.dst : e.src);
      // Most flows have no names: one shared value for them all.
      names = flow.names = near.length === 0 && remote.length === 0
        ? NONE
        : { local: near, remote };
    }
    e.src_dns = local ? names.local : names.remote;
    e.dst_dns = local ? names.remote : names.local;
  }

  tick(nowMs: number): void {
    if (this.#paths === undefined || nowMs < this.#nextScanMs) return;
    this.#nextScanMs = nowMs + NETNS_GONE_MS;
    const live = new Set(this.#paths.all().keys());
    const gone = new Set([...this.#live].filter((n) => !live.has(n)));
    this.#live = live;
    if (gone.size > 0) this.#dns.forgetNamespaces(gone);
  }
}
