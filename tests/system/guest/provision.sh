#!/bin/sh
# System bench, inside the booted guest, once per installed image: install the appliance the way
# a maker does on a Pi (their clone, `sudo bash deploy/install.sh`), then point it at the bench's
# devices. Runs as root under systemd (bench-provision.service); its output goes to the journal,
# which the host shows live.
#   /run/bench/disk/repo      the clone (the tracked files of the host's working tree)
#   /run/bench/disk/wheels    prebuilt wheels offered to pip (PIP_FIND_LINKS), constraints.txt
#   /run/bench/disk/models    NAME=FILE lines in models.list and the files, for `models install --from`
set -eu
disk=/run/bench/disk
t0=$(date +%s)
step() { echo "provision: [$(($(date +%s) - t0))s] $*"; }

step "waiting for the network (QEMU user networking)"
for _ in $(seq 120); do getent hosts deb.debian.org >/dev/null && break; sleep 1; done
getent hosts deb.debian.org >/dev/null || { step "no network"; exit 1; }

# The maker: an account with passwordless sudo, as Raspberry Pi OS sets up its first user.
if ! id pi >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash --groups sudo pi
  echo 'pi ALL=(ALL) NOPASSWD: ALL' >/etc/sudoers.d/010_pi-nopasswd
  chmod 0440 /etc/sudoers.d/010_pi-nopasswd
fi
rm -rf /home/pi/assistant
cp -a "$disk/repo" /home/pi/assistant
chown -R pi:pi /home/pi/assistant

step "sudo bash deploy/install.sh (prebuilt wheels offered: $(cd "$disk/wheels" && echo *.whl))"
constraints=
[ -s "$disk/wheels/constraints.txt" ] && constraints=$disk/wheels/constraints.txt
# The bench's sound cards are snd-aloop loopbacks, which the installer rightly never takes for a
# microphone or a speaker: it installs everything, does not start the service and says so (exit
# 1). That outcome, and only that one, is expected here; the bench then writes its devices into
# the configuration below, as a maker writes theirs (README, "Raspberry Pi install").
# (The exit status goes through a file: set -e ends a pipeline's part at the first failure.)
{ runuser -u pi -- sh -c "cd ~/assistant && sudo PIP_FIND_LINKS='$disk/wheels' PIP_CONSTRAINT='$constraints' bash deploy/install.sh" \
    && echo 0 >/run/bench/install.rc || echo $? >/run/bench/install.rc; } 2>&1 | tee /run/bench/install.log
rc=$(cat /run/bench/install.rc)
if [ "$rc" != 0 ]; then
  grep -q "installed, but not started: no microphone or speaker" /run/bench/install.log \
    || { step "install.sh failed (exit $rc)"; exit 1; }
  step "install.sh: installed, not started: the loopback cards are not a microphone and a speaker (expected)"
fi
systemctl is-enabled -q assistant.service || { step "install.sh did not enable assistant.service"; exit 1; }
step "install.sh finished"

venv=/opt/assistant/venv
as_service() { runuser -u assistant -- "$venv/bin/assistant" --config /etc/assistant/config.yaml "$@"; }
if [ -s "$disk/models/models.list" ]; then
  while IFS='=' read -r name file; do
    [ -n "$name" ] || continue
    step "models install $name --from $file"
    as_service models install "$name" --from "$disk/models/$file"
  done <"$disk/models/models.list"
fi

# The bench's devices, written into the configuration as a maker writes theirs: the loopback
# cards for the microphone and the speaker, the bus the gauge is on (i2c-stub takes the first free
# bus number: 1 on a PC, whose chipset SMBus is 0, as on a Pi; 0 on an arm64 virt machine).
# A shorter empty-pack hold (20 s instead of 60 s) so that the power scenarios take minutes, and
# room for an emulated CPU's slowness (below).
# (The comments of the file are not kept.)
step "configuration for the bench's devices"
bus=$(cat /run/bench/i2c-bus 2>/dev/null || true)
# (this boot has bench.gauge=ina219: no bus means the kernel has no i2c-stub, and every gauge scenario would fail)
[ -n "$bus" ] || { step "no i2c-stub bus in this guest (see bench-init's journal): the base image lacks the module"; exit 1; }
"$venv/bin/python" - /etc/assistant/config.yaml "$bus" <<'PY'
import sys, yaml
path, bus = sys.argv[1], int(sys.argv[2])
cfg = yaml.safe_load(open(path)) or {}
cfg.setdefault("mic", {})["device"] = "hw:0,1"       # loopback card "Mic", capture side
cfg.setdefault("speaker", {})["device"] = "hw:1,0"   # loopback card "Speaker", playback side
cfg.setdefault("shutdown", {})["hold_s"] = 20.0
# Under TCG the guest runs some 30 times slower than the host: a turn takes minutes, so the longest
# reply is kept short and the time a turn may take before the watchdog pings stop is raised.
cfg.setdefault("llm", {})["max_tokens"] = 32
cfg.setdefault("service", {})["turn_budget_s"] = 600.0
if bus != 1:
    cfg.setdefault("battery", {})["i2c_bus"] = bus
with open(path, "w") as fh:
    fh.write("# Written by the system bench (tests/system) from deploy/install.sh's configuration.\n")
    yaml.safe_dump(cfg, fh, sort_keys=False)
print(yaml.safe_dump(cfg, sort_keys=False))
PY
as_service config check
step "installed: $(du -sh /opt/assistant | cut -f1) in /opt/assistant, $(du -sh /var/lib/assistant | cut -f1) in /var/lib/assistant"
