/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What every part of netflow's one BPF object shares: the kernel types (one
 * generated bpf/vmlinux.h, every struct CO-RE), the settings, the maps more
 * than one file uses, and the socket storage values. A map that only one
 * file uses is declared in that file (dns.bpf.h, packet.bpf.h).
 */
#ifndef NETFLOW_MAPS_BPF_H
#define NETFLOW_MAPS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "netflow.h"

#define ALLOW 1

/* Macros of the uapi headers, which BTF does not carry (the enums it does:
 * TCP_* states, IPPROTO_*, BPF_*, SOCK_STREAM, TCP_BPF_SOCK_OPS_CB_FLAGS). */
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define AF_INET 2
#define AF_INET6 10
#define SOL_TCP 6
#define IPPROTO_HOPOPTS 0  /* IPv6 extension headers (uapi linux/in6.h) */
#define IPPROTO_ROUTING 43
#define IPPROTO_DSTOPTS 60
#define EPIPE 32
#define ECONNABORTED 103
#define ECONNRESET 104
#define ECONNREFUSED 111

/* The tcp_flags byte of a TCP header. */
#define NF_TCP_FIN 0x01
#define NF_TCP_SYN 0x02
#define NF_TCP_RST 0x04
#define NF_TCP_ACK 0x10

/* The only .rodata variable, so TypeScript finds it at offset 0 (a test checks). */
const volatile struct nf_config nf_config = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

/* Handshake packets (fail events) and the packet view: a ring of their own, so
 * a SYN flood loses these (counted), never a begin or an end. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} packets SEC(".maps");

/* A namespace's cookie (never reused, unlike its inode), through a BTF
 * pointer; 0 where net_cookie is not the u64 set at creation (before 5.12). */
static __always_inline __u64 net_cookie(struct net *net)
{
	if (!bpf_core_field_exists(net->net_cookie))
		return 0;
	return net->net_cookie;
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NF_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Who holds each TCP (and MPTCP) socket, as far as the kernel can tell in
 * the holder's own context: its creator (sock_create), the process that
 * called connect(), and at the end the process that closes it (sock_release,
 * or shutdown's FIN). BPF_F_CLONE: an accepted socket inherits its listener's
 * entry, since sock_create never runs for it; who accepted it is found by
 * netflow from the system (the task_file iterator). */
struct nf_owner {
	__u32 pid;
	__u32 uid;
	char comm[NF_COMM_LEN];
	__u32 netns;  /* the socket's namespace, noted at its begin (sock_release cannot read it) */
	__u8 closer;  /* pid/uid/comm are the closing process's */
	__u8 look;    /* closed while netflow's holders iterator looked at it: closer not known */
	__u8 pad[2];
	__u64 cgroup_id; /* the stamping process's cgroup v2 id (0: unreadable) */
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct nf_owner);
} owners SEC(".maps");

/* nf_sock.state */
enum {
	NF_ST_CONNECTED = 1, /* connect() was called on it (TCP_CONNECT_CB) */
	NF_ST_BEGUN = 2,     /* its begin was written */
	NF_ST_ENDED = 4,     /* its end was written: nothing more, ever */
	NF_ST_TFO = 8,       /* a Fast Open child waiting in SYN_RECV for its handshake */
	NF_ST_FILTERED = 16, /* did not pass the filters: marked begun and ended, never written */
	NF_ST_FIN_LATE = 32, /* the peer's FIN came with data of ours unacknowledged: the end
	                      * is written when the socket closes (sockops.bpf.h) */
};

/* netflow's state for one TCP socket: a socket begins and ends once. */
struct nf_sock {
	__u64 begin_ns;
	__u64 connect_ns; /* connect() time: a failed attempt's duration starts there */
	__u8 state;     /* NF_ST_* */
	__u8 flags;     /* NF_FLOW_* carried by its records */
	__u8 pad[6];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct nf_sock);
} socks SEC(".maps");

/* The start snapshot marks only sockets of these cgroups (the watched
 * subtree, filled by netflow before it runs the iterator), unless
 * nf_config.snapshot_all says the whole host is watched. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} snapshot_cgroups SEC(".maps");

/*
 * Where an end or fail record goes when the ring is full (netflow's reader
 * stalled): kept here by socket cookie, never reused, and read by userspace
 * after the ring. Allocated as used; beyond max_entries a flow is lost, and
 * counted. 65,536 flows: a 6 s stall at 10,000 endpoints ending a second.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct nf_flow);
} kept SEC(".maps");

/* The ring's records, named so their layout is in this object's BTF (libbpf
 * 1.1 refuses a ring buffer map that declares a value type). Never written. */
const struct nf_flow *nf_flow_record __attribute__((unused));
const struct nf_packet *nf_packet_record __attribute__((unused));
const struct nf_dns *nf_dns_record __attribute__((unused));
const struct nf_holder *nf_holder_record __attribute__((unused));

/* The enums of netflow.h, named so they are in the BTF too (a test compares
 * them with src/bpf/abi.ts). Never written. */
struct nf_abi {
	enum nf_size size;
	enum nf_kind kind;
	enum nf_direction direction;
	enum nf_sock_flags sock_flags;
	enum nf_flow_flags flow_flags;
	enum nf_end end;
	enum nf_has has;
	enum nf_counter counter;
};
const struct nf_abi *nf_abi_enums __attribute__((unused));

static __always_inline void count(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&counters, &which);

	if (n)
		*n += 1;
}

#endif /* NETFLOW_MAPS_BPF_H */
