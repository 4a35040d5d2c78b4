/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The cgroup_skb pair: DNS messages (dns.bpf.h) and, only for the
 * net_packet_tcp debug view and failed attempts, TCP control packets. Flows
 * never depend on them (they come from sock_ops). Every packet is first
 * triaged from its headers (triage.bpf.h): most leave there.
 */
#ifndef NETFLOW_SKB_BPF_H
#define NETFLOW_SKB_BPF_H

#include "maps.bpf.h"
#include "packet.bpf.h"
#include "dns.bpf.h"
#include "filter.bpf.h"
#include "triage.bpf.h"

/*
 * The net_packet_tcp debug view: every TCP control packet, with what the
 * packet's socket says when it is a full TCP stream socket (a raw socket or
 * the kernel's reset socket is none). Flows never depend on it.
 */
static __always_inline void emit_packet(struct __sk_buff *skb, __u8 direction, struct l3 *l3,
					struct tcphdr *th, __u8 flags, __u8 kind)
{
	struct bpf_sock *sk = skb->sk, *full = 0;
	struct sock *any;
	struct nf_owner *owner;
	struct nf_packet *r;

	r = bpf_ringbuf_reserve(&packets, sizeof(*r), 0);
	if (!r) {
		count(NF_CNT_PACKETS_LOST);
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
		any = (struct sock *)bpf_skc_to_tcp_sock(full);
		if (any) {
			r->netns = any->__sk_common.skc_net.net->ns.inum;
			r->netns_cookie = net_cookie(any->__sk_common.skc_net.net);
		}
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
	/* No wakeup: nobody waits on this ring (netflow polls `events` only and
	 * drains this one with it, src/monitor.ts), and each wakeup was an
	 * irq_work costing ~0.8 us a record here (bench/RESULTS.md). */
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
}

/* An attempt (always incoming: a SYN or RST reaching a listener, or this
 * host refusing one) through the command line's filters, as its flow would be. */
static __always_inline int handshake_passes(__u8 direction, struct l3 *l3, struct tcphdr *th)
{
	__u32 addr[4] = { 0, 0, bpf_htonl(0xffff), 0 };
	int ingress = direction == NF_INGRESS;

	if (!nf_config.filter_directions && !nf_config.filter_families &&
	    !nf_config.filter_ports && !nf_config.filter_nets)
		return 1;
	/* The remote side: the sender of what reaches the listener, the
	 * receiver of this host's refusal. */
	if (l3->family == 4)
		__builtin_memcpy(&addr[3], ingress ? l3->saddr : l3->daddr, 4);
	else
		__builtin_memcpy(addr, ingress ? l3->saddr : l3->daddr, 16);
	return filter_passes(addr, bpf_ntohs(ingress ? th->dest : th->source),
			     bpf_ntohs(ingress ? th->source : th->dest), 0);
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

	if (!handshake_candidate(direction, flags, th->seq))
		return;
	if (sk)
		full = bpf_sk_fullsock(sk);
	if (direction == NF_INGRESS) {
		/* Packets of a request socket are filtered on its listener. */
		if (!full || full->state != TCP_LISTEN || full->type != SOCK_STREAM ||
		    full->protocol != IPPROTO_TCP)
			return;
		kind = (flags & (NF_TCP_SYN | NF_TCP_ACK)) == NF_TCP_SYN ? NF_KIND_SYN : NF_KIND_HS_RST;
	} else {
		if (full && full->type == SOCK_STREAM)
			return; /* a real socket's own reset */
		kind = NF_KIND_REFUSED;
	}
	/* The filters flows get: an attempt whose connection would not be
	 * reported is not written either (and takes no place in the ring). */
	if (!handshake_passes(direction, l3, th)) {
		count(NF_CNT_ATTEMPTS_FILTERED);
		return;
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

	/* Flows come from sock_ops: only control packets go on (an ordinary
	 * segment seldom gets here: packet_wanted stops it first). */
	if (!nf_config.forward_all && !nf_config.report_fail)
		return;
	flags = ((__u8 *)&th)[13];
	if (!(flags & (NF_TCP_SYN | NF_TCP_FIN | NF_TCP_RST)))
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

/*
 * on_packet with a scratch slot of its own (claim_slot), freed when it
 * returns; only for the packets triage.bpf.h lets through: an ordinary
 * segment leaves before the slot, the map lookup and the atomics.
 */
static __always_inline void on_packet_claimed(struct __sk_buff *skb, __u8 direction)
{
	__u32 zero = 0, slot;
	__u64 *busy;

	if (!packet_wanted(skb, direction))
		return;
	busy = bpf_map_lookup_elem(&skb_busy, &zero);
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

#endif /* NETFLOW_SKB_BPF_H */
