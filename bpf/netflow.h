/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Records shared by the kernel programs (netflow.bpf.c) and the TypeScript
 * decoder (src/bpf/records.ts). Only fixed-width types, fields largest first,
 * explicit padding; a test checks the decoder's offsets against this file's
 * BTF in the built object.
 */
#ifndef NETFLOW_H
#define NETFLOW_H

#define NF_COMM_LEN 16
/* DNS payload bytes copied per record: the EDNS default buffer (1232) and a
 * little more. Longer messages are cut, and the record says so. */
#define NF_DNS_MAX 1280

/* nf_header.kind */
enum nf_kind {
	NF_KIND_TCP = 1,
	NF_KIND_DNS = 2,
};

/* nf_header.direction */
enum nf_direction {
	NF_INGRESS = 0,
	NF_EGRESS = 1,
};

/* nf_tcp.sock_flags */
enum nf_sock_flags {
	NF_SOCK_TCP = 1,      /* the tcp counters below were read from the socket */
	NF_SOCK_OWNER = 2,    /* pid/uid/comm come from netflow's socket storage */
	NF_SOCK_LISTENER = 4, /* the packet's socket is a listener (SYN, handshake) */
	NF_SOCK_LOCAL_LISTENS = 8, /* at FIN/RST: a listener owns the local port */
};

/* Opens every record; `kind` says which record follows. */
struct nf_header {
	__u64 ts_ns;     /* bpf_ktime_get_ns() when the packet was seen */
	__u64 cgroup_id; /* cgroup v2 id of the packet's local socket */
	__u8 kind;       /* enum nf_kind */
	__u8 direction;  /* enum nf_direction */
	__u8 family;     /* 4 or 6: the packet's IP version */
	__u8 pad[5];
};

/* One TCP control packet (SYN, FIN or RST set), seen on a local socket. */
struct nf_tcp {
	struct nf_header hdr;
	__u64 sock_cookie;
	__u64 bytes_acked;    /* tcp_sock counters, valid with NF_SOCK_TCP */
	__u64 bytes_received;
	__u8 saddr[16];       /* network order; IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u32 seq;            /* host order */
	__u32 ack_seq;
	__u32 snd_una;
	__u32 snd_nxt;
	__u32 srtt_us;        /* smoothed RTT in us (the kernel keeps it << 3) */
	__u32 segs_in;
	__u32 segs_out;
	__u32 total_retrans;
	__u32 pid;            /* valid with NF_SOCK_OWNER */
	__u32 uid;
	__u16 sport;          /* host order */
	__u16 dport;
	__u16 payload_len;    /* TCP payload bytes in this packet */
	__u8 tcp_flags;       /* FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 */
	__u8 sock_flags;      /* enum nf_sock_flags */
	__u8 sock_state;      /* the socket's TCP state (TCP_ESTABLISHED = 1, ...) */
	__u8 pad[7];
	char comm[NF_COMM_LEN];
};

/* One DNS response (source port 53, UDP or TCP), payload cut at NF_DNS_MAX. */
struct nf_dns {
	struct nf_header hdr;
	__u16 payload_len;    /* the message's full length in this packet */
	__u16 captured_len;   /* bytes copied into payload (<= NF_DNS_MAX) */
	__u8 transport;       /* IPPROTO_UDP (17) or IPPROTO_TCP (6) */
	__u8 pad[3];
	__u8 payload[NF_DNS_MAX];
};

/* One TCP socket a process holds, written by the task_file iterator. */
struct nf_holder {
	__u64 cookie;         /* the socket's cookie, as cgroup_skb sees it */
	__u8 saddr[16];       /* local address (IPv4 in the first 4 bytes) */
	__u8 daddr[16];
	__u32 pid;            /* the holding process (tgid) */
	__u32 uid;
	__u16 sport;          /* local port, host order */
	__u16 dport;
	__u8 family;          /* 4 or 6 */
	__u8 state;           /* TCP state: 10 is LISTEN */
	__u8 pad[2];
	char comm[NF_COMM_LEN];
};

/* Static settings, written into .rodata by netflow before load. */
struct nf_config {
	__u8 forward_all;     /* every control packet (--events net_packet_tcp),
	                       * not only those the flow state machine needs */
	__u8 pad[7];
};

/* Per-CPU counters, indexes into the `counters` map. */
enum nf_counter {
	NF_CNT_LOST = 0,      /* bpf_ringbuf_reserve failed: a record was lost */
	NF_CNT_DNS_CUT = 1,   /* a DNS message longer than NF_DNS_MAX was cut */
	NF_CNT_MAX = 2,
};

_Static_assert(sizeof(struct nf_header) == 24, "nf_header layout");
_Static_assert(sizeof(struct nf_config) == 8, "nf_config layout");
_Static_assert(sizeof(struct nf_holder) == 72, "nf_holder layout");
_Static_assert(sizeof(struct nf_tcp) == 152, "nf_tcp layout");
_Static_assert(sizeof(struct nf_dns) == 24 + 8 + NF_DNS_MAX, "nf_dns layout");

#endif /* NETFLOW_H */
