/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Records shared by the kernel programs (the .bpf.h files) and the TypeScript
 * decoder (src/bpf/records.ts). Only fixed-width types, fields largest first,
 * explicit padding. Tests check the decoder's offsets against this file's
 * BTF in the built object (tests/unit/records_test.ts), and every enum here
 * against src/bpf/abi.ts (tests/unit/abi_test.ts): the enums are named in
 * struct nf_abi (bpf/maps.bpf.h) so that they are in the BTF.
 */
#ifndef NETFLOW_H
#define NETFLOW_H

/* Sizes TypeScript needs too: enums, so they are in the object's BTF (a test
 * compares every enum of this file with src/bpf/abi.ts). */
enum nf_size {
	NF_COMM_LEN = 16,
	/* DNS payload bytes copied per record: the EDNS default buffer (1232) and
	 * a little more. Longer messages are cut, and the record says so. */
	NF_DNS_MAX = 1280,
	NF_FILTER_NETS = 8, /* nf_config.filter_net */
	NF_FILTER_PORTS = 8, /* nf_config.filter_port */
};

/* nf_header.kind */
enum nf_kind {
	NF_KIND_PACKET = 1, /* struct nf_packet: a TCP control packet (net_packet_tcp only) */
	NF_KIND_DNS = 2,    /* struct nf_dns */
	NF_KIND_BEGIN = 3,  /* struct nf_flow: a socket reached ESTABLISHED */
	NF_KIND_END = 4,    /* struct nf_flow: an established socket ended (first FIN, RST, timeout) */
	NF_KIND_LISTEN = 5, /* struct nf_flow: a listening socket (the start snapshot only) */
	NF_KIND_RELEASE = 6, /* struct nf_flow: a socket whose end was already written was closed
	                      * by its last holder (pid/uid/comm), in that process (sock_release) */
	NF_KIND_UPDATE = 7, /* struct nf_flow: an open flow's counters (the update iterator) */
	NF_KIND_FAIL = 8,   /* struct nf_flow: a connect() that never established */
	NF_KIND_SYN = 9,    /* struct nf_packet: a SYN reached a listener (half-open tracking) */
	NF_KIND_HS_RST = 10, /* struct nf_packet: a RST reached a listener (reset in the handshake) */
	NF_KIND_REFUSED = 11, /* struct nf_packet: this host answered a SYN with RST (no socket) */
};

/* nf_header.direction (packets and DNS) */
enum nf_direction {
	NF_INGRESS = 0,
	NF_EGRESS = 1,
};

/* nf_packet.sock_flags */
enum nf_sock_flags {
	NF_SOCK_OWNER = 2,    /* pid/uid/comm come from netflow's socket storage */
};

/* nf_flow.flags */
enum nf_flow_flags {
	NF_FLOW_OUTGOING = 1,    /* the local socket called connect() (sent the SYN) */
	NF_FLOW_PREEXISTING = 2, /* established before netflow started (found by the snapshot) */
	NF_FLOW_OWNER = 4,       /* pid/uid/comm are set */
	NF_FLOW_SYN_ACKED = 8,   /* bytes_acked counts this side's SYN (the active opener) */
	NF_FLOW_OWNER_CLOSER = 16, /* written at the socket's close: without NF_FLOW_OWNER by nobody
	                            * known (closed during a holders look); with it, pid/uid/comm
	                            * were stamped by the process closing the socket,
	                            * in its own context (sock_release, or shutdown's FIN) */
	NF_FLOW_MPTCP = 32,      /* a subflow of an MPTCP socket: the owner is that socket's */
	NF_FLOW_BEGIN_LOST = 64, /* the ring was full at the begin: its record was never written
	                          * (the end, with begin_ns, says it began) */
	NF_FLOW_REPAIRED = 128,  /* restored in TCP repair mode (CRIU): connect() without a
	                          * handshake, so who opened the connection is not known */
};

