#!/bin/sh
# System bench, inside the guest at every boot (bench-init.service, before the appliance starts):
# the kernel devices the appliance meets on a Pi, made real here, and the helpers the host drives.
# Kernel command line parameters chosen by the host for this boot:
#   bench.gauge=ina219    i2c-stub at 0x42 with an INA219's registers, written as the chip would
#                         (Waveshare UPS HAT (B)); bench.pack=VOLTS,AMPS is what it measures first
#   bench.gauge=nogauge   an I2C bus with nothing at any gauge address (I2C on, no HAT fitted)
#   bench.gauge=none      no I2C bus at all
# What it leaves in /run/bench for the host: gpio.env (the simulated chip's sysfs paths), i2c-bus.
set -eu
disk=/run/bench/disk
run=/run/bench
mkdir -p "$run"
param() { tr ' ' '\n' </proc/cmdline | sed -n "s/^bench\.$1=//p" | tail -1; }
say() { echo "bench-init: $*"; }

# The guest's journal, live, to the host over a virtio port: the host keeps what the guest said
# up to the last moment, even across a power cut. (Without the guest agent's line per command.)
if udevadm wait --timeout=10 /dev/virtio-ports/bench.journal 2>/dev/null; then
  systemd-run --quiet --unit=bench-journal --property=Restart=always \
    /bin/sh -c "journalctl -b -f -n all -o short-monotonic --no-pager | grep --line-buffered -v ' qemu-ga\\[' \
      >/dev/virtio-ports/bench.journal"
fi

# Sound: two loopback cards. The appliance records from Mic (device 1) what the host plays into
# it (device 0), and plays into Speaker (device 0) what the host records (device 1).
modprobe snd-aloop index=0,1 id=Mic,Speaker enable=1,1 pcm_substreams=1,1
say "sound: $(tr '\n' ' ' </proc/asound/cards)"

# GPIO: a simulated 54-line chip labelled as the Pi 5's RP1, the button on line 17 held high by
# its pull-up until the host pulls it down (a press), the LED on line 27.
modprobe gpio-sim 2>/dev/null || modprobe gpio-sim-bench
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
sim=/sys/kernel/config/gpio-sim/pi
mkdir "$sim" "$sim/bank0"
echo 54 >"$sim/bank0/num_lines"
echo pinctrl-rp1 >"$sim/bank0/label"
for line in 17 27; do
  mkdir "$sim/bank0/line$line"
  echo "GPIO$line" >"$sim/bank0/line$line/name"
done
echo 1 >"$sim/live"
chip=$(cat "$sim/bank0/chip_name")
lines=/sys/devices/platform/$(cat "$sim/dev_name")/$chip
echo pull-up >"$lines/sim_gpio17/pull"
udevadm settle
printf 'GPIO_CHIP=%s\nBUTTON=%s\nLED=%s\n' "$chip" "$lines/sim_gpio17" "$lines/sim_gpio27" >"$run/gpio.env"
if ! grep -q '^Revision' /proc/cpuinfo && [ ! -e /proc/device-tree/system/linux,revision ]; then
  # A PC: the board revision gpiozero looks for (Pi 5), shown to the appliance's service only
  # (bench-generator's drop-in binds this file over its /proc/cpuinfo).
  { cat /proc/cpuinfo; printf 'Revision\t: d04170\n'; } >"$run/cpuinfo"
fi
say "gpio: $chip ($(cat "$sim/bank0/label" 2>/dev/null)), $(stat -c '%G %a' "/dev/$chip")"

# I2C and the gauge.
gauge=$(param gauge)
case ${gauge:-none} in
  ina219) modprobe i2c-stub chip_addr=0x42 ;;
  nogauge) modprobe i2c-stub chip_addr=0x50 ;;  # an EEPROM's address: no gauge answers
  none) ;;
  *) say "unknown bench.gauge=$gauge"; exit 1 ;;
esac
udevadm settle
bus=
for adapter in /sys/bus/i2c/devices/i2c-*; do
  [ -e "$adapter/name" ] && [ "$(cat "$adapter/name")" = "SMBus stub driver" ] && bus=${adapter##*/i2c-}
done
echo "$bus" >"$run/i2c-bus"
[ -n "$bus" ] && say "i2c: stub on /dev/i2c-$bus ($(stat -c '%G %a' "/dev/i2c-$bus"))"
if [ "$gauge" = ina219 ]; then
  pack=$(param pack)
  volts=${pack%%,*}
  amps=${pack#*,}
  printf '{"voltage_v": %s, "current_a": %s, "resets": 0}\n' "${volts:-7.8}" "${amps:--0.6}" >"$run/ina219.json"
  python=/opt/assistant/venv/bin/python
  if [ -x "$python" ]; then
    rm -f "$run/ina219.ready"
    systemd-run --quiet --unit=bench-ina219 "$python" "$disk/guest/ina219_chip.py" \
      --bus "$bus" --address 0x42 --state "$run/ina219.json" --ready "$run/ina219.ready"
    for _ in $(seq 300); do [ -e "$run/ina219.ready" ] && break; sleep 0.1; done
    [ -e "$run/ina219.ready" ] || { say "the INA219 register writer did not start"; exit 1; }
    say "ina219: registers at 0x42 on i2c-$bus follow $run/ina219.json"
  else
    say "ina219: no $python (appliance not installed); registers left empty"
  fi
fi
say "ready"
