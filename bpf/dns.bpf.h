/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The DNS half of the cgroup_skb programs (skb.bpf.h calls dns_on_udp and
 * dns_on_tcp). Uses load(), header(), struct l3 (packet.bpf.h) and count().
 *
 * Names must come only from answers to queries the same network namespace
 * sent, so queries are recorded here and answers matched against them:
 *
 * - A query (destination port 53, QR clear) records its key (netns, client
 *   address and port, server address and port, transaction id, transport) and
 *   a hash of its question in `dns_queries`, a bounded LRU map.
 * - An answer (source port 53, QR set) is copied to `dns_events`, DNS's own
 *   ring, only when the same key is recorded with the same question, not
 *   older than DNS_QUERY_TTL_NS; the entry moves to `dns_answered` (one answer
 *   per query; another copy of it counts as NF_CNT_DNS_REPEATED).
 *   Anything else is counted (NF_CNT_DNS_UNMATCHED) and dropped: a flood of
 *   forged answers costs a header load and a map lookup, never a ring record.
 * - Over TCP, a segment to port 53 that begins a query opens `dns_streams`
 *   (netns and 4-tuple); only the answer bytes of such a stream are copied,
 *   each segment with its offset in the stream so userspace reassembles it and
 *   checks id and question (a segment does not always begin a message).
 *
 * Both directions are handled alike, so a watched local resolver (query on
 * ingress, answer on egress) works as a watched client does.
 */
#ifndef NETFLOW_DNS_BPF_H
#define NETFLOW_DNS_BPF_H

#include "packet.bpf.h"
#include "dns_hash.bpf.h"
#include "netns.bpf.h"

/* Query bytes read to find its question: TCP length, header, name, type, class. */
#define DNS_QUERY_COPY (2 + DNS_HDR + DNS_NAME_MAX + 4)
/* An answer later than this after its query is stale (resolvers give up after ~5 s). */
#define DNS_QUERY_TTL_NS (30ULL * 1000000000ULL)

/* Who asked whom: the same key for a query and its answer, whichever way each travels. */
struct dns_key {
	__u64 netns;       /* the namespace's cookie (its inode where the kernel has no cookie) */
	__u8 client[16];
	__u8 server[16];
	__u16 client_port; /* network order */
	__u16 server_port;
	__u16 id;          /* transaction id (0 for a TCP stream's key) */
	__u8 transport;
	__u8 family;
	__u8 pad[4];
};

struct dns_query {
	__u64 ts_ns;
	__u64 question;
	__u64 cgroup;      /* the asking socket's cgroup, seen as the query left it (0: not seen) */
};

struct dns_stream {
	__u64 ts_ns;
	__u64 question;
	__u64 cgroup;
	__u32 base_seq;    /* sequence number of the answer's first byte */
	__u32 end_off;     /* 2 + the answer's length, once its first segment is seen */
	__u16 id;
	__u8 started;
	__u8 pad[5];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} dns_events SEC(".maps");

/* Bounded: an old unanswered query is the first to go. The evictions are
 * counted in userspace (queries recorded - answered - still present). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct dns_key);
	__type(value, struct dns_query);
} dns_queries SEC(".maps");

/* Queries answered lately: a second copy of an answer (a client and its
 * resolver both watched on one host) is a repeat, not a forgery. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct dns_key);
	__type(value, __u64);
} dns_answered SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct dns_key);
	__type(value, struct dns_stream);
} dns_streams SEC(".maps");

/* One record being built: too large for the stack, and written to the ring
 * with its real length (bpf_ringbuf_output), not NF_DNS_MAX. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NF_SCRATCH_SLOTS);
	__type(key, __u32);
	__type(value, struct nf_dns);
} dns_scratch SEC(".maps");

/* The key for a message between (saddr, sport) and (daddr, dport). */
static __always_inline void dns_key(struct dns_key *k, struct __sk_buff *skb, struct l3 *l3,
				    int answer, __be16 sport, __be16 dport, __u16 id, __u8 transport)
{
	__u8 *client = answer ? l3->daddr : l3->saddr;
	__u8 *server = answer ? l3->saddr : l3->daddr;

	__builtin_memset(k, 0, sizeof(*k));
	if (l3->family == 4) {
		__builtin_memcpy(k->client, client, 4);
		__builtin_memcpy(k->server, server, 4);
	} else {
		__builtin_memcpy(k->client, client, 16);
		__builtin_memcpy(k->server, server, 16);
	}
	k->client_port = answer ? dport : sport;
	k->server_port = answer ? sport : dport;
	k->netns = skb_netns_cookie(skb);
	if (!k->netns)
		k->netns = skb_netns(skb);
	k->id = id;
	k->transport = transport;
	k->family = l3->family;
}

