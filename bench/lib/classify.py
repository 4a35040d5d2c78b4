#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""classify.py PERF_DATA: a netflow `perf record -g` (bench/profile.sh) as shares of its samples by
what they were doing. V8's worker threads are GC and compilation; on the main thread the innermost
frame that a rule below names decides (JIT addresses are reused once code is collected, so an
outer frame can be stale); the rest is the runtime, scavenges and frames without a name."""
import subprocess, sys, re, collections
data = sys.argv[1]
out = subprocess.run(["perf", "script", "-i", data, "-F", "comm,tid,ip,sym"], capture_output=True, text=True).stdout
samples = out.split("\n\n")
rules = [
  ("JSON formatting", r"flowJson|formatJson|jsonFormatter"),
  ("Community ID", r"communityId|CommunityIds|sha1|eventCommunityId|hexToBase64|parseIPInto"),
  ("output write (encode, join, write syscall)", r"writeOut|StdoutSink|stdout\.ts|ksys_write|08_text_encoding"),
  ("owners: iterator runs (kernel walk + decode)", r"holders|decodeHolders|bpf_seq_read|task_file|netflow_holders|SocketHolders"),
  ("owners: waits (push, settle, flush)", r"owners\.ts"),
  ("DNS lookups", r"/dns/"),
  ("flow table + event objects", r"state\.ts|formatTime|cgroups\.ts"),
  ("decoding", r"records\.ts"),
  ("ring reads (drain loop)", r"ringbuf\.ts|drain\.ts"),
  ("sweeps, kept map, counters", r"#sweep|takeKept|takeMapValues|sumPerCpu|htab_map_get_next_key|counters"),
  ("monitor loop (dispatch, batches)", r"monitor\.ts|cli\.ts"),
  ("wakeups, timers, poll, scheduling", r"poll|epoll|futex|schedule|hrtimer|__processTimers|finish_task_switch"),
]
tot = collections.Counter()
n = 0
for s in samples:
    lines = [l for l in s.strip().split("\n") if l.strip()]
    if not lines: continue
    n += 1
    head = lines[0]
    if head.startswith("V8 DefaultWorke") or "DefaultWorke" in head.split()[0]:
        tot["GC and compilation (V8 worker threads)"] += 1; continue
    # The innermost frame that any rule names decides (JIT addresses are reused
    # after code is collected, so an outer frame can be stale).
    found = None
    for frame in lines[1:]:
        for name, pat in rules:
            if re.search(pat, frame):
                found = name; break
        if found: break
    tot[found or "other main thread (GC scavenges, runtime, unattributed)"] += 1
for k, v in tot.most_common():
    print(f"{100*v/n:5.1f}%  {k}")
print(f"({n} samples)")
