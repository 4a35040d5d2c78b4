#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A storm of short loopback connections, for the whole-host benchmark.

  storm.py serve PORT [reuseport]
      accepts on 0.0.0.0:PORT, reads each connection to EOF, closes it;
      prints "listening" when ready; with "reuseport", several servers
      share the port (SO_REUSEPORT: the kernel spreads connections)
  storm.py connect PORT N CONCURRENCY [RATE [HOLD_MS]]
      N connections to 127.0.0.x:PORT (x cycles through 1..8, so the
      4-tuples do not run out of ephemeral ports), CONCURRENCY at a time,
      each sending 100 bytes then closing (after HOLD_MS when given: open
      long enough that netflow's owner iterator, not the close, names the
      accepting process); at most RATE a second when given (0: unpaced);
      prints {"connections": N, "seconds": S, "failed": F, "cpu": C} when all are
      closed (C: its own CPU seconds, user and system)

asyncio, one process each: a client process does about 3,000 connections a
second on this machine; run several for more.
"""
import asyncio
import json
import os
import sys
import time

PAYLOAD = b"s" * 100


async def serve(port, reuse_port=False):
    async def handle(reader, writer):
        try:
            while await reader.read(65536):
                pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "0.0.0.0", port, backlog=4096, reuse_address=True,
                                        reuse_port=reuse_port)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


async def connect(port, n, concurrency, rate, hold_ms=0):
    start = time.monotonic()
    done = 0
    failed = 0
    issued = 0

    async def one(i):
        nonlocal done, failed
        try:
            reader, writer = await asyncio.open_connection(f"127.0.0.{1 + i % 8}", port)
            writer.write(PAYLOAD)
            if hold_ms:
                await asyncio.sleep(hold_ms / 1000)
            writer.write_eof()
            await reader.read()  # the server closes after our EOF
            writer.close()
            done += 1
        except OSError:
            failed += 1

    async def worker():
        nonlocal issued
        while issued < n:
            i = issued
            issued += 1
            if rate:
                ahead = i / rate - (time.monotonic() - start)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            await one(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu = os.times()
    print(json.dumps({"connections": done, "seconds": time.monotonic() - start, "failed": failed,
                      "cpu": cpu.user + cpu.system}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        asyncio.run(serve(int(sys.argv[2]), len(sys.argv) > 3 and sys.argv[3] == "reuseport"))
    else:
        rate = float(sys.argv[5]) if len(sys.argv) > 5 else 0
        hold_ms = float(sys.argv[6]) if len(sys.argv) > 6 else 0
        asyncio.run(connect(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), rate, hold_ms))
