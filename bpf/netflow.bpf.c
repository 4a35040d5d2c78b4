// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * netflow's kernel side: a cgroup_skb pair that forwards TCP control packets
 * (SYN, FIN, RST) and DNS responses to a ring buffer, and a cgroup/sock_create
 * program that stamps the creating process into socket storage.
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
	TCP_FIN_WAIT1 = 4,
	TCP_FIN_WAIT2 = 5,
	TCP_TIME_WAIT = 6,
	TCP_CLOSE_WAIT = 8,
	TCP_LAST_ACK = 9,
	TCP_LISTEN = 10,
	TCP_CLOSING = 11,
};

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

/* Who created each TCP socket. BPF_F_CLONE: an accepted socket inherits its
 * listener's entry, since sock_create never runs for it. */
struct nf_owner {
	__u32 pid;
	__u32 uid;
	char comm[NF_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct nf_owner);
} owners SEC(".maps");

/* The ring's records, named so their layout is in this object's BTF (libbpf
 * 1.1 refuses a ring buffer map that declares a value type). Never written. */
const struct nf_tcp *nf_tcp_record __attribute__((unused));
const struct nf_dns *nf_dns_record __attribute__((unused));
const struct nf_holder *nf_holder_record __attribute__((unused));

static __always_inline void count(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&counters, &which);

	if (n)
		*n += 1;
}

/*
 * Copies `len` (a constant) bytes at `off` from the packet: straight from the
 * linear data when it is there (cheap), else through bpf_skb_load_bytes.
 */
static __always_inline int load(struct __sk_buff *skb, __u32 off, void *to, const __u32 len)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;

	if (off <= 512 && data + off + len <= data_end) {
		__builtin_memcpy(to, data + off, len);
		return 0;
	}
	return bpf_skb_load_bytes(skb, off, to, len);
}

/* Where the transport header starts and which protocol it is. */
struct l3 {
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

	if (load(skb, 0, &ip, sizeof(ip)))
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

	if (load(skb, 0, &ip6, sizeof(ip6)))
		return -1;
	next = ip6.nexthdr;
	/* Skip a few extension headers; give up on fragments and long chains. */
#pragma unroll
	for (int i = 0; i < 3; i++) {
		if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS)
			break;
		if (load(skb, off, &opt, sizeof(opt)))
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

/* Does a listening socket own the local port? Tells incoming from outgoing for
 * a flow whose handshake netflow did not see. A tuple with a zero remote
 * matches no connection, so the lookup falls through to the listeners. */
static __always_inline int local_port_listens(struct __sk_buff *skb, struct nf_tcp *r)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	__u32 size;
	int egress = r->hdr.direction == NF_EGRESS;
	__u8 *local = egress ? r->saddr : r->daddr;
	__u16 port = egress ? r->sport : r->dport;

	if (r->hdr.family == 4) {
		__builtin_memcpy(&t.ipv4.daddr, local, 4);
		t.ipv4.dport = bpf_htons(port);
		size = sizeof(t.ipv4);
	} else {
		__builtin_memcpy(t.ipv6.daddr, local, 16);
		t.ipv6.dport = bpf_htons(port);
		size = sizeof(t.ipv6);
	}
	sk = bpf_sk_lookup_tcp(skb, &t, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	bpf_sk_release(sk);
	return 1;
}

static __always_inline void fill_socket(struct nf_tcp *r, struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk, *full;
	struct bpf_tcp_sock *tp;
	struct nf_owner *owner;

	r->sock_cookie = bpf_get_socket_cookie(skb);
	if (!sk)
		return;
	/* A SYN+ACK carries a request socket: its listener holds the owner. */
	full = bpf_sk_fullsock(sk);
	if (!full)
		full = bpf_get_listener_sock(sk);
	if (!full)
		return;
	sk = full;
	r->sock_state = sk->state;
	if (sk->state == TCP_LISTEN)
		r->sock_flags |= NF_SOCK_LISTENER;
	owner = bpf_sk_storage_get(&owners, sk, 0, 0);
	if (owner) {
		r->pid = owner->pid;
		r->uid = owner->uid;
		__builtin_memcpy(r->comm, owner->comm, NF_COMM_LEN);
		r->sock_flags |= NF_SOCK_OWNER;
	}
	/* Counters matter only when a connection ends. */
	if (!(r->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST)))
		return;
	tp = bpf_tcp_sock(sk);
	if (!tp)
		return;
	r->bytes_acked = tp->bytes_acked;
	r->bytes_received = tp->bytes_received;
	r->snd_una = tp->snd_una;
	r->snd_nxt = tp->snd_nxt;
	r->srtt_us = tp->srtt_us >> 3;
	r->segs_in = tp->segs_in;
	r->segs_out = tp->segs_out;
	r->total_retrans = tp->total_retrans;
	r->sock_flags |= NF_SOCK_TCP;
	if (local_port_listens(skb, r))
		r->sock_flags |= NF_SOCK_LOCAL_LISTENS;
}