/* nf_flow.end: how an established socket ended, read from its own state change */
enum nf_end {
	NF_END_NONE = 0,       /* begin and listen records */
	NF_END_LOCAL_FIN = 1,  /* ESTABLISHED -> FIN_WAIT1: this side sent the first FIN */
	NF_END_REMOTE_FIN = 2, /* ESTABLISHED -> CLOSE_WAIT: the peer sent the first FIN */
	NF_END_LOCAL_RST = 3,  /* -> CLOSE by this side's abort (close with unread data, SO_LINGER 0) */
	NF_END_REMOTE_RST = 4, /* -> CLOSE on a RST the kernel accepted */
	NF_END_TIMEOUT = 5,    /* -> CLOSE because the kernel gave up (retransmission, keepalive) */
	NF_FAIL_REFUSED = 6,   /* fail: SYN_SENT -> CLOSE on a RST (ECONNREFUSED) */
	NF_FAIL_TIMEOUT = 7,   /* fail: SYN_SENT -> CLOSE, no answer (the kernel or the application gave up) */
	NF_END_REPAIR = 8,     /* -> CLOSE in TCP repair mode (a CRIU checkpoint): nothing on the
	                        * wire, the connection may go on in a restored socket */
};

/* Opens every record; `kind` says which record follows. */
struct nf_header {
	__u64 ts_ns;     /* bpf_ktime_get_ns() when the kernel saw it */
	__u64 cgroup_id; /* cgroup v2 id of the local socket; of the closing process in
	                  * records it stamped (NF_FLOW_OWNER_CLOSER, release records) */
	__u8 kind;       /* enum nf_kind */
	__u8 direction;  /* enum nf_direction (packets and DNS) */
	__u8 family;     /* 4 or 6 */
	__u8 pad[5];
};

/*
 * One TCP socket event, from the sock_ops program (begin, end) or the tcp
 * iterator (the start snapshot). Addresses are local/remote, not src/dst.
 * The counters are the socket's own, read at that moment.
 */
struct nf_flow {
	struct nf_header hdr;
	__u64 cookie;         /* socket cookie: the socket's identity */
	__u64 begin_ns;       /* when the socket reached ESTABLISHED (or was snapshotted);
	                       * fail records: when connect() sent the first SYN */
	__u64 bytes_acked;    /* tcp_sock counters (64-bit) */
	__u64 bytes_received;
	__u64 netns_cookie;   /* the network namespace's cookie (never reused; 0: not in this kernel) */
	__u8 laddr[16];       /* network order; IPv4 in the first 4 bytes */
	__u8 raddr[16];
	__u32 netns;          /* network namespace inode (reused once the namespace is freed) */
	__u32 snd_una;        /* sequence space, host order */
	__u32 write_seq;      /* next byte the application's writes go to */
	__u32 srtt_us;        /* smoothed RTT in us */
	__u32 segs_in;
	__u32 segs_out;
	__u32 total_retrans;
	__u32 sk_err;         /* the socket's pending error at the end (ECONNRESET, ETIMEDOUT...) */
	__u32 pid;            /* valid with NF_FLOW_OWNER */
	__u32 uid;
	__u16 lport;          /* host order */
	__u16 rport;
	__u8 flags;           /* enum nf_flow_flags */
	__u8 end;             /* enum nf_end */
	__u8 old_state;       /* the state change that ended it (TCP_*), or the socket's state */
	__u8 new_state;
	char comm[NF_COMM_LEN];
};

/* One TCP control packet (SYN, FIN or RST set): the net_packet_tcp debug view,
 * and the handshake packets of failed attempts (NF_KIND_SYN, _HS_RST, _REFUSED),
 * on their own ring (`packets`): a SYN flood never costs a flow record. */
