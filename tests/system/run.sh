#!/usr/bin/env bash
# System bench: the appliance installed by deploy/install.sh into a Debian Bookworm VM, booted by
# systemd under QEMU, driven through real kernel devices in the guest (gpio-sim built from Debian's
# kernel source, i2c-stub as the UPS HAT's INA219, snd-aloop as microphone and speaker).
#
#   bash tests/system/run.sh                      everything on x86_64 (see tests/system/bench.py)
#   bash tests/system/run.sh --scenarios quick --cuts 2     the CI subset
#   bash tests/system/run.sh --scenarios boot,turn          some scenarios
#   bash tests/system/run.sh --arch arm64 --wheels DIR      the arm64 variant (slow; not in CI)
#   bash tests/system/run.sh --rebuild installed  reinstall the appliance into a fresh image
#
# Needs root (debootstrap, chroot) or sudo, about 8 GB of disk under ~/.cache/assistant-sysbench
# and the package registries (Debian's mirror, PyPI) the first time; nothing is loaded into this
# machine's kernel. The images are cached and rebuilt when what went into them changes. Results,
# recordings and every boot's console and journal go to out/system/ARCH-TIME/.
set -euo pipefail
cd "$(dirname "$0")/../.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
arch=amd64
prev=
for arg in "$@"; do
  [ "$prev" = --arch ] && arch=$arg
  case $arg in --arch=*) arch=${arg#--arch=} ;; esac
  prev=$arg
done

need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
pkgs=(qemu-utils debootstrap e2fsprogs)
case $arch in
  amd64) pkgs+=(qemu-system-x86) ;;
  arm64) pkgs+=(qemu-system-arm qemu-user-static binfmt-support device-tree-compiler) ;;
esac
for p in "${pkgs[@]}"; do have "$p" || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  echo "sysbench: installing host packages: ${need[*]}" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The project's venv: the host transcribes the guest's loopback recordings with it, and on x86_64
# its llama-cpp-python is the wheel offered to the guest.
if ! .venv/bin/python -c 'import llama_cpp, pocketsphinx' 2>/dev/null; then
  bash deploy/bootstrap.sh setup
fi
exec python3 tests/system/bench.py "$@"
