"""What this device should install: the richest language model and recogniser that fit its memory and disk together."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from assistant.errors import InstallError
from assistant.models.catalogue import CatalogueEntry
from assistant.models.offer import ladder_room

_LOG = logging.getLogger(__name__)

PREFERENCE: dict[str, tuple[str, ...]] = {
    "llm": ("llama-3.2-1b", "qwen2.5-0.5b"),
    "vosk": ("vosk-en-lgraph", "vosk-en"),
}
"""Per role, the catalogue entries a device gets, best first, when its memory and disk hold them.
Llama-3.2-1B is the LLMPi study's model (a Pi 5 with 4 GB or more runs its whole ladder); the
0.5B Qwen is the model a 2 GB board answers with in real time."""
EMBEDDED: dict[str, str] = {"llm": "smollm2-135m", "vosk": "pocketsphinx-en-us", "piper-voice": "piper-joe"}
"""What each role falls back to when nothing better fits: the models that ship inside the packages."""
EMBEDDED_MB: dict[str, int] = {"llm": 300, "vosk": 50, "piper-voice": 200}
"""Memory of the embedded models while loaded (MB): SmolLM2-135M with its buffers, pocketsphinx, a Piper voice."""
SYSTEM_MB = 350
"""Memory kept for the operating system and the appliance's own process when the engines are counted one by one."""
ROLE_NAMES = {"llm": "language model", "vosk": "speech recogniser", "piper-voice": "voice"}


@dataclass(frozen=True)
class Choice:
    """What one role (language model, recogniser, voice) gets on this device, and why."""

    role: str
    """``llm``, ``vosk`` (the recogniser) or ``piper-voice``."""
    entry: CatalogueEntry | None
    """The catalogue entry to install; None keeps the embedded model."""
    ram_mb: int
    """Memory it takes while loaded (MB)."""
    why: str
    picked: bool = False
    """Chosen with ``--pick`` rather than by memory."""

    @property
    def name(self) -> str:
        return self.entry.name if self.entry is not None else EMBEDDED[self.role]


@dataclass(frozen=True)
class DevicePlan:
    """The models for this device, one per role, within its memory (all loaded at once) and disk."""

    mem_total_mb: int | None
    """``MemTotal`` of /proc/meminfo (MB); None when it could not be read (the smallest plan is made)."""
    budget_mb: int
    """Memory for the three engines: MemTotal less ``SYSTEM_MB``."""
    choices: tuple[Choice, ...]
    warnings: tuple[str, ...] = ()

    @property
    def to_install(self) -> list[CatalogueEntry]:
        """The entries to download and install, language model first."""
        return [c.entry for c in self.choices if c.entry is not None]

    @property
    def ram_mb(self) -> int:
        return sum(c.ram_mb for c in self.choices)


def _disk_need(entry: CatalogueEntry) -> int:
    """Bytes an install takes: the download, its unpacking (zip) and the ladder built from it."""
    size = entry.download_size or 0
    if entry.is_zip:
        size += entry.unpacked_size or 2 * size
    return size + ladder_room(entry)


def _ram(entry: CatalogueEntry | None, role: str) -> int:
    if entry is None:
        return EMBEDDED_MB[role]
    return entry.ram_mb if entry.ram_mb is not None else EMBEDDED_MB[role]


def _fits(entry: CatalogueEntry, room_mb: int, disk_left: int | None) -> str | None:
    """Why ``entry`` does not fit (None when it does)."""
    if entry.ram_mb is None:
        return "its memory need is not known"
    if entry.ram_mb > room_mb:
        return f"needs {entry.ram_mb} MB, {room_mb} MB left"
    if any(f.url is None for f in entry.files):
        return "has no pinned download (install it with --from FILE)"
    if disk_left is not None and _disk_need(entry) > disk_left:
        return f"needs {_disk_need(entry) / 1e9:.1f} GB of disk, {disk_left / 1e9:.1f} GB free"
    return None


def plan_for_device(catalogue: dict[str, CatalogueEntry], mem_total_mb: int | None, *,
                    picks: Sequence[str] = (), disk_free: int | None = None) -> DevicePlan:
    """Choose per role the first entry of ``PREFERENCE`` that fits beside the others (pure: no I/O).

    All three engines are resident at once, so the budget is MemTotal less ``SYSTEM_MB``, shared:
    the language model is chosen first while keeping room for the smallest recogniser, then the
    recogniser in what is left, and the embedded voice stays. ``picks`` name catalogue entries
    that replace the choice for their role (a warning says when one does not fit); an unknown
    or duplicate role pick is an InstallError. Without a memory figure the embedded models are kept.
    """
    by_role: dict[str, CatalogueEntry | None] = {}
    for name in picks:
        entry = catalogue.get(name)
        if entry is None:
            raise InstallError(f"--pick {name}: no such model in the catalogue ({', '.join(sorted(catalogue))})")
        if entry.unsupported:
            raise InstallError(f"--pick {name}: it cannot be used today: {entry.unsupported}")
        role = "vosk" if entry.kind == "pocketsphinx" else entry.kind
        if role not in ROLE_NAMES:
            raise InstallError(f"--pick {name}: a {entry.kind} model has no role on the device")
        if role in by_role:
            other = by_role[role]
            raise InstallError(f"--pick names two {ROLE_NAMES[role]}s ({other.name if other is not None else '?'} "
                               f"and {name}); pick one")
        by_role[role] = None if entry.embedded else entry
    budget = max(0, (mem_total_mb or 0) - SYSTEM_MB)
    warnings: list[str] = []
    if mem_total_mb is None:
        warnings.append("the memory size could not be read from /proc/meminfo: keeping the embedded models")
    disk_left = disk_free
    choices: list[Choice] = []
    left = budget
    roles = ("llm", "vosk", "piper-voice")
    for i, role in enumerate(roles):
        reserve = sum(_ram(by_role[r], r) if r in by_role else EMBEDDED_MB[r] for r in roles[i + 1:])
        if role in by_role:
            entry = by_role[role]
            ram = _ram(entry, role)
            why = "picked with --pick"
            if ram > left - reserve:
                warnings.append(f"{entry.name if entry else EMBEDDED[role]} was picked but needs {ram} MB with "
                                f"{left - reserve} MB left for it: it may not load beside the other engines")
            choice = Choice(role, entry, ram, why, picked=True)
        else:
            choice = _choose(role, catalogue, left - reserve, disk_left, mem_total_mb is None)
        choices.append(choice)
        left -= choice.ram_mb
        if disk_left is not None and choice.entry is not None:
            disk_left -= _disk_need(choice.entry)
    return DevicePlan(mem_total_mb, budget, tuple(choices), tuple(warnings))


def _choose(role: str, catalogue: dict[str, CatalogueEntry], room_mb: int, disk_left: int | None,
            unknown_memory: bool) -> Choice:
    skipped: list[str] = []
    if not unknown_memory:
        for name in PREFERENCE.get(role, ()):
            entry = catalogue.get(name)
            if entry is None:
                continue
            problem = _fits(entry, room_mb, disk_left)
            if problem is None:
                passed = f" (skipped: {'; '.join(skipped)})" if skipped else ""
                return Choice(role, entry, _ram(entry, role), f"the best that fits: {entry.ram_mb} MB of {room_mb} MB "
                              f"left{passed}")
            skipped.append(f"{name} {problem}")
    why = "the embedded model" + (f": nothing better fits ({'; '.join(skipped)})" if skipped else "")
    if role == "piper-voice":
        why = "the embedded voice (another voice is installed only with --pick)"
    return Choice(role, None, EMBEDDED_MB[role], why)
