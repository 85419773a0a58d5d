#!/usr/bin/env bash
# Remove what deploy/install.sh installed (run as root):
#
#   sudo bash deploy/uninstall.sh            stop and remove the service, the venv and the polkit rule
#   sudo bash deploy/uninstall.sh --purge    also the configuration, the state (turn logs, drain runs,
#                                            models) and the system user
#   sudo bash deploy/uninstall.sh --dry-run  print every step instead of doing it
#
# Without --purge, /etc/assistant and /var/lib/assistant and the user stay, so a later install
# picks up where this one stopped. apt packages and the I2C setting are left alone.
set -euo pipefail

APP=assistant
PREFIX=/opt/$APP
ETC=/etc/$APP
STATE=/var/lib/$APP
UNIT=/etc/systemd/system/$APP.service
POLKIT_RULE=/etc/polkit-1/rules.d/50-$APP-poweroff.rules

DRY_RUN=0
PURGE=0
for arg in "$@"; do
  case $arg in
    --dry-run) DRY_RUN=1 ;;
    --purge) PURGE=1 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "uninstall.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

say() { printf 'uninstall: %s\n' "$*" >&2; }
run() {
  if [ "$DRY_RUN" = 1 ]; then printf '+ %s\n' "$*"; else "$@"; fi
}

if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
  echo "uninstall.sh: run as root (sudo bash deploy/uninstall.sh), or try --dry-run" >&2
  exit 1
fi

if [ "$DRY_RUN" = 1 ] || [ -e "$UNIT" ]; then
  have_systemctl=0
  command -v systemctl >/dev/null && have_systemctl=1
  if [ "$have_systemctl" = 1 ]; then
    run systemctl disable --now "$APP.service" || say "the unit was not active"
  fi
  run rm -f "$UNIT"
  if [ "$have_systemctl" = 1 ]; then
    run systemctl daemon-reload
    run systemctl reset-failed "$APP.service" 2>/dev/null || true
  fi
fi
if [ "$DRY_RUN" = 1 ] || [ -e "$POLKIT_RULE" ]; then
  run rm -f "$POLKIT_RULE"
fi
if [ "$DRY_RUN" = 1 ] || [ -e "$PREFIX" ]; then
  run rm -rf --one-file-system "$PREFIX"
fi

if [ "$PURGE" = 1 ]; then
  run rm -rf --one-file-system "$ETC" "$STATE"
  if [ "$DRY_RUN" = 1 ] || id -u "$APP" >/dev/null 2>&1; then
    run userdel "$APP"
  fi
  say "removed everything, configuration and state included"
else
  say "kept $ETC (configuration) and $STATE (turn logs, drain runs, models); --purge removes them"
fi
