#!/usr/bin/env bash
# Run a command (default: the cgroup tests) on a cgroup v2-only kernel, for hosts that are
# hybrid v1 (memory and cpu bound to v1, so the v2 memory.max/cpu.max/OOM paths cannot be
# exercised there). Boots Debian's own kernel under QEMU/KVM with this machine's root file
# system shared read-only over virtio-9p, an overlay on tmpfs for every write, and cgroup2
# alone mounted at /sys/fs/cgroup with memory and cpu offered. Nothing in the VM reaches the
# host's cgroups, processes or files.
#
#   bash scripts/cgroup-v2-vm.sh                         # src/runtime/local/cgroups tests
#   bash scripts/cgroup-v2-vm.sh 'node_modules/.bin/vitest run src/foo.test.ts'
#
# Needs root and /dev/kvm; installs qemu-system-x86 and busybox-static with apt and
# downloads (never installs) the kernel package into the cache dir. Exits with the command's
# status; exit 3 when the VM could not be started or did not report.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
cmd=${1:-"node_modules/.bin/vitest run src/runtime/local/cgroups"}
cache=${BULWARK_VM_CACHE:-/var/cache/bulwark/cgroup-v2-vm}
mem=${BULWARK_VM_MEMORY:-2048}

[ "$(id -u)" = 0 ] || { echo "cgroup-v2-vm: run as root (KVM and the 9p share of /)" >&2; exit 3; }
[ -c /dev/kvm ] || { echo "cgroup-v2-vm: no /dev/kvm: this host cannot run the VM" >&2; exit 3; }
export DEBIAN_FRONTEND=noninteractive
command -v qemu-system-x86_64 >/dev/null || apt-get install -y --no-install-recommends qemu-system-x86 >/dev/null
[ -x /bin/busybox ] || apt-get install -y --no-install-recommends busybox-static >/dev/null

mkdir -p "$cache"
# The kernel Debian's linux-image-amd64 points at now, unpacked (not installed) in the cache.
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1)
[ -n "$pkg" ] || { echo "cgroup-v2-vm: apt-cache knows no linux-image-amd64 (run apt-get update)" >&2; exit 3; }
kdir=$cache/$pkg
if [ ! -d "$kdir/boot" ]; then
  (cd "$cache" && apt-get download "$pkg" >/dev/null 2>&1)
  mkdir -p "$kdir" && dpkg-deb -x "$cache/$pkg"_*.deb "$kdir" && rm -f "$cache/$pkg"_*.deb
fi
kver=${pkg#linux-image-}
vmlinuz=$kdir/boot/vmlinuz-$kver
mods=$kdir/lib/modules/$kver/kernel

# initramfs: busybox, the modules for virtio-pci, 9p, overlayfs and the local driver's bridge and
# veths (in dependency order; the share has no /lib/modules for this kernel), /init.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ird=$work/initramfs
mkdir -p "$ird"/{bin,mod,proc,sys,dev,lower,upper,host}
cp /bin/busybox "$ird/bin/busybox"
order="drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_legacy_dev
  drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci fs/netfs/netfs fs/fscache/fscache
  net/9p/9pnet net/9p/9pnet_virtio fs/9p/9p fs/overlayfs/overlay
  net/llc/llc net/802/stp net/bridge/bridge drivers/net/veth"
n=0
for m in $order; do
  n=$((n + 1))
  cp "$mods/$m.ko" "$ird/mod/$(printf %02d $n)-$(basename "$m").ko"
done
printf '%s\n' "$cmd" >"$ird/cmd"
cat >"$ird/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc && mount -t sysfs sys /sys && mount -t devtmpfs dev /dev
for m in /mod/*.ko; do insmod "\$m" || echo "cgroup-v2-vm: insmod \$m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,ro hostroot /lower
mount -t tmpfs tmpfs /upper && mkdir /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /host
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mount -t devpts devpts /host/dev/pts 2>/dev/null
# v2 only: nothing else is mounted on /sys/fs/cgroup, so every controller is in the unified root.
mount -t cgroup2 -o nsdelegate cgroup2 /host/sys/fs/cgroup
for d in /tmp /run /var/tmp; do mount -t tmpfs tmpfs /host\$d; done
chmod 1777 /host/tmp /host/var/tmp
echo "cgroup-v2-vm: kernel \$(uname -r), cgroup2 controllers: \$(cat /host/sys/fs/cgroup/cgroup.controllers)"
chroot /host /usr/bin/env -i HOME=/root PATH=$repo/node_modules/.bin:/usr/sbin:/usr/bin:/sbin:/bin CI=true \
  /bin/sh -c "ip link set lo up 2>/dev/null; cd $repo && \$(cat /cmd)"
echo "cgroup-v2-vm: exit \$?"
poweroff -f
EOF
chmod +x "$ird/init"
(cd "$ird" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$work/initrd.gz"

log=$work/console.log
# No network device: the VM reaches nothing but its own loopback.
timeout "${BULWARK_VM_TIMEOUT_S:-900}" qemu-system-x86_64 ${BULWARK_VM_ACCEL:--accel tcg,thread=multi} -cpu ${BULWARK_VM_CPU:-max} -smp "$(nproc)" -m "$mem" \
  -nographic -no-reboot -nic none \
  -kernel "$vmlinuz" -initrd "$work/initrd.gz" \
  -append "console=ttyS0 ${BULWARK_VM_QUIET-quiet} panic=-1 psi=1 systemd.unified_cgroup_hierarchy=1 rdinit=/init" \
  -virtfs "local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap,id=hostroot" \
  </dev/null | tee "$log" || true
rc=$(sed -n 's/.*cgroup-v2-vm: exit \([0-9]*\).*/\1/p' "$log" | tail -1)
[ -n "$rc" ] || { echo "cgroup-v2-vm: the VM did not report an exit status" >&2; exit 3; }
exit "$rc"
