#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fetches one Debian kernel for the kernel matrix WITHOUT installing it:
#   tests/kernels/fetch.sh KERNEL      KERNEL: 5.10, 6.1, 6.12 or 7.x
# Prints, on its last line, the directory holding the unpacked packages, with
# `vmlinuz` and `modules` (the kernel's lib/modules/RELEASE) linked at its top
# whatever the package layout (5.10 and 6.1 /lib, 6.12 /usr/lib, 7.x without
# /boot).
#
# Each suite gets a private apt configuration under $NETFLOW_KERNELS_CACHE
# (default .tools/kernels/): its own sources.list, lists, state and cache
# directories, named by APT_CONFIG; /etc/apt is only read (for the mirror URI
# and the machine's apt.conf.d: proxies, Check-Valid-Until). Packages come with
# `apt-get download` and are unpacked with `dpkg-deb -x`; nothing is installed.
# The newest kernel of the series is picked from the package lists; once a
# series has been fetched, a run within NETFLOW_KERNELS_REFRESH seconds (default
# one day) reuses it without touching the network.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cache="${NETFLOW_KERNELS_CACHE:-$root/.tools/kernels}"
refresh="${NETFLOW_KERNELS_REFRESH:-86400}"
kernel="${1:-}"

die() { echo "fetch: $*" >&2; exit 1; }

# KERNEL -> the suites searched (in this order; the first with a match wins)
# and the image package names of the series (an extended regex).
case "$kernel" in
  5.10) suites=("bullseye bullseye-security") re='^linux-image-5\.10\.0-[0-9]+-amd64$' ;;
  6.1) suites=("bookworm bookworm-security") re='^linux-image-6\.1\.0-[0-9]+-amd64$' ;;
  6.12) suites=("trixie trixie-security") re='^linux-image-6\.12\.[0-9]+\+deb13-amd64$' ;;
  7.x) suites=("trixie-backports" "sid") re='^linux-image-7\.[0-9]+\.[0-9]+\+deb[0-9]+-amd64$' ;;
  *) die "usage: fetch.sh 5.10|6.1|6.12|7.x (not \"$kernel\")" ;;
esac

# The machine's Debian mirror (deb822 .sources or one-line .list), and its
# security mirror, from /etc/apt.
mirror_uris() {
  {
    cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:[[:space:]]*//p' | tr ' ' '\n'
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p'
  } | grep -E '^https?://' || true
}
mirror=$(mirror_uris | grep -E '/debian/?$' | head -n1 | sed 's:/$::')
security=$(mirror_uris | grep -E '/debian-security/?$' | head -n1 | sed 's:/$::')
[ -n "$mirror" ] || die "no Debian mirror (a URI ending in /debian) in /etc/apt's sources"
[ -n "$security" ] || security="${mirror}-security"

