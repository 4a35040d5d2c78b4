#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what netflow needs to build, run and test, idempotently:
#   - Debian packages: clang/llvm (BPF compiler), libbpf (runtime + headers),
#     bpftool, and the real peers the e2e tests and benchmarks drive.
#   - Deno, from the npm package `deno` (pinned below), into .tools/deno.
# With --runtime, only what ./netflow needs to run: libbpf1 and Deno (the kernel
# object is committed, so no clang). Prints the path of the deno binary on its last line.
set -euo pipefail

DENO_VERSION=2.9.6
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/.tools"

# Packages: the build needs clang, llvm and libbpf-dev (headers) and libbpf1
# (the library netflow dlopens); the tests and benchmarks need the rest
# (nfdump, libfixbuf-tools and tshark: the IPFIX collectors and decoders;
# qemu-system-x86, busybox-static, xz-utils and zstd: the kernel matrix,
# tests/kernels/, which boots Debian's kernels under QEMU).
packages=(
  clang llvm libbpf-dev libbpf1 bpftool linux-libc-dev
  iproute2 python3 dnsmasq-base bind9-dnsutils iperf3 wrk tcpdump libbpf-tools procps util-linux
  nfdump libfixbuf-tools tshark coreutils
  nmap iptables
  qemu-system-x86 busybox-static xz-utils zstd
)
runtime=0
[ "${1:-}" = "--runtime" ] && runtime=1 && packages=(libbpf1)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  # tshark asks whether non-root users may capture: no, without asking.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# promtool (the tests check /metrics with it) and prometheus (the flow metrics e2e test scrapes
# netflow with a real server), from Debian's prometheus package, unpacked into .tools/bin:
# installing the package would also start a Prometheus server.
if [ "$runtime" -eq 0 ] && { [ ! -x "$tools/bin/promtool" ] || [ ! -x "$tools/bin/prometheus" ]; }; then
  echo "setup: unpacking promtool and prometheus from Debian's prometheus package into $tools/bin" >&2
  tmp=$(mktemp -d)
  chmod 755 "$tmp"
  ( cd "$tmp" && { apt-get download -qq prometheus 2>/dev/null ||
    { apt-get update -qq && apt-get download -qq prometheus; }; } ) >&2
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
  mkdir -p "$tools/bin"
  cp "$tmp/root/usr/bin/promtool" "$tmp/root/usr/bin/prometheus" "$tools/bin/"
  rm -rf "$tmp"
fi

deno="$tools/node_modules/deno/deno"
if ! { [ -x "$deno" ] && "$deno" --version 2>/dev/null | grep -q "deno $DENO_VERSION"; }; then
  command -v npm >/dev/null || { echo "setup: npm is required to install Deno" >&2; exit 1; }
  echo "setup: installing deno $DENO_VERSION from npm into $tools" >&2
  mkdir -p "$tools"
  npm install --silent --no-save --no-audit --no-fund --prefix "$tools" "deno@$DENO_VERSION" >&2
  # The npm package ships the binary in an optional dependency; its postinstall
  # links it into node_modules/deno. Fall back to the platform package directly.
  if [ ! -x "$deno" ]; then
    alt=$(ls "$tools"/node_modules/@deno/linux-*/deno 2>/dev/null | head -n1)
    [ -n "$alt" ] && deno="$alt"
  fi
  "$deno" --version >/dev/null
fi
echo "$deno"
