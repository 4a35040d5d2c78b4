/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A packet's network namespace in the cgroup_skb programs (bpf/dns.bpf.h keys
 * queries by it): its inode, as users compare it with /proc/PID/ns/net, and
 * its cookie, which the kernel never reuses.
 */
#ifndef NETFLOW_NETNS_BPF_H
#define NETFLOW_NETNS_BPF_H

#include "maps.bpf.h"

/* The socket's network namespace inode, read from the kernel's sk_buff with
 * bpf_probe_read_kernel and CO-RE offsets (the context register is the
 * kernel's sk_buff). No kfunc: bpf_cast_to_kern_ctx is Linux 6.2+ only. */
static __always_inline struct net *skb_net(struct __sk_buff *skb)
{
	struct sk_buff *kskb = (struct sk_buff *)skb;
	struct sock *sk = 0;
	struct net *net = 0;

	if (bpf_probe_read_kernel(&sk, sizeof(sk), &kskb->sk) || !sk ||
	    bpf_probe_read_kernel(&net, sizeof(net), &sk->__sk_common.skc_net.net))
		return 0;
	return net;
}

static __always_inline __u32 skb_netns(struct __sk_buff *skb)
{
	struct net *net = skb_net(skb);
	__u32 inum = 0;

	if (!net || bpf_probe_read_kernel(&inum, sizeof(inum), &net->ns.inum))
		return 0;
	return inum;
}

/* The namespace's cookie, which the kernel never reuses (inodes are reused as
 * soon as a namespace is freed): bpf_get_netns_cookie where cgroup_skb has it
 * (probed at load), else the same field read through CO-RE; 0 on kernels
 * whose net_cookie is not a u64 set at creation (before 5.12). */
static __always_inline __u64 skb_netns_cookie(struct __sk_buff *skb)
{
	struct net *net = 0;
	__u64 cookie = 0;

	if (nf_config.kernel_has & NF_HAS_SKB_NETNS_COOKIE)
		return bpf_get_netns_cookie(skb);
	if (!bpf_core_field_exists(net->net_cookie))
		return 0;
	net = skb_net(skb);
	if (!net || bpf_probe_read_kernel(&cookie, sizeof(cookie), &net->net_cookie))
		return 0;
	return cookie;
}

#endif /* NETFLOW_NETNS_BPF_H */
