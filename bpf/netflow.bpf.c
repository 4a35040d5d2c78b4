// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * netflow's kernel side. The socket is the authority on what a flow is:
 *
 *   - a sock_ops program sees every TCP socket of the cgroup reach ESTABLISHED
 *     (begin) and follows its own state changes to the end (first FIN either
 *     way, an accepted RST, a timeout), once per socket (socket storage);
 *   - a tcp iterator snapshots the sockets established before netflow started
 *     and turns on their state callbacks;
 *   - cgroup/sock_create stamps the creating process into socket storage;
 *   - the cgroup_skb pair copies DNS responses (dns.bpf.h) and, only for the
 *     net_packet_tcp debug view, TCP control packets;
 *   - a task_file iterator says which process holds which socket.
 *
 * Every program returns 1: netflow observes, it never drops a packet.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "netflow.h"

#define ALLOW 1
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

/* TCP states (include/net/tcp_states.h). */
enum {
	TCP_ESTABLISHED = 1,
	TCP_SYN_SENT = 2,
	TCP_SYN_RECV = 3,
	TCP_FIN_WAIT1 = 4,
	TCP_CLOSE = 7,
	TCP_CLOSE_WAIT = 8,
	TCP_LISTEN = 10,
};

#define SOCK_STREAM 1
#define SOL_TCP 6
#define EPIPE 32
#define ECONNREFUSED 111
#define ECONNABORTED 103
#define ECONNRESET 104
#ifndef TCP_BPF_SOCK_OPS_CB_FLAGS
#define TCP_BPF_SOCK_OPS_CB_FLAGS 1008 /* bpf_setsockopt: a socket's sock_ops callbacks (6.12) */
#endif

/* The only .rodata variable, so TypeScript finds it at offset 0 (a test checks). */
const volatile struct nf_config nf_config = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NF_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Who holds each TCP (and MPTCP) socket, as far as the kernel can tell in
 * the holder's own context: its creator (sock_create), the process that
 * called connect(), and at the end the process that closes it (sock_release,
 * or shutdown's FIN). BPF_F_CLONE: an accepted socket inherits its listener's
 * entry, since sock_create never runs for it; who accepted it is found by
 * netflow from the system (the task_file iterator). */
struct nf_owner {
	__u32 pid;
	__u32 uid;
	char comm[NF_COMM_LEN];
	__u32 netns;  /* the socket's namespace, noted at its begin (sock_release cannot read it) */
	__u8 closer;  /* pid/uid/comm are the closing process's */
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct nf_owner);
} owners SEC(".maps");

/* nf_sock.state */
enum {
	NF_ST_CONNECTED = 1, /* connect() was called on it (TCP_CONNECT_CB) */
	NF_ST_BEGUN = 2,     /* its begin was written */
	NF_ST_ENDED = 4,     /* its end was written: nothing more, ever */
	NF_ST_TFO = 8,       /* a Fast Open child waiting in SYN_RECV for its handshake */
	NF_ST_FILTERED = 16, /* did not pass the filters: marked begun and ended, never written */
};

/* netflow's state for one TCP socket: a socket begins and ends once. */
struct nf_sock {
	__u64 begin_ns;
	__u64 connect_ns; /* connect() time: a failed attempt's duration starts there */
	__u8 state;     /* NF_ST_* */
	__u8 flags;     /* NF_FLOW_* carried by its records */
	__u8 pad[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct nf_sock);
} socks SEC(".maps");

/* The start snapshot marks only sockets of these cgroups (the watched
 * subtree, filled by netflow before it runs the iterator), unless
 * nf_config.snapshot_all says the whole host is watched. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} snapshot_cgroups SEC(".maps");

/* The ring's records, named so their layout is in this object's BTF (libbpf
 * 1.1 refuses a ring buffer map that declares a value type). Never written. */
const struct nf_flow *nf_flow_record __attribute__((unused));
const struct nf_packet *nf_packet_record __attribute__((unused));
const struct nf_dns *nf_dns_record __attribute__((unused));
const struct nf_holder *nf_holder_record __attribute__((unused));

static __always_inline void count(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&counters, &which);

	if (n)
		*n += 1;
}

/*
 * Scratch memory of the cgroup_skb programs. An egress program running in a
 * task can be interrupted by a softirq (ingress or egress), and on preemptible
 * kernels preempted by another task that runs it too: each run claims a free
 * slot of its CPU at entry, atomically, and frees it at exit.
 */
#define NF_SCRATCH_SLOTS 4

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} skb_busy SEC(".maps");

struct skb_scratch {
	__u8 bytes[64];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NF_SCRATCH_SLOTS);
	__type(key, __u32);
	__type(value, struct skb_scratch);
} skb_scratch SEC(".maps");

/* A free slot of this CPU, now marked busy; NF_SCRATCH_SLOTS when none is. */
static __always_inline __u32 claim_slot(__u64 *busy)
{
	for (__u32 i = 0; i < NF_SCRATCH_SLOTS; i++)
		if (!(__sync_fetch_and_or(busy, 1ULL << i) & (1ULL << i)))
			return i;
	return NF_SCRATCH_SLOTS;
}

/*
 * Copies `len` (a constant, at most 64) bytes at `off` from the packet:
 * straight from the linear data when it is there (cheap), else through
 * bpf_skb_load_bytes into the run's scratch slot (7.x verifiers fail on
 * programs that load bytes into a stack buffer: "verifier bug: stack slot").
 */
