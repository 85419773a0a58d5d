"""The GPIO chips the kernel has, which one carries the 40-pin header, and whether gpiozero opens it.

The header's chip is found by its label, as ``gpiodetect`` shows it (GPIO_GET_CHIPINFO_IOCTL on
``/dev/gpiochip*``): ``pinctrl-rp1`` on a Raspberry Pi 5, ``pinctrl-bcm2711`` on a Pi 4,
``pinctrl-bcm2835`` before. Its number moved: Pi 5 kernels before 6.6.45 call it gpiochip4,
later ones gpiochip0 (with a gpiochip4 symlink from Raspberry Pi OS's udev rules). gpiozero
2.0.1 opened chip 4 on every Pi 5, and 2.0.1.post1/post2 fail with a NameError in LGPIOFactory,
so the appliance needs 2.0.1.post3 or later, and this check asks the installed gpiozero which
chip it opens.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_LOG = logging.getLogger(__name__)

HEADER_LABELS = {
    "pinctrl-rp1": "Raspberry Pi 5",
    "pinctrl-bcm2711": "Raspberry Pi 4",
    "pinctrl-bcm2835": "Raspberry Pi 3 or earlier",
}
"""Label of the chip behind the 40-pin header, per board."""

GPIOZERO_MINIMUM = "2.0.1.post3"
"""The first gpiozero release that opens the right chip on every Pi 5 kernel (pyproject pins it)."""

# struct gpiochip_info {char name[32]; char label[32]; __u32 lines;} and
# GPIO_GET_CHIPINFO_IOCTL = _IOR(0xB4, 0x01, struct gpiochip_info), from <linux/gpio.h>.
_CHIPINFO = struct.Struct("=32s32sI")
GPIO_GET_CHIPINFO_IOCTL = (2 << 30) | (_CHIPINFO.size << 16) | (0xB4 << 8) | 0x01
_CHIP_NAME = re.compile(r"gpiochip\d+")
DEV = Path("/dev")


@dataclass(frozen=True)
class GpioChip:
    """One GPIO chip."""

    path: Path
    """Its character device, symlinks resolved (``/dev/gpiochip0``)."""
    name: str
    label: str
    lines: int
    aliases: tuple[str, ...] = ()
    """Other ``/dev`` names that point at it (``gpiochip4`` on a Pi 5 with a recent kernel)."""

    def describe(self) -> str:
        also = f" (also {', '.join(self.aliases)})" if self.aliases else ""
        return f"{self.name} [{self.label}] ({self.lines} lines){also}"


def parse_chip_info(raw: bytes, path: Path) -> GpioChip:
    """A GpioChip from the bytes GPIO_GET_CHIPINFO_IOCTL fills in."""
    name, label, lines = _CHIPINFO.unpack(raw)
    text = [b.split(b"\0", 1)[0].decode("utf-8", "replace") for b in (name, label)]
    return GpioChip(path, text[0], text[1], lines)


def read_chip(path: Path) -> GpioChip:
    """Ask the kernel for a chip's name, label and line count, as gpiodetect does (raises OSError)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        raw = fcntl.ioctl(fd, GPIO_GET_CHIPINFO_IOCTL, bytes(_CHIPINFO.size))
    finally:
        os.close(fd)
    return parse_chip_info(raw, path)


def list_chips(dev: Path = DEV, read: Callable[[Path], GpioChip] = read_chip
               ) -> tuple[list[GpioChip], list[str]]:
    """Every GPIO chip under ``dev`` (one entry per device, symlinks as aliases), and a line for
    each chip that could not be read."""
    nodes: dict[Path, list[str]] = {}
    for entry in sorted(dev.glob("gpiochip*"), key=lambda p: (len(p.name), p.name)):
        if _CHIP_NAME.fullmatch(entry.name):
            nodes.setdefault(entry.resolve(), []).append(entry.name)
    chips, problems = [], []
    for real, names in nodes.items():
        try:
            chip = read(real)
        except OSError as exc:
            problems.append(f"cannot open {real}: {exc.strerror or exc}")
            continue
        chips.append(GpioChip(real, chip.name, chip.label, chip.lines, tuple(n for n in names if n != real.name)))
    return chips, problems


