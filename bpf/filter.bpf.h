/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The command line's kernel filters (--port, --net, --direction, -4/-6),
 * one test for every record that carries a connection: a flow where it
 * begins (sockops.bpf.h) and an attempt's handshake packet (skb.bpf.h).
 */
#ifndef NETFLOW_FILTER_BPF_H
#define NETFLOW_FILTER_BPF_H

#include "maps.bpf.h"

/* The remote address is in filter_net[i] (addresses as in nf_config). */
static __always_inline int net_match(const __u32 addr[4], __u32 i)
{
	__u32 prefix, bits, mask;

	if (i >= NF_FILTER_NETS)
		return 0;
	prefix = nf_config.filter_net_prefix[i];
	for (__u32 w = 0; w < 4; w++) {
		bits = prefix > 32 * w ? prefix - 32 * w : 0;
		if (bits == 0)
			break;
		mask = bits >= 32 ? 0xffffffff : bpf_htonl(0xffffffff << (32 - bits));
		if ((addr[w] ^ nf_config.filter_net[i][w]) & mask)
			return 0;
	}
	return 1;
}

/*
 * Whether a connection passes the filters: `addr` is the remote address
 * (IPv4 as ::ffff:a.b.c.d, network order), the ports in host order.
 */
static __always_inline int filter_passes(const __u32 addr[4], __u32 lport, __u32 rport,
					 int outgoing)
{
	int v4, hit;

	if (nf_config.filter_directions &&
	    !(nf_config.filter_directions & (outgoing ? 1 : 2)))
		return 0;
	/* An IPv4-mapped peer of an IPv6 socket is IPv4, as netflow prints it. */
	v4 = addr[0] == 0 && addr[1] == 0 && addr[2] == bpf_htonl(0xffff);
	if (nf_config.filter_families && !(nf_config.filter_families & (v4 ? 1 : 2)))
		return 0;
	if (nf_config.filter_ports) {
		hit = 0;
		for (__u32 i = 0; i < NF_FILTER_PORTS && i < nf_config.filter_ports; i++)
			if (nf_config.filter_port[i] == lport || nf_config.filter_port[i] == rport)
				hit = 1;
		if (!hit)
			return 0;
	}
	if (nf_config.filter_nets) {
		hit = 0;
		for (__u32 i = 0; i < NF_FILTER_NETS && i < nf_config.filter_nets; i++)
			if (net_match(addr, i))
				hit = 1;
		if (!hit)
			return 0;
	}
	return 1;
}

#endif /* NETFLOW_FILTER_BPF_H */