/*
 * The flow state machine needs the SYN+ACK (begin), the first FIN and any RST
 * (end). A plain SYN adds nothing: the SYN+ACK carries both ISNs, and the RST
 * answering a refused SYN arrives on a SYN_SENT socket. A FIN is the second
 * one when the socket's state says this side already sent or received one.
 */
static __always_inline int needed_by_flows(struct __sk_buff *skb, __u8 direction, __u8 flags)
{
	struct bpf_sock *sk;

	if (flags & TCP_FLAG_RST)
		return 1;
	if (flags & TCP_FLAG_SYN)
		return flags & TCP_FLAG_ACK;
	/* A FIN. */
	sk = skb->sk;
	if (sk)
		sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	if (direction == NF_EGRESS)
		return sk->state != TCP_LAST_ACK; /* we answer the remote FIN */
	switch (sk->state) {
	case TCP_FIN_WAIT1:
	case TCP_FIN_WAIT2:
	case TCP_CLOSING:
	case TCP_TIME_WAIT:
	case TCP_CLOSE_WAIT: /* a retransmission of the remote FIN */
	case TCP_LAST_ACK:
		return 0;
	}
	return 1;
}

static __always_inline void on_tcp(struct __sk_buff *skb, __u8 direction, struct l3 *l3)
{
	struct tcphdr th;
	struct nf_tcp *r;
	__u8 flags;
	__u32 payload;

	if (load(skb, l3->l4_off, &th, sizeof(th)))
		return;
	flags = ((__u8 *)&th)[13];
	payload = l3->l3_len - l3->l4_off - th.doff * 4;
	if (payload > 0xffff)
		payload = 0;

	dns_on_tcp(skb, direction, l3, &th, payload);

	/* The hot path: an ordinary segment stops here. */
	if (!(flags & (TCP_FLAG_SYN | TCP_FLAG_FIN | TCP_FLAG_RST)))
		return;
	if (!nf_config.forward_all && !needed_by_flows(skb, direction, flags))
		return;

	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count(NF_CNT_LOST);
		return;
	}
	__builtin_memset(r, 0, sizeof(*r));
	header(&r->hdr, skb, NF_KIND_TCP, direction, l3->family);
	__builtin_memcpy(r->saddr, l3->saddr, 16);
	__builtin_memcpy(r->daddr, l3->daddr, 16);
	r->sport = bpf_ntohs(th.source);
	r->dport = bpf_ntohs(th.dest);
	r->seq = bpf_ntohl(th.seq);
	r->ack_seq = bpf_ntohl(th.ack_seq);
	r->payload_len = payload;
	r->tcp_flags = flags;
	fill_socket(r, skb);
	bpf_ringbuf_submit(r, 0);
}

static __always_inline void on_packet(struct __sk_buff *skb, __u8 direction)
{
	struct l3 l3;

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

SEC("cgroup_skb/ingress")
int netflow_ingress(struct __sk_buff *skb)
{
	on_packet(skb, NF_INGRESS);
	return ALLOW;
}

SEC("cgroup_skb/egress")
int netflow_egress(struct __sk_buff *skb)
{
	on_packet(skb, NF_EGRESS);
	return ALLOW;
}

SEC("cgroup/sock_create")
int netflow_sock_create(struct bpf_sock *sk)
{
	struct nf_owner *owner;

	if (sk->protocol != IPPROTO_TCP)
		return ALLOW;
	owner = bpf_sk_storage_get(&owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (owner) {
		owner->pid = bpf_get_current_pid_tgid() >> 32;
		owner->uid = (__u32)bpf_get_current_uid_gid();
		bpf_get_current_comm(owner->comm, sizeof(owner->comm));
	}
	return ALLOW;
}

/*
 * Who holds which TCP socket: for sockets made before netflow started, and for
 * servers whose workers accept on a listener their parent created. Minimal
 * kernel types, relocated against the running kernel's BTF (CO-RE).
 */
struct sock_common___nf {
	unsigned short skc_family;
	volatile unsigned char skc_state;
	__u16 skc_num;
	__be16 skc_dport;
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	struct in6_addr skc_v6_daddr; /* the uapi struct, same as the kernel's */
	struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct sock___nf {
	struct sock_common___nf __sk_common;
	__u16 sk_protocol;
} __attribute__((preserve_access_index));

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

struct bpf_iter_meta___nf {
	struct seq_file *seq;
} __attribute__((preserve_access_index));

struct bpf_iter__task_file___nf {
	struct bpf_iter_meta___nf *meta;
	struct task_struct___nf *task;
	__u32 fd;
	struct file *file;
} __attribute__((preserve_access_index));

#define AF_INET 2
#define AF_INET6 10

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
	if (!sk || sk->sk_protocol != IPPROTO_TCP)
		return 0;
	h.cookie = bpf_get_socket_cookie(sk);
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

char LICENSE[] SEC("license") = "Dual BSD/GPL";
