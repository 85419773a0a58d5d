#!/usr/bin/env bash
# The base disk image of the system bench: Debian Bookworm as a fresh machine has it, plus what the
# bench needs to reach the real kernel devices. Called by tests/system/run.sh (which caches the
# result under a hash of this script and the files it installs); runs as root.
#
#   build-base.sh ARCH OUT_DIR        ARCH: amd64 or arm64
#
# Writes OUT_DIR/{root.raw,vmlinuz,initrd.img,kernel-version,build.log}. Steps and what they take:
#   1. debootstrap (minbase + systemd, udev, D-Bus, the QEMU guest agent, ALSA tools, python3),
#      from the Debian mirror this machine's apt uses (arm64 runs through qemu-user: needs
#      binfmt_misc, as ../shared-style arm64 roots do);
#   2. the Debian kernel and its headers, with the security updates a fresh install gets;
#   3. gpio-sim, which Debian's kernels do not build (and i2c-stub, which the arm64 one does not):
#      its source is taken from Debian's own linux-source package (the version of the installed
#      kernel) and built out of tree against the matching headers, into /lib/modules/KVER/updates;
#   4. what Raspberry Pi OS has and plain Debian lacks, so that deploy/install.sh meets a Pi-like
#      system: the gpio group and the udev rule giving it /dev/gpiochip*;
#   5. the bench's own boot hook (bench-init.service: runs the scenario's setup from the bench
#      disk /dev/vdb before the appliance starts) and, for a PC guest, the board revision gpiozero
#      needs (bench-generator);
#   6. an ext4 image made from the tree without a loop mount (mkfs.ext4 -d).
set -euo pipefail
arch=${1:?usage: build-base.sh amd64|arm64 OUT_DIR}
out=${2:?usage: build-base.sh amd64|arm64 OUT_DIR}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
case $arch in
  amd64|arm64) ;;
  *) echo "build-base.sh: unknown architecture '$arch' (amd64 or arm64)" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "build-base.sh: needs root (debootstrap, chroot)" >&2; exit 1; }

mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/sysbench-root.XXXXXX")
root=$work/root
cleanup() {
  for d in dev/pts dev proc sys; do mountpoint -q "$root/$d" 2>/dev/null && umount -l "$root/$d"; done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

step_t0=$(date +%s)
step() {
  local now; now=$(date +%s)
  printf 'build-base: [%4ds] %s\n' "$((now - step_t0))" "$*" >&2
}

mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
security=${mirror%/debian}/debian-security
debcache=${SYSBENCH_CACHE:?}/debs-$arch
mkdir -p "$debcache"

# 1. The root file system.
step "debootstrap bookworm $arch from $mirror"
include=systemd,systemd-sysv,udev,kmod,dbus,libpam-systemd,qemu-guest-agent,alsa-utils,python3,ca-certificates,e2fsprogs,procps,iproute2,sudo,make
if [ "$arch" = arm64 ] && [ "$(uname -m)" != aarch64 ]; then
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null \
    || { echo "build-base.sh: qemu-aarch64 is not registered with binfmt_misc (apt-get install qemu-user-static binfmt-support)" >&2; exit 1; }
  export QEMU_CPU=cortex-a76
fi
debootstrap --arch="$arch" --variant=minbase --include="$include" --cache-dir="$debcache" \
  bookworm "$root" "$mirror" >"$out/build.log" 2>&1 \
  || { tail -20 "$out/build.log" >&2; echo "build-base.sh: debootstrap failed (log: $out/build.log)" >&2; exit 1; }

for d in proc sys dev dev/pts; do mount --bind "/$d" "$root/$d"; done
cp /etc/resolv.conf "$root/etc/resolv.conf"
# This machine's extra CAs (a TLS-inspecting proxy, if any) go where ca-certificates keeps local
# ones, so apt, pip and update-ca-certificates inside keep them.
mkdir -p "$root/usr/local/share/ca-certificates"
cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/" 2>/dev/null || true
in_root() { chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"; }
in_root update-ca-certificates >>"$out/build.log" 2>&1
if ls "$root"/usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
  # pip uses its own CA list unless told otherwise: point it at the system bundle, which now
  # holds this machine's CAs too.
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$root/etc/pip.conf"
fi

cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
cp -a "$debcache"/*.deb "$root/var/cache/apt/archives/" 2>/dev/null || true

# 2. Kernel and headers, and the updates a fresh install gets.
step "kernel, headers and updates"
{
  in_root apt-get update -q
  in_root apt-get -y -q upgrade
  in_root apt-get install -y -q --no-install-recommends "linux-image-$arch" "linux-headers-$arch" initramfs-tools
} >>"$out/build.log" 2>&1 || { tail -20 "$out/build.log" >&2; echo "build-base.sh: apt failed" >&2; exit 1; }
cp -n "$root"/var/cache/apt/archives/*.deb "$debcache/" 2>/dev/null || true   # for the next build
kver=$(basename "$(ls -d "$root"/lib/modules/*/ | sort -V | tail -1)")
# The headers are built from Debian's "linux" source package itself (the image may come from the
# signed one, with another version), so their version is the source package's.
src_version=$(in_root dpkg-query -W -f='${Version}' "linux-headers-$kver")
src_pkg=linux-source-${kver%%.0-*}        # 6.1.0-57-amd64 -> linux-source-6.1
step "kernel $kver (source $src_version)"

# 3. gpio-sim from Debian's kernel source package, built out of tree against the headers.
step "gpio-sim from $src_pkg=$src_version"
cfg=$root/boot/config-$kver
for option in CONFIG_CONFIGFS_FS CONFIG_GPIOLIB CONFIG_GPIOLIB_IRQCHIP CONFIG_GPIO_CDEV; do
  grep -Eq "^$option=(y|m)" "$cfg" || { echo "build-base.sh: the kernel lacks $option, which gpio-sim needs" >&2; exit 1; }
done
mod=$root/usr/src/bench-gpio-sim
mkdir -p "$mod"
files=(drivers/gpio/gpio-sim.c drivers/gpio/gpiolib.h)
modname=gpio-sim
if grep -q '^CONFIG_IRQ_SIM=y' "$cfg"; then
  printf 'obj-m := gpio-sim.o\n' >"$mod/Kbuild"
else
  # gpio-sim's interrupts come from the simulated IRQ domain, which only some configurations
  # build; then it goes into the module too, from the same source package.
  files+=(kernel/irq/irq_sim.c)
  modname=gpio-sim-bench
  printf 'obj-m := gpio-sim-bench.o\ngpio-sim-bench-y := gpio-sim.o irq_sim.o\n' >"$mod/Kbuild"
fi
stub=
if ! grep -Eq '^CONFIG_I2C_STUB=(y|m)' "$cfg"; then
  # Debian's arm64 kernel does not build i2c-stub (its amd64 one does): from the same source, beside gpio-sim.
  grep -Eq '^CONFIG_I2C=(y|m)' "$cfg" || { echo "build-base.sh: the kernel lacks CONFIG_I2C, which i2c-stub needs" >&2; exit 1; }
  files+=(drivers/i2c/i2c-stub.c)
  printf 'obj-m += i2c-stub.o\n' >>"$mod/Kbuild"
  stub=i2c-stub
  step "i2c-stub from $src_pkg=$src_version (the kernel does not build it)"
fi
in_root sh -c "cd /tmp && apt-get download -q '$src_pkg=$src_version'" >>"$out/build.log" 2>&1 \
  || { tail -5 "$out/build.log" >&2; echo "build-base.sh: cannot download $src_pkg=$src_version" >&2; exit 1; }
deb=$(ls "$root"/tmp/"${src_pkg}"_*.deb)
dpkg-deb --fsys-tarfile "$deb" | tar -xO "./usr/src/${src_pkg}.tar.xz" \
  | tar -xJ -C "$mod" --transform='s|.*/||' "${files[@]/#/${src_pkg}/}"
rm -f "$deb"
if [ -e "$mod/irq_sim.c" ]; then
  # Outside the kernel image irq_to_desc() is not exported; generic_handle_irq() does the same
  # (the simulated domain's handler is handle_simple_irq) through an exported call.
  sed -i 's/handle_simple_irq(irq_to_desc(irqnum));/generic_handle_irq(irqnum);/' "$mod/irq_sim.c"
  grep -q 'generic_handle_irq(irqnum);' "$mod/irq_sim.c" \
    || { echo "build-base.sh: irq_sim.c of $src_version is not as expected; cannot build it out of tree" >&2; exit 1; }
fi
in_root make -C "/lib/modules/$kver/build" M=/usr/src/bench-gpio-sim modules >>"$out/build.log" 2>&1 \
  || { tail -30 "$out/build.log" >&2; echo "build-base.sh: gpio-sim did not build" >&2; exit 1; }
install -D -m 0644 "$mod/$modname.ko" "$root/lib/modules/$kver/updates/$modname.ko"
[ -z "$stub" ] || install -D -m 0644 "$mod/$stub.ko" "$root/lib/modules/$kver/updates/$stub.ko"
in_root depmod "$kver"
echo "$modname" >"$out/gpio-sim-module"

# 4. What Raspberry Pi OS provides that Debian does not: a gpio group owning the GPIO chips.
step "Raspberry Pi OS conventions, network, bench hook"
in_root groupadd --system gpio
cat >"$root/etc/udev/rules.d/60-bench-gpiochip.rules" <<'EOF'
# As on Raspberry Pi OS (raspberrypi-sys-mods): the GPIO character devices belong to group gpio.
SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"
EOF

# The machine itself: root on /dev/vda (checked at boot), DHCP on the first NIC when QEMU gives
# one (only while installing: the appliance runs with no network), name and time zone.
cat >"$root/etc/fstab" <<'EOF'
/dev/vda  /  ext4  errors=remount-ro  0  1
EOF
echo pi-bench >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 pi-bench\n' >"$root/etc/hosts"
cat >"$root/etc/systemd/network/50-bench.network" <<'EOF'
[Match]
Name=en* eth*
[Network]
DHCP=yes
EOF
in_root systemctl enable systemd-networkd >>"$out/build.log" 2>&1
rm -f "$root/etc/resolv.conf"
echo 'nameserver 10.0.2.3' >"$root/etc/resolv.conf"
in_root passwd -d root >/dev/null
# Keep the journal on disk (the power-cut scenario reads it after a boot).
mkdir -p "$root/var/log/journal"

# 5. The bench hook: the scenario's setup comes from the bench disk at every boot.
install -m 0644 "$here/guest/bench-init.service" "$root/etc/systemd/system/bench-init.service"
in_root systemctl enable bench-init.service >>"$out/build.log" 2>&1
install -D -m 0755 "$here/guest/bench-generator" "$root/etc/systemd/system-generators/bench-board-revision"

cp "$root/boot/vmlinuz-$kver" "$out/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$out/initrd.img"
echo "$kver" >"$out/kernel-version"
in_root apt-get clean
for d in dev/pts dev proc sys; do umount -l "$root/$d"; done

# 6. The disk image.
step "ext4 image"
rm -f "$out/root.raw"
mkfs.ext4 -q -L benchroot -d "$root" "$out/root.raw" 10G
step "done: $out"
