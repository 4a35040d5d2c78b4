#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A TCP receiver for IPFIX e2e tests: it decodes nothing (ipfixDump and tshark
do); it accepts connections one after another and writes the bytes of the Nth
to OUT.N, then prints "closed N BYTES". Prints "listening PORT" when ready."""
import argparse
import socket
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--port", type=int, default=0)
ap.add_argument("--out", required=True)
a = ap.parse_args()

family = socket.AF_INET6 if ":" in a.host else socket.AF_INET
srv = socket.socket(family, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((a.host, a.port))
srv.listen(4)
print(f"listening {srv.getsockname()[1]}", flush=True)
n = 0
while True:
    conn, _ = srv.accept()
    n += 1
    total = 0
    with conn, open(f"{a.out}.{n}", "wb") as f:
        print(f"connected {n}", flush=True)
        while True:
            data = conn.recv(65536)
            if not data:
                break
            f.write(data)
            f.flush()
            total += len(data)
    print(f"closed {n} {total}", flush=True)
