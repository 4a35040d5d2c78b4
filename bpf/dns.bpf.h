/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The DNS half of the cgroup_skb programs, included by netflow.bpf.c: DNS
 * responses (source port 53, UDP and TCP) are copied to the ring buffer for
 * the passive DNS cache. Uses load(), header(), count(), struct l3 and the
 * maps defined before the include.
 */
#ifndef NETFLOW_DNS_BPF_H
#define NETFLOW_DNS_BPF_H

#define DNS_PORT 53

/* Forward a DNS message (payload at `off`, `len` bytes). Rare: at most one per
 * response packet, so the copy is not on the hot path. */
static __always_inline void emit_dns(struct __sk_buff *skb, __u8 direction, struct l3 *l3,
				     __u32 off, __u32 len)
{
	struct nf_dns *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	__u64 copy = len;

	if (!r) {
		count(NF_CNT_LOST);
		return;
	}
	header(&r->hdr, skb, NF_KIND_DNS, direction, l3->family);
	if (copy > NF_DNS_MAX) {
		copy = NF_DNS_MAX;
		count(NF_CNT_DNS_CUT);
	}
	r->payload_len = len;
	r->transport = l3->proto;
	__builtin_memset(r->pad, 0, sizeof(r->pad));
	/* The verifier wants a length it can prove is in 1..NF_DNS_MAX; the
	 * barrier stops clang from folding this check into the one above. */
	barrier_var(copy);
	if (copy < 1 || copy > NF_DNS_MAX || bpf_skb_load_bytes(skb, off, r->payload, copy))
		copy = 0;
	r->captured_len = copy;
	bpf_ringbuf_submit(r, 0);
}

/* DNS over TCP: segments from port 53 with payload. */
static __always_inline void dns_on_tcp(struct __sk_buff *skb, __u8 direction, struct l3 *l3,
				       struct tcphdr *th, __u32 payload)
{
	if (th->source == bpf_htons(DNS_PORT) && payload > 0)
		emit_dns(skb, direction, l3, l3->l4_off + th->doff * 4, payload);
}

static __always_inline void dns_on_udp(struct __sk_buff *skb, __u8 direction, struct l3 *l3)
{
	struct udphdr uh;

	if (load(skb, l3->l4_off, &uh, sizeof(uh)))
		return;
	if (uh.source != bpf_htons(DNS_PORT))
		return;
	emit_dns(skb, direction, l3, l3->l4_off + sizeof(uh), bpf_ntohs(uh.len) - sizeof(uh));
}

#endif /* NETFLOW_DNS_BPF_H */
