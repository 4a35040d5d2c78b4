/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The sock_ops program, where flows begin and end: it sees every TCP socket
 * of the cgroup reach ESTABLISHED (begin) and follows its own state changes
 * to the end (first FIN either way, an accepted RST, a timeout), once per
 * socket (the `socks` storage); with --events net_flow_tcp_fail, connect()s
 * that never establish.
 */
#ifndef NETFLOW_SOCKOPS_BPF_H
#define NETFLOW_SOCKOPS_BPF_H

#include "maps.bpf.h"
#include "flow.bpf.h"
#include "owners.bpf.h"
#include "filter.bpf.h"

/* From now on the socket's state changes call sock_ops (STATE_CB), on top of
 * whatever callbacks other programs asked for. */
static __always_inline void state_callbacks_on(struct bpf_sock_ops *skops)
{
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* TCP's connect (the SYN is about to leave): this side is the active opener. */
static __always_inline void on_connect(struct bpf_sock_ops *skops, struct bpf_sock *sk)
{
	struct nf_sock *st = bpf_sk_storage_get(&socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

	if (!st) {
		count(NF_CNT_UNTRACKED);
		return;
	}
	/* connect() again after a disconnect (AF_UNSPEC): a new connection on
	 * the same socket, with its own begin and end. */
	if (st->state & (NF_ST_BEGUN | NF_ST_ENDED)) {
		st->state = 0;
		st->flags = 0;
		st->begin_ns = 0;
	}
	st->state |= NF_ST_CONNECTED;
	st->connect_ns = bpf_ktime_get_ns();
	/* SYN_SENT -> CLOSE is a failed attempt (net_flow_tcp_fail). */
	if (nf_config.report_fail)
		state_callbacks_on(skops);
	/* The connecting process is stamped by cgroup/connect4 or connect6:
	 * sock_ops programs lack the current-task helpers on many kernels. */
}

/* --port, --net, --direction and -4/-6, where the flow begins: a socket that
 * does not pass never turns on its state callbacks and is never written. */
static __always_inline int wanted(struct tcp_sock *tp, int outgoing)
{
	struct sock_common *c = &((struct sock *)tp)->__sk_common;
	__u32 addr[4];

	if (c->skc_family == AF_INET) {
		addr[0] = 0;
		addr[1] = 0;
		addr[2] = bpf_htonl(0xffff);
		addr[3] = c->skc_daddr;
	} else {
		__builtin_memcpy(addr, (void *)&c->skc_v6_daddr, 16);
	}
	return filter_passes(addr, c->skc_num, bpf_ntohs(c->skc_dport), outgoing);
}

static __always_inline void begin(struct bpf_sock_ops *skops, struct nf_sock *st,
				  struct tcp_sock *tp)
{
	int outgoing = skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB ||
		       (st->state & NF_ST_CONNECTED);

	if (!wanted(tp, outgoing)) {
		st->state |= NF_ST_BEGUN | NF_ST_ENDED | NF_ST_FILTERED;
		count(NF_CNT_FILTERED);
		return;
	}
	st->state |= NF_ST_BEGUN;
	st->begin_ns = bpf_ktime_get_ns();
	/* A simultaneous open reaches ESTABLISHED through SYN_RECV (the passive
	 * callback): connect() says who initiated. A socket restored in repair
	 * mode (CRIU) calls connect() and sends no SYN: who opened the
	 * connection it carries on is not known. */
	if (BPF_CORE_READ_BITFIELD(tp, repair))
		st->flags |= NF_FLOW_OUTGOING | NF_FLOW_REPAIRED;
	else if (skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB || (st->state & NF_ST_CONNECTED))
		st->flags |= NF_FLOW_OUTGOING | NF_FLOW_SYN_ACKED;
	state_callbacks_on(skops);
	emit_flow(skops, tp, st, NF_KIND_BEGIN, NF_END_NONE, 0, TCP_ESTABLISHED);
}

/* The socket is ESTABLISHED: the handshake's last packet was processed (the
 * SYN+ACK on the client, the final ACK, cookie or not, on the server). */
static __always_inline void on_established(struct bpf_sock_ops *skops, struct bpf_sock *sk,
					   struct tcp_sock *tp)
{
	struct nf_sock *st = bpf_sk_storage_get(&socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

	if (!st) {
		count(NF_CNT_UNTRACKED);
		return;
	}
	if (st->state & NF_ST_BEGUN)
		return;
	/* A TCP Fast Open child is made at the SYN, still in SYN_RECV: it
	 * begins when it leaves SYN_RECV (on_state). Any other passive open
	 * is called here just before its state becomes ESTABLISHED, with the
	 * handshake done: it begins now, so that its begin does not hang on a
	 * state callback that another sock_ops program may have turned off. */
	if (skops->state == TCP_SYN_RECV && tp->fastopen_rsk) {
		st->state |= NF_ST_TFO;
		state_callbacks_on(skops);
		return;
	}
	begin(skops, st, tp);
}

/*
 * A state change of an established socket: the first that leaves the open
 * states ends the flow. Segments the kernel rejects (out of window, RFC 5961)
 * change no state, so they end nothing; retransmitted FINs change none either.
 */
static __always_inline void on_state(struct bpf_sock_ops *skops, struct bpf_sock *sk,
				     struct tcp_sock *tp, __u32 old, __u32 new)
{
	struct nf_sock *st = bpf_sk_storage_get(&socks, sk, 0, 0);
	__u8 end;
	int err;

	if (!st || (st->state & NF_ST_ENDED))
		return;
	if (!(st->state & NF_ST_BEGUN) && (st->state & NF_ST_TFO)) {
		/* A Fast Open child exchanges data before the handshake's last
		 * ACK: it begins when it leaves SYN_RECV, and when that is not
		 * for ESTABLISHED (it sent its FIN first: SYN_RECV -> FIN_WAIT1,
		 * or was reset) it ends at once, as below. */
		begin(skops, st, tp);
		if (new == TCP_ESTABLISHED || (st->state & NF_ST_ENDED))
			return;
	}
	if (!(st->state & NF_ST_BEGUN)) {
		/* A connect() that never established: refused, or given up. */
		if (old != TCP_SYN_SENT || new != TCP_CLOSE || !(st->state & NF_ST_CONNECTED))
			return;
		st->state |= NF_ST_ENDED;
		st->begin_ns = st->connect_ns;
		st->flags |= NF_FLOW_OUTGOING;
		err = ((struct sock *)tp)->sk_err;
		emit_flow(skops, tp, st, NF_KIND_FAIL,
			  err == ECONNREFUSED ? NF_FAIL_REFUSED : NF_FAIL_TIMEOUT, old, new);
		return;
	}
	if (new == TCP_FIN_WAIT1) {
		end = NF_END_LOCAL_FIN;
		owner_at_local_fin(sk);
	} else if (new == TCP_CLOSE_WAIT) {
		/* Data of ours still unacknowledged at the peer's FIN reaches it
		 * if it only half-closed, and is answered with RST if it closed:
		 * which, and so what was sent, is known when the socket closes.
		 * The end waits for that (CLOSE_WAIT or LAST_ACK -> CLOSE). */
		if (tp->write_seq != tp->snd_una) {
			st->state |= NF_ST_FIN_LATE;
			return;
		}
		end = NF_END_REMOTE_FIN;
	} else if (new == TCP_CLOSE && BPF_CORE_READ_BITFIELD(tp, repair)) {
		/* Closed in repair mode (a checkpoint): nothing was sent, and the
		 * error is set only after this change (tcp_disconnect). */
		end = NF_END_REPAIR;
	} else if (new == TCP_CLOSE && (st->state & NF_ST_FIN_LATE)) {
		end = NF_END_REMOTE_FIN;
	} else if (new == TCP_CLOSE) {
		/* tcp_reset() and tcp_write_err() set sk_err before tcp_done();
		 * the application's abort (close with unread data, SO_LINGER 0)
		 * sets none before the state change. */
		err = ((struct sock *)tp)->sk_err;
		if (err == ECONNRESET || err == EPIPE)
			end = NF_END_REMOTE_RST;
		else if (err == 0 || err == ECONNABORTED)
			end = NF_END_LOCAL_RST;
		else
			end = NF_END_TIMEOUT;
	} else {
		return;
	}
	st->state |= NF_ST_ENDED;
	emit_flow(skops, tp, st, NF_KIND_END, end, old, new);
}

/*
 * bpf_sock_ops_cb_flags_set replaces a socket's callback flags: another
 * sock_ops program that runs after netflow's (later on the same cgroup, or on
 * an ancestor) and sets its own turns netflow's state callbacks off, and the
 * end would never come. Whenever netflow runs for a socket it follows and
 * finds them off, it turns them on again (and counts it). A program that
 * turns every callback off is never followed by one: userspace sweeps the
 * open flows while another sock_ops program shares the cgroup (loader.ts).
 */
static __always_inline void restore_callbacks(struct bpf_sock_ops *skops, struct bpf_sock *sk)
{
	struct nf_sock *st = bpf_sk_storage_get(&socks, sk, 0, 0);

	if (!st || (st->state & NF_ST_ENDED))
		return;
	if (!(st->state & (NF_ST_BEGUN | NF_ST_TFO)) &&
	    !((st->state & NF_ST_CONNECTED) && nf_config.report_fail))
		return;
	state_callbacks_on(skops);
	count(NF_CNT_CALLBACKS_RESTORED);
}

SEC("sockops")
int netflow_sockops(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct tcp_sock *tp;

	if (!sk)
		return ALLOW;
	if (skops->op == BPF_SOCK_OPS_TCP_CONNECT_CB) {
		on_connect(skops, sk);
		return ALLOW;
	}
	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
	    skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB && skops->op != BPF_SOCK_OPS_STATE_CB) {
		/* A callback another program asked for: one field read, unless
		 * our state callbacks are off. */
		if (!(skops->bpf_sock_ops_cb_flags & BPF_SOCK_OPS_STATE_CB_FLAG))
			restore_callbacks(skops, sk);
		return ALLOW;
	}
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return ALLOW;
	if (skops->op == BPF_SOCK_OPS_STATE_CB)
		on_state(skops, sk, tp, skops->args[0], skops->args[1]);
	else
		on_established(skops, sk, tp);
	return ALLOW;
}

#endif /* NETFLOW_SOCKOPS_BPF_H */
