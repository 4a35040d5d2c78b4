#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Workloads for netflow's lifecycle e2e tests (updates, failed attempts,
preexisting flows, timeouts). Each prints one JSON line with what it did.

  lifecycle.py serve HOST                 listen, print {"port"}; accept and echo until EOF
  lifecycle.py preexisting HOST GO        connect to itself, 100 out / 50 back, print ports,
                                          wait for file GO, then 200 out / 30 back, close
  lifecycle.py long HOST PORT SECONDS     one connection, 1000 bytes every 0.5 s, then close
  lifecycle.py burst HOST PORT N          open N connections, then close them all at once
  lifecycle.py refused HOST [PORT]        connect to a port nobody listens on (a free local
                                          one, or PORT of a remote host)
  lifecycle.py giveup HOST PORT SECONDS   connect, give up (close) after SECONDS unanswered
  lifecycle.py usertimeout HOST PORT GO   connect with TCP_USER_TIMEOUT 2000 ms, print ports,
                                          wait for file GO, then send until the kernel gives up
"""
import json
import os
import socket
import sys
import threading
import time

TCP_USER_TIMEOUT = 18


def fam(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def say(**kw):
    print(json.dumps({"pid": os.getpid(), **kw}), flush=True)


def wait_for(path):
    while not os.path.exists(path):
        time.sleep(0.02)


def recv_n(s, n):
    got = 0
    while got < n:
        d = s.recv(n - got)
        if not d:
            break
        got += len(d)
    return got


def main():
    cmd, host = sys.argv[1], sys.argv[2]
    if cmd == "serve":
        ls = socket.socket(fam(host))
        ls.bind((host, 0))
        ls.listen(16)
        say(port=ls.getsockname()[1])
        def drain(c):
            while True:
                try:
                    if not c.recv(65536):
                        break
                except OSError:
                    break
            c.close()

        # Threads, not forks: nothing outlives the server holding its pipes.
        while True:
            c, _ = ls.accept()
            threading.Thread(target=drain, args=(c,), daemon=True).start()
    elif cmd == "preexisting":
        ls = socket.socket(fam(host))
        ls.bind((host, 0))
        ls.listen(1)
        c = socket.create_connection((host, ls.getsockname()[1]))
        a, _ = ls.accept()
        c.sendall(b"x" * 100)
        recv_n(a, 100)
        a.sendall(b"y" * 50)
        recv_n(c, 50)
        say(port=ls.getsockname()[1], client=c.getsockname()[1])
        wait_for(sys.argv[3])
        c.sendall(b"x" * 200)
        recv_n(a, 200)
        a.sendall(b"y" * 30)
        recv_n(c, 30)
        c.close()
        recv_n(a, 1)
        a.close()
    elif cmd == "long":
        port, seconds = int(sys.argv[3]), float(sys.argv[4])
        c = socket.create_connection((host, port))
        say(client=c.getsockname()[1])
        end = time.time() + seconds
        sent = 0
        while time.time() < end:
            c.sendall(b"x" * 1000)
            sent += 1000
            time.sleep(0.5)
        c.close()
        say(sent=sent)
    elif cmd == "burst":
        port, n = int(sys.argv[3]), int(sys.argv[4])
        conns = [socket.create_connection((host, port)) for _ in range(n)]
        time.sleep(0.5)
        for c in conns:
            c.close()
        say(closed=n)
    elif cmd == "refused":
        if len(sys.argv) > 3:  # a remote host's port, known to be closed
            port = int(sys.argv[3])
        else:  # a local port just freed
            s = socket.socket(fam(host))
            s.bind((host, 0))
            port = s.getsockname()[1]
            s.close()
        c = socket.socket(fam(host))
        c.bind(("::" if ":" in host else "0.0.0.0", 0))
        client = c.getsockname()[1]
        try:
            c.connect((host, port))
            err = "connected"
        except OSError as e:
            err = e.strerror
        say(port=port, client=client, error=err)
    elif cmd == "giveup":
        port, seconds = int(sys.argv[3]), float(sys.argv[4])
        c = socket.socket(fam(host))
        c.setblocking(False)
        c.connect_ex((host, port))
        client = c.getsockname()[1]
        time.sleep(seconds)
        c.close()
        say(client=client)
    elif cmd == "usertimeout":
        port = int(sys.argv[3])
        c = socket.socket(fam(host))
        c.setsockopt(socket.IPPROTO_TCP, TCP_USER_TIMEOUT, 2000)
        c.connect((host, port))
        c.sendall(b"x" * 100)
        say(client=c.getsockname()[1])
        wait_for(sys.argv[4])
        err = None
        t0 = time.time()
        while time.time() - t0 < 30:
            try:
                c.send(b"z" * 100)
            except OSError as e:
                err = e.strerror
                break
            time.sleep(0.1)
        say(error=err)


if __name__ == "__main__":
    main()
