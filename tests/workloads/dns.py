#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""DNS workloads for netflow's e2e tests (forgers, odd servers, floods).

  dns.py forge    --src ADDR --dst ADDR --port P --name N --address A [--id I]
      one unsolicited answer datagram from ADDR:53 to ADDR:P
  dns.py listen   --host H [--port P]
      a UDP socket that prints "listening PORT", then "got N" after 1 s of silence
  dns.py proxy    --host H --upstream U --name N --address A --wrong-id-address W
      a resolver on H:53 that answers each query first with two forged answers
      (the wrong id, for the asked name at W; the right id, for the question N
      at A), then with the real answer it got from U:53; prints "listening 53"
  dns.py tcp      --host H --name N --address A [--count C] [--split]
      a DNS-over-TCP server on H:53 answering N with C A records (from A on),
      with --split in two writes 100 ms apart (TCP_NODELAY): two segments
  dns.py bulk     --host H --bytes B
      a TCP server on H:53 that sends B bytes of junk to whoever connects
  dns.py flood    --src ADDR --dst ADDR --port P --count C [--sport S]
      C answer datagrams from ADDR:53 (or S) to ADDR:P, random ids, answering nothing
  dns.py queries  --dst ADDR --count C
      C queries (distinct ids, random names) from one socket to ADDR:53, never answered
"""
import argparse
import ipaddress
import random
import socket
import struct
import sys
import time


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def qname(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def answer(qid, name, addresses, ttl=300, question=None):
    """A NOERROR answer to `question` (default: name/A/IN) with A records for name."""
    q = question if question is not None else qname(name) + struct.pack("!HH", 1, 1)
    out = struct.pack("!HHHHHH", qid, 0x8180, 1, len(addresses), 0, 0) + q
    for a in addresses:
        out += struct.pack("!HHHIH", 0xC00C, 1, 1, ttl, 4) + ipaddress.IPv4Address(a).packed
    return out


def question_of(query):
    """The question section of a query (one question), as bytes."""
    at = 12
    while query[at] != 0:
        at += 1 + query[at]
    return query[12 : at + 5]


def forge(args):
    s = socket.socket(family(args.src), socket.SOCK_DGRAM)
    s.bind((args.src, 53))
    s.sendto(answer(args.id, args.name, [args.address]), (args.dst, args.port))
    print("sent", flush=True)


def listen(args):
    s = socket.socket(family(args.host), socket.SOCK_DGRAM)
    s.bind((args.host, args.port))
    print("listening", s.getsockname()[1], flush=True)
    got = 0
    s.settimeout(args.idle)
    try:
        while True:
            s.recv(65535)
            got += 1
    except socket.timeout:
        pass
    print("got", got, flush=True)


def proxy(args):
    s = socket.socket(family(args.host), socket.SOCK_DGRAM)
    s.bind((args.host, 53))
    up = socket.socket(family(args.upstream), socket.SOCK_DGRAM)
    up.settimeout(2)
    print("listening 53", flush=True)
    while True:
        query, client = s.recvfrom(65535)
        (qid,) = struct.unpack("!H", query[:2])
        # Right server and port, wrong id: the asked name at another address.
        q = question_of(query)
        s.sendto(answer(qid ^ 0x5555, None, [args.wrong_id_address], question=q), client)
        # Right id, wrong question: another name at the asked address.
        s.sendto(answer(qid, args.name, [args.address]), client)
        up.sendto(query, (args.upstream, 53))
        s.sendto(up.recv(65535), client)


def tcp(args):
    srv = socket.socket(family(args.host), socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.host, 53))
    srv.listen(16)
    print("listening 53", flush=True)
    first = ipaddress.IPv4Address(args.address)
    while True:
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        (n,) = struct.unpack("!H", recv_exact(conn, 2))
        query = recv_exact(conn, n)
        (qid,) = struct.unpack("!H", query[:2])
        addrs = [str(first + i) for i in range(args.count)]
        msg = answer(qid, args.name, addrs, question=question_of(query))
        framed = struct.pack("!H", len(msg)) + msg
        if args.split:
            half = len(framed) // 2
            conn.sendall(framed[:half])
            time.sleep(0.1)
            conn.sendall(framed[half:])
        else:
            conn.sendall(framed)
        try:
            recv_exact(conn, 1)  # until the client closes
        except EOFError:
            pass
        conn.close()


def bulk(args):
    srv = socket.socket(family(args.host), socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.host, 53))
    srv.listen(16)
    print("listening 53", flush=True)
    conn, _ = srv.accept()
    junk = bytes(random.getrandbits(8) for _ in range(4096))
    left = args.bytes
    while left > 0:
        conn.sendall(junk[: min(left, len(junk))])
        left -= len(junk)
    conn.close()


def flood(args):
    s = socket.socket(family(args.src), socket.SOCK_DGRAM)
    s.bind((args.src, args.sport))
    rnd = random.Random(7)
    target = (args.dst, args.port)
    for i in range(args.count):
        name = "x%d.flood.test" % rnd.getrandbits(32)
        msg = answer(rnd.getrandbits(16), name, ["198.51.100.%d" % (i % 250 + 1)])
        while True:
            try:
                s.sendto(msg, target)
                break
            except (BlockingIOError, ConnectionRefusedError):
                continue
    print("sent", args.count, flush=True)


def queries(args):
    s = socket.socket(family(args.dst), socket.SOCK_DGRAM)
    rnd = random.Random(11)
    for i in range(args.count):
        q = qname("q%d.unanswered.test" % rnd.getrandbits(32)) + struct.pack("!HH", 1, 1)
        msg = struct.pack("!HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + q  # distinct ids
        try:
            s.sendto(msg, (args.dst, 53))
        except OSError:
            pass  # an ICMP error from an earlier one
    print("sent", args.count, flush=True)


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("forge")
    f.add_argument("--src", required=True)
    f.add_argument("--dst", required=True)
    f.add_argument("--port", type=int, required=True)
    f.add_argument("--name", required=True)
    f.add_argument("--address", required=True)
    f.add_argument("--id", type=int, default=0x4242)
    li = sub.add_parser("listen")
    li.add_argument("--host", required=True)
    li.add_argument("--port", type=int, default=0)
    li.add_argument("--idle", type=float, default=1.0)
    pr = sub.add_parser("proxy")
    pr.add_argument("--host", required=True)
    pr.add_argument("--upstream", required=True)
    pr.add_argument("--name", required=True)
    pr.add_argument("--address", required=True)
    pr.add_argument("--wrong-id-address", required=True)
    t = sub.add_parser("tcp")
    t.add_argument("--host", required=True)
    t.add_argument("--name", required=True)
    t.add_argument("--address", required=True)
    t.add_argument("--count", type=int, default=1)
    t.add_argument("--split", action="store_true")
    b = sub.add_parser("bulk")
    b.add_argument("--host", required=True)
    b.add_argument("--bytes", type=int, required=True)
    fl = sub.add_parser("flood")
    fl.add_argument("--src", required=True)
    fl.add_argument("--dst", required=True)
    fl.add_argument("--port", type=int, required=True)
    fl.add_argument("--count", type=int, required=True)
    fl.add_argument("--sport", type=int, default=53)
    qs = sub.add_parser("queries")
    qs.add_argument("--dst", required=True)
    qs.add_argument("--count", type=int, required=True)
    args = p.parse_args()
    {"forge": forge, "listen": listen, "proxy": proxy, "tcp": tcp, "bulk": bulk, "flood": flood, "queries": queries}[
        args.cmd
    ](args)


if __name__ == "__main__":
    sys.exit(main())
