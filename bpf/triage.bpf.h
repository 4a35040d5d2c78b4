/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The first look of the cgroup_skb pair (skb.bpf.h) at every packet: from the
 * headers alone, read straight from the packet's linear data, with no scratch
 * slot, map lookup or helper call, it tells the packets that nothing of
 * netflow's can use (an ordinary TCP segment, a datagram of any port but 53,
 * another protocol, a later fragment) from those that go the full way (DNS,
 * control packets for the packet view and failed attempts). Flows never
 * depend on packets: they come from sock_ops.
 *
 * When in doubt it says "full way": headers not all in the linear data (the
 * full way copies them with bpf_skb_load_bytes), IPv6 extension headers.
 */
#ifndef NETFLOW_TRIAGE_BPF_H
#define NETFLOW_TRIAGE_BPF_H

#include "packet.bpf.h"

/*
 * Whether a control packet can start a failed attempt (on_handshake): on
 * arrival a SYN or a RST (filtered on a listener there), on departure the
 * kernel's RST+ACK with sequence 0 to a SYN (a closed port).
 */
static __always_inline int handshake_candidate(__u8 direction, __u8 flags, __be32 seq)
{
	if (direction == NF_INGRESS)
		return (flags & (NF_TCP_SYN | NF_TCP_ACK)) == NF_TCP_SYN || (flags & NF_TCP_RST);
	return (flags & (NF_TCP_RST | NF_TCP_ACK)) == (NF_TCP_RST | NF_TCP_ACK) && !seq;
}

/* A TCP segment at `l4` (its first 14 bytes in the linear data). */
static __always_inline int tcp_wanted(__u8 *l4, __u8 direction)
{
	struct tcphdr *th = (struct tcphdr *)l4;
	__u8 flags = l4[13];

	/* DNS over TCP: the full way looks at the payload. */
	if (th->source == bpf_htons(DNS_PORT) || th->dest == bpf_htons(DNS_PORT))
		return 1;
	if (!(flags & (NF_TCP_SYN | NF_TCP_FIN | NF_TCP_RST)))
		return 0; /* the hot path: an ordinary segment */
	if (nf_config.forward_all)
		return 1;
	return nf_config.report_fail && handshake_candidate(direction, flags, th->seq);
}

/* 1: the packet goes the full way (on_packet); 0: nothing to do. */
static __always_inline int packet_wanted(struct __sk_buff *skb, __u8 direction)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u8 *l4;
	__u8 proto;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data;

		if ((void *)(ip + 1) > data_end)
			return 1;
		/* Only the first fragment carries the transport header. */
		if (ip->frag_off & bpf_htons(0x1fff))
			return 0;
		proto = ip->protocol;
		l4 = data + ip->ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data;

		if ((void *)(ip6 + 1) > data_end)
			return 1;
		proto = ip6->nexthdr;
		/* Extension headers before the transport one: the full way skips them. */
		if (proto == IPPROTO_HOPOPTS || proto == IPPROTO_ROUTING || proto == IPPROTO_DSTOPTS)
			return 1;
		l4 = data + sizeof(*ip6);
	} else {
		return 0;
	}
	if (proto == IPPROTO_TCP) {
		if ((void *)(l4 + 14) > data_end)
			return 1;
		return tcp_wanted(l4, direction);
	}
	if (proto == IPPROTO_UDP) {
		struct udphdr *uh = (struct udphdr *)l4;

		if ((void *)(uh + 1) > data_end)
			return 1;
		return uh->source == bpf_htons(DNS_PORT) || uh->dest == bpf_htons(DNS_PORT);
	}
	return 0;
}

#endif /* NETFLOW_TRIAGE_BPF_H */
