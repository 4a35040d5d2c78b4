// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * netflow's kernel side: one object, so that every program shares the maps
 * and the socket storage. The socket is the authority on what a flow is:
 *
 *   - sockops.bpf.h: a sock_ops program sees every TCP socket of the cgroup
 *     reach ESTABLISHED (begin) and follows its own state changes to the end
 *     (first FIN either way, an accepted RST, a timeout), once per socket;
 *   - iter.bpf.h: a tcp iterator snapshots the sockets established before
 *     netflow started and turns on their state callbacks, another lists the
 *     open flows, and a task_file iterator says which process holds which
 *     socket;
 *   - owners.bpf.h: cgroup/sock_create, connect4/6 and sock_release stamp the
 *     process in its own context into socket storage;
 *   - skb.bpf.h: the cgroup_skb pair copies DNS responses (dns.bpf.h) and, only
 *     for the net_packet_tcp debug view and failed attempts, TCP control packets;
 *   - flow.bpf.h: the flow records they write; maps.bpf.h: what all share.
 *
 * Every program returns 1: netflow observes, it never drops a packet.
 */
#include "maps.bpf.h"
#include "skb.bpf.h"
#include "owners.bpf.h"
#include "sockops.bpf.h"
#include "iter.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
