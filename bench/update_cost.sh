#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The cost of netflow's open-flow sweeps with many open flows: CPU seconds and
# RSS of netflow over a quiet window while N loopback connections (2N flows)
# are held open in a child cgroup, with --update-interval 1 and without (the
# reconcile sweep alone, every 3 s). Run as root: bench/update_cost.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50000}
PAIRS=4
WINDOW=20
deno=$(scripts/setup.sh | tail -n1)
cg_root=$(awk '$9=="cgroup2"{print $5; exit}' /proc/self/mountinfo)
cg="$cg_root/netflow-bench-sweep-$$"
mkdir "$cg"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rmdir "$cg" 2>/dev/null || true
}
trap cleanup EXIT
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)

# Runs a command inside the cgroup in the background; $! is the command itself (sh execs it).
in_cg() { sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@" & }
for i in $(seq 1 $PAIRS); do
  in_cg python3 bench/hold.py serve $((9100 + i)) > /dev/null
  pids+=($!)
done
sleep 1
fifo=$(mktemp -u); mkfifo "$fifo"; exec 3<>"$fifo"; rm "$fifo"
for i in $(seq 1 $PAIRS); do
  in_cg python3 bench/hold.py connect $((N / PAIRS)) $((9100 + i)) "127.0.2.$i" 5000 <&3 > /tmp/hold.$$.$i
  pids+=($!)
done
for i in $(seq 1 $PAIRS); do
  until grep -q '^open' /tmp/hold.$$.$i 2>/dev/null; do sleep 0.5; done
  rm -f /tmp/hold.$$.$i
done
echo "held $N connections ($((2 * N)) flows)"

for mode in "reconcile only" "--update-interval 1"; do
  extra=()
  [ "$mode" = "--update-interval 1" ] && extra=(--events begin,end,update --update-interval 1)
  err=$(mktemp)
  "$deno" run -A --v8-flags=--max-semi-space-size=4 src/cli.ts --format none --cgroup "$cg" \
    "${extra[@]}" > /dev/null 2> "$err" &
  nf=$!
  until grep -q watching "$err"; do sleep 0.2; done
  sleep 5 # the start snapshot's begins are written
  t0=$(ticks $nf)
  sleep $WINDOW
  t1=$(ticks $nf)
  r=$(rss $nf)
  kill -INT $nf; wait $nf || true
  cpu=$(echo "scale=3; ($t1 - $t0) / $hz" | bc)
  per=$(echo "scale=4; $cpu / $WINDOW" | bc)
  echo "$mode: ${cpu} CPU s in ${WINDOW} s (${per} s per second), RSS ${r} kB; $(tail -n1 "$err")"
  rm -f "$err"
done
