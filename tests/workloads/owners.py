#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Servers and clients whose processes are not the ones that made their
sockets, for netflow's owner tests. Every process records what it is: each
line on stdout is one JSON object, flushed at once:

  {"role": ..., "pid": ..., "comm": ..., "uid": ..., ...}

and for each connection it serves or makes, the peer's port ("peer") or its
own ("port"), with the comm it had when the connection was established
("comm") and when it closed it ("close_comm").

  owners.py prefork   --host H --workers N      master listens, N forked workers accept
  owners.py activate  --host H                  an init passes fd 3 (LISTEN_FDS), keeps
                                                its copy; the service execs and renames
  owners.py handoff   --host H [--port P]       a launcher listens, forks the acceptor
                                                (which runs as nobody), closes its copy
  owners.py activate  --host H --delay-ms D     the same, but as systemd does: the service is
                                                started D ms after a connection is waiting
  owners.py prefork   --host H --delay-ms D     the master forks its workers D ms after a
                                                connection is waiting
  owners.py handoff   --to-cgroup DIR           the acceptor moves itself into cgroup DIR
  owners.py threads   --host H --port P         one thread (named nf-thr-worker) connects to
                                                P, then listens and serves one connection;
                                                the process is nf-thr-main
  owners.py serve     --host H [--port P] [--mptcp] [--rename-on-byte]
  owners.py connect   --host H --port P --count N [--mptcp] [--exit-early]
                      [--rename-when FILE]

Servers print {"role": "listening", "port": P, ...} once they accept, serve
each connection (read until the client's "x" or "R", reply 50 bytes, read to
EOF, close) and run until killed; every process they fork dies with its
parent (PR_SET_PDEATHSIG). With --rename-on-byte a server renames itself
(nf-srv-renamed) when the client sends "R". A client with --rename-when
waits until FILE exists, renames itself (nf-cli-renamed) and sends "R";
with --exit-early it sends and exits at once, without closing.
"""
import argparse
import ctypes
import json
import os
import select
import signal
import socket
import sys
import threading
import time

libc = ctypes.CDLL(None, use_errno=True)
IPPROTO_MPTCP = 262


def set_comm(name):
    libc.prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME


def die_with_parent():
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def comm():
    with open("/proc/self/comm") as f:
        return f.read().strip()


def say(role, **fields):
    line = json.dumps({"role": role, "pid": os.getpid(), "comm": comm(), "uid": os.getuid(), **fields})
    os.write(1, (line + "\n").encode())  # one write: lines from several processes never mix


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def listener(host, port=0, mptcp=False):
    s = socket.socket(family_of(host), socket.SOCK_STREAM, IPPROTO_MPTCP if mptcp else 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(128)
    return s


def is_mptcp(sock):
    """MPTCP_INFO answers only for a connection that really runs MPTCP (no fallback)."""
    try:
        sock.getsockopt(284, 1, 96)  # SOL_MPTCP, MPTCP_INFO
        return True
    except OSError:
        return False


def serve_one(conn, peer, rename_on_byte=False):
    opened = comm()
    mptcp = is_mptcp(conn)
    try:
        first = conn.recv(1)
        if first == b"R" and rename_on_byte:
            set_comm("nf-srv-renamed")
        conn.sendall(b"r" * 50)
        while conn.recv(65536):
            pass
    except OSError:
        pass  # the client went away (exit-early)
    say("served", peer=peer, comm_at_begin=opened, close_comm=comm(), mptcp=mptcp)
    conn.close()


def accept_loop(sock, rename_on_byte=False):
    while True:
        conn, addr = sock.accept()
        serve_one(conn, addr[1], rename_on_byte)


def fork_child(fn):
    pid = os.fork()
    if pid == 0:
        die_with_parent()
        try:
            fn()
        finally:
            os._exit(0)
    return pid


def thread_comm():
    with open(f"/proc/self/task/{threading.get_native_id()}/comm") as f:
        return f.read().strip()


def when_waiting(sock, delay_ms):
    """A supervisor's pace: only once a connection waits, then delay_ms later."""
    if delay_ms:
        select.select([sock], [], [])
        time.sleep(delay_ms / 1000)


def cmd_prefork(a):
    set_comm("nf-pre-master")
    sock = listener(a.host)
    port = sock.getsockname()[1]
    if a.delay_ms:
        say("listening", port=port)
        when_waiting(sock, a.delay_ms)
    workers = []
    for i in range(a.workers):
        def work(i=i):
            set_comm(f"nf-pre-w{i}")
            say("worker")
            accept_loop(sock)
        workers.append(fork_child(work))
    if not a.delay_ms:
        say("listening", port=port, workers=workers)
    while True:
        signal.pause()  # the master keeps the listener and never accepts


