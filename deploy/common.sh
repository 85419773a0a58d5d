# Shared by deploy/install.sh and deploy/uninstall.sh (sourced, never run): where the appliance is
# installed, how a step is run or only printed (--dry-run), and whether systemd is running here.
# shellcheck shell=bash disable=SC2034  # the constants are used by the scripts that source this

APP=assistant
PREFIX=/opt/$APP
VENV=$PREFIX/venv
ETC=/etc/$APP
STATE=/var/lib/$APP
UNIT=/etc/systemd/system/$APP.service
# The enabled-unit link `systemctl enable` makes for WantedBy=multi-user.target.
WANTS_LINK=/etc/systemd/system/multi-user.target.wants/$APP.service
POLKIT_RULE=/etc/polkit-1/rules.d/50-$APP-poweroff.rules
# The command on every user's PATH (sudo's secure_path has /usr/local/bin too).
BIN_LINK=/usr/local/bin/$APP

DRY_RUN=${DRY_RUN:-0}
ME=${ME:-deploy}

say() { printf '%s: %s\n' "$ME" "$*" >&2; }
warn() { printf '%s: WARNING: %s\n' "$ME" "$*" >&2; }
die() { printf '%s: %s\n' "$ME" "$*" >&2; exit 1; }
# run CMD...: run it, or under --dry-run print it.
run() {
  if [ "$DRY_RUN" = 1 ]; then printf '+ %s\n' "$*"; else "$@"; fi
}

# True when systemd is the running init here: not in a chroot, a container without systemd, or an
# SD-card image being built, where units can only be enabled for the next boot (sd_booted(3)).
systemd_running() {
  [ -d /run/systemd/system ] && command -v systemctl >/dev/null || return 1
  ! { command -v systemd-detect-virt >/dev/null && systemd-detect-virt --quiet --chroot; }
}
