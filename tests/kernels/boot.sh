#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Boots a kernel fetched by fetch.sh under QEMU (TCG, no KVM) with this
# machine's root as the guest's root, and runs one command in it:
#   tests/kernels/boot.sh KERNEL_DIR OUT_DIR COMMAND [ARG...]
#
# The guest's / is the host's /, shared read-only over 9p under a tmpfs overlay
# (writes vanish with the VM). OUT_DIR is shared writable at the same path, so
# the command reads and writes host paths as they are, and only OUT_DIR's
# writes come back. The guest has proc, sys, devtmpfs, bpffs, cgroup2 at
# /sys/fs/cgroup, tracefs, a fresh /run, and lo up (IPv4 and IPv6); /tmp is
# the host's under the overlay (a checkout may live there).
# The kernel command line names netflow_kernel_check (guest_check.py runs
# only where it finds it, or in a private network namespace).
# The command's exit status is the script's; its output is the serial console,
# kept in OUT_DIR/console.log (and, with NETFLOW_KERNELS_CONSOLE=1, shown).
# The VM is killed (by its pid) after NETFLOW_KERNELS_TIMEOUT seconds (default
# 240; exit 124), and the initramfs is always removed.
set -euo pipefail

kdir="${1:-}" out="${2:-}"
[ -e "$kdir/vmlinuz" ] && [ -d "$kdir/modules" ] && [ -d "$out" ] && [ "$#" -ge 3 ] || {
  echo "usage: boot.sh KERNEL_DIR OUT_DIR COMMAND [ARG...]  (KERNEL_DIR: fetch.sh's output)" >&2
  exit 2
}
shift 2
out=$(cd "$out" && pwd -P)
timeout="${NETFLOW_KERNELS_TIMEOUT:-240}"
for tool in qemu-system-x86_64 busybox xz zstd; do
  command -v "$tool" >/dev/null || { echo "boot: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
busybox=$(command -v busybox)
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" ||
  { echo "boot: busybox-static is missing (scripts/setup.sh installs it)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/netflow-kernel.XXXXXX)
qemu_pid=""
cleanup() {
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill -KILL "$qemu_pid" 2>/dev/null || true
    wait "$qemu_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The initramfs: busybox, an init script, and the kernel's own modules for 9p
# over virtio and overlayfs with their dependencies (from each module's
# depends=), decompressed, in load order. A module that is not a file is built
# in (6.12 and 7.x build virtio_pci in): left out.
initrd="$tmp/initrd"
mkdir -p "$initrd"/{bin,dev,proc,sys,host,rw,root,modules}
cp "$busybox" "$initrd/bin/busybox"
modules=$(readlink -f "$kdir/modules")
loaded=" "
add_module() {
  local name="$1" file dep
  case "$loaded" in *" $name "*) return ;; esac
  loaded="$loaded$name "
  file=$(find "$modules/kernel" \( -name "$name.ko*" -o -name "${name//_/-}.ko*" \) -print -quit)
  [ -n "$file" ] || return 0
  case "$file" in
    *.ko.xz) xz -dc "$file" >"$tmp/m.ko" ;;
    *.ko.zst) zstd -qdc "$file" >"$tmp/m.ko" ;;
    *.ko.gz) gzip -dc "$file" >"$tmp/m.ko" ;;
    *) cp "$file" "$tmp/m.ko" ;;
  esac
  for dep in $(tr '\0' '\n' <"$tmp/m.ko" | sed -n 's/^depends=//p' | tr ',' ' '); do
    add_module "$dep"
  done
  [ -f "$initrd/modules/$name.ko" ] && return 0
  case "$file" in
    *.ko.xz) xz -dc "$file" ;;
    *.ko.zst) zstd -qdc "$file" ;;
    *.ko.gz) gzip -dc "$file" ;;
    *) cat "$file" ;;
  esac >"$initrd/modules/$name.ko"
  echo "$name" >>"$initrd/modules/order"
}
: >"$initrd/modules/order"
for m in virtio_pci virtio_rng 9pnet_virtio 9p overlay; do add_module "$m"; done

mkdir -p "$out/.boot"
rm -f "$out/.boot/status"
printf '%q ' "$@" >"$out/.boot/cmd"
cat >"$initrd/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in \$(cat /modules/order); do
  insmod /modules/\$m.ko 2>/dev/null || grep -q "^\$m " /proc/modules || echo "init: insmod \$m failed"
done
fail() { echo "init: \$*"; poweroff -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /host || fail "no 9p root"
mount -t tmpfs -o mode=755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /root || fail "no overlay"
r=/root
mount -t proc proc \$r/proc
mount -t sysfs sysfs \$r/sys
mount -t devtmpfs devtmpfs \$r/dev
mkdir -p \$r/dev/pts \$r/dev/shm
mount -t devpts devpts \$r/dev/pts
mount -t tmpfs tmpfs \$r/dev/shm
mount -t bpf bpf \$r/sys/fs/bpf
mount -t cgroup2 cgroup2 \$r/sys/fs/cgroup
mount -t tracefs tracefs \$r/sys/kernel/tracing
mount -t tmpfs -o mode=755 tmpfs \$r/run
mkdir -p \$r$out
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out \$r$out || fail "no out share"
ip link set lo up
ip -6 addr show dev lo | grep -q '::1/128' || ip -6 addr add ::1/128 dev lo
hostname netflow-kernel
echo "init: running the command (uptime \$(cut -d' ' -f1 /proc/uptime) s)"
chroot \$r /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root TERM=dumb LANG=C.UTF-8 /bin/sh -c 'cd "\$0" && . ./.boot/cmd' $out </dev/null 2>&1
echo \$? >\$r$out/.boot/status
sync
poweroff -f
INIT
chmod 755 "$initrd/init"
(cd "$initrd" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 >"$tmp/initrd.gz")

# -cpu host aborts with this machine's /dev/kvm (a PVM backend): TCG only.
# etc/sercon-port 0: SeaBIOS writes nothing to the console (QEMU warns that the
# name lacks "opt/": it is SeaBIOS's own name).
qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m 2048 -smp 2 -nographic -no-reboot \
  -nic none -device virtio-rng-pci -fw_cfg name=etc/sercon-port,string=0 \
  -kernel "$kdir/vmlinuz" -initrd "$tmp/initrd.gz" \
  -append "console=ttyS0 panic=-1 quiet random.trust_cpu=on rdinit=/init netflow_kernel_check" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$out,mount_tag=out,security_model=none,multidevs=remap" \
  </dev/null >"$out/console.log" 2>&1 &
qemu_pid=$!
if [ "${NETFLOW_KERNELS_CONSOLE:-0}" = 1 ]; then
  tail -f --pid="$qemu_pid" "$out/console.log" >&2 &
fi
deadline=$((SECONDS + timeout))
while kill -0 "$qemu_pid" 2>/dev/null; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "boot: the VM did not finish within ${timeout}s; killed" >&2
    exit 124
  fi
  sleep 0.5
done
wait "$qemu_pid" || true
qemu_pid=""
[ -f "$out/.boot/status" ] || { echo "boot: the guest ended without running the command (see $out/console.log)" >&2; exit 125; }
exit "$(cat "$out/.boot/status")"