/* The record being built, in this run's scratch slot (claim_slot). */
static __always_inline struct nf_dns *dns_scratch_record(__u32 slot)
{
	return bpf_map_lookup_elem(&dns_scratch, &slot);
}

/* Copies min(len, max) bytes at `off` into r->payload; returns the count (0: failed). */
static __always_inline __u32 dns_copy(struct __sk_buff *skb, struct nf_dns *r, __u32 off,
				      __u32 len, __u32 max)
{
	__u64 copy = len < max ? len : max; /* 64-bit: the checked register is the one passed */
	__u64 less;

	/* The verifier wants a length it can prove is in 1..NF_DNS_MAX. Older
	 * verifiers (6.1) learn no lower bound from "!= 0", so the check is on
	 * copy - 1 (wrapping when copy is 0) and the length passed is that + 1.
	 * The barrier stops clang from folding it into the min above. */
	less = copy - 1;
	barrier_var(less);
	if (less >= NF_DNS_MAX)
		return 0;
	copy = less + 1;
	if (bpf_skb_load_bytes(skb, off, r->payload, copy))
		return 0;
	return copy;
}

/* Fills the record around its payload and writes offsetof(payload) + captured bytes. */
static __always_inline void dns_emit(struct __sk_buff *skb, __u8 direction, struct l3 *l3,
				     struct nf_dns *r, __be16 sport, __be16 dport)
{
	__u32 size = r->captured_len;

	header(&r->hdr, skb, NF_KIND_DNS, direction, l3->family);
	__builtin_memcpy(r->saddr, l3->saddr, 16);
	__builtin_memcpy(r->daddr, l3->daddr, 16);
	if (l3->family == 4) {
		__builtin_memset(r->saddr + 4, 0, 12);
		__builtin_memset(r->daddr + 4, 0, 12);
	}
	r->sport = bpf_ntohs(sport);
	r->dport = bpf_ntohs(dport);
	r->transport = l3->proto;
	__builtin_memset(r->pad, 0, sizeof(r->pad));
	barrier_var(size);
	if (size > NF_DNS_MAX)
		return;
	/* No wakeup, as for `packets` (skb.bpf.h): nobody waits on this ring. */
	if (bpf_ringbuf_output(&dns_events, r, __builtin_offsetof(struct nf_dns, payload) + size,
			       BPF_RB_NO_WAKEUP))
		count(NF_CNT_DNS_LOST);
}

static __always_inline void dns_udp_query(struct __sk_buff *skb, __u8 direction, struct l3 *l3,
					  __u32 off, __u32 len, struct udphdr *uh, __u16 id)
{
	struct nf_dns *r = dns_scratch_record(l3->slot);
	struct dns_query q = {}, *seen;
	struct dns_key k;
	__u32 copy;

	if (!r)
		return;
	copy = dns_copy(skb, r, off, len, DNS_QUERY_COPY);
	q.question = dns_question(r->payload, copy);
	if (!q.question)
		return;
	q.ts_ns = bpf_ktime_get_ns();
	/* Who asked: the socket a query leaves (on arrival, the socket is the server's). */
	if (direction == NF_EGRESS)
		q.cgroup = bpf_skb_cgroup_id(skb);
	dns_key(&k, skb, l3, 0, uh->source, uh->dest, id, IPPROTO_UDP);
	if (bpf_map_update_elem(&dns_queries, &k, &q, BPF_NOEXIST) == 0) {
		count(NF_CNT_DNS_QUERIES);
		return;
	}
	/* The same query again (a retry, or its arrival at a watched local server). */
	seen = bpf_map_lookup_elem(&dns_queries, &k);
	if (seen && !q.cgroup)
		q.cgroup = seen->cgroup;
	bpf_map_update_elem(&dns_queries, &k, &q, BPF_ANY);
}

