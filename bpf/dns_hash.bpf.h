/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The hash of a DNS message's question, as dns.bpf.h records it for a query
 * and checks it on the answer (src/dns/parse.ts computes the same).
 */
#ifndef NETFLOW_DNS_HASH_BPF_H
#define NETFLOW_DNS_HASH_BPF_H

#include "maps.bpf.h"

#define DNS_HDR 12
#define DNS_NAME_MAX 255
#define DNS_FNV_OFFSET 0xcbf29ce484222325ULL
#define DNS_FNV_PRIME 0x100000001b3ULL

/* The question's hash: FNV-1a 64 over the wire name (ASCII lowercased, so a
 * resolver's 0x20 case randomisation still matches), then type and class. */
struct dns_hash_ctx {
	const __u8 *msg; /* the DNS message (after the TCP length) in the scratch record */
	__u32 len;       /* its bytes available */
	__u32 next;      /* offset in the name of the next label length */
	__u32 name_len;  /* set when the root label is reached */
	__u64 hash;
};

static long dns_hash_byte(__u32 i, void *data)
{
	struct dns_hash_ctx *c = data;
	__u32 at = DNS_HDR + i;
	__u8 b;

	if (i >= DNS_NAME_MAX || at >= c->len)
		return 1;
	/* at < 267: the mask (kept by the barrier) shows the verifier a bound */
	barrier_var(at);
	b = c->msg[at & 0x1ff];
	if (i == c->next) {
		if (b == 0) {
			c->name_len = i + 1;
			return 1;
		}
		if (b > 63) /* a compression pointer has no place in a question */
			return 1;
		c->next = i + 1 + b;
	} else if (b >= 'A' && b <= 'Z') {
		b += 'a' - 'A';
	}
	c->hash = (c->hash ^ b) * DNS_FNV_PRIME;
	return 0;
}

/* The hash of the one question at msg[12..len); 0 when there is none. */
static __always_inline __u64 dns_question(const __u8 *msg, __u32 len)
{
	struct dns_hash_ctx c = { .msg = msg, .len = len, .hash = DNS_FNV_OFFSET };
	__u32 end;

	/* QDCOUNT == 1: the only shape a query or its answer has. */
	if (len < DNS_HDR + 5 || msg[4] != 0 || msg[5] != 1)
		return 0;
	bpf_loop(DNS_NAME_MAX, dns_hash_byte, &c, 0);
	end = c.name_len;
	if (end == 0 || end > DNS_NAME_MAX)
		return 0;
	end += DNS_HDR;
	if (end + 4 > len)
		return 0;
	barrier_var(end);
#pragma unroll
	for (int k = 0; k < 4; k++)
		c.hash = (c.hash ^ msg[(end + k) & 0x1ff]) * DNS_FNV_PRIME;
	return c.hash ? c.hash : 1;
}

#endif /* NETFLOW_DNS_HASH_BPF_H */