struct nf_packet {
	struct nf_header hdr;
	__u64 sock_cookie;    /* 0 when the packet has no full TCP socket */
	__u64 netns_cookie;   /* the packet's socket's network namespace cookie, 0 when none */
	__u8 saddr[16];       /* network order; IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u32 seq;            /* host order */
	__u32 ack_seq;
	__u32 pid;            /* valid with NF_SOCK_OWNER */
	__u32 uid;
	__u32 netns;          /* the packet's socket's network namespace inode, 0 when none */
	__u16 sport;          /* host order */
	__u16 dport;
	__u8 tcp_flags;       /* FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 */
	__u8 sock_flags;      /* enum nf_sock_flags */
	__u8 sock_state;      /* the full socket's TCP state, 0 when none */
	__u8 pad[5];
	char comm[NF_COMM_LEN];
};

/*
 * One DNS answer that matched a query of the same network namespace (see
 * bpf/dns.bpf.h), on its own ring (`dns_events`). Variable length: the ring
 * holds offsetof(payload) + captured_len bytes of it.
 */
struct nf_dns {
	struct nf_header hdr;
	__u64 question;       /* FNV-1a 64 of the query's question (lowercased name, type, class) */
	__u64 netns_cookie;   /* the socket's network namespace cookie (0: not in this kernel) */
	__u64 query_cgroup;   /* cgroup v2 id of the socket that sent the query (0: not seen leaving) */
	__u8 saddr[16];       /* the packet's, network order; IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u32 netns;          /* inode of the socket's network namespace */
	__u32 stream_off;     /* TCP: offset of this segment in the answer stream (0: its start) */
	__u16 sport;          /* host order */
	__u16 dport;
	__u16 payload_len;    /* UDP: the message's length; TCP: this segment's payload */
	__u16 captured_len;   /* bytes copied into payload (<= NF_DNS_MAX) */
	__u16 query_id;       /* the query's transaction id */
	__u8 transport;       /* IPPROTO_UDP (17) or IPPROTO_TCP (6) */
	__u8 pad[5];
	__u8 payload[NF_DNS_MAX];
};

/* One TCP socket a process holds, written by the task_file iterator. For an
 * MPTCP socket, the cookie and addresses are its first subflow's (the TCP
 * socket flows are reported for). */
struct nf_holder {
	__u64 cookie;         /* the socket's cookie, as the flow records carry it */
	__u8 saddr[16];       /* local address (IPv4 in the first 4 bytes) */
	__u8 daddr[16];
	__u32 pid;            /* the holding process (tgid) */
	__u32 uid;
	__u32 netns;          /* network namespace inode of the socket */
	__u16 sport;          /* local port, host order */
	__u16 dport;
	__u8 family;          /* 4 or 6 */
	__u8 state;           /* TCP state: 10 is LISTEN */
	__u8 mptcp;           /* 1: an MPTCP socket (cookie of its first subflow) */
	__u8 pad[5];
	char comm[NF_COMM_LEN];
	__u64 cgroup_id;      /* the holding process's cgroup v2 id (0: unreadable) */
};

/* Static settings, written into .rodata by netflow before load. */

struct nf_config {
	__u8 forward_all;     /* copy every TCP control packet (--events net_packet_tcp);
	                       * flows never depend on it */
	__u8 snapshot_all;    /* the start snapshot takes every cgroup's sockets */
	__u8 report_fail;     /* write failed attempts (--events net_flow_tcp_fail) */
	__u8 filter_families; /* -4/-6: bit 0 IPv4, bit 1 IPv6; 0: every family */
	__u32 self_pid;       /* netflow's own pid: a socket whose last reference its
	                       * iterator dropped is not closed by netflow's owner */
	/* The filters sock_ops applies where a flow begins (the rest, and these
	 * again, in TypeScript): --net, remote address blocks in network order,
	 * IPv4 as ::ffff:a.b.c.d with the prefix counted in 128 bits... */
	__u32 filter_net[NF_FILTER_NETS][4];
	__u8 filter_net_prefix[NF_FILTER_NETS];
	__u16 filter_port[NF_FILTER_PORTS]; /* --port, either side, host order */
	__u8 filter_nets;       /* ...how many of each are set (0: no such filter) */
	__u8 filter_ports;
	__u8 filter_directions; /* --direction: bit 0 outgoing, bit 1 incoming; 0: both */
	__u8 kernel_has;        /* NF_HAS_*: what the kernel offers, probed at load */
};

