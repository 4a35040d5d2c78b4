/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Flow records (struct nf_flow): what a record says about a TCP socket at one
 * moment, and where it goes (the ring, or `kept` when the ring is full).
 * Written by sock_ops (sockops.bpf.h), the iterators (iter.bpf.h) and, for
 * release records, sock_release (owners.bpf.h).
 */
#ifndef NETFLOW_FLOW_BPF_H
#define NETFLOW_FLOW_BPF_H

#include "maps.bpf.h"

/* Addresses, ports, namespace and cgroup of a TCP socket; 0 when it is not IP. */
static __always_inline int fill_endpoints(struct nf_flow *r, struct sock *sk)
{
	struct sock_common *c = &sk->__sk_common;
	struct cgroup *cg;

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
	r->netns_cookie = net_cookie(c->skc_net.net);
	cg = sk->sk_cgrp_data.cgroup;
	if (cg)
		r->hdr.cgroup_id = cg->kn->id;
	return 1;
}

/* pid/uid/comm from an owner entry (r->netns is set: the entry notes it). */
static __always_inline void copy_owner(struct nf_flow *r, struct nf_owner *owner)
{
	r->flags &= ~(NF_FLOW_OWNER | NF_FLOW_OWNER_CLOSER);
	if (!owner)
		return;
	if (owner->look) {
		/* Closed during a holders look (bpf/owners.bpf.h): written at close, by nobody known. */
		r->flags |= NF_FLOW_OWNER_CLOSER;
		return;
	}
	owner->netns = r->netns;
	r->pid = owner->pid;
	r->uid = owner->uid;
	__builtin_memcpy(r->comm, owner->comm, NF_COMM_LEN);
	r->flags |= NF_FLOW_OWNER;
	/* Stamped by the closing process: the record carries its cgroup (an
	 * accepted socket's own is its listener's). */
	if (owner->closer) {
		r->flags |= NF_FLOW_OWNER_CLOSER;
		if (owner->cgroup_id)
			r->hdr.cgroup_id = owner->cgroup_id;
	}
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
static __always_inline int fill_flow(struct nf_flow *r, struct tcp_sock *tp,
				     struct nf_sock *st, __u8 kind, __u64 cookie, void *owner_sk)
{
	struct sock *sk = (struct sock *)tp;

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
static __always_inline void keep_flow(struct bpf_sock_ops *skops, struct tcp_sock *tp,
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

static __always_inline void emit_flow(struct bpf_sock_ops *skops, struct tcp_sock *tp,
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

#endif /* NETFLOW_FLOW_BPF_H */
