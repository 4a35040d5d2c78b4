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
 * A holder that closes a socket while netflow's holders iterator looks at it
 * leaves netflow the last reference (the iterator holds one to each file it
 * looks at, and to a file it found in a table that changed under it, until it
 * lets go), and the socket's release runs in netflow when its read ends,
 * where the closer cannot be seen. So the iterator notes the process it found
 * holding such a socket, by cookie (bpf/iter.bpf.h), for sock_release below,
 * which takes a note of the run whose read just ended only. LRU: a note whose
 * release never comes (a file misread as let go) makes room for the next.
 */
struct nf_closed {
	struct nf_owner owner;
	__u64 session; /* the run that noted it (bpf_iter_meta.session_id) */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct nf_closed);
} closed_in_look SEC(".maps");

/* The holders run now (iter.bpf.h keeps it): the socket file looked at last,
 * and whether the run walks one process only (Linux 6.1+, a run on a pid). */
struct nf_visit {
	__u64 file;    /* struct file *; 0: none */
	__u64 task;    /* struct task_struct * it was found in */
	__u64 sk;      /* struct sock *: its cookie is read when the note is made */
	__u64 session; /* the run (bpf_iter_meta.session_id) */
	__u64 first;   /* struct task_struct *: the run's first process */
	__u32 tgid;    /* and its pid */
	__u32 one;     /* the run has met no other process */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nf_visit);
} holders_visit SEC(".maps");

/* A task's process as an owner, closer: read through a pointer the iterator kept. */
static __always_inline void note_task(struct nf_owner *owner, struct task_struct *task)
{
	owner->pid = BPF_CORE_READ(task, tgid);
	owner->uid = BPF_CORE_READ(task, cred, uid.val);
	BPF_CORE_READ_INTO(&owner->comm, task, comm);
	owner->cgroup_id = task_cgroup_id(task);
	owner->closer = 1;
}

/*
 * Who closed a socket whose last reference netflow's holders iterator let go:
 * the process the run found holding it (noted), else the one process the run
 * walked (a file the iterator took from a table that changed under it is let
 * go before the program sees it: on a run of one process, that process's).
 * 0: not known (a run on every process that did not see the file). The run
 * is the last one: its read has just ended (this runs as it returns).
 */
static __always_inline int closed_in_look_by(struct bpf_sock *sk, struct nf_owner *closer)
{
	__u64 cookie = bpf_get_socket_cookie(sk);
	struct nf_closed *noted = bpf_map_lookup_elem(&closed_in_look, &cookie);
	struct nf_visit *run;
	__u32 zero = 0;

	run = bpf_map_lookup_elem(&holders_visit, &zero);
	if (!run)
		return 0;
	if (noted && noted->session == run->session) {
		*closer = noted->owner;
		bpf_map_delete_elem(&closed_in_look, &cookie);
		return 1;
	}
	if (!run->one || !run->first)
		return 0;
	note_task(closer, (struct task_struct *)run->first);
	return 1;
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
 * In netflow itself when its holders iterator held the last reference (the
 * holder closed the file while a run looked at it): the closer is the
 * process the run found holding it (closed_in_look), named as if it had
 * closed it here; without that note, nobody (counted).
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
	/* netflow closing a socket of another process: its iterator's reference was the
	 * last (netflow's own, stamped by netflow, close as before: nobody to name). */
	if (bpf_get_current_pid_tgid() >> 32 == nf_config.self_pid &&
	    owner->pid != nf_config.self_pid) {
		struct nf_owner closer = {};

		count(NF_CNT_LOOK_CLOSES);
		if (!closed_in_look_by(sk, &closer)) {
			count(NF_CNT_LOOK_CLOSES_UNNAMED);
			return ALLOW;
		}
		if (!named) { /* else the FIN named it already: the end carries that */
			owner->pid = closer.pid;
			owner->uid = closer.uid;
			__builtin_memcpy(owner->comm, closer.comm, NF_COMM_LEN);
			owner->cgroup_id = closer.cgroup_id;
			owner->closer = 1;
		}
	} else {
		stamp_closer(owner);
	}
	if (!owner->closer || named)
		return ALLOW;
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
	r->hdr.cgroup_id = owner->cgroup_id; /* the closing process's */
	r->hdr.family = sk->family == AF_INET6 ? 6 : 4;
	r->cookie = bpf_get_socket_cookie(sk);
	r->netns = owner->netns;
	r->pid = owner->pid;
	r->uid = owner->uid;
	__builtin_memcpy(r->comm, owner->comm, NF_COMM_LEN);
	r->flags = NF_FLOW_OWNER | NF_FLOW_OWNER_CLOSER;
	bpf_ringbuf_submit(r, 0);
	return ALLOW;
}

#endif /* NETFLOW_OWNERS_BPF_H */
