/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Owner stamps: the process that creates a socket (cgroup/sock_create),
 * connects it (cgroup/connect4, connect6), sends its FIN (from sock_ops) and
 * closes it last (cgroup/sock_release, which also writes release records),
 * each in that process's own context, into the `owners` socket storage.
 */
#ifndef NETFLOW_OWNERS_BPF_H
#define NETFLOW_OWNERS_BPF_H

#include "maps.bpf.h"

/* A task's cgroup v2 id (its default hierarchy's), 0 when unreadable. */
static __always_inline __u64 task_cgroup_id(struct task_struct *task)
{
	struct css_set *cset = 0;
	struct cgroup *cg = 0;
	struct kernfs_node *kn = 0;
	__u64 id = 0;

	if (bpf_probe_read_kernel(&cset, sizeof(cset), &task->cgroups) || !cset ||
	    bpf_probe_read_kernel(&cg, sizeof(cg), &cset->dfl_cgrp) || !cg ||
	    bpf_probe_read_kernel(&kn, sizeof(kn), &cg->kn) || !kn ||
	    bpf_probe_read_kernel(&id, sizeof(id), &kn->id))
		return 0;
	return id;
}

/*
 * The current process: its pid (tgid), uid, name and cgroup. The name is the
 * process's, its thread group leader's comm, never the calling thread's
 * (bpf_get_current_comm: a JVM's http-nio-8080-e, a tokio-runtime-w), so one
 * program has one comm on all its flows. bpf_get_current_task works in these
 * programs from 5.10 on; its thread's name only if the leader is unreadable.
 */
static __always_inline void stamp_current(struct nf_owner *owner)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct task_struct *leader = 0;

	owner->pid = bpf_get_current_pid_tgid() >> 32;
	owner->uid = (__u32)bpf_get_current_uid_gid();
	if (bpf_probe_read_kernel(&leader, sizeof(leader), &task->group_leader) || !leader ||
	    bpf_probe_read_kernel(owner->comm, sizeof(owner->comm), leader->comm))
		bpf_get_current_comm(owner->comm, sizeof(owner->comm));
	owner->cgroup_id = task_cgroup_id(task);
	owner->closer = 0;
}

/*
 * The thread running a holders iterator read now (pid_tgid; 0: none): set by
 * the iterator at each run's first call (bpf/iter.bpf.h), cleared by netflow
 * after each read (src/bpf/holders_run.ts).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} holders_reader SEC(".maps");

/*
 * Whether this release runs at the end of a holders iterator read: the
 * iterator holds a reference to each file it looks at (and to one it found in
 * a table that changed under it) until it lets it go, and a holder that
 * closed the file meanwhile left it the last one. Who closed it, the kernel
 * did not see: the process the look found may have shared the socket (fork,
 * SCM_RIGHTS) with the one that closed it last. Not netflow's own sockets.
 */
static __always_inline int released_by_look(struct nf_owner *owner)
{
	__u64 now = bpf_get_current_pid_tgid();
	__u32 zero = 0;
	__u64 *reader = bpf_map_lookup_elem(&holders_reader, &zero);

	return reader && *reader == now && owner->pid != now >> 32;
}

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
 * subflow's is the kernel's, and keeps its MPTCP socket's owner). Called by
 * sock_ops. */
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

/*
 * The last close of a socket, in the closing process: the owner entry names
 * it from now on (the end written by this close carries it). A socket whose
 * end was already written (the peer closed first, in softirq) gets a release
 * record, so netflow can give that end the name its holder had at close.
 * Not when that end already named its closer (this side's FIN, stamped just
 * before it was written): nothing of the socket waits for a name then, and a
 * client that shuts down then closes would cost a record for nothing.
 *
 * At the end of a holders iterator read (released_by_look): the closer is not
 * known, and that is what the release record says (NF_FLOW_OWNER_CLOSER
 * without NF_FLOW_OWNER), or the end this close writes (owner->look), so that
 * nothing of the socket waits for a name that cannot come.
 */
SEC("cgroup/sock_release")
int netflow_sock_release(struct bpf_sock *sk)
{
	struct nf_owner *owner;
	struct nf_sock *st;
	struct nf_flow *r;
	__u8 named;

	if (!owned_kind(sk))
		return ALLOW;
	owner = bpf_sk_storage_get(&owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!owner)
		return ALLOW;
	/* Only the FIN's stamp sets closer before this last close. */
	named = owner->closer;
	if (released_by_look(owner)) {
		count(NF_CNT_LOOK_CLOSES);
		if (named)
			return ALLOW;
		owner->look = 1;
	} else {
		stamp_closer(owner);
		if (!owner->closer || named)
			return ALLOW;
	}
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
	r->flags = NF_FLOW_OWNER_CLOSER;
	if (!owner->look) {
		r->hdr.cgroup_id = owner->cgroup_id; /* the closing process's */
		r->pid = owner->pid;
		r->uid = owner->uid;
		__builtin_memcpy(r->comm, owner->comm, NF_COMM_LEN);
		r->flags |= NF_FLOW_OWNER;
	}
	bpf_ringbuf_submit(r, 0);
	return ALLOW;
}

#endif /* NETFLOW_OWNERS_BPF_H */
