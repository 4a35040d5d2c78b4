#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Holds TCP connections open, to measure netflow's memory with many open flows.

  hold.py serve PORT           accept on PORT and hold every connection
  hold.py connect N PORT SRC RATE   open N connections from address SRC to
                                    PORT, at most RATE a second, and hold them
                                    until stdin closes

Prints "listening" / "open N" when ready. One process holds at most what the
RLIMIT_NOFILE allows (20,000 on our machines, which withhold
CAP_SYS_RESOURCE): the benchmark runs several pairs.
"""
import resource
import socket
import sys
import time


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve(port):
    raise_nofile()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(4096)
    print("listening", flush=True)
    held = []
    while True:
        conn, _ = s.accept()
        held.append(conn)


def connect(n, port, src, rate):
    raise_nofile()
    socks = []
    start = time.monotonic()
    for i in range(n):
        ahead = i / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
        s = socket.socket()
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))
        socks.append(s)
    print(f"open {len(socks)}", flush=True)
    sys.stdin.read()
    for s in socks:
        s.close()


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        connect(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5]))
