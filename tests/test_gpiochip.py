"""Finding the 40-pin header's GPIO chip and checking that gpiozero opens it, on the chip layouts of
real Raspberry Pi kernels (gpiodetect output in raspberrypi/linux#6144 and WiringPi#280)."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest

from assistant.device import gpiochip
from assistant.device.gpiochip import GpioChip, verify, version_key

ROOT = Path(__file__).resolve().parents[1]

# (name, label, lines) as gpiodetect prints them.
PI5_BEFORE_6_6_45 = [("gpiochip0", "gpio-brcmstb@107d508500", 32), ("gpiochip1", "gpio-brcmstb@107d508520", 4),
                     ("gpiochip2", "gpio-brcmstb@107d517c00", 17), ("gpiochip3", "gpio-brcmstb@107d517c20", 6),
                     ("gpiochip4", "pinctrl-rp1", 54)]
PI5_SINCE_6_6_45 = [("gpiochip0", "pinctrl-rp1", 54), ("gpiochip10", "gpio-brcmstb@107d508500", 32),
                    ("gpiochip11", "gpio-brcmstb@107d508520", 4), ("gpiochip12", "gpio-brcmstb@107d517c00", 17),
                    ("gpiochip13", "gpio-brcmstb@107d517c20", 6)]
PI4 = [("gpiochip0", "pinctrl-bcm2711", 58), ("gpiochip1", "raspberrypi-exp-gpio", 8)]


def fake_dev(tmp_path: Path, chips: list[tuple[str, str, int]], links: dict[str, str] | None = None,
             ) -> tuple[Path, dict[Path, GpioChip]]:
    """A /dev with one file per chip (and udev's symlinks), and what the chip-info ioctl answers."""
    dev = tmp_path / "dev"
    dev.mkdir()
    answers = {}
    for name, label, lines in chips:
        (dev / name).touch()
        raw = gpiochip._CHIPINFO.pack(name.encode(), label.encode(), lines)
        answers[(dev / name).resolve()] = gpiochip.parse_chip_info(raw, (dev / name).resolve())
    for link, target in (links or {}).items():
        (dev / link).symlink_to(target)
    (dev / "gpiochip-not-a-chip").touch()
    return dev, answers


def run_verify(dev: Path, answers: dict[Path, GpioChip], *, version: str | None = "2.0.1.post3",
               opens: int | Exception = 0) -> gpiochip.GpioReport:
    def factory_chip() -> int:
        if isinstance(opens, Exception):
            raise opens
        return opens
    return verify(dev, read=lambda p: answers[p], gpiozero=lambda: version, factory_chip=factory_chip)


def test_the_chip_info_ioctl_is_the_kernels() -> None:
    # GPIO_GET_CHIPINFO_IOCTL = _IOR(0xB4, 0x01, struct gpiochip_info), 68 bytes: 0x8044B401
    assert gpiochip._CHIPINFO.size == 68
    assert gpiochip.GPIO_GET_CHIPINFO_IOCTL == 0x8044B401
    chip = gpiochip.parse_chip_info(b"gpiochip0" + bytes(23) + b"pinctrl-rp1" + bytes(21) + (54).to_bytes(4, "little"),
                                    Path("/dev/gpiochip0"))
    assert (chip.name, chip.label, chip.lines) == ("gpiochip0", "pinctrl-rp1", 54)


def test_a_device_that_is_no_gpio_chip_gives_an_os_error() -> None:
    """The real ioctl, on a character device that does not know it: the kernel says ENOTTY."""
    with pytest.raises(OSError) as err:
        gpiochip.read_chip(Path(os.devnull))
    assert err.value.errno == errno.ENOTTY


def test_pi5_recent_kernel_with_the_gpiochip4_link_passes(tmp_path: Path) -> None:
    dev, answers = fake_dev(tmp_path, PI5_SINCE_6_6_45, {"gpiochip4": "gpiochip0"})
    report = run_verify(dev, answers, opens=4)  # post3 opens chip 4 on a Pi 5 when /dev/gpiochip4 exists
    assert report.problems == []
    assert report.header is not None and report.header.name == "gpiochip0" and report.header.aliases == ("gpiochip4",)
    assert "gpiochip0 [pinctrl-rp1] (54 lines) (also gpiochip4) (Raspberry Pi 5)" in report.summary()
    assert [c.name for c in report.chips] == ["gpiochip0", "gpiochip10", "gpiochip11", "gpiochip12", "gpiochip13"]


def test_pi5_old_kernel_chip0_is_the_wrong_one(tmp_path: Path) -> None:
    dev, answers = fake_dev(tmp_path, PI5_BEFORE_6_6_45)
    assert run_verify(dev, answers, opens=4).problems == []
    report = run_verify(dev, answers, opens=0)  # what gpiozero 2.0 did: the SoC's own controller
    assert report.problems == ["gpiozero 2.0.1.post3 opens gpiochip0, but the header is gpiochip4 [pinctrl-rp1] "
                               "(54 lines)"]


@pytest.mark.parametrize("version", ["2.0", "2.0.1", "2.0.1.post1", "2.0.1.post2", None])
def test_gpiozero_releases_with_the_pi5_chip_bug_fail(tmp_path: Path, version: str | None) -> None:
    dev, answers = fake_dev(tmp_path, PI5_SINCE_6_6_45, {"gpiochip4": "gpiochip0"})
    report = run_verify(dev, answers, version=version, opens=4)
    assert len(report.problems) == 1 and "releases before 2.0.1.post3" in report.problems[0]
    assert "deploy/install.sh" in report.fix


def test_pi4_passes_and_no_chip_at_all_fails(tmp_path: Path) -> None:
    dev, answers = fake_dev(tmp_path, PI4)
    assert run_verify(dev, answers, opens=0).problems == []
    empty = tmp_path / "empty"
    empty.mkdir()
    report = verify(empty, read=gpiochip.read_chip, gpiozero=lambda: "2.0.1.post3", factory_chip=lambda: 0)
    assert report.problems == [f"no GPIO chip ({empty}/gpiochip*): the button and LED need a Raspberry Pi"]


def test_unreadable_chips_missing_lgpio_and_other_boards_are_said(tmp_path: Path) -> None:
    dev, answers = fake_dev(tmp_path, PI5_SINCE_6_6_45)

    def denied(path: Path) -> GpioChip:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))
    report = verify(dev, read=denied, gpiozero=lambda: "2.0.1.post3", factory_chip=lambda: 0)
    assert report.problems[0] == f"cannot open {dev / 'gpiochip0'}: Permission denied"
    assert "group gpio" in report.fix
    missing = run_verify(dev, answers, opens=ImportError("No module named 'lgpio'"))
    assert missing.problems == ["the lgpio pin factory is not installed (No module named 'lgpio')"]
    other = tmp_path / "other"
    other.mkdir()
    dev2, answers2 = fake_dev(other, [("gpiochip0", "1c20800.pinctrl", 224)])
    assert "no chip carries a Raspberry Pi header" in run_verify(dev2, answers2).problems[0]


def test_versions_sort_as_releases() -> None:
    order = ["2.0", "2.0.1", "2.0.1.post1", "2.0.1.post3", "2.0.2", "2.1"]
    assert sorted(order, key=version_key) == order
    assert version_key("2.1.0rc1") < version_key("2.0")  # unknown forms never pass the minimum


def test_the_pin_in_pyproject_is_the_minimum_the_check_wants() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'"gpiozero>=([^"]+)"', pyproject).group(1) == gpiochip.GPIOZERO_MINIMUM  # type: ignore[union-attr]
    installed = gpiochip.installed_gpiozero()
    assert installed is not None and version_key(installed) >= version_key(gpiochip.GPIOZERO_MINIMUM)
