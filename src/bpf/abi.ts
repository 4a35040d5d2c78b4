/**
 * The kernel object's constants that TypeScript needs, one object per enum of
 * bpf/netflow.h (keys are the enumerators without their prefix), and the size
 * of the DNS query key. tests/unit/abi_test.ts compares every one of them with
 * the BTF of the built object, both ways: a value changed or added on one side
 * only fails it.
 *
 * @module
 */

/** enum nf_size: array sizes of the records and of nf_config. */
export const NF_SIZE = { COMM_LEN: 16, DNS_MAX: 1280, FILTER_NETS: 8, FILTER_PORTS: 8 } as const;

/** enum nf_kind: nf_header.kind, which record follows. */
export const NF_KIND = {
  PACKET: 1,
  DNS: 2,
  BEGIN: 3,
  END: 4,
  LISTEN: 5,
  RELEASE: 6,
  UPDATE: 7,
  FAIL: 8,
  SYN: 9,
  HS_RST: 10,
  REFUSED: 11,
} as const;

/** enum nf_direction: nf_header.direction (NF_INGRESS, NF_EGRESS). */
export const NF_DIRECTION = { INGRESS: 0, EGRESS: 1 } as const;

/** enum nf_sock_flags: nf_packet.sock_flags. */
export const NF_SOCK = { OWNER: 2 } as const;

/** enum nf_flow_flags: nf_flow.flags. */
export const NF_FLOW = {
  OUTGOING: 1,
  PREEXISTING: 2,
  OWNER: 4,
  SYN_ACKED: 8,
  OWNER_CLOSER: 16,
  MPTCP: 32,
  BEGIN_LOST: 64,
  REPAIRED: 128,
} as const;

/** enum nf_end: nf_flow.end (NF_END_* and, for fail records, NF_FAIL_*). */
export const NF_END = {
  END_NONE: 0,
  END_LOCAL_FIN: 1,
  END_REMOTE_FIN: 2,
  END_LOCAL_RST: 3,
  END_REMOTE_RST: 4,
  END_TIMEOUT: 5,
  FAIL_REFUSED: 6,
  FAIL_TIMEOUT: 7,
  END_REPAIR: 8,
} as const;

/** enum nf_has: bits of nf_config.kernel_has, what the kernel offers (src/bpf/features.ts). */
export const NF_HAS = { OPS_CURRENT: 1, OPS_MPTCP: 2, SKB_NETNS_COOKIE: 4 } as const;

/** enum nf_counter: indexes of the per-CPU `counters` map. */
export const NF_CNT = {
  LOST: 0,
  DNS_CUT: 1,
  UNTRACKED: 2,
  DNS_LOST: 3,
  DNS_UNMATCHED: 4,
  DNS_QUERIES: 5,
  DNS_ANSWERED: 6,
  DNS_STREAMS: 7,
  DNS_REPEATED: 8,
  FILTERED: 9,
  SCRATCH_BUSY: 10,
  NO_CALLBACKS: 11,
  KEPT: 12,
  FLOWS_LOST: 13,
  BEGINS_DEFERRED: 14,
  CALLBACKS_RESTORED: 15,
  PACKETS_LOST: 16,
  ATTEMPTS_FILTERED: 17,
  LOOK_CLOSES: 18,
  MAX: 19,
} as const;

/**
 * Each enum above by its name in the object's BTF, with the prefix its
 * enumerators carry there (NF_END's keys carry the rest: NF_END_..., NF_FAIL_...).
 */
export const ABI_ENUMS = {
  nf_size: { prefix: "NF_", values: NF_SIZE },
  nf_kind: { prefix: "NF_KIND_", values: NF_KIND },
  nf_direction: { prefix: "NF_", values: NF_DIRECTION },
  nf_sock_flags: { prefix: "NF_SOCK_", values: NF_SOCK },
  nf_flow_flags: { prefix: "NF_FLOW_", values: NF_FLOW },
  nf_end: { prefix: "NF_", values: NF_END },
  nf_has: { prefix: "NF_HAS_", values: NF_HAS },
  nf_counter: { prefix: "NF_CNT_", values: NF_CNT },
} as const;

/**
 * TCP states as records carry them (old_state, new_state): the kernel's
 * include/net/tcp_states.h, an anonymous enum that no BTF type names, so not
 * in the comparison; fixed since Linux 2.x.
 */
export const TCP_STATE = {
  ESTABLISHED: 1,
  SYN_SENT: 2,
  SYN_RECV: 3,
  FIN_WAIT1: 4,
  CLOSE: 7,
  CLOSE_WAIT: 8,
  LAST_ACK: 9,
  LISTEN: 10,
} as const;

/** sizeof(struct dns_key) in bpf/dns.bpf.h: the key of the `dns_queries` map. */
export const DNS_KEY_SIZE = 56;