# A private apt configuration for SUITES ("bullseye bullseye-security").
apt_config() {
  local name="$1" dir="$cache/apt/$1"
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/state" "$dir/parts"
  : >"$dir/state/status"
  : >"$dir/sources.list"
  local s uri
  for s in $2; do
    uri="$mirror"
    [[ "$s" == *-security ]] && uri="$security"
    echo "deb [arch=amd64] $uri $s main" >>"$dir/sources.list"
  done
  cat >"$dir/apt.conf" <<CONF
Dir::Etc::SourceList "$dir/sources.list";
Dir::Etc::SourceParts "$dir/parts";
Dir::Etc::Preferences "$dir/parts/none";
Dir::Etc::PreferencesParts "$dir/parts";
Dir::State "$dir/state";
Dir::State::Lists "$dir/lists";
Dir::State::status "$dir/state/status";
Dir::Cache "$dir/cache";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Architectures { "amd64"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
CONF
  echo "$dir/apt.conf"
}

# The newest image package of the series in the lists (sort -V on the name:
# the ABI number or the version is in it).
newest() { apt-cache pkgnames linux-image- 2>/dev/null | grep -E "$re" | sort -V | tail -n1; }

# One fetch at a time per cache (checkouts may share one).
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

# Reuse the last fetch when it is fresh enough (offline-fast second run), or
# when the mirror cannot be reached.
stamp="$cache/$kernel.current"
last=""
if [ -f "$stamp" ] && [ -e "$(cat "$stamp")/vmlinuz" ]; then
  last=$(cat "$stamp")
  [ $(($(date +%s) - $(stat -c %Y "$stamp"))) -lt "$refresh" ] && { echo "$last"; exit 0; }
fi
offline() {
  [ -n "$last" ] || die "$1"
  echo "fetch: $1; using the last fetched $(basename "$last")" >&2
  echo "$last"
  exit 0
}

image=""
for group in "${suites[@]}"; do
  APT_CONFIG=$(apt_config "${group// /+}" "$group")
  export APT_CONFIG
  echo "fetch: apt-get update for $group ($mirror)" >&2
  apt-get update -qq -o Dpkg::Use-Pty=0 >&2 || offline "apt-get update for $group failed"
  image=$(newest)
  [ -n "$image" ] && break
done
[ -n "$image" ] || die "no package matching $re in ${suites[*]}"

# The image and the kernel's own packages it depends on (7.x: linux-binary-*
# and linux-modules-*; 5.10/6.1/6.12: the image holds everything).
deps=$(apt-cache depends --important "$image" | sed -n 's/^ *\(Pre\)\?Depends: //p' |
  grep -E '^linux-(image|binary|modules)-' || true)
pkgs=("$image" $deps)

dir="$cache/$image"
debs="$cache/debs"
mkdir -p "$debs"
files=()
for p in "${pkgs[@]}"; do
  version=$(apt-cache policy "$p" | sed -n 's/^ *Candidate: //p')
  [ -n "$version" ] && [ "$version" != "(none)" ] || die "no candidate for $p"
  file="$debs/${p}_${version//:/%3a}_amd64.deb"
  if [ ! -f "$file" ]; then
    echo "fetch: downloading $p $version" >&2
    (cd "$debs" && apt-get download -qq -o Dpkg::Use-Pty=0 "$p=$version" >&2) ||
      offline "apt-get download $p=$version failed"
    [ -f "$file" ] || die "apt-get download $p=$version gave no $file"
  fi
  files+=("$file")
done
if [ ! -e "$dir/vmlinuz" ]; then
  rm -rf "$dir" "$dir.tmp"
  mkdir -p "$dir.tmp"
  for f in "${files[@]}"; do dpkg-deb -x "$f" "$dir.tmp"; done
  release=${image#linux-image-}
  for m in lib/modules usr/lib/modules; do
    [ -d "$dir.tmp/$m/$release" ] && ln -s "$m/$release" "$dir.tmp/modules"
  done
  for v in "boot/vmlinuz-$release" "modules/vmlinuz"; do
    [ -f "$dir.tmp/$v" ] && ln -s "$v" "$dir.tmp/vmlinuz"
  done
  [ -e "$dir.tmp/vmlinuz" ] && [ -e "$dir.tmp/modules" ] ||
    die "no vmlinuz or modules directory for $release in ${pkgs[*]}"
  mv "$dir.tmp" "$dir"
fi
echo "$dir" >"$stamp"
# Older kernels of the series go (each unpacked kernel is 250-450 MB).
for old in "$cache"/linux-image-*; do
  name=$(basename "$old")
  [ "$old" != "$dir" ] && [ -d "$old" ] && grep -qE "$re" <<<"${name%.tmp}" && rm -rf "$old"
done
series=$(sed 's/^\^linux-image-/^linux-(image|binary|modules)-/' <<<"$re")
for f in "$debs"/*.deb; do
  keep=0
  for g in "${files[@]}"; do [ "$f" = "$g" ] && keep=1; done
  [ "$keep" = 0 ] && grep -qE "$series" <<<"$(basename "$f" | cut -d_ -f1)" && rm -f "$f"
done
echo "$dir"