def cmd_activate(a):
    set_comm("nf-init")
    sock = listener(a.host)
    port = sock.getsockname()[1]
    if a.delay_ms:
        say("listening", port=port)
        when_waiting(sock, a.delay_ms)
    os.dup2(sock.fileno(), 3)
    os.set_inheritable(3, True)
    child = os.fork()
    if child == 0:
        die_with_parent()
        os.environ["LISTEN_FDS"] = "1"
        os.environ["LISTEN_PID"] = str(os.getpid())
        os.execv(sys.executable, [sys.executable, __file__, "service"])
    if not a.delay_ms:
        say("listening", port=port, service=child)
    while True:
        signal.pause()  # init keeps its copy of fd 3 and never accepts


def cmd_service(_a):
    assert os.environ.get("LISTEN_PID") == str(os.getpid()) and os.environ.get("LISTEN_FDS") == "1"
    set_comm("nf-activated")
    sock = socket.socket(fileno=3)
    say("service")
    accept_loop(sock)


def cmd_handoff(a):
    set_comm("nf-launcher")
    sock = listener(a.host, a.port)
    port = sock.getsockname()[1]

    def acceptor():
        set_comm("nf-acceptor")
        if a.to_cgroup:
            with open(f"{a.to_cgroup}/cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
        os.setgid(65534)
        os.setuid(65534)  # nobody: the acceptor is told apart from the launcher by uid too
        die_with_parent()  # a credential change cleared it
        say("acceptor")
        accept_loop(sock)
    child = fork_child(acceptor)
    sock.close()  # the launcher keeps no copy
    say("listening", port=port, acceptor=child)
    while True:
        signal.pause()


def cmd_threads(a):
    set_comm("nf-thr-main")

    def work():
        set_comm("nf-thr-worker")  # this thread's name only
        named = thread_comm()
        s = socket.create_connection((a.host, a.port))
        port = s.getsockname()[1]
        s.sendall(b"x")
        recv_reply(s)
        s.close()
        say("client", port=port, comm_at_begin=comm(), close_comm=comm(), thread=named)
        sock = listener(a.host)
        say("listening", port=sock.getsockname()[1], thread=named)
        conn, addr = sock.accept()
        serve_one(conn, addr[1])
    t = threading.Thread(target=work)
    t.start()
    t.join()
    while True:
        signal.pause()


def recv_reply(s):
    got = 0
    while got < 50:
        chunk = s.recv(50 - got)
        if not chunk:
            break
        got += len(chunk)


def cmd_serve(a):
    set_comm(a.comm)
    sock = listener(a.host, a.port, a.mptcp)
    say("listening", port=sock.getsockname()[1])
    accept_loop(sock, a.rename_on_byte)


def cmd_connect(a):
    set_comm(a.comm)
    for _ in range(a.count):
        s = socket.socket(family_of(a.host), socket.SOCK_STREAM, IPPROTO_MPTCP if a.mptcp else 0)
        s.connect((a.host, a.port))
        port = s.getsockname()[1]
        opened = comm()
        if a.exit_early:
            s.sendall(b"x")
            say("client", port=port, comm_at_begin=opened)
            os._exit(0)  # exits holding the socket: the kernel closes it
        byte = b"x"
        if a.rename_when:
            say("connected", port=port)
            while not os.path.exists(a.rename_when):
                time.sleep(0.01)
            set_comm("nf-cli-renamed")
            byte = b"R"
        s.sendall(byte)
        recv_reply(s)
        close_comm = comm()
        mptcp = is_mptcp(s)
        s.close()
        say("client", port=port, comm_at_begin=opened, close_comm=close_comm, mptcp=mptcp)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("cmd")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--mptcp", action="store_true")
    p.add_argument("--exit-early", action="store_true")
    p.add_argument("--rename-on-byte", action="store_true")
    p.add_argument("--rename-when")
    p.add_argument("--comm", default=None)
    p.add_argument("--delay-ms", type=int, default=0)
    p.add_argument("--to-cgroup")
    a = p.parse_args()
    if a.comm is None:
        a.comm = "nf-client" if a.cmd == "connect" else "nf-server"
    {
        "prefork": cmd_prefork,
        "activate": cmd_activate,
        "service": cmd_service,
        "handoff": cmd_handoff,
        "threads": cmd_threads,
        "serve": cmd_serve,
        "connect": cmd_connect,
    }[a.cmd](a)


if __name__ == "__main__":
    main()
