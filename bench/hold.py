#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Opens N TCP connections to a local server and holds them open until stdin
closes; prints "open N" when all are established. Used to measure netflow's
memory with many open flows. The server side accepts and holds them too.

  hold.py serve PORT...            accept on each port forever
  hold.py connect N PORT...        open N connections spread over the ports
"""
import resource
import selectors
import socket
import sys


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(max(n, soft), hard) if hard != resource.RLIM_INFINITY else n
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def serve(ports):
    raise_nofile(400_000)
    sel = selectors.DefaultSelector()
    for p in ports:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", p))
        s.listen(4096)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    print("listening", flush=True)
    held = []
    while True:
        for key, _ in sel.select():
            try:
                while True:
                    conn, _ = key.fileobj.accept()
                    held.append(conn)
            except BlockingIOError:
                pass


def connect(n, ports):
    raise_nofile(n + 1000)
    socks = []
    for i in range(n):
        # Spread over source addresses too: one 4-tuple space per 127.0.0.x.
        s = socket.socket()
        s.bind((f"127.0.{1 + i // 20000}.{1 + (i // 5000) % 250}", 0))
        s.connect(("127.0.0.1", ports[i % len(ports)]))
        socks.append(s)
    print(f"open {len(socks)}", flush=True)
    sys.stdin.read()
    for s in socks:
        s.close()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve([int(p) for p in sys.argv[2:]])
    else:
        connect(int(sys.argv[2]), [int(p) for p in sys.argv[3:]])
