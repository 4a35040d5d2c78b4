#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""storm.py HOST PORT N: N connections one after another to a server that
reads until EOF (lifecycle.py serve), each sending 100 bytes and closing;
prints {"ports": [client ports...]} once all are closed."""
import json
import socket
import sys

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
ports = []
for _ in range(n):
    s = socket.socket(family)
    s.connect((host, port))
    ports.append(s.getsockname()[1])
    s.sendall(b"s" * 100)
    s.close()
print(json.dumps({"ports": ports}), flush=True)
