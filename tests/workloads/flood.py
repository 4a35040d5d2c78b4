#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Cardinality attacks for netflow's flow metrics e2e test.

  flood.py dns    --host H --net PREFIX
      a UDP DNS server on H:53 answering every AAAA question with an address
      in PREFIX (an IPv6 /64) derived from the name, TTL 300; prints "listening 53"
  flood.py serve  --port P
      a TCP server on [::]:P that reads each connection to its end; prints "listening P"
  flood.py names  --dns H --port P --count C [--pause MS]
      C random names (16 hex digits under flood.test), each resolved at H:53
      (AAAA) and connected to on port P with 10 bytes (MS after the answer);
      prints {"names": C}
  flood.py scan   --host H --first A --last B
      one connect to each port A..B of H (refused or not); prints {"ports": N}

Each client process names itself (comm) nf-flood or nf-scan.
"""
import argparse
import ctypes
import ipaddress
import json
import os
import socket
import struct
import threading
import time
import zlib


def set_comm(name):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME


def question(msg):
    """(qname bytes as on the wire, qtype, end offset) of a query's first question."""
    i = 12
    while msg[i] != 0:
        i += 1 + msg[i]
    qname = msg[12 : i + 1]
    qtype = struct.unpack("!H", msg[i + 1 : i + 3])[0]
    return qname, qtype, i + 5


def dns_server(args):
    net = ipaddress.IPv6Network(args.net)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((args.host, 53))
    print("listening 53", flush=True)
    while True:
        msg, peer = s.recvfrom(512)
        qname, qtype, end = question(msg)
        flags = 0x8180  # response, recursion desired and available
        header = msg[:2] + struct.pack("!HHHHH", flags, 1, 1 if qtype == 28 else 0, 0, 0)
        answer = b""
        if qtype == 28:
            host = zlib.crc32(qname) | (len(qname) << 32)
            addr = (net.network_address + (host & ((1 << 64) - 1))).packed
            answer = b"\xc0\x0c" + struct.pack("!HHIH", 28, 1, 300, 16) + addr
        s.sendto(header + msg[12:end] + answer, peer)


def serve(args):
    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("::", args.port))
    srv.listen(1024)
    print(f"listening {srv.getsockname()[1]}", flush=True)

    def drain(conn):
        with conn:
            while conn.recv(65536):
                pass

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=drain, args=(conn,), daemon=True).start()


def resolve(server, name):
    q = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    q.settimeout(2)
    qid = int.from_bytes(os.urandom(2), "big")
    wire = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    q.sendto(struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + wire + struct.pack("!HH", 28, 1), (server, 53))
    msg, _ = q.recvfrom(512)
    q.close()
    return socket.inet_ntop(socket.AF_INET6, msg[-16:])


def names(args):
    set_comm("nf-flood")
    for _ in range(args.count):
        addr = resolve(args.dns, os.urandom(8).hex() + ".flood.test")
        time.sleep(args.pause / 1000)
        with socket.create_connection((addr, args.port), timeout=2) as c:
            c.sendall(b"x" * 10)
    print(json.dumps({"names": args.count}), flush=True)


def scan(args):
    set_comm("nf-scan")
    n = 0
    for port in range(args.first, args.last + 1):
        s = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(1)
        try:
            s.connect((args.host, port))
        except OSError:
            pass
        s.close()
        n += 1
    print(json.dumps({"ports": n}), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["dns", "serve", "names", "scan"])
    p.add_argument("--host", default="")
    p.add_argument("--net", default="")
    p.add_argument("--dns", default="")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--first", type=int, default=1)
    p.add_argument("--last", type=int, default=1)
    p.add_argument("--pause", type=float, default=0)
    args = p.parse_args()
    {"dns": dns_server, "serve": serve, "names": names, "scan": scan}[args.mode](args)


if __name__ == "__main__":
    main()