static __always_inline void dns_udp_answer(struct __sk_buff *skb, __u8 direction, struct l3 *l3,
					   __u32 off, __u32 len, struct udphdr *uh, __u16 id)
{
	struct dns_query *q;
	struct nf_dns *r;
	struct dns_key k;
	__u64 question, asker;
	__u32 copy;

	/* The cheap test first: most hostile datagrams stop at this lookup. */
	dns_key(&k, skb, l3, 1, uh->source, uh->dest, id, IPPROTO_UDP);
	q = bpf_map_lookup_elem(&dns_queries, &k);
	if (!q) {
		count(bpf_map_lookup_elem(&dns_answered, &k) ? NF_CNT_DNS_REPEATED
							       : NF_CNT_DNS_UNMATCHED);
		return;
	}
	r = dns_scratch_record(l3->slot);
	if (!r)
		return;
	copy = dns_copy(skb, r, off, len, NF_DNS_MAX);
	question = dns_question(r->payload, copy);
	if (!question || question != q->question) {
		count(NF_CNT_DNS_UNMATCHED); /* the query stays: its real answer may follow */
		return;
	}
	question = q->question;
	asker = q->cgroup;
	if (bpf_ktime_get_ns() - q->ts_ns > DNS_QUERY_TTL_NS) {
		bpf_map_delete_elem(&dns_queries, &k);
		count(NF_CNT_DNS_ANSWERED);
		count(NF_CNT_DNS_UNMATCHED);
		return;
	}
	bpf_map_delete_elem(&dns_queries, &k);
	bpf_map_update_elem(&dns_answered, &k, &question, BPF_ANY);
	count(NF_CNT_DNS_ANSWERED);
	if (len > NF_DNS_MAX)
		count(NF_CNT_DNS_CUT);
	r->question = question;
	r->netns_cookie = skb_netns_cookie(skb);
	r->query_cgroup = asker;
	r->netns = skb_netns(skb);
	r->stream_off = 0;
	r->payload_len = len;
	r->captured_len = copy;
	r->query_id = bpf_ntohs(id);
	dns_emit(skb, direction, l3, r, uh->source, uh->dest);
}

static __always_inline void dns_on_udp(struct __sk_buff *skb, __u8 direction, struct l3 *l3)
{
	struct udphdr uh;
	__u8 head[4]; /* id, flags */
	__u32 off = l3->l4_off + sizeof(uh), len;

	if (load(skb, l3->slot, l3->l4_off, &uh, sizeof(uh)))
		return;
	if (uh.source != bpf_htons(DNS_PORT) && uh.dest != bpf_htons(DNS_PORT))
		return;
	len = bpf_ntohs(uh.len);
	if (len < sizeof(uh) + DNS_HDR + 5)
		return;
	len -= sizeof(uh);
	if (load(skb, l3->slot, off, head, sizeof(head)))
		return;
	/* The id stays in network order in the key; QR (0x80) tells answers from queries. */
	if (head[2] & 0x80) {
		if (uh.source == bpf_htons(DNS_PORT))
			dns_udp_answer(skb, direction, l3, off, len, &uh, *(__u16 *)head);
	} else if (uh.dest == bpf_htons(DNS_PORT)) {
		dns_udp_query(skb, direction, l3, off, len, &uh, *(__u16 *)head);
	}
}

