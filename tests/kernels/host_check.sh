#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the kernel matrix's flow check (guest_check.py) on this machine's own
# kernel, without a VM: in a private network namespace (its own loopback, DNS
# server on its 127.0.0.1:53) and mount namespace (/etc/resolv.conf bound to
# one naming 127.0.0.1), as root. netflow still watches the whole host, so run
# it under the whole-host lock: flock /tmp/netflow-ok.lock tests/kernels/host_check.sh OUT.json
set -euo pipefail
out="${1:?usage: host_check.sh RESULT.json}"
out=$(realpath -m "$out")
here=$(cd "$(dirname "$0")" && pwd)
resolv=$(mktemp)
trap 'rm -f "$resolv"' EXIT
echo "nameserver 127.0.0.1" >"$resolv"
unshare --net --mount --propagation private sh -c '
  mount --bind "$1" /etc/resolv.conf
  ip link set lo up
  exec /usr/bin/python3 "$2/guest_check.py" check "$3"' sh "$resolv" "$here" "$out"