def version_key(version: str) -> tuple[tuple[int, ...], int]:
    """A sortable key for release versions like ``2.0.1`` and ``2.0.1.post3`` (the only forms
    gpiozero uses); anything else sorts first."""
    m = re.fullmatch(r"(\d+(?:\.\d+)*)(?:\.post(\d+))?", version.strip())
    if m is None:
        return (), -1
    return tuple(int(x) for x in m.group(1).split(".")), int(m.group(2) or -1)


def installed_gpiozero() -> str | None:
    """The installed gpiozero's version, or None."""
    from importlib import metadata

    try:
        return metadata.version("gpiozero")
    except metadata.PackageNotFoundError:
        return None


def lgpio_factory_chip() -> int:
    """The chip number gpiozero's lgpio pin factory opens here: the one the service's button and
    LED will use (the unit sets GPIOZERO_PIN_FACTORY=lgpio). Raises ImportError without lgpio."""
    from gpiozero.pins.lgpio import LGPIOFactory

    factory = LGPIOFactory()
    try:
        return int(getattr(factory, "chip", getattr(factory, "_chip", 0)))
    finally:
        factory.close()


@dataclass
class GpioReport:
    """What was found, and what is wrong (nothing, when ``problems`` is empty)."""

    chips: list[GpioChip]
    header: GpioChip | None
    gpiozero: str | None
    factory_chip: int | None
    problems: list[str] = field(default_factory=list)
    fix: str = ""

    def summary(self) -> str:
        if self.problems:
            return "; ".join(self.problems)
        board = HEADER_LABELS[self.header.label] if self.header else "?"
        return (f"header on {self.header.describe() if self.header else '?'} ({board}); gpiozero {self.gpiozero} "
                f"opens gpiochip{self.factory_chip}")


def verify(dev: Path | None = None, *, read: Callable[[Path], GpioChip] = read_chip,
           gpiozero: Callable[[], str | None] = installed_gpiozero,
           factory_chip: Callable[[], int] = lgpio_factory_chip) -> GpioReport:
    """Find the header's chip and check that gpiozero is recent enough and opens that very chip."""
    dev = DEV if dev is None else dev
    chips, unreadable = list_chips(dev, read)
    header = next((c for c in chips if c.label in HEADER_LABELS), None)
    report = GpioReport(chips, header, gpiozero(), None)
    if not chips and not unreadable:
        report.problems.append(f"no GPIO chip ({dev}/gpiochip*): the button and LED need a Raspberry Pi")
        report.fix = "run this on the Pi; on a laptop use --sim"
        return report
    if unreadable:
        report.problems.extend(unreadable)
        report.fix = "run it as the service user (sudo -u assistant ...) or as a member of group gpio"
    if header is None and not unreadable:
        labels = ", ".join(c.describe() for c in chips)
        report.problems.append(f"no chip carries a Raspberry Pi header ({', '.join(HEADER_LABELS)}); found: {labels}")
        report.fix = "this board is not a Raspberry Pi the appliance knows"
        return report
    if report.gpiozero is None or version_key(report.gpiozero) < version_key(GPIOZERO_MINIMUM):
        report.problems.append(f"gpiozero {report.gpiozero or 'is not installed'}: releases before {GPIOZERO_MINIMUM} "
                               "open the wrong chip on a Pi 5 since kernel 6.6.45, or fail in LGPIOFactory")
        report.fix = "reinstall the appliance: sudo bash deploy/install.sh"
        return report
    try:
        report.factory_chip = factory_chip()
    except ImportError as exc:
        report.problems.append(f"the lgpio pin factory is not installed ({exc})")
        report.fix = "reinstall the appliance (it installs the `pi` extra): sudo bash deploy/install.sh"
        return report
    except Exception as exc:  # lgpio raises its own error type, and fails on an unwritable working dir
        report.problems.append(f"gpiozero's lgpio pin factory cannot open a chip here: {exc}")
        report.fix = report.fix or "run it from a directory you may write (lgpio puts a pipe there), as root or group gpio"
        return report
    if header is not None:
        opened = (dev / f"gpiochip{report.factory_chip}").resolve()
        if opened != header.path:
            report.problems.append(f"gpiozero {report.gpiozero} opens gpiochip{report.factory_chip}, but the header "
                                   f"is {header.describe()}")
            report.fix = "update gpiozero and the kernel together: sudo bash deploy/install.sh; sudo apt full-upgrade"
    _LOG.debug("GPIO: %s", report.summary())
    return report
