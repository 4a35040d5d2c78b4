#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One kernel of the matrix: fetches it (fetch.sh), boots it (boot.sh) and runs
# the flow check (guest_check.py) inside, as root:
#   tests/kernels/run.sh KERNEL OUT_DIR       KERNEL: 5.10, 6.1, 6.12 or 7.x
# Leaves OUT_DIR/result.json (the check's result), result.json.events
# (netflow's events) and console.log (the guest's console). The exit status
# is the VM's (0: the check ran, whatever it found; 124: timed out).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
kernel="${1:?usage: run.sh KERNEL OUT_DIR}" out="${2:?usage: run.sh KERNEL OUT_DIR}"
mkdir -p "$out"
out=$(cd "$out" && pwd -P)
rm -f "$out/result.json" "$out/result.json.events" "$out/console.log"
kdir=$("$root/tests/kernels/fetch.sh" "$kernel" | tail -n1)
# The guest has no network: everything netflow imports must be in Deno's cache.
deno="${NETFLOW_DENO:-$root/.tools/node_modules/deno/deno}"
DENO_DIR="${DENO_DIR:-$root/.tools/deno-dir}" DENO_NO_UPDATE_CHECK=1 \
  "$deno" cache --quiet --config "$root/deno.json" "$root/src/cli.ts" "$root/tests/kernels/exits.ts" >&2
# One VM at a time on this machine (each takes two cores under TCG), whatever
# runs the matrix.
exec flock /tmp/netflow-kernels-vm.lock "$root/tests/kernels/boot.sh" "$kdir" "$out" \
  env NETFLOW_DENO="$deno" DENO_DIR="${DENO_DIR:-$root/.tools/deno-dir}" \
  /usr/bin/python3 "$root/tests/kernels/guest_check.py" check "$out/result.json"