/* A segment to port 53 that begins a query: the stream is remembered. */
static __always_inline void dns_tcp_query(struct __sk_buff *skb, __u8 direction, struct l3 *l3,
					  struct tcphdr *th, __u32 off, __u32 payload)
{
	struct nf_dns *r = dns_scratch_record(l3->slot);
	struct dns_stream st = {}, *seen;
	struct dns_key k;
	__u32 copy, msg_len;

	if (!r || payload < 2 + DNS_HDR + 5)
		return;
	copy = dns_copy(skb, r, off, payload, DNS_QUERY_COPY);
	if (copy < 2 + DNS_HDR + 5 || (r->payload[2 + 2] & 0x80))
		return;
	msg_len = ((__u32)r->payload[0] << 8) | r->payload[1];
	if (msg_len > copy - 2)
		msg_len = copy - 2;
	st.question = dns_question(r->payload + 2, msg_len);
	if (!st.question)
		return;
	st.ts_ns = bpf_ktime_get_ns();
	st.id = ((__u16)r->payload[2] << 8) | r->payload[3];
	if (direction == NF_EGRESS)
		st.cgroup = bpf_skb_cgroup_id(skb);
	dns_key(&k, skb, l3, 0, th->source, th->dest, 0, IPPROTO_TCP);
	seen = bpf_map_lookup_elem(&dns_streams, &k);
	if (seen && !st.cgroup)
		st.cgroup = seen->cgroup; /* its arrival at a watched local server */
	if (bpf_map_update_elem(&dns_streams, &k, &st, BPF_ANY) == 0)
		count(NF_CNT_DNS_STREAMS);
}

/* A segment from port 53: copied only if its stream carries a recorded query,
 * and only the bytes of that query's answer. */
static __always_inline void dns_tcp_answer(struct __sk_buff *skb, __u8 direction, struct l3 *l3,
					   struct tcphdr *th, __u32 off, __u32 payload)
{
	struct dns_stream *st;
	struct nf_dns *r;
	struct dns_key k;
	__u32 seq = bpf_ntohl(th->seq), at, copy;
	__u8 prefix[2];

	dns_key(&k, skb, l3, 1, th->source, th->dest, 0, IPPROTO_TCP);
	st = bpf_map_lookup_elem(&dns_streams, &k);
	if (!st)
		return;
	if (!st->started) {
		st->started = 1;
		st->base_seq = seq;
		st->end_off = 0xffffffff;
	}
	at = seq - st->base_seq;
	if (at == 0 && payload >= 2 && !bpf_skb_load_bytes(skb, off, prefix, 2))
		st->end_off = 2 + (((__u32)prefix[0] << 8) | prefix[1]);
	if (at >= st->end_off || at > 0xffff + 2)
		return; /* not this answer's bytes */
	r = dns_scratch_record(l3->slot);
	if (!r)
		return;
	copy = dns_copy(skb, r, off, payload, NF_DNS_MAX);
	if (payload > NF_DNS_MAX)
		count(NF_CNT_DNS_CUT);
	r->question = st->question;
	r->query_id = st->id;
	r->netns_cookie = skb_netns_cookie(skb);
	r->query_cgroup = st->cgroup;
	r->netns = skb_netns(skb);
	r->stream_off = at;
	r->payload_len = payload;
	r->captured_len = copy;
	if (at + payload >= st->end_off)
		bpf_map_delete_elem(&dns_streams, &k); /* the whole answer has passed */
	dns_emit(skb, direction, l3, r, th->source, th->dest);
}

static __always_inline void dns_on_tcp(struct __sk_buff *skb, __u8 direction, struct l3 *l3,
				       struct tcphdr *th, __u32 payload)
{
	__u32 off;

	if (payload == 0)
		return;
	off = l3->l4_off + th->doff * 4;
	if (th->source == bpf_htons(DNS_PORT))
		dns_tcp_answer(skb, direction, l3, th, off, payload);
	else if (th->dest == bpf_htons(DNS_PORT))
		dns_tcp_query(skb, direction, l3, th, off, payload);
}

#endif /* NETFLOW_DNS_BPF_H */
