#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""TCP workloads for netflow's e2e tests: a server and a client that agree on a
scenario, so each test knows exactly which packets end each connection.

  tcp.py serve   --host H [--port P] --scenario S [--count N] [--fork]
  tcp.py connect --host H --port P   --scenario S [--count N] [--bytes N]

The server prints "listening PORT" once it listens; the client prints one JSON
line {"pid": ..., "ports": [...]} with its local ports. Each process names
itself (comm) nf-server, nf-worker or nf-client, or --comm NAME. Scenarios:

  client-close  client sends, server replies, client closes first (FIN)
  server-close  client sends, server replies and closes first (FIN)
  rst           like client-close, but the client aborts (SO_LINGER 0: RST)
  halfclose     client sends and shuts down writing, server replies afterwards
  refused       the client connects to a port nobody listens on
  silent        the client connects to a port whose SYNs are never answered

With --wait FILE the client prints its JSON line once its connections are
open and the exchange done, then closes them only when FILE exists; a forked
worker (--fork) stays up after serving until FILE exists.
"""
import argparse
import ctypes
import json
import os
import socket
import struct
import sys
import threading
import time

REPLY = 50


def set_comm(name):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def recv_exact(conn, n):
    got = 0
    while got < n:
        chunk = conn.recv(min(1 << 20, n - got))
        if not chunk:
            break
        got += len(chunk)
    return got


def recv_to_eof(conn):
    got = 0
    while True:
        try:
            chunk = conn.recv(1 << 20)
        except ConnectionResetError:
            break
        if not chunk:
            return got
        got += len(chunk)
    return got


def serve_one(conn, scenario, size):
    with conn:
        if scenario == "halfclose":
            recv_to_eof(conn)
            conn.sendall(b"r" * REPLY)
            return
        recv_exact(conn, size)
        conn.sendall(b"r" * REPLY)
        if scenario == "server-close":
            return
        recv_to_eof(conn)


def serve(args):
    set_comm(args.comm or "nf-server")
    srv = socket.socket(family_of(args.host), socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.host, args.port))
    srv.listen(1024)
    print(f"listening {srv.getsockname()[1]}", flush=True)
    if args.fork:
        # A server that forks its worker after listening: the worker accepts.
        pid = os.fork()
        if pid == 0:
            set_comm("nf-worker")
            for _ in range(args.count):
                conn, _ = srv.accept()
                serve_one(conn, args.scenario, args.bytes)
            # Like a real worker, stay up (until --wait's file exists).
            while args.wait and not os.path.exists(args.wait):
                time.sleep(0.05)
            os._exit(0)
        # The parent lets go of the listener before anyone connects.
        srv.close()
        print(f"worker {pid}", flush=True)
        os.waitpid(pid, 0)
        return
    threads = []
    for _ in range(args.count):
        conn, _ = srv.accept()
        t = threading.Thread(target=serve_one, args=(conn, args.scenario, args.bytes))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    srv.close()


def connect(args):
    set_comm(args.comm or "nf-client")
    fam = family_of(args.host)
    if args.scenario in ("refused", "silent"):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(args.timeout)
        try:
            s.connect((args.host, args.port))
        except (ConnectionRefusedError, socket.timeout, OSError):
            pass
        port = s.getsockname()[1]
        s.close()
        print(json.dumps({"pid": os.getpid(), "ports": [port]}), flush=True)
        return
    # Open every connection first, so that `count` of them are open at once.
    socks = [socket.create_connection((args.host, args.port)) for _ in range(args.count)]
    ports = [s.getsockname()[1] for s in socks]
    payload = b"q" * args.bytes
    if args.wait:
        # Exchange, report, and hold the connections until told to close.
        for s in socks:
            s.sendall(payload)
            recv_exact(s, REPLY)
        print(json.dumps({"pid": os.getpid(), "ports": ports}), flush=True)
        while not os.path.exists(args.wait):
            time.sleep(0.05)
        for s in socks:
            s.close()
        return
    for s in socks:
        s.sendall(payload)
        if args.scenario == "halfclose":
            s.shutdown(socket.SHUT_WR)
            recv_to_eof(s)
        elif args.scenario == "server-close":
            recv_to_eof(s)
        else:
            recv_exact(s, REPLY)
            if args.scenario == "rst":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    print(json.dumps({"pid": os.getpid(), "ports": ports}), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["serve", "connect"])
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--scenario", default="client-close")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--bytes", type=int, default=100)
    p.add_argument("--fork", action="store_true")
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--wait", default="")
    p.add_argument("--comm", default="")
    args = p.parse_args()
    serve(args) if args.mode == "serve" else connect(args)


if __name__ == "__main__":
    sys.exit(main())
