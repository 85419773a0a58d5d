"""What a drain run is asked to do, what it reports while running, and how it ended."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from assistant.errors import ConfigError

_LOG = logging.getLogger(__name__)

SpeakerKind = Literal["device", "null", "files"]
Status = Literal["starting", "running", "finished", "stopped", "interrupted", "failed"]
SPEAKERS: tuple[str, ...] = ("device", "null", "files")


@dataclass(frozen=True)
class DrainOptions:
    """The settings of one drain run; stored in meta.json so that a resumed run keeps them."""

    tier: str | None = None
    """Tier pinned for every turn; None lets the battery policy walk down the ladder (adaptive)."""
    prompts: Path | None = None
    """Question corpus: a text file (one a line), a WAV, or a directory of WAVs; None: the bundled one."""
    until_pct: float | None = None
    """Stop early, at this state of charge (%); None: at the pack's empty point, where the appliance
    powers off (``battery.empty_soc_pct`` / ``empty_cell_v``, measured, or the board's)."""
    until_brownout: bool = False
    """Run past the empty point until the pack browns out (a real gauge only), so that the resume
    after the power comes back measures this device's empty point and stores it."""
    time_scale: float | None = None
    """Simulated pack only: simulated seconds per real second; None: ``battery.simulated.time_scale``."""
    capacity_wh: float | None = None
    """Simulated pack only: nominal capacity (Wh); None: ``battery.capacity_wh``."""
    speaker: SpeakerKind = "null"
    """Where answers are played: the sound ``device``, ``null`` (discarded) or ``files`` (a WAV per turn)."""
    max_turns: int | None = None
    """Stop after this many turns of the run in total (counting resumed segments); None: no limit."""
    shutdown: bool = False
    """On a real gauge, power the device off at the cut-off; otherwise only say what would happen."""
    sample_period_s: float = 1.0
    """Interval of the battery sample stream (s)."""
    target_hours: float | None = None
    """The governor's target for this run: the charge must last this many hours of the pack's time
    (simulated hours on the simulated pack); None: ``governor`` of the configuration."""
    twin: bool = False
    """Run on the speed twin's ladder (``assistant models make-twin``) instead of the configured tiers."""
    costs_from: str | None = None
    """Another run's directory whose turns tell the governor what each tier costs per answer from the start,
    as the appliance's own turn log does after its first day; None: it measures them in this run."""
    every_s: float | None = None
    """A question every this many seconds of the pack's time (simulated seconds on the simulated pack), the
    appliance idling in between; None: back to back. A turn that runs longer is followed at once."""

    def __post_init__(self) -> None:
        if self.until_pct is not None and not 0.0 <= self.until_pct < 100.0:
            raise ConfigError(f"--until {self.until_pct:g} must be a state of charge within 0..100 %")
        if self.until_pct is not None and self.until_brownout:
            raise ConfigError("--until takes a state of charge or 'brownout', not both")
        if self.time_scale is not None and self.time_scale <= 0:
            raise ConfigError(f"--time-scale {self.time_scale:g} must be positive")
        if self.capacity_wh is not None and self.capacity_wh <= 0:
            raise ConfigError(f"--capacity-wh {self.capacity_wh:g} must be positive")
        if self.speaker not in SPEAKERS:
            raise ConfigError(f"--speaker {self.speaker!r} must be one of {', '.join(SPEAKERS)}")
        if self.max_turns is not None and self.max_turns < 1:
            raise ConfigError(f"--max-turns {self.max_turns} must be at least 1")
        if self.sample_period_s <= 0:
            raise ConfigError(f"sample period {self.sample_period_s:g} s must be positive")
        if self.target_hours is not None and self.target_hours <= 0:
            raise ConfigError(f"--target-hours {self.target_hours:g} must be positive")
        if self.every_s is not None and self.every_s <= 0:
            raise ConfigError(f"--every {self.every_s:g} must be a positive number of seconds")

    @property
    def until(self) -> str:
        """Where the run ends, in words."""
        if self.until_brownout:
            return "brownout"
        return "empty point" if self.until_pct is None else f"state of charge {self.until_pct:g} %"

    @property
    def slug(self) -> str:
        """The mode in a run's id: the pinned tier, ``governor`` or ``adaptive``."""
        return self.tier or ("adaptive" if self.target_hours is None else "governor")

    @property
    def mode(self) -> str:
        """``adaptive``, ``governor <hours> h`` or ``pinned <tier>``, with ``on the speed twin`` for a
        twin run."""
        if self.tier is not None:
            mode = f"pinned {self.tier}"
        else:
            mode = "adaptive" if self.target_hours is None else f"governor {self.target_hours:g} h"
        if self.every_s is not None:
            mode = f"{mode}, a question every {self.every_s:g} s"
        return f"{mode} on the speed twin" if self.twin else mode

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form."""
        data = asdict(self)
        data["prompts"] = str(self.prompts) if self.prompts is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> DrainOptions:
        """Rebuild from ``to_json`` output; ConfigError naming ``where`` when it does not fit."""
        try:
            values = dict(data)
            if values.get("prompts") is not None:
                values["prompts"] = Path(values["prompts"])
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"{where}: the run's options cannot be read: {exc}") from exc


@dataclass(frozen=True)
class Progress:
    """Where a run stands, after each turn."""

    turns: int
    """Turns of the run so far (all segments)."""
    words: int
    """Words spoken so far."""
    soc_pct: float | None
    """State of charge now (%)."""
    voltage_v: float | None
    """Pack voltage now (V)."""
    tier: str | None
    """Tier of the last turn."""
    elapsed_s: float
    """Running time of the run (s, all segments)."""
    eta_s: float | None
    """Estimated running time left to the cut-off (s), from the recent SoC slope; None before it is known."""
    until_pct: float
    """The cut-off state of charge (%)."""


@dataclass(frozen=True)
class DrainResult:
    """How a run ended."""

    run_dir: Path
    run_id: str
    status: Status
    """``finished`` (cut-off reached), ``stopped`` (--max-turns), ``interrupted`` (Ctrl-C) or ``failed``."""
    reason: str
    """One line: why it ended."""
    turns: int
    words: int
    simulated: bool
    """The pack was the simulated one (energy from its power model, not measured)."""
    torn_lines: int = 0
    """Torn lines skipped in the logs when this segment resumed."""
    shutdown_command: tuple[str, ...] | None = None
    """On a real gauge at the cut-off: the power-off command that was run, or would have been."""
    shutdown_done: bool = False
    """The power-off command was run and accepted."""
    empty_point_measured: bool = False
    """The run went to the brown-out and this resume measured and stored the pack's empty point."""
