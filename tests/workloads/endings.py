#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Connections that end in ways the kernel side must read right (issue 22
points 9, 12, 13). Each prints one JSON line with what it did.

  endings.py late-fin HOST   a server with megabytes queued gets the client's FIN
                             (shutdown), then its RST (close with unread data)
  endings.py tfo HOST GO     the port printed, then on file GO a Fast Open request; the
                             server replies and closes while its child socket is still
                             in SYN_RECV (the test drops the client's pure ACKs)
  endings.py repair HOST     a server checkpoints an accepted socket in TCP repair mode
                             (closes it: nothing on the wire), restores it into a new
                             socket and talks on over it, then closes it
  endings.py pair HOST       one connection, 100 bytes each way, both sides close
"""
import json
import os
import socket
import struct
import sys
import time

TCP_FASTOPEN = 23
MSG_FASTOPEN = 0x20000000
TCP_REPAIR = 19
TCP_REPAIR_QUEUE = 20
TCP_QUEUE_SEQ = 21
TCP_RECV_QUEUE, TCP_SEND_QUEUE = 1, 2
TCPI_OPT_SYN_DATA = 32


def fam(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def say(**kw):
    print(json.dumps({"pid": os.getpid(), **kw}), flush=True)


def tcp_info(s):
    """(state, options, bytes_received) from struct tcp_info (linux/tcp.h)."""
    raw = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
    return raw[0], raw[5], struct.unpack_from("=Q", raw, 128)[0]


def listener(host, **opts):
    ls = socket.socket(fam(host), socket.SOCK_STREAM)
    for (level, name), value in opts.items():
        ls.setsockopt(level, name, value)
    ls.bind((host, 0))
    ls.listen(8)
    return ls


def recv_n(s, n):
    got = b""
    while len(got) < n:
        chunk = s.recv(n - len(got))
        if not chunk:
            break
        got += chunk
    return got


def late_fin(host):
    ls = listener(host)
    port = ls.getsockname()[1]
    cli = socket.socket(fam(host), socket.SOCK_STREAM)
    cli.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    cli.connect((host, port))
    srv, _ = ls.accept()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    srv.setblocking(False)
    chunk, written, read = b"x" * 65536, 0, 0

    def push():
        nonlocal written
        for _ in range(200):
            try:
                written += srv.send(chunk)
            except BlockingIOError:
                return

    # The client reads 100,000 bytes while the server writes all it can...
    while read < 100_000:
        push()
        read += len(cli.recv(min(65536, 100_000 - read)))
    # ...then the server's queue fills (the client reads no more).
    for _ in range(20):
        push()
        time.sleep(0.01)
    client = cli.getsockname()[1]
    cli.shutdown(socket.SHUT_WR)  # FIN: the server has megabytes unacknowledged
    time.sleep(0.3)
    received = tcp_info(cli)[2]
    cli.close()  # unread data: RST, and the server's queue is never delivered
    time.sleep(0.3)
    try:
        srv.send(chunk)
    except OSError:
        pass
    srv.close()
    say(server=port, client=client, read=read, received=received, written=written)


def tfo(host, go):
    ls = listener(host)
    ls.setsockopt(socket.IPPROTO_TCP, TCP_FASTOPEN, 8)
    port = ls.getsockname()[1]
    say(port=port)  # the test drops pure ACKs to this port, then makes GO
    while not os.path.exists(go):
        time.sleep(0.02)
    cli = socket.socket(fam(host), socket.SOCK_STREAM)
    request = b"q" * 300
    cli.sendto(request, MSG_FASTOPEN, (host, port))
    srv, _ = ls.accept()
    got = srv.recv(4096)
    state, options, _ = tcp_info(srv)
    reply = b"r" * 700
    srv.sendall(reply)
    srv.close()  # still SYN_RECV: the client's ACK never came
    answer = b""
    while True:
        chunk = cli.recv(4096)
        if not chunk:
            break
        answer += chunk
    client = cli.getsockname()[1]
    cli.close()
    say(server=port, client=client, request=len(got), reply=len(answer), state_at_close=state,
        syn_data=bool(options & TCPI_OPT_SYN_DATA))


def queue_seq(s, queue):
    s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, queue)
    return struct.unpack("=I", s.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, 4))[0]


def repair(host):
    ls = listener(host)
    port = ls.getsockname()[1]
    cli = socket.create_connection((host, port))
    srv, peer = ls.accept()
    srv.sendall(b"a" * 100)
    recv_n(cli, 100)
    cli.sendall(b"b" * 50)
    recv_n(srv, 50)
    time.sleep(0.2)  # everything acknowledged: both queues empty
    local = srv.getsockname()
    # Checkpoint: repair mode, read the sequence numbers, close (nothing on the wire).
    srv.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    recv_seq, send_seq = queue_seq(srv, TCP_RECV_QUEUE), queue_seq(srv, TCP_SEND_QUEUE)
    srv.close()
    time.sleep(0.2)
    # Restore: a new socket in repair mode takes the sequence numbers and
    # "connects" without a handshake.
    new = socket.socket(fam(host), socket.SOCK_STREAM)
    new.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    new.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)
    new.setsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, struct.pack("=I", recv_seq))
    new.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)
    new.setsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, struct.pack("=I", send_seq))
    new.bind(local)
    new.connect(peer)
    new.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 0)
    # The connection goes on: 30 bytes each way over the restored socket.
    new.sendall(b"c" * 30)
    after = len(recv_n(cli, 30))
    cli.sendall(b"d" * 30)
    back = len(recv_n(new, 30))
    client = cli.getsockname()[1]
    cli.close()
    recv_n(new, 1)  # the client's FIN
    new.close()
    say(server=port, client=client, after=after, back=back)


def pair(host):
    ls = listener(host)
    port = ls.getsockname()[1]
    cli = socket.create_connection((host, port))
    srv, _ = ls.accept()
    cli.sendall(b"p" * 100)
    recv_n(srv, 100)
    srv.sendall(b"q" * 100)
    recv_n(cli, 100)
    client = cli.getsockname()[1]
    cli.close()
    recv_n(srv, 1)
    srv.close()
    say(server=port, client=client)


def main():
    what, host = sys.argv[1], sys.argv[2]
    if what == "late-fin":
        late_fin(host)
    elif what == "tfo":
        tfo(host, sys.argv[3])
    elif what == "repair":
        repair(host)
    elif what == "pair":
        pair(host)
    else:
        sys.exit(f"unknown workload {what}")


if __name__ == "__main__":
    main()