/* nf_config.kernel_has: helpers the kernel lets sock_ops programs call. A
 * branch on a flag that is 0 is removed by the verifier before it checks
 * helper ids, so one object loads where a helper is missing. */
enum nf_has {
	NF_HAS_OPS_CURRENT = 1, /* bpf_get_current_pid_tgid, _uid_gid, _comm, _task, probe_read_kernel */
	NF_HAS_OPS_MPTCP = 2,   /* bpf_skc_to_mptcp_sock */
	NF_HAS_SKB_NETNS_COOKIE = 4, /* bpf_get_netns_cookie in cgroup_skb programs */
};

/* Per-CPU counters, indexes into the `counters` map. */
enum nf_counter {
	NF_CNT_LOST = 0,      /* bpf_ringbuf_reserve failed: a record was lost */
	NF_CNT_DNS_CUT = 1,   /* a DNS message longer than NF_DNS_MAX was cut */
	NF_CNT_UNTRACKED = 2, /* no socket storage could be had: a socket netflow cannot follow */
	NF_CNT_DNS_LOST = 3,  /* the dns_events ring was full: a DNS answer was lost */
	NF_CNT_DNS_UNMATCHED = 4, /* an answer that matched no recorded query (dropped) */
	NF_CNT_DNS_QUERIES = 5,   /* queries recorded (new entries in dns_queries) */
	NF_CNT_DNS_ANSWERED = 6,  /* entries removed by their answer, or found stale */
	NF_CNT_DNS_STREAMS = 7,   /* TCP streams that carried a recorded query */
	NF_CNT_DNS_REPEATED = 8,  /* another copy of an answered query's answer (dropped) */
	NF_CNT_FILTERED = 9,      /* sockets that began and did not pass the kernel's filters */
	NF_CNT_SCRATCH_BUSY = 10, /* a packet not looked at: every scratch slot of its CPU busy */
	NF_CNT_NO_CALLBACKS = 11, /* sockets older than netflow whose state callbacks could not be
	                           * turned on (before 6.12): they end through the open-flow list */
	NF_CNT_KEPT = 12,         /* an end or fail record kept in `kept` (the ring was full) */
	NF_CNT_FLOWS_LOST = 13,   /* an end or fail record lost: the ring and `kept` were full */
	NF_CNT_BEGINS_DEFERRED = 14, /* a begin record the full ring lost, written with its end */
	NF_CNT_CALLBACKS_RESTORED = 15, /* another sock_ops program had replaced the callback
	                                 * flags of a socket netflow follows: its state
	                                 * callbacks were turned on again */
	NF_CNT_PACKETS_LOST = 16, /* the `packets` ring was full: a handshake or packet-view record lost */
	NF_CNT_ATTEMPTS_FILTERED = 17, /* a handshake packet of an attempt that did not pass the
	                                * kernel's filters (not written) */
	NF_CNT_LOOK_CLOSES = 18,  /* sockets whose holder closed them while netflow's holders
	                           * iterator looked at them: released in netflow, closer not known */
	NF_CNT_MAX = 19,
};

_Static_assert(sizeof(struct nf_header) == 24, "nf_header layout");
_Static_assert(sizeof(struct nf_config) == 164, "nf_config layout");
_Static_assert(sizeof(struct nf_holder) == 88, "nf_holder layout");
_Static_assert(sizeof(struct nf_flow) == 160, "nf_flow layout");
_Static_assert(sizeof(struct nf_packet) == 120, "nf_packet layout");
_Static_assert(sizeof(struct nf_dns) == 104 + NF_DNS_MAX, "nf_dns layout");

#endif /* NETFLOW_H */
