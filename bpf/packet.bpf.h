/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Reading packets in the cgroup_skb programs (skb.bpf.h, dns.bpf.h): a
 * scratch slot per run, bytes copied out of the packet, the IP header.
 */
#ifndef NETFLOW_PACKET_BPF_H
#define NETFLOW_PACKET_BPF_H

#include "maps.bpf.h"

#define DNS_PORT 53

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

#endif /* NETFLOW_PACKET_BPF_H */
