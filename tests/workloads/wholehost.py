#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Workloads for netflow's whole-host e2e tests (tests/e2e/wholehost_test.ts).

Every process names itself (comm) after its role, prints one line when it is
ready and one JSON line when it is done, and takes no input but files:

  serve    --host H [--port P] --steps S [--count N | --until FILE]
           [--accept-delay SECONDS] [--accept-after FILE] [--accept-log FILE]
           prints "listening PORT", accepts N connections (or until FILE
           exists), runs the steps on each (concurrently), prints
           {"accepted": N, "peers": [ports]}
  connect  --host H --port P --steps S [--count N] [--bind-port B]
           [--sequential | --reuse]
           opens N connections (all at once, or one after the other with
           --sequential; --reuse: one after the other from the same local
           port, SO_REUSEADDR), runs the steps on each, prints {"pid", "ports"}
           (steps "a|b|..." give the i-th connection the i-th plan)
  refuse   --host H [--count N]
           connects N times to a port nobody listens on, prints
           {"port": P, "ports": [client ports]}
  rawhold  --ports P,Q --until FILE
           holds raw IPPROTO_TCP sockets (IPv4 and IPv6), prints "ready",
           counts the TCP segments they see to or from ports P, Q, and prints
           {"pid", "seen": N} once FILE exists
  forge    --src A --dst B --sport S --dport D --seq N --flags R|F
           sends one TCP segment from a raw socket (the kernel fills in the
           IP header; the TCP checksum is ours for IPv4, the kernel's for IPv6)
  flood    --dst A --dport D --count N --low L --high H [--first F --until FILE]
           sends N SYNs from distinct random source ports in [L, H] from a
           raw socket, printing "started" after the first F (then waiting
           for FILE, if given), and
           {"pid", "ports": [...]} at the end
  simopen  --bind A --bind-port PA --peer B --peer-port PB --go FILE --steps S
           binds, prints "ready", waits for FILE, connects (a simultaneous
           open when the peer does the same), prints "connected", runs the
           steps, prints {"pid", "ports": [PA]}

Steps (separated by ";"): send:N (write N bytes), recv:N (read exactly N
bytes), eof (read to the end of the stream), wait:FILE (until FILE exists),
sleep:SECONDS, print:WORD (a line on stdout), linger0 (close with a RST).
The socket is closed after the last step.
"""
import argparse
import ctypes
import json
import os
import random
import socket
import struct
import sys
import threading
import time


def set_comm(name):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def say(obj):
    print(obj if isinstance(obj, str) else json.dumps(obj), flush=True)


def wait_for(path):
    while not os.path.exists(path):
        time.sleep(0.005)


def recv_exact(conn, n):
    got = 0
    while got < n:
        chunk = conn.recv(min(1 << 20, n - got))
        if not chunk:
            raise RuntimeError(f"stream ended after {got} of {n} bytes")
        got += len(chunk)


def recv_to_eof(conn):
    got = 0
    while True:
        try:
            chunk = conn.recv(1 << 20)
        except ConnectionResetError:
            return got
        if not chunk:
            return got
        got += len(chunk)


def run_steps(conn, steps, lock):
    with conn:
        for step in steps.split(";"):
            op, _, arg = step.partition(":")
            if op == "send":
                conn.sendall(b"x" * int(arg))
            elif op == "recv":
                recv_exact(conn, int(arg))
            elif op == "eof":
                recv_to_eof(conn)
            elif op == "wait":
                wait_for(arg)
            elif op == "sleep":
                time.sleep(float(arg))
            elif op == "print":
                with lock:
                    say(arg)
            elif op == "linger0":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif op:
                raise ValueError(f"unknown step {step!r}")


def start_thread(fn, *a):
    """A thread whose exception is kept for finish()."""
    box = {}

    def guarded():
        try:
            fn(*a)
        except Exception as e:
            box["error"] = e

    t = threading.Thread(target=guarded)
    t.start()
    return t, box


def finish(jobs):
    for t, _ in jobs:
        t.join()
    for _, box in jobs:
        if "error" in box:
            raise box["error"]


def serve(args):
    set_comm("nf-wh-server")
    srv = socket.socket(family_of(args.host), socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.host, args.port))
    srv.listen(1024)
    say(f"listening {srv.getsockname()[1]}")
    lock, plans, peers, jobs = threading.Lock(), args.steps.split("|"), [], []
    if args.until:
        srv.settimeout(0.02)
    if args.accept_delay:
        time.sleep(args.accept_delay)  # connections wait in the backlog meanwhile
    if args.accept_after:
        wait_for(args.accept_after)
    # Each connection is served as soon as it is accepted (the i-th gets the
    # i-th plan of "plan|plan|...", or the only one).
    while (not args.until and len(peers) < args.count) or (args.until and not os.path.exists(args.until)):
        try:
            conn, addr = srv.accept()
        except socket.timeout:
            continue
        conn.settimeout(None)
        plan = plans[min(len(peers), len(plans) - 1)]
        peers.append(addr[1])
        if args.accept_log:
            with open(args.accept_log, "a") as log:
                log.write(f"{addr[1]}\n")
        jobs.append(start_thread(run_steps, conn, plan, lock))
    srv.close()
    finish(jobs)
    say({"accepted": len(peers), "peers": sorted(peers)})


def connect(args):
    set_comm("nf-wh-client")
    fam, lock, plans = family_of(args.host), threading.Lock(), args.steps.split("|")
    bind_port = args.bind_port

    def opened():
        s = socket.socket(fam, socket.SOCK_STREAM)
        if bind_port or args.reuse:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((args.host, bind_port))
        s.connect((args.host, args.port))
        return s

    ports = []
    if args.sequential or args.reuse:
        # One after the other; with --reuse, all from the first one's port.
        for i in range(args.count):
            s = opened()
            ports.append(s.getsockname()[1])
            bind_port = ports[0] if args.reuse else bind_port
            run_steps(s, plans[min(i, len(plans) - 1)], lock)
    else:
        socks = [opened() for _ in range(args.count)]
        ports = [s.getsockname()[1] for s in socks]
        finish([start_thread(run_steps, s, plans[min(i, len(plans) - 1)], lock)
                for i, s in enumerate(socks)])
    say({"pid": os.getpid(), "ports": ports})


def refuse(args):
    set_comm("nf-wh-refused")
    fam = family_of(args.host)
    probe = socket.socket(fam, socket.SOCK_STREAM)
    probe.bind((args.host, 0))
    port = probe.getsockname()[1]
    probe.close()  # bound, never listening: nobody listens on it now
    ports = []
    for _ in range(args.count):
        s = socket.socket(fam, socket.SOCK_STREAM)
        try:
            s.connect((args.host, port))
            raise RuntimeError(f"port {port} accepted a connection")
        except ConnectionRefusedError:
            pass
        ports.append(s.getsockname()[1])
        s.close()
    say({"port": port, "ports": ports})


def tcp_ports(fam, packet):
    """The TCP ports of a segment read from a raw socket (IPv4 has its header)."""
    off = (packet[0] & 0x0F) * 4 if fam == socket.AF_INET else 0
    if len(packet) < off + 4:
        return None
    return struct.unpack("!HH", packet[off:off + 4])


def rawhold(args):
    set_comm("nf-wh-raw")
    socks = [
        (socket.AF_INET, socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)),
        (socket.AF_INET6, socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_TCP)),
    ]
    for _, s in socks:
        s.settimeout(0.01)
    say("ready")
    seen, watched = 0, {int(p) for p in args.ports.split(",")}
    while not os.path.exists(args.until):
        for fam, s in socks:
            try:
                while True:
                    ports = tcp_ports(fam, s.recv(65536))
                    if ports and watched & set(ports):
                        seen += 1
            except socket.timeout:
                pass
    say({"pid": os.getpid(), "seen": seen})


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "A": 0x10}


def segment(src, dst, sport, dport, seq, ack, flags):
    """A TCP header without options; IPv4 gets its checksum here."""
    bits = 0
    for f in flags:
        bits |= FLAGS[f]
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, bits, 65535, 0, 0)
    if ":" in dst:
        return header  # IPV6_CHECKSUM: the kernel fills it in
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(header))
    return header[:16] + struct.pack("!H", checksum(pseudo + header)) + header[18:]


def raw_sender(dst):
    fam = family_of(dst)
    s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_TCP)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, 7, 16)  # IPV6_CHECKSUM at the TCP checksum's offset
    return s


def source_for(dst):
    """The address the kernel will put as source toward dst."""
    u = socket.socket(family_of(dst), socket.SOCK_DGRAM)
    u.connect((dst, 9))
    return u.getsockname()[0]


def forge(args):
    set_comm("nf-wh-forger")
    s = raw_sender(args.dst)
    flags = "RA" if args.flags == "R" else "FA"
    s.sendto(segment(args.src, args.dst, args.sport, args.dport, args.seq, args.ack, flags),
             (args.dst, 0))
    say({"pid": os.getpid()})


def flood(args):
    set_comm("nf-wh-flood")
    s, src = raw_sender(args.dst), source_for(args.dst)
    ports = random.sample(range(args.low, args.high + 1), args.count)
    for i, port in enumerate(ports):
        seq = random.getrandbits(32)
        s.sendto(segment(src, args.dst, port, args.dport, seq, 0, "S"), (args.dst, 0))
        if i == args.first - 1:
            say("started")
            if args.until:
                wait_for(args.until)
        if i % 200 == 199:
            time.sleep(0.002)  # in batches: the receiving queue keeps up
    say({"pid": os.getpid(), "ports": ports})


def simopen(args):
    set_comm("nf-wh-simopen")
    s = socket.socket(family_of(args.bind), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((args.bind, args.bind_port))
    s.settimeout(10)
    say("ready")
    wait_for(args.go)
    s.connect((args.peer, args.peer_port))
    s.settimeout(None)
    say("connected")
    run_steps(s, args.steps, threading.Lock())
    say({"pid": os.getpid(), "ports": [args.bind_port]})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["serve", "connect", "refuse", "rawhold", "forge", "flood",
                                    "simopen"])
    p.add_argument("--host")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--steps", default="")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--until", default="")
    p.add_argument("--ports", default="")
    p.add_argument("--bind", default="")
    p.add_argument("--bind-port", type=int, default=0)
    p.add_argument("--sequential", action="store_true")
    p.add_argument("--reuse", action="store_true")
    p.add_argument("--accept-delay", type=float, default=0)
    p.add_argument("--accept-after", default="")
    p.add_argument("--accept-log", default="")
    p.add_argument("--src")
    p.add_argument("--dst")
    p.add_argument("--sport", type=int)
    p.add_argument("--dport", type=int)
    p.add_argument("--seq", type=int, default=0)
    p.add_argument("--ack", type=int, default=0)
    p.add_argument("--flags", choices=["R", "F"])
    p.add_argument("--first", type=int, default=200)
    p.add_argument("--low", type=int, default=1024)
    p.add_argument("--high", type=int, default=32767)
    p.add_argument("--peer")
    p.add_argument("--peer-port", type=int)
    p.add_argument("--go")
    args = p.parse_args()
    globals()[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
