#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Where netflow's CPU goes per flow (issue 24): netflow --cgroup on a child cgroup of its own, a
# storm of N loopback connections (bench/lib/storm.py, two asyncio clients) inside it, CPU from
# /proc/PID/stat, and with PERF=1 a `perf record -g` of netflow (V8's --perf-basic-prof names the
# JIT frames) classified by bench/lib/classify.py. Run as root:
#   N=20000 PERF=1 bench/profile.sh [extra netflow arguments]
# (V8_FLAGS=a,b adds V8 flags to netflow's own.)
# Prints CPU s per 1,000 flows (endpoints), the clients' lines, netflow's summary, and the shares.
# Everything it starts is ended by pid and its cgroup removed on exit.
set -uo pipefail
cd "$(dirname "$0")/.."
deno=$(scripts/setup.sh --runtime | tail -n1)
N=${N:-20000}
PORT=${PORT:-18414}
cg_root=$(awk '$9=="cgroup2"{print $5; exit}' /proc/self/mountinfo)
cg="$cg_root/netflow-profile-$$"
out=$(mktemp -d /tmp/netflow-profile.XXXXXX)
mkdir "$cg"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  for _ in $(seq 50); do rmdir "$cg" 2>/dev/null && break; sleep 0.1; done
  echo "files in $out"
}
trap cleanup EXIT
# Moves itself into the cgroup, then execs: a background one's $! is the command's own pid.
enter='echo $$ > "$0/cgroup.procs" && exec "$@"'
sh -c "$enter" "$cg" python3 bench/lib/storm.py serve "$PORT" > "$out/server.txt" 2>&1 &
pids+=($!)
flags=--max-semi-space-size=4${PERF:+,--perf-basic-prof}${V8_FLAGS:+,$V8_FLAGS}
"$deno" run --allow-all --v8-flags="$flags" src/cli.ts --format json --cgroup "$cg" "$@" \
  > "$out/netflow.jsonl" 2> "$out/netflow.err" &
nf=$!
pids+=($nf)
for _ in $(seq 200); do grep -q "^netflow: watching" "$out/netflow.err" && break; sleep 0.1; done
grep -q listening "$out/server.txt" || sleep 1
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
t0=$(ticks $nf)
if [ -n "${PERF:-}" ]; then
  perf record -F 997 -g -o "$out/perf.data" -p $nf 2> "$out/perf.err" &
  rec=$!
  sleep 0.5
fi
sh -c "$enter" "$cg" sh -c "python3 bench/lib/storm.py connect $PORT $((N / 2)) 32 &
  python3 bench/lib/storm.py connect $PORT $((N / 2)) 32; wait" > "$out/clients.txt"
sleep 2
t1=$(ticks $nf)
[ -n "${PERF:-}" ] && { kill -INT $rec; wait $rec; }
kill -TERM $nf
wait $nf
echo "netflow CPU s per 1,000 flows: $(echo "scale=4; ($t1 - $t0) / 100 / ($N * 2 / 1000)" | bc)"
cat "$out/clients.txt"
tail -n 1 "$out/netflow.err"
[ -n "${PERF:-}" ] && python3 bench/lib/classify.py "$out/perf.data"
