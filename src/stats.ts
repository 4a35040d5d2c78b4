/**
 * What every stage counted, merged into the counts the exit summary and
 * /metrics show: the kernel's counters, the flow table's, the DNS cache's,
 * the owner resolver's, and the monitor's own.
 *
 * @module
 */
import type { ProbeCounters } from "./bpf/loader.ts";
import type { DnsNamesStats } from "./dns/names.ts";
import type { OwnerStats } from "./enrich/owners.ts";
import type { WantedStats } from "./bpf/wanted.ts";
import type { FlowStats } from "./flow/state.ts";

/** Counts for the exit summary. */
export interface MonitorStats {
  /** Events produced (after --events selection). */
  events: number;
  /** Records the kernel could not queue because the ring buffer was full. */
  lost: number;
  /** Records shorter than their layout, or of an unknown kind. */
  malformed: number;
  /** Open flows dropped because the flow table was full. */
  evicted: number;
  /** Open flows now. */
  openFlows: number;
  /** Sockets the kernel could not follow (no socket storage could be had). */
  untracked: number;
  /** DNS answers read (each matched a query of its namespace). */
  dnsResponses: number;
  /** DNS answers that were not valid DNS (counted, otherwise ignored). */
  dnsMalformed: number;
  /** DNS answers read only in part (longer than the kernel copies, or a TCP stream with a hole). */
  dnsCut: number;
  /** Addresses dropped from full DNS caches (one cache per network namespace). */
  dnsEvicted: number;
  /** DNS records lost because DNS's own ring was full (never costs a TCP record). */
  dnsLost: number;
  /** DNS answers that matched no query of their namespace, dropped in the kernel. */
  dnsUnmatched: number;
  /** More copies of an answered query's answer (a resolver and its client both watched), dropped. */
  dnsRepeated: number;
  /** Flows that did not pass the filters in the kernel (--port, --net, --direction, -4/-6). */
  kernelFiltered: number;
  /** Handshake packets of attempts that did not pass the kernel's filters (never written). */
  attemptsFiltered: number;
  /** Recorded queries pushed out of the kernel's bounded query map before their answer. */
  dnsQueriesEvicted: number;
  /** Half-open attempts (--events fail) dropped because their table was full. */
  halfOpenEvicted: number;
  /** Flows ended with reason unknown: their socket went away, its end record lost. */
  unknownEnds: number;
  /** Records that repeated a begin or an end already reported (ignored). */
  duplicates: number;
  /** DNS-over-TCP answer streams dropped unfinished (too many at once, or idle too long). */
  dnsStreamsDropped: number;
  /** Incoming flows whose owner wait ran out: their owner is null (never the listener's). */
  ownerTimeouts: number;
  /** Owner iterator runs on every process only because this kernel cannot run on one (before 6.1). */
  ownerRunsEveryProcess: number;
  /** Owner iterator runs that wrote every socket's row: the kernel's filter refused, or too many waited. */
  ownerRunsEverySocket: number;
  /** Cookies the kernel refused to add to or delete from the owner filter's map. */
  ownerFilterRefused: number;
  /**
   * Sockets closed by their holder while the holders iterator looked at them
   * (released in netflow): closer not known, their end keeps the begin's owner.
   */
  ownerLookCloses: number;
  /** Flows the kernel kept aside while the ring was full (end or fail records), all reported. */
  flowsRecovered: number;
  /** Flows whose end or fail record was lost (the ring and the kernel's store were full). */
  flowsLost: number;
  /**
   * Flow records handed over before an older DNS record that another CPU was
   * still writing (waited for 2 ms in vain): their names may miss that answer.
   */
  dnsUnordered: number;
  /**
   * Answers from a server their namespace is not configured to use: they
   * named addresses only for the cgroup that asked (src/dns/resolvers.ts).
   */
  dnsCgroupOnly: number;
  /**
   * Handshake (fail events) and packet-view records lost because their own
   * ring was full (a SYN flood): never a begin or an end.
   */
  packetsLost: number;
}

/** Where the counts come from: the kernel's counters and each stage's own. */
export interface StatsSources {
  kernel: ProbeCounters & { dnsPending: number };
  /** The monitor is closed: the kernel's counters are final. */
  final: boolean;
  events: number;
  malformed: number;
  flows: FlowStats;
  dns: DnsNamesStats;
  owners: OwnerStats;
  /** The owner filter's (none without the holders iterator). */
  ownerFilter?: WantedStats | undefined;
  /** Records read from the kernel's `kept` map (ends it kept while the ring was full). */
  recovered: number;
  /** Flow records that could not wait for an older DNS record (src/bpf/drain.ts). */
  dnsUnordered?: number;
}

/** The monitor's counts from its sources (pure: what the summary and /metrics show). */
export function monitorStats(s: StatsSources): MonitorStats {
  const { kernel, flows, dns } = s;
  // Entries leave the LRU query map by their answer or by eviction; what stays is pending.
  const queriesEvicted = s.final
    ? Math.max(0, kernel.dnsQueries - kernel.dnsAnswered - kernel.dnsPending)
    : 0;
  return {
    events: s.events,
    lost: kernel.lost,
    malformed: s.malformed,
    evicted: flows.evicted,
    openFlows: flows.open,
    untracked: kernel.untracked,
    dnsResponses: dns.responses,
    dnsMalformed: dns.malformed,
    dnsCut: dns.cut,
    dnsEvicted: dns.evicted,
    dnsLost: kernel.dnsLost,
    dnsUnmatched: kernel.dnsUnmatched,
    dnsRepeated: kernel.dnsRepeated,
    kernelFiltered: kernel.filtered,
    attemptsFiltered: kernel.attemptsFiltered,
    dnsQueriesEvicted: queriesEvicted,
    halfOpenEvicted: flows.halfOpenEvicted,
    unknownEnds: flows.unknownEnds,
    duplicates: flows.duplicates,
    dnsStreamsDropped: dns.streamsDropped,
    ownerTimeouts: s.owners.byTimeout,
    ownerRunsEveryProcess: s.owners.everyProcessRuns,
    ownerRunsEverySocket: s.ownerFilter?.unfiltered ?? 0,
    ownerFilterRefused: s.ownerFilter?.refused ?? 0,
    ownerLookCloses: kernel.lookCloses,
    flowsRecovered: s.recovered,
    flowsLost: kernel.flowsLost,
    dnsUnordered: s.dnsUnordered ?? 0,
    dnsCgroupOnly: dns.cgroupOnly,
    packetsLost: kernel.packetsLost,
  };
}
