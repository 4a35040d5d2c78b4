#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A SYN flood from a raw socket, for netflow's handshake ring e2e test.

  synflood.py --src S --dst D --port P --count N
      N TCP SYNs from S (random source ports) to D:P, as fast as one raw
      socket sends them, built by hand (IP_HDRINCL); prints {"sent": N}

Nothing is read: the SYN+ACKs go to S's kernel, which answers them with RST.
"""
import argparse
import json
import random
import socket
import struct


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def syn(src, dst, sport, dport, seq):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, socket.IPPROTO_TCP, 0, src, dst)
    return ip + tcp


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--src", required=True)
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    a = p.parse_args()
    src, dst = socket.inet_aton(a.src), socket.inet_aton(a.dst)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    rng = random.Random(7)
    sent = 0
    for _ in range(a.count):
        packet = syn(src, dst, rng.randrange(1024, 65536), a.port, rng.getrandbits(32))
        try:
            s.sendto(packet, (a.dst, 0))
            sent += 1
        except BlockingIOError:
            pass
    print(json.dumps({"sent": sent}), flush=True)


if __name__ == "__main__":
    main()
