/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The iterators netflow runs from userspace: the start snapshot and the open
 * flows (iter/tcp), and who holds which socket (iter/task_file).
 */
#ifndef NETFLOW_ITER_BPF_H
#define NETFLOW_ITER_BPF_H

#include "maps.bpf.h"
#include "flow.bpf.h"

/*
 * The start snapshot: every listening socket (so netflow can orient the
 * others), and every established socket of the watched cgroups that netflow
 * has not seen begin. Those are marked begun and get their state callbacks
 * turned on, so they end like any other. The iterator holds the socket's
 * lock, so no state change slips between the check and the mark.
 */
SEC("iter/tcp")
int netflow_snapshot(struct bpf_iter__tcp *ctx)
{
	struct tcp_sock *tp;
	struct sock *sk;
	struct nf_sock *st;
	struct nf_flow r;
	__u64 cgroup;
	int cb = 0;
	__u8 state;

	struct sock_common *skc = ctx->sk_common;

	if (!skc)
		return 0;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0; /* TIME_WAIT and request sockets */
	sk = (struct sock *)tp;
	if (sk->sk_type != SOCK_STREAM || sk->sk_protocol != IPPROTO_TCP)
		return 0;
	state = sk->__sk_common.skc_state;
	if (state == TCP_LISTEN) {
		if (fill_flow(&r, tp, 0, NF_KIND_LISTEN, bpf_get_socket_cookie(tp), tp))
			bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
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
	if (bpf_seq_write(ctx->meta->seq, &r, sizeof(r)))
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
int netflow_open(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct tcp_sock *tp;
	struct nf_sock *st;
	struct nf_flow r;

	if (!skc)
		return 0;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp || ((struct sock *)tp)->sk_type != SOCK_STREAM)
		return 0;
	st = bpf_sk_storage_get(&socks, tp, 0, 0);
	if (!st || (st->state & (NF_ST_BEGUN | NF_ST_ENDED)) != NF_ST_BEGUN)
		return 0;
	if (fill_flow(&r, tp, st, NF_KIND_UPDATE, bpf_get_socket_cookie(tp), tp))
		bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

/*
 * The sockets whose holder netflow waits for (records of theirs wait in
 * userspace: an incoming begin for its acceptor, an end for its holder), by
 * cookie, written by netflow in one batch before each holders run. A run
 * writes rows only for them and for listeners: a host with 200,000 sockets
 * held gives a few rows, not 200,000.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} holders_wanted SEC(".maps");

/* Entry 0 not 0: every socket's row (the start snapshot, or more sockets
 * waiting than holders_wanted takes). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} holders_every SEC(".maps");

/* Whether a run writes the row of a socket that is not a listener. */
static __always_inline int holder_wanted(__u64 cookie)
{
	__u32 zero = 0;
	__u32 *every = bpf_map_lookup_elem(&holders_every, &zero);

	return (every && *every) || bpf_map_lookup_elem(&holders_wanted, &cookie);
}

/*
 * Who holds which TCP socket: for sockets made before netflow started, and for
 * servers whose workers accept on a listener their parent created.
 */
SEC("iter/task_file")
int netflow_holders(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct socket *sock;
	struct sock *sk;
	struct nf_holder h = {};

	if (ctx->meta->seq_num == 0) {
		/* This thread's read may let go of sockets' last references (bpf/owners.bpf.h). */
		__u32 zero = 0;
		__u64 *reader = bpf_map_lookup_elem(&holders_reader, &zero);

		if (reader)
			*reader = bpf_get_current_pid_tgid();
	}
	if (!task || !file || task->pid != task->tgid) /* threads share the fd table */
		return 0;
	sock = bpf_sock_from_file(file);
	if (!sock)
		return 0;
	sk = sock->sk;
	if (!sk || sk->sk_type != SOCK_STREAM)
		return 0;
	if (sk->sk_protocol == IPPROTO_MPTCP && bpf_core_type_exists(struct mptcp_sock)) {
		/* Flows are its subflows': name the first (the one a loopback or
		 * single-path connection has) by its cookie, set when its begin
		 * was written. The verifier types sock->sk as a plain sock. */
		struct mptcp_sock *msk = (struct mptcp_sock *)sk;
		struct sock *first = 0;

		bpf_probe_read_kernel(&first, sizeof(first), &msk->first);
		if (!first || bpf_probe_read_kernel(&h.cookie, sizeof(h.cookie),
						    &first->__sk_common.skc_cookie.counter))
			return 0;
		h.mptcp = 1;
	} else if (sk->sk_protocol == IPPROTO_TCP) {
		/* sock->sk is untrusted to newer verifiers (bpf_get_socket_cookie
		 * refuses it): read the cookie, set when the begin was written. */
		if (bpf_probe_read_kernel(&h.cookie, sizeof(h.cookie),
					  &sk->__sk_common.skc_cookie.counter))
			return 0;
	} else {
		return 0;
	}
	h.state = sk->__sk_common.skc_state;
	/* Before the reads a row needs: most sockets of a busy host are not asked for. */
	if (h.state != TCP_LISTEN && !holder_wanted(h.cookie))
		return 0;
	h.netns = sk->__sk_common.skc_net.net->ns.inum;
	h.pid = task->tgid;
	h.uid = task->cred->uid.val;
	bpf_probe_read_kernel(h.comm, sizeof(h.comm), task->comm);
	h.cgroup_id = task_cgroup_id(task);
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
	bpf_seq_write(ctx->meta->seq, &h, sizeof(h));
	return 0;
}

#endif /* NETFLOW_ITER_BPF_H */
