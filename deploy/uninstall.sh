#!/usr/bin/env bash
# Remove what deploy/install.sh installed (run as root); safe to run again:
#
#   sudo bash deploy/uninstall.sh            stop and remove the service, the venv, the command on the
#                                            PATH and the polkit rule
#   sudo bash deploy/uninstall.sh --purge    also the configuration, the state (turn logs, drain runs,
#                                            models) and the system user
#   sudo bash deploy/uninstall.sh --dry-run  print every step instead of doing it
#
# Without --purge, /etc/assistant and /var/lib/assistant and the user stay, so a later install
# picks up where this one stopped. apt packages and the I2C setting are left alone. Without a
# running systemd (a chroot, an image being built) the unit is disabled for the next boot.
set -euo pipefail

ME=uninstall
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PURGE=0
for arg in "$@"; do
  case $arg in
    --dry-run) DRY_RUN=1 ;;
    --purge) PURGE=1 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "uninstall.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
  echo "uninstall.sh: run as root (sudo bash deploy/uninstall.sh), or try --dry-run" >&2
  exit 1
fi

removed=0
if [ "$DRY_RUN" = 1 ] || [ -e "$UNIT" ] || [ -L "$WANTS_LINK" ]; then
  if systemd_running; then
    if [ "$DRY_RUN" = 1 ]; then
      run systemctl disable --now "$APP.service"
    elif ! out=$(systemctl disable --now --quiet "$APP.service" 2>&1); then
      warn "systemctl disable --now $APP.service failed: ${out:-no message}; removing the unit anyway"
    fi
  elif command -v systemctl >/dev/null; then
    run systemctl disable --quiet "$APP.service"  # without a running systemd: removes the links only
  fi
  if [ "$DRY_RUN" = 1 ] || [ -L "$WANTS_LINK" ]; then run rm -f "$WANTS_LINK"; fi
  run rm -f "$UNIT"
  if systemd_running; then
    run systemctl daemon-reload
    run systemctl reset-failed "$APP.service" 2>/dev/null || true
  fi
  removed=1
fi
if [ "$DRY_RUN" = 1 ] || [ -e "$POLKIT_RULE" ]; then
  run rm -f "$POLKIT_RULE"
  removed=1
fi
# The command on the PATH, if it is still the link install.sh made.
if [ "$DRY_RUN" = 1 ] || [ "$(readlink "$BIN_LINK" 2>/dev/null || true)" = "$VENV/bin/$APP" ]; then
  run rm -f "$BIN_LINK"
  removed=1
fi
if [ "$DRY_RUN" = 1 ] || [ -e "$PREFIX" ]; then
  run rm -rf --one-file-system "$PREFIX"
  removed=1
fi
[ "$removed" = 1 ] || say "the service, its venv and its command were not installed; nothing to remove"

if [ "$PURGE" = 1 ]; then
  purged=0
  if [ "$DRY_RUN" = 1 ] || [ -e "$ETC" ] || [ -e "$STATE" ]; then
    run rm -rf --one-file-system "$ETC" "$STATE"
    purged=1
  fi
  if [ "$DRY_RUN" = 1 ] || id -u "$APP" >/dev/null 2>&1; then
    run userdel "$APP"
    purged=1
  fi
  if [ "$purged" = 1 ]; then
    say "removed everything, configuration and state included"
  else
    say "no configuration, state or user $APP left to remove"
  fi
else
  say "kept $ETC (configuration) and $STATE (turn logs, drain runs, models); --purge removes them"
fi