static __always_inline int load(struct __sk_buff *skb, __u32 slot, __u32 off, void *to,
				const __u32 len)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct skb_scratch *s;

	if (off <= 512 && data + off + len <= data_end) {
		__builtin_memcpy(to, data + off, len);
		return 0;
	}
	s = bpf_map_lookup_elem(&skb_scratch, &slot);
	if (!s || len > sizeof(s->bytes) || bpf_skb_load_bytes(skb, off, s->bytes, len))
		return -1;
	__builtin_memcpy(to, s->bytes, len);
	return 0;
}

/* Where the transport header starts and which protocol it is. */
struct l3 {
	__u32 slot;   /* this run's scratch slot (claim_slot) */
	__u32 l4_off;
	__u16 l3_len; /* length of the IP packet (IPv6: header + payload) */
	__u8 proto;
	__u8 family;
	__u8 saddr[16];
	__u8 daddr[16];
};

static __always_inline int parse_ipv4(struct __sk_buff *skb, struct l3 *l3)
{
	struct iphdr ip;

	if (load(skb, l3->slot, 0, &ip, sizeof(ip)))
		return -1;
	/* Only the first fragment carries the transport header. */
	if (ip.frag_off & bpf_htons(0x1fff))
		return -1;
	l3->family = 4;
	l3->proto = ip.protocol;
	l3->l4_off = ip.ihl * 4;
	l3->l3_len = bpf_ntohs(ip.tot_len);
	__builtin_memcpy(l3->saddr, &ip.saddr, 4);
	__builtin_memcpy(l3->daddr, &ip.daddr, 4);
	return 0;
}

static __always_inline int parse_ipv6(struct __sk_buff *skb, struct l3 *l3)
{
	struct ipv6hdr ip6;
	struct ipv6_opt_hdr opt;
	__u32 off = sizeof(ip6);
	__u8 next;

	if (load(skb, l3->slot, 0, &ip6, sizeof(ip6)))
		return -1;
	next = ip6.nexthdr;
	/* Skip a few extension headers; give up on fragments and long chains. */
#pragma unroll
	for (int i = 0; i < 3; i++) {
		if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS)
			break;
		if (load(skb, l3->slot, off, &opt, sizeof(opt)))
			return -1;
		next = opt.nexthdr;
		off += (opt.hdrlen + 1) * 8;
	}
	l3->family = 6;
	l3->proto = next;
	l3->l4_off = off;
	l3->l3_len = sizeof(ip6) + bpf_ntohs(ip6.payload_len);
	__builtin_memcpy(l3->saddr, &ip6.saddr, 16);
	__builtin_memcpy(l3->daddr, &ip6.daddr, 16);
	return 0;
}

static __always_inline void header(struct nf_header *h, struct __sk_buff *skb, __u8 kind,
				   __u8 direction, __u8 family)
{
	h->ts_ns = bpf_ktime_get_ns();
	h->cgroup_id = bpf_skb_cgroup_id(skb);
	h->kind = kind;
	h->direction = direction;
	h->family = family;
	__builtin_memset(h->pad, 0, sizeof(h->pad));
}

/* DNS responses: the passive DNS cache's input (bpf/dns.bpf.h). */
#include "dns.bpf.h"

/*
 * Minimal kernel types, relocated against the running kernel's BTF (CO-RE):
 * the socket fields the records need, read through the BTF pointers that
 * bpf_skc_to_tcp_sock() and the iterators give.
 */
struct ns_common___nf {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net___nf {
	struct ns_common___nf ns;
} __attribute__((preserve_access_index));

typedef struct {
	struct net___nf *net;
} possible_net_t___nf;

struct kernfs_node___nf {
	__u64 id;
} __attribute__((preserve_access_index));

struct cgroup___nf {
	struct kernfs_node___nf *kn;
} __attribute__((preserve_access_index));

struct sock_cgroup_data___nf {
	struct cgroup___nf *cgroup;
} __attribute__((preserve_access_index));

struct sock_common___nf {
	unsigned short skc_family;
	volatile unsigned char skc_state;
	__u16 skc_num;
	__be16 skc_dport;
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	possible_net_t___nf skc_net;
	struct in6_addr skc_v6_daddr; /* the uapi struct, same as the kernel's */
	struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct sock___nf {
	struct sock_common___nf __sk_common;
	__u16 sk_type;
	__u16 sk_protocol;
	int sk_err;
	struct sock_cgroup_data___nf sk_cgrp_data;
} __attribute__((preserve_access_index));

struct tcp_sock___nf {
	__u64 bytes_received;
	__u64 bytes_acked;
	__u32 segs_in;
	__u32 segs_out;
	__u32 srtt_us;
	__u32 total_retrans;
	__u32 snd_una;
	__u32 write_seq;
} __attribute__((preserve_access_index));

#define AF_INET 2
#define AF_INET6 10

/*
 * The net_packet_tcp debug view: every TCP control packet, with what the
 * packet's socket says when it is a full TCP stream socket (a raw socket or
 * the kernel's reset socket is none). Flows never depend on it.
 */
static __always_inline void emit_packet(struct __sk_buff *skb, __u8 direction, struct l3 *l3,
					struct tcphdr *th, __u8 flags, __u8 kind)
{
	struct bpf_sock *sk = skb->sk, *full = 0;
	struct sock___nf *any;
	struct nf_owner *owner;
	struct nf_packet *r;

	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count(NF_CNT_LOST);
		return;
	}
	__builtin_memset(r, 0, sizeof(*r));
	header(&r->hdr, skb, kind, direction, l3->family);
	__builtin_memcpy(r->saddr, l3->saddr, 16);
	__builtin_memcpy(r->daddr, l3->daddr, 16);
	r->sport = bpf_ntohs(th->source);
	r->dport = bpf_ntohs(th->dest);
	r->seq = bpf_ntohl(th->seq);
	r->ack_seq = bpf_ntohl(th->ack_seq);
	r->tcp_flags = flags;
	if (sk) {
		full = bpf_sk_fullsock(sk);
		/* A SYN+ACK carries a request socket: its listener is the full socket. */
		if (!full)
			full = bpf_get_listener_sock(sk);
	}
	if (full) {
		/* Any socket of the packet, the kernel's reset socket included, has
		 * a namespace: only struct sock_common is read through this cast. */
		any = (struct sock___nf *)bpf_skc_to_tcp_sock(full);
		if (any)
			r->netns = any->__sk_common.skc_net.net->ns.inum;
	}
	if (full && full->type == SOCK_STREAM && full->protocol == IPPROTO_TCP) {
		r->sock_cookie = bpf_get_socket_cookie(skb);
		r->sock_state = full->state;
		owner = bpf_sk_storage_get(&owners, full, 0, 0);
		if (owner) {
			r->pid = owner->pid;
			r->uid = owner->uid;
			__builtin_memcpy(r->comm, owner->comm, NF_COMM_LEN);
			r->sock_flags |= NF_SOCK_OWNER;
		}
	}
	bpf_ringbuf_submit(r, 0);
}

/*
 * Attempts that never make a socket, for net_flow_tcp_fail: a SYN reaching a
 * listener (a half-open attempt starts), a RST reaching a listener (a reset
 * in the handshake: a SYN scan), and the kernel answering a SYN with RST+ACK,
 * sequence 0, from no TCP stream socket (a closed port: the reset socket).
 */
static __always_inline void on_handshake(struct __sk_buff *skb, __u8 direction, struct l3 *l3,
					 struct tcphdr *th, __u8 flags)
{
	struct bpf_sock *sk = skb->sk, *full = 0;
	__u8 kind;

	if (sk)
		full = bpf_sk_fullsock(sk);
	if (direction == NF_INGRESS) {
		/* Packets of a request socket are filtered on its listener. */
		if (!full || full->state != TCP_LISTEN || full->type != SOCK_STREAM ||
		    full->protocol != IPPROTO_TCP)
			return;
		if ((flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN)
			kind = NF_KIND_SYN;
		else if (flags & TCP_FLAG_RST)
			kind = NF_KIND_HS_RST;
		else
			return;
	} else {
		if ((flags & (TCP_FLAG_RST | TCP_FLAG_ACK)) != (TCP_FLAG_RST | TCP_FLAG_ACK) || th->seq)
			return;
		if (full && full->type == SOCK_STREAM)
			return; /* a real socket's own reset */
		kind = NF_KIND_REFUSED;
	}
	emit_packet(skb, direction, l3, th, flags, kind);
}

static __always_inline void on_tcp(struct __sk_buff *skb, __u8 direction, struct l3 *l3)
{
	struct tcphdr th;
	__u8 flags;
	__u32 payload;

	if (load(skb, l3->slot, l3->l4_off, &th, sizeof(th)))
		return;
	/* The payload from the skb's length, never the IP length field (0 or a
	 * jumbogram for GSO packets over 64 KiB). */
	payload = skb->len - l3->l4_off - th.doff * 4;
	if (payload > skb->len)
		payload = 0;
	dns_on_tcp(skb, direction, l3, &th, payload);

	/* The hot path: flows come from sock_ops, so an ordinary segment stops here. */
	if (!nf_config.forward_all && !nf_config.report_fail)
		return;
	flags = ((__u8 *)&th)[13];
	if (!(flags & (TCP_FLAG_SYN | TCP_FLAG_FIN | TCP_FLAG_RST)))
		return;
	if (nf_config.forward_all)
		emit_packet(skb, direction, l3, &th, flags, NF_KIND_PACKET);
	if (nf_config.report_fail)
		on_handshake(skb, direction, l3, &th, flags);
}

static __always_inline void on_packet(struct __sk_buff *skb, __u8 direction, __u32 slot)
{
	struct l3 l3;

	l3.slot = slot;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (parse_ipv4(skb, &l3))
			return;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (parse_ipv6(skb, &l3))
			return;
	} else {
		return;
	}
	if (l3.proto == IPPROTO_TCP)
		on_tcp(skb, direction, &l3);
	else if (l3.proto == IPPROTO_UDP)
		dns_on_udp(skb, direction, &l3);
}

/* on_packet with a scratch slot of its own (claim_slot), freed when it returns. */
static __always_inline void on_packet_claimed(struct __sk_buff *skb, __u8 direction)
{
	__u32 zero = 0, slot;
	__u64 *busy = bpf_map_lookup_elem(&skb_busy, &zero);

	if (!busy)
		return;
	slot = claim_slot(busy);
	if (slot >= NF_SCRATCH_SLOTS) {
		count(NF_CNT_SCRATCH_BUSY);
		return;
	}
	on_packet(skb, direction, slot);
	__sync_fetch_and_and(busy, ~(1ULL << slot));
}

SEC("cgroup_skb/ingress")
int netflow_ingress(struct __sk_buff *skb)
{
	on_packet_claimed(skb, NF_INGRESS);
	return ALLOW;
}

SEC("cgroup_skb/egress")
int netflow_egress(struct __sk_buff *skb)
{
	on_packet_claimed(skb, NF_EGRESS);
	return ALLOW;
}

static __always_inline void stamp_current(struct nf_owner *owner)
{
	owner->pid = bpf_get_current_pid_tgid() >> 32;
	owner->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(owner->comm, sizeof(owner->comm));
	owner->closer = 0;
}

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

/* A socket flows are made of: TCP, or MPTCP (whose TCP subflows are kernel
 * sockets that sock_create never sees: they take their MPTCP socket's owner). */
static __always_inline int owned_kind(struct bpf_sock *sk)
{
	return sk->type == SOCK_STREAM &&
	       (sk->protocol == IPPROTO_TCP || sk->protocol == IPPROTO_MPTCP);
}

SEC("cgroup/sock_create")
int netflow_sock_create(struct bpf_sock *sk)
{
	struct nf_owner *owner;

	if (!owned_kind(sk))
		return ALLOW;
	owner = bpf_sk_storage_get(&owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (owner)
		stamp_current(owner);
	return ALLOW;
}

/* Addresses, ports, namespace and cgroup of a TCP socket; 0 when it is not IP. */
static __always_inline int fill_endpoints(struct nf_flow *r, struct sock___nf *sk)
{
	struct sock_common___nf *c = &sk->__sk_common;
	struct cgroup___nf *cg;

	if (c->skc_family == AF_INET) {
		r->hdr.family = 4;
		__builtin_memcpy(r->laddr, (void *)&c->skc_rcv_saddr, 4);
		__builtin_memcpy(r->raddr, (void *)&c->skc_daddr, 4);
	} else if (c->skc_family == AF_INET6) {
		r->hdr.family = 6;
		__builtin_memcpy(r->laddr, (void *)&c->skc_v6_rcv_saddr, 16);
		__builtin_memcpy(r->raddr, (void *)&c->skc_v6_daddr, 16);
	} else {
		return 0;
	}
	r->lport = c->skc_num;
	r->rport = bpf_ntohs(c->skc_dport);
	r->netns = c->skc_net.net->ns.inum;
	cg = sk->sk_cgrp_data.cgroup;
	if (cg)
		r->hdr.cgroup_id = cg->kn->id;
	return 1;
}

struct atomic64___nf {
	__s64 counter;
} __attribute__((preserve_access_index));

struct sock_common___nfc {
	struct atomic64___nf skc_cookie;
} __attribute__((preserve_access_index));

struct mptcp_sock___nf {
	struct sock___nf *first; /* the first subflow */
} __attribute__((preserve_access_index));

/* pid/uid/comm from an owner entry (r->netns is set: the entry notes it). */
static __always_inline void copy_owner(struct nf_flow *r, struct nf_owner *owner)
{
	r->flags &= ~(NF_FLOW_OWNER | NF_FLOW_OWNER_CLOSER);
	if (!owner)
		return;
	owner->netns = r->netns;
	r->pid = owner->pid;
	r->uid = owner->uid;
	__builtin_memcpy(r->comm, owner->comm, NF_COMM_LEN);
	r->flags |= NF_FLOW_OWNER;
	if (owner->closer)
		r->flags |= NF_FLOW_OWNER_CLOSER;
}

/* An MPTCP subflow (a kernel socket) takes its MPTCP socket's owner. The
 * helper wants the program's own socket pointer, so sock_ops only. */
static __always_inline void fill_mptcp_owner(struct nf_flow *r, struct bpf_sock *sk)
{
	struct mptcp_sock *msk;

	if (!(nf_config.kernel_has & NF_HAS_OPS_MPTCP))
		return;
	msk = bpf_skc_to_mptcp_sock(sk);
	if (!msk)
		return;
	r->flags |= NF_FLOW_MPTCP;
	copy_owner(r, bpf_sk_storage_get(&owners, msk, 0, 0));
}

/*
 * Everything a flow record says about a socket, at this moment. `owner_sk` is
 * the same socket as the program may pass it to bpf_sk_storage_get: sock_ops'
 * own socket (5.10 takes no BTF pointer there), an iterator's tcp_sock.
 */
static __always_inline int fill_flow(struct nf_flow *r, struct tcp_sock___nf *tp,
				     struct nf_sock *st, __u8 kind, __u64 cookie, void *owner_sk)
{
	struct sock___nf *sk = (struct sock___nf *)tp;

	__builtin_memset(r, 0, sizeof(*r));
	if (!fill_endpoints(r, sk))
		return 0;
	r->hdr.ts_ns = bpf_ktime_get_ns();
	r->hdr.kind = kind;
	r->cookie = cookie;
	r->bytes_acked = tp->bytes_acked;
	r->bytes_received = tp->bytes_received;
	r->snd_una = tp->snd_una;
	r->write_seq = tp->write_seq;
	r->srtt_us = tp->srtt_us >> 3;
	r->segs_in = tp->segs_in;
	r->segs_out = tp->segs_out;
	r->total_retrans = tp->total_retrans;
	r->sk_err = sk->sk_err;
	r->new_state = sk->__sk_common.skc_state;
	if (st) {
		r->begin_ns = st->begin_ns;
		r->flags = st->flags;
	}
	if (owner_sk)
		copy_owner(r, bpf_sk_storage_get(&owners, owner_sk, 0, 0));
	return 1;
}

/*
 * Where an end or fail record goes when the ring is full (netflow's reader
 * stalled): kept here by socket cookie, never reused, and read by userspace
 * after the ring. Allocated as used; beyond max_entries a flow is lost, and
 * counted. 65,536 flows: a 6 s stall at 10,000 endpoints ending a second.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct nf_flow);
} kept SEC(".maps");

/* A zeroed record, the value a `kept` entry is created with (then filled in place). */
struct nf_flow nf_zero_flow;

static __always_inline void finish_flow(struct nf_flow *r, struct bpf_sock *sk, __u8 end,
					__u8 old_state, __u8 new_state)
{
	fill_mptcp_owner(r, sk);
	r->end = end;
	r->old_state = old_state;
	r->new_state = new_state;
}

/* The ring was full: a begin is written with its end; an end or fail is kept. */
static __always_inline void keep_flow(struct bpf_sock_ops *skops, struct tcp_sock___nf *tp,
				      struct nf_sock *st, __u8 kind, __u8 end, __u8 old_state,
				      __u8 new_state, struct bpf_sock *sk)
{
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct nf_flow *r;

	count(NF_CNT_LOST);
	if (kind == NF_KIND_BEGIN) {
		st->flags |= NF_FLOW_BEGIN_LOST;
		count(NF_CNT_BEGINS_DEFERRED);
		return;
	}
	/* The socket's lock is held: no other writer of this cookie's entry. */
	if (bpf_map_update_elem(&kept, &cookie, &nf_zero_flow, BPF_NOEXIST) ||
	    !(r = bpf_map_lookup_elem(&kept, &cookie))) {
		count(NF_CNT_FLOWS_LOST);
		return;
	}
	if (!fill_flow(r, tp, st, kind, cookie, sk)) {
		bpf_map_delete_elem(&kept, &cookie);
		return;
	}
	finish_flow(r, sk, end, old_state, new_state);
	count(NF_CNT_KEPT);
}

static __always_inline void emit_flow(struct bpf_sock_ops *skops, struct tcp_sock___nf *tp,
				      struct nf_sock *st, __u8 kind, __u8 end, __u8 old_state,
				      __u8 new_state)
{
	struct bpf_sock *sk = skops->sk;
	struct nf_flow *r;

	if (!sk)
		return;
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		keep_flow(skops, tp, st, kind, end, old_state, new_state, sk);
		return;
	}
	/* In sock_ops the cookie helper takes the context. */
	if (!fill_flow(r, tp, st, kind, bpf_get_socket_cookie(skops), sk)) {
		bpf_ringbuf_discard(r, 0);
		return;
	}
	finish_flow(r, sk, end, old_state, new_state);
	bpf_ringbuf_submit(r, 0);
}

/* From now on the socket's state changes call sock_ops (STATE_CB), on top of
 * whatever callbacks other programs asked for. */
static __always_inline void state_callbacks_on(struct bpf_sock_ops *skops)
{
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* TCP's connect (the SYN is about to leave): this side is the active opener. */
static __always_inline void on_connect(struct bpf_sock_ops *skops, struct bpf_sock *sk)
{
	struct nf_sock *st = bpf_sk_storage_get(&socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

	if (!st) {
		count(NF_CNT_UNTRACKED);
		return;
	}
	/* connect() again after a disconnect (AF_UNSPEC): a new connection on
	 * the same socket, with its own begin and end. */
	if (st->state & (NF_ST_BEGUN | NF_ST_ENDED)) {
		st->state = 0;
		st->flags = 0;
		st->begin_ns = 0;
	}
	st->state |= NF_ST_CONNECTED;
	st->connect_ns = bpf_ktime_get_ns();
	/* SYN_SENT -> CLOSE is a failed attempt (net_flow_tcp_fail). */
	if (nf_config.report_fail)
		state_callbacks_on(skops);
	/* The connecting process is stamped by cgroup/connect4 or connect6:
	 * sock_ops programs lack the current-task helpers on many kernels. */
}

/*
 * connect(), in the calling process, before TCP sends its SYN: the active
 * opener is whoever connects (a socket may have been created by a parent).
 * An MPTCP subflow connected by the kernel's path manager is stamped too;
 * flows of MPTCP subflows take their MPTCP socket's owner anyway.
 */
static __always_inline int stamp_connect(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct nf_owner *owner;

	if (!sk || !owned_kind(sk))
		return ALLOW;
	owner = bpf_sk_storage_get(&owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (owner)
		stamp_current(owner);
	return ALLOW;
}

SEC("cgroup/connect4")
int netflow_connect4(struct bpf_sock_addr *ctx)
{
	return stamp_connect(ctx);
}

SEC("cgroup/connect6")
int netflow_connect6(struct bpf_sock_addr *ctx)
{
	return stamp_connect(ctx);
}

/* The process closing a socket, in its own context, unless it is netflow
 * dropping the last reference its iterator took. */
static __always_inline void stamp_closer(struct nf_owner *owner)
{
	if (bpf_get_current_pid_tgid() >> 32 == nf_config.self_pid)
		return;
	stamp_current(owner);
	owner->closer = 1;
}

/* This side's FIN: close() or shutdown(), in the holder's process (an MPTCP
 * subflow's is the kernel's, and keeps its MPTCP socket's owner). */
static __always_inline void owner_at_local_fin(struct bpf_sock *sk)
{
	struct nf_owner *owner;

	/* Without the current-task helpers in sock_ops (the verifier removes
	 * this branch), the closer is named at the last close (sock_release). */
	if (!(nf_config.kernel_has & NF_HAS_OPS_CURRENT))
		return;
	if ((nf_config.kernel_has & NF_HAS_OPS_MPTCP) && bpf_skc_to_mptcp_sock(sk))
		return;
	owner = bpf_sk_storage_get(&owners, sk, 0, 0);
	if (owner)
		stamp_closer(owner);
}

static __always_inline void begin(struct bpf_sock_ops *skops, struct nf_sock *st,
				  struct tcp_sock___nf *tp);

/* The socket is ESTABLISHED: the handshake's last packet was processed (the
 * SYN+ACK on the client, the final ACK, cookie or not, on the server). */
static __always_inline void on_established(struct bpf_sock_ops *skops, struct bpf_sock *sk,
					   struct tcp_sock___nf *tp)
{
	struct nf_sock *st = bpf_sk_storage_get(&socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

	if (!st) {
		count(NF_CNT_UNTRACKED);
		return;
	}
	if (st->state & NF_ST_BEGUN)
		return;
	/* A TCP Fast Open child is made at the SYN, still in SYN_RECV: it
	 * begins when the handshake completes, if it ever does. */
	if (skops->state == TCP_SYN_RECV) {
		st->state |= NF_ST_TFO;
		state_callbacks_on(skops);
		return;
	}
	begin(skops, st, tp);
}

/* The remote address is in filter_net[i] (addresses as in nf_config). */
static __always_inline int net_match(const __u32 addr[4], __u32 i)
{
	__u32 prefix, bits, mask;

	if (i >= NF_FILTER_NETS)
		return 0;
	prefix = nf_config.filter_net_prefix[i];
	for (__u32 w = 0; w < 4; w++) {
		bits = prefix > 32 * w ? prefix - 32 * w : 0;
		if (bits == 0)
			break;
		mask = bits >= 32 ? 0xffffffff : bpf_htonl(0xffffffff << (32 - bits));
		if ((addr[w] ^ nf_config.filter_net[i][w]) & mask)
			return 0;
	}
	return 1;
}

/* --port, --net, --direction and -4/-6, where the flow begins: a socket that
 * does not pass never turns on its state callbacks and is never written. */
static __always_inline int wanted(struct tcp_sock___nf *tp, int outgoing)
{
	struct sock_common___nf *c = &((struct sock___nf *)tp)->__sk_common;
	__u32 addr[4];
	__u32 lport = c->skc_num, rport = bpf_ntohs(c->skc_dport);
	int v4, hit;

	if (nf_config.filter_directions &&
	    !(nf_config.filter_directions & (outgoing ? 1 : 2)))
		return 0;
	if (c->skc_family == AF_INET) {
		addr[0] = 0;
		addr[1] = 0;
		addr[2] = bpf_htonl(0xffff);
		addr[3] = c->skc_daddr;
	} else {
		__builtin_memcpy(addr, (void *)&c->skc_v6_daddr, 16);
	}
	/* An IPv4-mapped peer of an IPv6 socket is IPv4, as netflow prints it. */
	v4 = addr[0] == 0 && addr[1] == 0 && addr[2] == bpf_htonl(0xffff);
	if (nf_config.filter_families && !(nf_config.filter_families & (v4 ? 1 : 2)))
		return 0;
	if (nf_config.filter_ports) {
		hit = 0;
		for (__u32 i = 0; i < NF_FILTER_PORTS && i < nf_config.filter_ports; i++)
			if (nf_config.filter_port[i] == lport || nf_config.filter_port[i] == rport)
				hit = 1;
		if (!hit)
			return 0;
	}
	if (nf_config.filter_nets) {
		hit = 0;
		for (__u32 i = 0; i < NF_FILTER_NETS && i < nf_config.filter_nets; i++)
			if (net_match(addr, i))
				hit = 1;
		if (!hit)
			return 0;
	}
	return 1;
}

static __always_inline void begin(struct bpf_sock_ops *skops, struct nf_sock *st,
				  struct tcp_sock___nf *tp)
{
	int outgoing = skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB ||
		       (st->state & NF_ST_CONNECTED);

	if (!wanted(tp, outgoing)) {
		st->state |= NF_ST_BEGUN | NF_ST_ENDED | NF_ST_FILTERED;
		count(NF_CNT_FILTERED);
		return;
	}
	st->state |= NF_ST_BEGUN;
	st->begin_ns = bpf_ktime_get_ns();
	/* A simultaneous open reaches ESTABLISHED through SYN_RECV (the passive
	 * callback): connect() says who initiated. */
	if (skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB || (st->state & NF_ST_CONNECTED))
		st->flags |= NF_FLOW_OUTGOING | NF_FLOW_SYN_ACKED;
	state_callbacks_on(skops);
	emit_flow(skops, tp, st, NF_KIND_BEGIN, NF_END_NONE, 0, TCP_ESTABLISHED);
}

/*
 * A state change of an established socket: the first that leaves the open
 * states ends the flow. Segments the kernel rejects (out of window, RFC 5961)
 * change no state, so they end nothing; retransmitted FINs change none either.
 */
static __always_inline void on_state(struct bpf_sock_ops *skops, struct bpf_sock *sk,
				     struct tcp_sock___nf *tp, __u32 old, __u32 new)
{
	struct nf_sock *st = bpf_sk_storage_get(&socks, sk, 0, 0);
	__u8 end;
	int err;

	if (!st || (st->state & NF_ST_ENDED))
		return;
	if (!(st->state & NF_ST_BEGUN) && (st->state & NF_ST_TFO)) {
		if (new == TCP_ESTABLISHED)
			begin(skops, st, tp);
		return;
	}
	if (!(st->state & NF_ST_BEGUN)) {
		/* A connect() that never established: refused, or given up. */
		if (old != TCP_SYN_SENT || new != TCP_CLOSE || !(st->state & NF_ST_CONNECTED))
			return;
		st->state |= NF_ST_ENDED;
		st->begin_ns = st->connect_ns;
		st->flags |= NF_FLOW_OUTGOING;
		err = ((struct sock___nf *)tp)->sk_err;
		emit_flow(skops, tp, st, NF_KIND_FAIL,
			  err == ECONNREFUSED ? NF_FAIL_REFUSED : NF_FAIL_TIMEOUT, old, new);
		return;
	}
	if (new == TCP_FIN_WAIT1) {
		end = NF_END_LOCAL_FIN;
		owner_at_local_fin(sk);
	} else if (new == TCP_CLOSE_WAIT) {
		end = NF_END_REMOTE_FIN;
	} else if (new == TCP_CLOSE) {
		/* tcp_reset() and tcp_write_err() set sk_err before tcp_done();
		 * the application's abort (close with unread data, SO_LINGER 0)
		 * sets none before the state change. */
		err = ((struct sock___nf *)tp)->sk_err;
		if (err == ECONNRESET || err == EPIPE)
			end = NF_END_REMOTE_RST;
		else if (err == 0 || err == ECONNABORTED)
			end = NF_END_LOCAL_RST;
		else
			end = NF_END_TIMEOUT;
	} else {
		return;
	}
	st->state |= NF_ST_ENDED;
	emit_flow(skops, tp, st, NF_KIND_END, end, old, new);
}

SEC("sockops")
int netflow_sockops(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct tcp_sock___nf *tp;

	if (!sk)
		return ALLOW;
	if (skops->op == BPF_SOCK_OPS_TCP_CONNECT_CB) {
		on_connect(skops, sk);
		return ALLOW;
	}
	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
	    skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB && skops->op != BPF_SOCK_OPS_STATE_CB)
		return ALLOW;
	tp = (struct tcp_sock___nf *)bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return ALLOW;
	if (skops->op == BPF_SOCK_OPS_STATE_CB)
		on_state(skops, sk, tp, skops->args[0], skops->args[1]);
	else
		on_established(skops, sk, tp);
	return ALLOW;
}

struct bpf_iter_meta___nf {
	struct seq_file *seq;
} __attribute__((preserve_access_index));

struct bpf_iter__tcp___nf {
	struct bpf_iter_meta___nf *meta;
	struct sock_common *sk_common;
} __attribute__((preserve_access_index));

/*
 * The start snapshot: every listening socket (so netflow can orient the
 * others), and every established socket of the watched cgroups that netflow
 * has not seen begin. Those are marked begun and get their state callbacks
 * turned on, so they end like any other. The iterator holds the socket's
 * lock, so no state change slips between the check and the mark.
 */
SEC("iter/tcp")
int netflow_snapshot(struct bpf_iter__tcp___nf *ctx)
{
	struct tcp_sock___nf *tp;
	struct sock___nf *sk;
	struct nf_sock *st;
	struct nf_flow r;
	__u64 cgroup;
	int cb = 0;
	__u8 state;

	struct sock_common *skc = ctx->sk_common;

	if (!skc)
		return 0;
	tp = (struct tcp_sock___nf *)bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0; /* TIME_WAIT and request sockets */
	sk = (struct sock___nf *)tp;
	if (sk->sk_type != SOCK_STREAM || sk->sk_protocol != IPPROTO_TCP)
		return 0;
	state = sk->__sk_common.skc_state;
	if (state == TCP_LISTEN) {
		if (fill_flow(&r, tp, 0, NF_KIND_LISTEN, bpf_get_socket_cookie(tp), tp))
			bpf_seq_write((struct seq_file *)ctx->meta->seq, &r, sizeof(r));
		return 0;
	}
	if (state != TCP_ESTABLISHED)
		return 0;
	if (!fill_flow(&r, tp, 0, NF_KIND_BEGIN, bpf_get_socket_cookie(tp), tp))
		return 0;
	cgroup = r.hdr.cgroup_id;
	if (!nf_config.snapshot_all && !bpf_map_lookup_elem(&snapshot_cgroups, &cgroup))
		return 0;
	st = bpf_sk_storage_get(&socks, tp, 0, 0);
	if (st && (st->state & NF_ST_BEGUN))
		return 0; /* established after netflow attached: sock_ops has it */
	r.begin_ns = r.hdr.ts_ns;
	r.flags |= NF_FLOW_PREEXISTING;
	/* Written first: when the seq buffer is full the kernel shows this socket
	 * again in the next read, which must find it unmarked. */
	if (bpf_seq_write((struct seq_file *)ctx->meta->seq, &r, sizeof(r)))
		return 0;
	st = bpf_sk_storage_get(&socks, tp, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		count(NF_CNT_UNTRACKED);
		return 0;
	}
	st->state |= NF_ST_BEGUN;
	st->begin_ns = r.begin_ns;
	st->flags |= NF_FLOW_PREEXISTING;
	/* Add the state callbacks to whatever other programs asked for. */
	if (bpf_getsockopt(tp, SOL_TCP, TCP_BPF_SOCK_OPS_CB_FLAGS, &cb, sizeof(cb)))
		cb = 0;
	cb |= BPF_SOCK_OPS_STATE_CB_FLAG;
	if (bpf_setsockopt(tp, SOL_TCP, TCP_BPF_SOCK_OPS_CB_FLAGS, &cb, sizeof(cb)))
		count(NF_CNT_NO_CALLBACKS); /* its end will come from the open-flow sweeps */
	return 0;
}

/*
 * The open flows now: every socket netflow saw begin and not end, with its
 * counters. One run per interval gives every flow's update (and tells
 * userspace which flows lost their end record: they are not listed).
 */
SEC("iter/tcp")
int netflow_open(struct bpf_iter__tcp___nf *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct tcp_sock___nf *tp;
	struct nf_sock *st;
	struct nf_flow r;

	if (!skc)
		return 0;
	tp = (struct tcp_sock___nf *)bpf_skc_to_tcp_sock(skc);
	if (!tp || ((struct sock___nf *)tp)->sk_type != SOCK_STREAM)
		return 0;
	st = bpf_sk_storage_get(&socks, tp, 0, 0);
	if (!st || (st->state & (NF_ST_BEGUN | NF_ST_ENDED)) != NF_ST_BEGUN)
		return 0;
	if (fill_flow(&r, tp, st, NF_KIND_UPDATE, bpf_get_socket_cookie(tp), tp))
		bpf_seq_write((struct seq_file *)ctx->meta->seq, &r, sizeof(r));
	return 0;
}

/*
 * Who holds which TCP socket: for sockets made before netflow started, and for
 * servers whose workers accept on a listener their parent created.
 */
struct socket___nf {
	struct sock___nf *sk;
} __attribute__((preserve_access_index));

struct kuid___nf {
	__u32 val;
} __attribute__((preserve_access_index));

struct cred___nf {
	struct kuid___nf uid;
} __attribute__((preserve_access_index));

struct task_struct___nf {
	int pid;
	int tgid;
	const struct cred___nf *cred;
	char comm[16];
} __attribute__((preserve_access_index));

struct bpf_iter__task_file___nf {
	struct bpf_iter_meta___nf *meta;
	struct task_struct___nf *task;
	__u32 fd;
	struct file *file;
} __attribute__((preserve_access_index));

SEC("iter/task_file")
int netflow_holders(struct bpf_iter__task_file___nf *ctx)
{
	struct task_struct___nf *task = ctx->task;
	struct file *file = ctx->file;
	struct socket___nf *sock;
	struct sock___nf *sk;
	struct nf_holder h = {};

	if (!task || !file || task->pid != task->tgid) /* threads share the fd table */
		return 0;
	sock = (struct socket___nf *)bpf_sock_from_file(file);
	if (!sock)
		return 0;
	sk = sock->sk;
	if (!sk || sk->sk_type != SOCK_STREAM)
		return 0;
	if (sk->sk_protocol == IPPROTO_MPTCP && bpf_core_type_exists(struct mptcp_sock___nf)) {
		/* Flows are its subflows': name the first (the one a loopback or
		 * single-path connection has) by its cookie, set when its begin
		 * was written. The verifier types sock->sk as a plain sock. */
		struct mptcp_sock___nf *msk = (struct mptcp_sock___nf *)sk;
		struct sock_common___nfc *first = 0;

		bpf_probe_read_kernel(&first, sizeof(first), &msk->first);
		if (!first ||
		    bpf_probe_read_kernel(&h.cookie, sizeof(h.cookie), &first->skc_cookie.counter))
			return 0;
		h.mptcp = 1;
	} else if (sk->sk_protocol == IPPROTO_TCP) {
		/* sock->sk is untrusted to newer verifiers (bpf_get_socket_cookie
		 * refuses it): read the cookie, set when the begin was written. */
		if (bpf_probe_read_kernel(&h.cookie, sizeof(h.cookie),
					  &((struct sock_common___nfc *)sk)->skc_cookie.counter))
			return 0;
	} else {
		return 0;
	}
	h.netns = sk->__sk_common.skc_net.net->ns.inum;
	h.pid = task->tgid;
	h.uid = task->cred->uid.val;
	bpf_probe_read_kernel(h.comm, sizeof(h.comm), task->comm);
	h.state = sk->__sk_common.skc_state;
	h.sport = sk->__sk_common.skc_num;
	h.dport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (sk->__sk_common.skc_family == AF_INET) {
		h.family = 4;
		__builtin_memcpy(h.saddr, (void *)&sk->__sk_common.skc_rcv_saddr, 4);
		__builtin_memcpy(h.daddr, (void *)&sk->__sk_common.skc_daddr, 4);
	} else if (sk->__sk_common.skc_family == AF_INET6) {
		h.family = 6;
		bpf_probe_read_kernel(h.saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_probe_read_kernel(h.daddr, 16, &sk->__sk_common.skc_v6_daddr);
	} else {
		return 0;
	}
	bpf_seq_write((struct seq_file *)ctx->meta->seq, &h, sizeof(h));
	return 0;
}

/*
 * The last close of a socket, in the closing process: the owner entry names
 * it from now on (the end written by this close carries it). A socket whose
 * end was already written (the peer closed first, in softirq) gets a release
 * record, so netflow can give that end the name its holder had at close.
 */
SEC("cgroup/sock_release")
int netflow_sock_release(struct bpf_sock *sk)
{
	struct nf_owner *owner;
	struct nf_sock *st;
	struct nf_flow *r;

	if (!owned_kind(sk))
		return ALLOW;
	owner = bpf_sk_storage_get(&owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!owner)
		return ALLOW;
	stamp_closer(owner);
	if (!owner->closer)
		return ALLOW;
	st = bpf_sk_storage_get(&socks, sk, 0, 0);
	if (!st || !(st->state & NF_ST_BEGUN) || !(st->state & NF_ST_ENDED) ||
	    (st->state & NF_ST_FILTERED))
		return ALLOW;
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count(NF_CNT_LOST);
		return ALLOW;
	}
	__builtin_memset(r, 0, sizeof(*r));
	r->hdr.ts_ns = bpf_ktime_get_ns();
	r->hdr.kind = NF_KIND_RELEASE;
	r->hdr.family = sk->family == AF_INET6 ? 6 : 4;
	r->cookie = bpf_get_socket_cookie(sk);
	r->netns = owner->netns;
	r->pid = owner->pid;
	r->uid = owner->uid;
	__builtin_memcpy(r->comm, owner->comm, NF_COMM_LEN);
	r->flags = NF_FLOW_OWNER | NF_FLOW_OWNER_CLOSER;
	bpf_ringbuf_submit(r, 0);
	return ALLOW;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
